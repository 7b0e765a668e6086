"""Swift to Swift: the image's objects are copied inside Swift, not via Glance.

Glance's Swift store (single tenant) keeps an image as the object
``<container>/<image id>``; an image at or above its large-object size is a
DLO manifest of that name plus segments ``<image id>-00001...``.  The copy
mirrors that shape under the *target* image's id, so the target Glance owns
the objects as if it had written them (deleting the image deletes them):

* **same cluster** (both regions' stores in one Swift): every segment is
  copied server-side (``PUT`` with ``X-Copy-From``), in parallel; Swift
  checks each copy against the source segment's ETag.  No image byte passes
  through this process.
* **different clusters**: segments are streamed source -> target in
  parallel (``[swift_store] workers``), each ``PUT`` carrying the source
  segment's ETag so the target cluster refuses a copy whose bytes differ.
  After each segment a checkpoint records it; a resumed copy lists what the
  target already holds and copies only missing or mismatched segments.

A source Glance stored as one object larger than ``segment_size_mb`` is
copied the same ways as ranged segments (``Range`` on the server-side copy
or on the GET), so that it too moves in parallel and resumes per segment.

Then the new manifest is written and checked (size, and the DLO ETag: the
md5 of the segments' ETags in order), and the objects are attached to the
reserved image through Glance's location API with the source's checksum and
hash as validation data.  Glance 33 allows a non-http location only to a
caller holding the ``service`` role, which a trust-scoped (user's) token
does not carry: the call adds the clone service user's own token as
``X-Service-Token``.  Glance attaches asynchronously (and, with
``do_secure_hash``, reads the data back to hash it): the copy waits until
the image is ``active``.

Where the source data lives comes from configuration, not from ``GET
/v2/images/{id}/locations``: that call needs the ``service`` or ``admin``
role *in the token's own roles* (a service token does not count), and the
service user's own token does not see the user's private image.  The
image's ``stores`` attribute and a ``HEAD`` of its object confirm it.

Reversion: every object named after the target image id is deleted from the
target container (idempotent).
"""
import concurrent.futures
import hashlib
import logging
import threading
import time
import urllib.parse

import requests
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from clone_flows import auth
from clone_flows import exceptions
from clone_flows import glance
from clone_flows.stores import base

LOG = logging.getLogger(__name__)

GROUP = 'swift_store'

swift_opts = [
    cfg.DictOpt('regions', default={},
                help='Regions whose Glance stores images in Swift, each with '
                     'the storage URL of the Swift account holding that '
                     'store (``RegionOne:https://swift-a/v1/AUTH_x``).  An '
                     'empty URL (``RegionOne:``) takes the region\'s '
                     '"object-store" endpoint from the service catalog of '
                     'the credentials below.  A region not listed does not '
                     'store in Swift for this strategy.'),
    cfg.DictOpt('containers', default={},
                help='Container of each region\'s Glance store '
                     '(swift_store_container there); default "glance".'),
    cfg.DictOpt('clusters', default={},
                help='Name of the Swift cluster of each region: regions '
                     'with the same name copy server-side.  Default: the '
                     'scheme, host and port of the storage URL.'),
    cfg.DictOpt('location_prefixes', default={}, secret=True,
                help='For each target region: the location URL Glance is '
                     'given for a copied object, up to the object name, '
                     'e.g. "RegionTwo:swift+https://service:glance:PASSWORD@'
                     'keystone:5000/v3/glance/".  Glance 33 refuses '
                     '"swift+config://" locations through its API (LP '
                     '#1334196), so the URL names the Keystone user that '
                     'Glance will read and delete the objects as; Glance '
                     'stores it with the image.'),
    cfg.DictOpt('store_ids', default={},
                help='Glance store (backend) id of each region\'s Swift '
                     'store; default "swift".  The source image must be in '
                     'it and it must be the target\'s default store.'),
    cfg.DictOpt('auth_sections', default={},
                help='Configuration group with keystoneauth options to '
                     'reach a region\'s Swift (``RegionTwo:swift_auth_two``); '
                     'default: [service_auth], the clone service user, who '
                     'must operate the account (Swift keystoneauth '
                     'operator_roles).'),
    cfg.StrOpt('endpoint_interface', default='public',
               choices=['public', 'internal', 'admin'],
               help='Catalog interface of the object-store endpoints.'),
    cfg.IntOpt('workers', default=4, min=1, max=64,
               help='Segments copied at the same time.'),
    cfg.IntOpt('segment_size_mb', default=256, min=0, max=5120,
               help='A source stored as one object larger than this (MiB) '
                    'is copied as ranged segments of this size plus a '
                    'manifest, in parallel and resumable per segment, '
                    'instead of as one object (Glance writes images below '
                    'its swift_store_large_object_size, 5 GB by default, as '
                    'one object).  Ranged reads are not checked against the '
                    'source ETag by Swift: the end-to-end check is Glance\'s '
                    'hash of the attached data and Verify.  0: never split.'),
    cfg.IntOpt('chunk_size', default=1024 * 1024, min=4096,
               help='Bytes read from the source at a time when segments '
                    'are streamed between clusters.'),
    cfg.FloatOpt('timeout', default=120.0, min=1,
                 help='Seconds to wait for any answer from Swift (a '
                      'server-side copy answers when it is done).'),
    cfg.FloatOpt('attach_timeout', default=3600.0, min=1,
                 help='Seconds to wait for Glance to make the image active '
                      'after the location is added (Glance may read the '
                      'data back to hash it).'),
]


def register_opts(conf):
    conf.register_opts(swift_opts, group=GROUP)


def list_opts():
    return [(GROUP, swift_opts)]


class SourceDataBroken(exceptions.CloneError):
    """The source image's objects in Swift are missing or corrupted."""


class SwiftUnavailable(exceptions.ServiceUnavailable):
    pass


class LocationRefused(exceptions.CloneError):
    """The target Glance would not take the copy's location."""


# ---------------------------------------------------------------------------
# A small Swift client: only what the copy needs, thread-safe per call.


class SwiftError(Exception):
    def __init__(self, method, path, status, body=''):
        super().__init__(f'{method} {path} answered {status}: {body[:200]}')
        self.status = status


class SwiftAccount:
    """One region's Glance store: an account URL, a container, a token."""

    def __init__(self, region, storage_url, container, token_source,
                 timeout=120.0):
        self.region = region
        self.storage_url = storage_url.rstrip('/')
        self.container = container
        self._token_source = token_source
        self._timeout = timeout
        self._local = threading.local()

    @property
    def account(self):
        return urllib.parse.unquote(self.storage_url.rsplit('/', 1)[-1])

    @property
    def cluster(self):
        u = urllib.parse.urlsplit(self.storage_url)
        return f'{u.scheme}://{u.netloc}'

    def _http(self):
        if getattr(self._local, 'http', None) is None:
            self._local.http = requests.Session()
        return self._local.http

    def _url(self, obj=None, container=None):
        c = urllib.parse.quote(container or self.container)
        if obj is None:
            return f'{self.storage_url}/{c}'
        return f'{self.storage_url}/{c}/{urllib.parse.quote(obj)}'

    def request(self, method, obj=None, ok=(200,), headers=None, **kw):
        url = self._url(obj)
        for attempt in (1, 2):
            h = dict(headers or {}, **{'X-Auth-Token': self._token_source()})
            try:
                resp = self._http().request(method, url, headers=h,
                                            timeout=self._timeout, **kw)
            except requests.RequestException as e:
                raise SwiftUnavailable(
                    self.region, what='the Swift store',
                    detail=type(e).__name__) from e
            if resp.status_code == 401 and attempt == 1 and \
                    isinstance(kw.get('data'), (bytes, type(None))):
                self._token_source(refresh=True)
                continue
            break
        if resp.status_code in (502, 503, 504, 507):
            raise SwiftUnavailable(self.region, what='the Swift store',
                                   detail=f'HTTP {resp.status_code}')
        if resp.status_code not in ok:
            body = '' if kw.get('stream') else resp.text
            raise SwiftError(method, url, resp.status_code, body)
        return resp

    def head(self, obj):
        """Headers of the object (lower-case keys), or None if absent."""
        resp = self.request('HEAD', obj, ok=(200, 204, 404))
        if resp.status_code == 404:
            return None
        return {k.lower(): v for k, v in resp.headers.items()}

    def listing(self, prefix, container=None):
        """[{name, bytes, hash}] of objects named ``prefix...``, in order."""
        out, marker = [], ''
        url_container = container or self.container
        while True:
            resp = self._http().get(
                self._url(container=url_container),
                params={'format': 'json', 'prefix': prefix, 'marker': marker},
                headers={'X-Auth-Token': self._token_source()},
                timeout=self._timeout)
            if resp.status_code == 404:
                return out
            if resp.status_code == 204:
                return out
            if resp.status_code != 200:
                raise SwiftError('GET', self._url(container=url_container),
                                 resp.status_code, resp.text)
            page = resp.json()
            if not page:
                return out
            out.extend({'name': o['name'], 'bytes': int(o['bytes']),
                        'hash': o['hash']} for o in page)
            marker = page[-1]['name']

    def ensure_container(self):
        try:
            self.request('PUT', None, ok=(201, 202, 204))
        except SwiftError as e:
            if e.status != 404:
                raise
            # an account nobody used yet: reading it makes Swift create it
            # (account_autocreate), then the container can be made
            self._http().head(self.storage_url, timeout=self._timeout,
                              headers={'X-Auth-Token': self._token_source()})
            self.request('PUT', None, ok=(201, 202, 204))

    def get_stream(self, obj, chunk_size, byte_range=None):
        headers = {}
        if byte_range is not None:
            headers['Range'] = 'bytes=%d-%d' % (
                byte_range[0], byte_range[0] + byte_range[1] - 1)
        resp = self.request('GET', obj, stream=True, headers=headers,
                            ok=(206,) if byte_range else (200,))
        return resp, resp.iter_content(chunk_size)

    def put(self, obj, data, etag=None):
        """PUT an iterable of chunks (chunked transfer); Swift refuses it
        (422) unless the bytes' md5 is ``etag`` (when given)."""
        headers = {'Content-Type': 'application/octet-stream'}
        if etag:
            headers['ETag'] = etag
        resp = self.request('PUT', obj, ok=(201,), data=data,
                            headers=headers)
        return resp.headers.get('Etag', '').strip('"')

    def copy_from(self, obj, source, src_obj, etag=None, byte_range=None):
        """Server-side copy of ``source``'s object (or of a byte range of
        it) into ``obj`` here."""
        headers = {'X-Copy-From': '/%s/%s' % (
            urllib.parse.quote(source.container), urllib.parse.quote(src_obj)),
            'Content-Length': '0'}
        if etag:
            headers['ETag'] = etag
        if byte_range is not None:
            headers['Range'] = 'bytes=%d-%d' % (
                byte_range[0], byte_range[0] + byte_range[1] - 1)
        if source.account != self.account:
            headers['X-Copy-From-Account'] = source.account
        resp = self.request('PUT', obj, ok=(201,), headers=headers)
        return resp.headers.get('Etag', '').strip('"')

    def put_manifest(self, obj, segment_prefix):
        self.request('PUT', obj, ok=(201,), data=b'', headers={
            'X-Object-Manifest': f'{self.container}/{segment_prefix}',
            'Content-Length': '0',
            'Content-Type': 'application/octet-stream'})

    def delete(self, obj):
        """True if deleted now, False if it was not there."""
        resp = self.request('DELETE', obj, ok=(204, 404))
        return resp.status_code == 204


class _TokenSource:
    """A keystoneauth session's token, refreshed when Swift says 401."""

    def __init__(self, session):
        self._session = session
        self._lock = threading.Lock()

    def __call__(self, refresh=False):
        with self._lock:
            if refresh:
                self._session.invalidate()
            return self._session.get_token()


# ---------------------------------------------------------------------------
# The plan of a copy: source pieces -> target objects


class Piece:
    """One target object: a source object, or a byte range of one
    (``offset`` not None; its ETag is known only once copied)."""
    __slots__ = ('index', 'source', 'target', 'bytes', 'etag', 'offset',
                 'copied_etag')

    def __init__(self, index, source, target, size, etag, offset=None):
        self.index, self.source, self.target = index, source, target
        self.bytes, self.etag, self.offset = size, etag, offset
        self.copied_etag = etag

    @property
    def byte_range(self):
        return None if self.offset is None else (self.offset, self.bytes)


def target_names(target_image_id, count, segmented):
    """(manifest name or None, [object names]) of the copy."""
    if not segmented:
        return None, [target_image_id]
    return target_image_id, ['%s-%05d' % (target_image_id, i + 1)
                             for i in range(count)]


def dlo_etag(etags):
    """The ETag Swift gives a DLO manifest: md5 of its segments' ETags."""
    return hashlib.md5(''.join(etags).encode(),
                       usedforsecurity=False).hexdigest()


def source_pieces(src, image, segment_size=0):
    """Where the image's bytes are in the source store, checked against the
    image's size (and checksum for a single object).

    Returns (segmented, [(name, bytes, etag, offset)]): a single object
    larger than ``segment_size`` (when set) comes as ranges of it (etag
    None).  Raises SourceDataBroken when the objects cannot be the image
    (missing segment, wrong size).
    """
    image_id, size = image['id'], int(image.get('size') or 0)
    head = src.head(image_id)
    if head is None:
        raise SourceDataBroken(
            f"the data of image {image_id} is not in {src.region}'s Swift "
            f"store (no object {src.container}/{image_id})")
    manifest = head.get('x-object-manifest')
    if head.get('x-static-large-object'):
        raise SourceDataBroken(
            f'image {image_id} is stored as a static large object, which '
            f'this strategy does not copy')
    if not manifest:
        etag = head.get('etag', '').strip('"')
        length = int(head.get('content-length') or 0)
        if length != size or (image.get('checksum') and
                              etag != image['checksum']):
            raise SourceDataBroken(
                f"the object of image {image_id} in {src.region}'s Swift "
                f"does not match the image ({length} bytes, ETag {etag}; "
                f"the image has {size} bytes, checksum "
                f"{image.get('checksum')})")
        if segment_size and length > segment_size:
            return True, [(image_id, min(segment_size, length - off), None,
                           off) for off in range(0, length, segment_size)]
        return False, [(image_id, length, etag, None)]
    container, prefix = manifest.split('/', 1)
    container = urllib.parse.unquote(container)
    prefix = urllib.parse.unquote(prefix)
    if container != src.container:
        raise SourceDataBroken(
            f'the segments of image {image_id} are in container {container}, '
            f'not in the store\'s {src.container}')
    segments = src.listing(prefix)
    found = sum(s['bytes'] for s in segments)
    # Glance numbers its segments <id>-00001, -00002...: a gap is a loss
    numbered = [s['name'][len(prefix):] for s in segments]
    expected = ['%05d' % (i + 1) for i in range(len(segments))]
    if prefix == f'{image_id}-' and numbered != expected:
        missing = next((e for e, n in zip(expected + [None], numbered + [None])
                        if e != n), None)
        raise SourceDataBroken(
            f"image {image_id} is incomplete in {src.region}'s Swift: "
            f"segment {prefix}{missing} is missing")
    if not segments or found != size:
        raise SourceDataBroken(
            f"image {image_id} is incomplete in {src.region}'s Swift: its "
            f"{len(segments)} segments hold {found} bytes, the image has "
            f"{size}")
    return True, [(s['name'], s['bytes'], s['hash'], None) for s in segments]


def make_pieces(target_image_id, segmented, sources):
    manifest, names = target_names(target_image_id, len(sources), segmented)
    return manifest, [Piece(i, s[0], names[i], s[1], s[2], s[3])
                      for i, s in enumerate(sources)]


# ---------------------------------------------------------------------------
# The strategy


class SwiftStrategy(base.StoreStrategy):
    name = 'swift'

    def __init__(self, conf):
        super().__init__(conf)
        self._accounts = {}
        self._lock = threading.Lock()
        self._service = None      # the service user's own session, shared

    # -- configuration ------------------------------------------------------
    @property
    def _opts(self):
        return self.conf[GROUP]

    def _store_id(self, region):
        return self._opts.store_ids.get(region) or 'swift'

    def _container(self, region):
        return self._opts.containers.get(region) or 'glance'

    def _service_session(self):
        if self._service is None:
            self._service = auth.service_session(self.conf)
        return self._service

    def _session(self, region):
        group = self._opts.auth_sections.get(region)
        if not group:
            return self._service_session()
        ks_loading.register_auth_conf_options(self.conf, group)
        ks_loading.register_session_conf_options(self.conf, group)
        plugin = ks_loading.load_auth_from_conf_options(self.conf, group)
        return ks_loading.load_session_from_conf_options(self.conf, group,
                                                         auth=plugin)

    def account(self, region):
        """The SwiftAccount of a region's Glance store (cached)."""
        with self._lock:
            if region in self._accounts:
                return self._accounts[region]
            url = self._opts.regions.get(region)
            session = self._session(region)
            if not url:
                try:
                    url = session.get_endpoint(
                        service_type='object-store', region_name=region,
                        interface=self._opts.endpoint_interface)
                except Exception as e:  # keystoneauth: many kinds
                    raise SwiftUnavailable(
                        region, what='the object-store endpoint',
                        detail=type(e).__name__) from e
                if not url:
                    raise exceptions.RegionNotFound(region, 'object-store')
            acct = SwiftAccount(region, url, self._container(region),
                                _TokenSource(session), self._opts.timeout)
            self._accounts[region] = acct
            return acct

    def _split(self):
        return self._opts.segment_size_mb * 1024 * 1024

    def cluster(self, region):
        return self._opts.clusters.get(region) or self.account(region).cluster

    def location(self, region, obj):
        return self._opts.location_prefixes[region] + obj

    # -- the four answers --------------------------------------------------
    def applies(self, job):
        src_region, dst_region = job.source.region, job.target.region
        for region in (src_region, dst_region):
            if region not in self._opts.regions:
                return False, (f'{region} does not store images in Swift (not '
                               f'in [{GROUP}] regions)')
        if not self._opts.location_prefixes.get(dst_region):
            return False, (f'no [{GROUP}] location_prefixes entry for '
                           f'{dst_region}')
        image = job.source_image
        stores = [s for s in (image.get('stores') or '').split(',') if s]
        if stores and self._store_id(src_region) not in stores:
            return False, (f"the source image is not in Swift (it is in "
                           f"{', '.join(stores)})")
        if not int(image.get('size') or 0):
            return False, 'the source image is empty'
        try:
            default = job.target.default_store()
        except glance.GlanceError as e:
            return False, (f'the stores of {dst_region} are unknown '
                           f'({e.status})')
        if default is not None and default != self._store_id(dst_region):
            return False, (f"{dst_region} stores new images in '{default}', "
                           f"not in Swift")
        try:
            src = self.account(src_region)
            self.account(dst_region)
            source_pieces(src, image)
        except SourceDataBroken as e:
            return False, str(e)
        except (exceptions.CloneError, SwiftError) as e:
            return False, f'Swift could not be asked: {e}'
        return True, ''

    def plan(self, job):
        plan = super().plan(job)
        try:
            _, pieces = source_pieces(self.account(job.source.region),
                                      job.source_image, self._split())
            plan.objects = len(pieces)
        except (exceptions.CloneError, SwiftError):
            pass
        return plan

    def copy(self, job, progress, checkpoint=None):
        image = job.source_image
        total = int(image.get('size') or 0)
        current = job.target.get_image(job.target_image_id)
        if current.get('status') == 'active':
            LOG.info('Clone %s: target image %s is already active',
                     job.clone_id, job.target_image_id)
            progress(total, total)
            return base.CopyOutcome(bytes_copied=0,
                                    details={'already_attached': True})
        if current.get('status') == 'importing':
            self._wait_active(job)
            progress(total, total)
            return base.CopyOutcome(bytes_copied=0,
                                    details={'already_attached': True})
        if current.get('status') != 'queued':
            raise exceptions.ServiceUnavailable(
                job.target.region, detail=f"the reserved image "
                f"{job.target_image_id} is '{current.get('status')}' and "
                f"cannot take data")
        src = self.account(job.source.region)
        dst = self.account(job.target.region)
        same = self.cluster(job.source.region) == self.cluster(
            job.target.region)
        try:
            segmented, sources = source_pieces(src, image, self._split())
        except SwiftError as e:
            raise SwiftUnavailable(job.source.region, what='the Swift store',
                                   detail=str(e)) from e
        manifest, pieces = make_pieces(job.target_image_id, segmented, sources)
        started = time.monotonic()
        copier = _Copier(src, dst, same, pieces, total, progress,
                         self._opts.workers, self._opts.chunk_size,
                         job, checkpoint)
        try:
            copier.run()
            if manifest:
                self._write_manifest(dst, manifest, pieces, total)
        except SwiftError as e:    # unexpected answer: retried like an outage
            raise SwiftUnavailable(job.target.region, what='the Swift store',
                                   detail=str(e)) from e
        url = self.location(job.target.region, manifest or pieces[0].target)
        copy_seconds = time.monotonic() - started
        self._attach(job, url)
        return base.CopyOutcome(bytes_copied=copier.bytes_moved, details={
            'mode': 'server-side' if same else 'streamed',
            'segments': len(pieces), 'copied': copier.copied,
            'skipped': copier.skipped, 'workers': self._opts.workers,
            'location': _redacted(url), 'copy_seconds': round(copy_seconds, 3),
            'attach_seconds': round(time.monotonic() - started -
                                    copy_seconds, 3)})

    def cleanup(self, job, checkpoint=None):
        ids = {i for i in ((checkpoint or {}).get('target_image_id'),
                           job.target_image_id) if i}
        if not ids or job.target.region not in self._opts.regions:
            return None
        dst = self.account(job.target.region)
        deleted = 0
        try:
            for image_id in ids:
                # the manifest first: a half-deleted copy is never readable
                if dst.delete(image_id):
                    deleted += 1
                for obj in dst.listing(image_id + '-'):
                    if dst.delete(obj['name']):
                        deleted += 1
        except SwiftError as e:
            raise SwiftUnavailable(job.target.region, what='the Swift store',
                                   detail=str(e)) from e
        if deleted:
            LOG.info('Clone %s: deleted %d copied objects from %s\'s Swift',
                     job.clone_id, deleted, job.target.region)
        return deleted

    # -- steps ----------------------------------------------------------------
    def _write_manifest(self, dst, manifest, pieces, total):
        prefix = manifest + '-'
        dst.put_manifest(manifest, prefix)
        head = dst.head(manifest) or {}
        size = int(head.get('content-length') or -1)
        etag = head.get('etag', '').strip('"')
        want = dlo_etag([p.copied_etag for p in pieces])
        if size != total or etag != want:
            raise SourceDataBroken(
                f'the copied manifest {dst.container}/{manifest} does not '
                f'add up: {size} bytes, ETag {etag} (expected {total} bytes, '
                f'ETag {want})')

    def _attach(self, job, url):
        # Glance 33's schema takes only these two (no checksum): Glance
        # computes checksum and size itself (do_secure_hash, the default)
        validation = {'os_hash_algo': job.source_image.get('os_hash_algo'),
                      'os_hash_value': job.source_image.get('os_hash_value')}
        token = self._service_token()
        try:
            job.target.add_location(job.target_image_id, url, validation,
                                    headers={'X-Service-Token': token})
        except glance.Forbidden as e:
            raise exceptions.TargetNotAuthorized(
                job.target.region, 'the location API refused the clone '
                'service (it needs the service role; see the README)') from e
        except glance.Conflict:
            pass        # an earlier attempt's attach is under way
        self._wait_active(job)

    def _refused(self, job):
        """Glance put the image back to queued: its location import failed.

        Glance's task says only "Task failed due to Internal Error" whether
        the URL did not match its store or the data did not hash to the
        validation data, so the sentence names both.
        """
        tasks = [t for t in job.target.image_tasks(job.target_image_id)
                 if t.get('type') == 'location_import']
        why = (tasks[0].get('message') or '') if tasks else ''
        raise LocationRefused(
            f"{job.target.region} refused the copied objects as the image's "
            f"data{f' ({why})' if why else ''}: either they do not hash to "
            f"the source's {job.source_image.get('os_hash_algo')} value, or "
            f"[{GROUP}] location_prefixes does not match its Swift store; "
            f"the copy was removed")

    def _service_token(self):
        """The clone service user's own token (its ``service`` role), sent
        as X-Service-Token next to the trust-scoped one."""
        return self._service_session().get_token()

    def _wait_active(self, job):
        deadline = time.monotonic() + self._opts.attach_timeout
        while True:
            image = job.target.get_image(job.target_image_id)
            status = image.get('status')
            if status == 'active':
                return image
            if status == 'queued' and not image.get(
                    'os_glance_import_task'):
                self._refused(job)
            if status not in ('queued', 'importing'):
                raise exceptions.ServiceUnavailable(
                    job.target.region, detail=f"the image became '{status}' "
                    f"while its location was attached")
            if time.monotonic() > deadline:
                raise exceptions.ServiceUnavailable(
                    job.target.region, detail='the image did not become '
                    'active after its location was added')
            time.sleep(0.2)


def _redacted(url):
    """A location without the credentials Glance needs in it (never
    persisted or logged)."""
    parts = urllib.parse.urlsplit(url)
    if '@' not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(
        netloc='***@' + parts.netloc.rsplit('@', 1)[1]))


class _Copier:
    """Copies the pieces with a pool of workers; progress, checkpoints and
    the claim check stay on the calling thread."""

    def __init__(self, src, dst, same, pieces, total, progress, workers,
                 chunk_size, job, checkpoint):
        self.src, self.dst, self.same = src, dst, same
        self.pieces, self.total = pieces, total
        self.progress, self.workers = progress, workers
        self.chunk_size = chunk_size
        self.job = job
        self.checkpoint = checkpoint or {}
        self.copied = self.skipped = 0
        self.bytes_moved = 0         # through this process
        self._inflight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _present(self, recorded_etags):
        """Pieces the target already holds with the right bytes: the
        source segment's ETag, or for a range of a single object the ETag
        the checkpoint recorded when it was copied."""
        have = {o['name']: o for o in self.dst.listing(
            self.job.target_image_id)}
        done = set()
        for p in self.pieces:
            o = have.get(p.target)
            want = p.etag or recorded_etags.get(str(p.index))
            if o and want and o['hash'] == want and o['bytes'] == p.bytes:
                p.copied_etag = want
                done.add(p.index)
        return done

    def run(self):
        self.dst.ensure_container()
        ours = self.checkpoint.get('target_image_id') == \
            self.job.target_image_id
        done = self._present(self.checkpoint.get('etags') or {} if ours
                             else {})
        recorded = set(self.checkpoint.get('done') or ()) if ours else set()
        if recorded - done:
            LOG.warning('Clone %s: %d checkpointed segments are missing or '
                        'changed in the target; copying them again',
                        self.job.clone_id, len(recorded - done))
        todo = [p for p in self.pieces if p.index not in done]
        self.skipped = len(self.pieces) - len(todo)
        finished = set(done)
        bytes_done = sum(p.bytes for p in self.pieces if p.index in done)
        self._report(bytes_done, finished)
        if not todo:
            return
        # At most `workers` segments in flight, the next one started only
        # when one ends: a conductor that stops (claim lost, killed,
        # paused) leaves at most that many half-copied.
        queue = list(todo)
        pool = concurrent.futures.ThreadPoolExecutor(self.workers)
        running = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    p = queue.pop(0)
                    running[pool.submit(self._copy_one, p)] = p
                ready, _ = concurrent.futures.wait(
                    running, timeout=0.5,
                    return_when=concurrent.futures.FIRST_COMPLETED)
                for f in ready:
                    p = running.pop(f)
                    f.result()                      # raises the first error
                    finished.add(p.index)
                    bytes_done += p.bytes
                    self.copied += 1
                    self._report(bytes_done, finished)
                if not ready:
                    with self._lock:
                        inflight = self._inflight
                    self.progress(bytes_done + inflight, self.total)
        except BaseException:
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True)

    def _report(self, bytes_done, finished):
        checkpoint = {'target_image_id': self.job.target_image_id,
                      'segments': len(self.pieces), 'done': sorted(finished)}
        ranged = {str(p.index): p.copied_etag for p in self.pieces
                  if p.offset is not None and p.index in finished}
        if ranged:
            checkpoint['etags'] = ranged
        self.progress(bytes_done, self.total, checkpoint=checkpoint)

    def _copy_one(self, p):
        if self._stop.is_set():
            return
        try:
            if self.same:
                etag = self.dst.copy_from(p.target, self.src, p.source,
                                          p.etag, p.byte_range)
            else:
                etag = self._stream(p)
        except SwiftError as e:
            image_id = self.job.source_image['id']
            if e.status == 422:
                raise SourceDataBroken(
                    f"segment {p.source} of image {image_id} is corrupted in "
                    f"{self.src.region}'s Swift: its bytes do not match its "
                    f"ETag {p.etag}") from e
            if e.status == 404:
                raise SourceDataBroken(
                    f"segment {p.source} of image {image_id} vanished from "
                    f"{self.src.region}'s Swift during the copy") from e
            raise SwiftUnavailable(self.dst.region, what='the Swift store',
                                   detail=str(e)) from e
        if p.etag is None:
            if not etag:
                raise SwiftUnavailable(self.dst.region, what='the Swift store',
                                       detail=f'no ETag for {p.target}')
            p.copied_etag = etag
        elif etag and etag != p.etag:
            raise SourceDataBroken(
                f"segment {p.source} of image {self.job.source_image['id']} "
                f"was copied with ETag {etag}, not {p.etag}")

    def _stream(self, p):
        resp, chunks = self.src.get_stream(p.source, self.chunk_size,
                                           p.byte_range)
        moved = 0
        # a range has no ETag to send: its md5 is checked after the PUT
        digest = hashlib.md5(usedforsecurity=False) if p.etag is None \
            else None

        def counted():
            nonlocal moved
            for chunk in chunks:
                if self._stop.is_set():
                    raise exceptions.Interrupted('copy stopped')
                moved += len(chunk)
                if digest is not None:
                    digest.update(chunk)
                with self._lock:
                    self._inflight += len(chunk)
                    self.bytes_moved += len(chunk)
                yield chunk
        try:
            etag = self.dst.put(p.target, counted(), p.etag)
            if digest is not None and (moved != p.bytes or
                                       etag != digest.hexdigest()):
                raise SwiftUnavailable(
                    self.dst.region, what='the Swift store',
                    detail=f'{p.target} arrived as {etag} ({moved} bytes), '
                    f'sent {digest.hexdigest()} ({p.bytes} bytes)')
            return etag
        finally:
            resp.close()
            with self._lock:
                self._inflight -= moved

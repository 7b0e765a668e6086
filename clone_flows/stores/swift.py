"""Swift to Swift: the image's objects are copied inside Swift, not via Glance.

Served only between regions whose Glance runs the **multi-tenant** Swift
store (``swift_store_multi_tenant = True``, glance_store's
``MultiTenantStore``): an image's data lives in its *owner project's* account,
container ``<swift_store_container>_<image id>``, object ``<image id>`` (a
DLO manifest, with segments ``<image id>-00001...`` in the same container,
for an image at or above Glance's large-object size), and its location is
``swift+http(s)://<storage URL of that account>/<container>/<object>``: no
credential in it.  Glance reads such a location with the request's own token.
A single-tenant Swift store's locations carry Glance's Swift user and key
(``swift+https://user:KEY@...``); Glance shows an added location to every
reader of the image (the ``loc_url`` input of its ``location_import`` task),
so this strategy never serves such a store: ``applies()`` says why and
``auto`` falls back to HTTP.

Everything here runs with the clone's trust-scoped session (the user's
rights, impersonated): the source objects are read in the owner's account
(Swift lets the user read what Glance lets them read: their own project's
account, or a container Glance opened with an ACL), and the copy is written
into the target project's own account, under the name Glance's multi-tenant
store would give the target image:

* **same cluster** (both regions' stores in one Swift): every segment is
  copied server-side (``PUT`` with ``X-Copy-From`` and, across accounts,
  ``X-Copy-From-Account``), in parallel; Swift checks each copy against the
  source segment's ETag.  No image byte passes through this process.
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
reserved image through Glance's location API with the source's hash as
validation data.  Glance 33 allows a non-http location only to a caller
holding the ``service`` role, which the trust-scoped token does not carry:
the call adds the clone service user's own token as ``X-Service-Token`` (a
header, never stored).  Glance attaches asynchronously (and, with
``do_secure_hash``, reads the data back with the trust-scoped token to hash
it): the copy waits until the image is ``active``.

With Glance 33 / glance_store 5.7, a Glance with
``enabled_backends`` (multi-store) refuses a multi-tenant location through
the location API ("Invalid location": the store's URL prefix never matches a
storage URL), while a Glance whose multi-tenant Swift store is configured in
``[glance_store]`` (``stores``/``default_store``) takes it.  So a target
region whose Glance answers ``/v2/info/stores`` (multi-store) is not served.

Reversion: the objects named after the target image id and their container
``<container>_<target id>`` are deleted from the target account
(idempotent).
"""
import concurrent.futures
import hashlib
import logging
import threading
import time
import urllib.parse

from oslo_config import cfg

from clone_flows import exceptions
from clone_flows import glance
from clone_flows.stores import base
from clone_flows.stores.swift_account import SwiftAccount
from clone_flows.stores.swift_account import SwiftError

LOG = logging.getLogger(__name__)

GROUP = 'swift_store'

swift_opts = [
    cfg.DictOpt('regions', default={},
                help='Regions whose Glance runs the multi-tenant Swift store '
                     '(swift_store_multi_tenant = True, configured in '
                     '[glance_store], not with enabled_backends), each with '
                     'the storage URL template of its Swift accounts '
                     '(``RegionOne:https://swift-a/v1/AUTH_%(project_id)s``'
                     '; no credential may appear in it).  An empty template '
                     '(``RegionOne:``) takes the "object-store" endpoint of '
                     'that region from the clone\'s service catalog.  A '
                     'region not listed is not served by this strategy: its '
                     'Glance either does not store in Swift or stores with '
                     'a single-tenant Swift store, whose locations would '
                     'carry its Swift credentials.'),
    cfg.DictOpt('containers', default={},
                help='swift_store_container of each region\'s Glance; an '
                     'image\'s objects are in container '
                     '``<container>_<image id>`` of its owner\'s account.  '
                     'Default "glance".'),
    cfg.DictOpt('clusters', default={},
                help='Name of the Swift cluster of each region: regions '
                     'with the same name copy server-side.  Default: the '
                     'scheme, host and port of the storage URL.'),
    cfg.DictOpt('store_ids', default={},
                help='Glance store id of each region\'s Swift store where '
                     'its Glance is multi-store: a source image whose '
                     '"stores" do not include it is not in Swift, a target '
                     'whose default store is another stores elsewhere; '
                     'default "swift".'),
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
    def __init__(self, region):
        super().__init__(region, what='the Swift store')


class LocationRefused(exceptions.CloneError):
    """The target Glance would not take the copy's location."""


class NotServed(Exception):
    """This source/target pair is not for the Swift strategy; ``str()`` is
    the sentence saying why.
    """


def location_url(storage_url, container, obj):
    """The multi-tenant store's location of an object: no credential."""
    u = urllib.parse.urlsplit(storage_url)
    if u.username or u.password or '@' in u.netloc:
        raise ValueError('a storage URL with a credential in it')
    scheme = 'swift+https' if u.scheme == 'https' else 'swift+http'
    return '%s://%s%s/%s/%s' % (scheme, u.netloc, u.path.rstrip('/'),
                                urllib.parse.quote(container),
                                urllib.parse.quote(obj))


# ---------------------------------------------------------------------------
# The plan of a copy: source pieces -> target objects


class Piece:
    """One target object: a source object, or a byte range of one
    (``offset`` not None; its ETag is known only once copied).
    """
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


def source_pieces(src, container, image, segment_size=0):
    """Where the image's bytes are in the source store, checked against the
    image's size (and checksum for a single object).

    Returns (segmented, [(name, bytes, etag, offset)]): a single object
    larger than ``segment_size`` (when set) comes as ranges of it (etag
    None).  Raises SourceDataBroken when the objects cannot be the image
    (missing segment, wrong size).
    """
    image_id, size = image['id'], int(image.get('size') or 0)
    head = src.head(container, image_id)
    if head is None:
        raise SourceDataBroken(
            f"the data of image {image_id} is not in {src.region}'s Swift "
            f"store (no object {container}/{image_id})")
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
    where, prefix = manifest.split('/', 1)
    where = urllib.parse.unquote(where)
    prefix = urllib.parse.unquote(prefix)
    if where != container:
        raise SourceDataBroken(
            f'the segments of image {image_id} are in container {where}, '
            f'not in its own {container}')
    segments = src.listing(container, prefix)
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


def _unavailable(job, region, detail):
    """The user's sentence names the region; the details (URLs, Swift's
    answer) go to the log with the clone id.
    """
    LOG.warning('Clone %s: Swift of %s: %s', job.clone_id, region, detail)
    return SwiftUnavailable(region)


class SwiftStrategy(base.AttachesLocation, base.StoreStrategy):
    name = 'swift'

    def __init__(self, conf):
        super().__init__(conf)
        self._service = None      # the service user's own session, shared

    # -- configuration ------------------------------------------------------
    @property
    def _opts(self):
        return self.conf[GROUP]

    def _store_id(self, region):
        return self._opts.store_ids.get(region) or 'swift'

    def container(self, region, image_id):
        """The container Glance's multi-tenant store gives an image."""
        return '%s_%s' % (self._opts.containers.get(region) or 'glance',
                          image_id)

    def _split(self):
        return self._opts.segment_size_mb * 1024 * 1024

    def storage_url(self, region, session, project_id):
        """The storage URL of ``project_id``'s account in ``region``'s
        Swift: the configured template, or the catalog's object-store
        endpoint (the trust's project's account) with the project swapped.
        Raises NotServed.
        """
        template = self._opts.regions.get(region)
        if template:
            if '%(project_id)s' not in template:
                raise NotServed(f"the [{GROUP}] regions URL of {region} has "
                                f"no %(project_id)s")
            url = template % {'project_id': project_id}
        else:
            try:
                url = session.get_endpoint(
                    service_type='object-store', region_name=region,
                    interface=self._opts.endpoint_interface)
            except Exception as e:  # keystoneauth: many kinds
                LOG.warning('object-store endpoint of %s: %s', region, e)
                raise NotServed(f'the object-store endpoint of {region} '
                                f'could not be found') from e
            if not url:
                raise NotServed(f'{region} has no object-store endpoint in '
                                f'the service catalog')
            base_url, last = url.rstrip('/').rsplit('/', 1)
            own = session.get_project_id()
            if not last.endswith(own):
                raise NotServed(f'the object-store endpoint of {region} does '
                                f'not name a project account')
            url = f'{base_url}/{last[:-len(own)]}{project_id}'
        if '@' in urllib.parse.urlsplit(url).netloc:
            raise NotServed(f'the storage URL of {region} carries a '
                            f'credential, which Glance would show in the '
                            f'location')
        return url

    def account(self, job, side, image_id=None):
        """(SwiftAccount, container) of the source image (``side`` =
        'source') or of the copy ('target'; ``image_id``: the reserved
        image's), reached with the clone's trust-scoped session.  Raises
        NotServed.
        """
        glance_region = job.source if side == 'source' else job.target
        region, session = glance_region.region, glance_region.session
        if side == 'source':
            project, image_id = job.source_image.get('owner'), \
                job.source_image['id']
        else:
            project = session.get_project_id()
            image_id = image_id or job.target_image_id
        acct = SwiftAccount(region, self.storage_url(region, session, project),
                            session, self._opts.timeout)
        return acct, self.container(region, image_id)

    def cluster(self, acct):
        return self._opts.clusters.get(acct.region) or acct.cluster

    # -- the four answers --------------------------------------------------
    def applies(self, job):
        try:
            self._check(job)
        except NotServed as e:
            return False, str(e)
        return True, ''

    def _check(self, job):
        src_region, dst_region = job.source.region, job.target.region
        for region in (src_region, dst_region):
            if region not in self._opts.regions:
                raise NotServed(
                    f'{region} is not declared a multi-tenant Swift region '
                    f'([{GROUP}] regions): its Glance does not store in Swift '
                    f'or would need a credential in a location')
        image = job.source_image
        stores = [s for s in (image.get('stores') or '').split(',') if s]
        if stores and self._store_id(src_region) not in stores:
            raise NotServed(f"the source image is not in Swift (it is in "
                            f"{', '.join(stores)})")
        if not int(image.get('size') or 0):
            raise NotServed('the source image is empty')
        try:
            default = job.target.default_store()
        except glance.GlanceError as e:
            raise NotServed(f'the stores of {dst_region} are unknown '
                            f'({e.status})') from e
        if default is not None and default != self._store_id(dst_region):
            raise NotServed(f"{dst_region} stores new images in '{default}', "
                            f"not in Swift")
        if default is not None:
            raise NotServed(f'{dst_region} runs several Glance stores, and '
                            f'Glance then refuses a Swift location without '
                            f'credentials')
        src, container = self.account(job, 'source')
        self.account(job, 'target')
        try:
            source_pieces(src, container, image)
        except SourceDataBroken as e:
            raise NotServed(str(e)) from e
        except SwiftError as e:
            LOG.warning('Clone %s: Swift of %s: %s', job.clone_id,
                        src_region, e)
            if e.status in (401, 403):
                raise NotServed(f"you may not read the image's objects in "
                                f"{src_region}'s Swift") from e
            raise NotServed(f"{src_region}'s Swift could not be "
                            f"asked") from e

    def plan(self, job):
        plan = super().plan(job)
        try:
            src, container = self.account(job, 'source')
            _, pieces = source_pieces(src, container, job.source_image,
                                      self._split())
            plan.objects = len(pieces)
        except (exceptions.CloneError, SwiftError, NotServed):
            pass
        return plan

    def copy(self, job, progress, checkpoint=None):
        image = job.source_image
        total = int(image.get('size') or 0)
        current = job.target.get_image(job.target_image_id)
        if current.get('status') in ('active', 'importing'):
            LOG.info('Clone %s: target image %s is already %s',
                     job.clone_id, job.target_image_id, current['status'])
            self._wait_active(job)
            progress(total, total)
            return base.CopyOutcome(bytes_copied=0,
                                    details={'already_attached': True})
        if current.get('status') != 'queued':
            raise exceptions.ServiceUnavailable(
                job.target.region, detail=f"the reserved image "
                f"{job.target_image_id} is '{current.get('status')}' and "
                f"cannot take data")
        try:
            src = self.account(job, 'source')
            dst = self.account(job, 'target')
        except NotServed as e:
            raise exceptions.NoStrategy(self.name, str(e)) from e
        same = self.cluster(src[0]) == self.cluster(dst[0])
        try:
            segmented, sources = source_pieces(src[0], src[1], image,
                                               self._split())
        except SwiftError as e:
            raise _unavailable(job, job.source.region, e) from e
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
            raise _unavailable(job, job.target.region, e) from e
        copy_seconds = time.monotonic() - started
        self._attach(job, location_url(dst[0].storage_url, dst[1],
                                       manifest or pieces[0].target))
        return base.CopyOutcome(bytes_copied=copier.bytes_moved, details={
            'mode': 'server-side' if same else 'streamed',
            'segments': len(pieces), 'copied': copier.copied,
            'skipped': copier.skipped, 'workers': self._opts.workers,
            'copy_seconds': round(copy_seconds, 3),
            'attach_seconds': round(time.monotonic() - started -
                                    copy_seconds, 3)})

    def cleanup(self, job, checkpoint=None):
        ids = {i for i in ((checkpoint or {}).get('target_image_id'),
                           job.target_image_id) if i}
        if not ids or job.target.region not in self._opts.regions:
            return None
        deleted = 0
        try:
            for image_id in sorted(ids):
                dst, container = self.account(job, 'target', image_id)
                # the manifest first: a half-deleted copy is never readable
                if dst.delete(container, image_id):
                    deleted += 1
                for obj in dst.listing(container, image_id + '-'):
                    if dst.delete(container, obj['name']):
                        deleted += 1
                dst.delete_container(container)
        except NotServed as e:
            LOG.warning('Clone %s: cannot clean up in %s: %s', job.clone_id,
                        job.target.region, e)
            return None
        except SwiftError as e:
            raise _unavailable(job, job.target.region, e) from e
        if deleted:
            LOG.info('Clone %s: deleted %d copied objects from %s\'s Swift',
                     job.clone_id, deleted, job.target.region)
        return deleted

    # -- steps ----------------------------------------------------------------
    def _write_manifest(self, dst, manifest, pieces, total):
        acct, container = dst
        acct.put_manifest(container, manifest, manifest + '-')
        head = acct.head(container, manifest) or {}
        size = int(head.get('content-length') or -1)
        etag = head.get('etag', '').strip('"')
        want = dlo_etag([p.copied_etag for p in pieces])
        if size != total or etag != want:
            raise SourceDataBroken(
                f'the copied manifest {container}/{manifest} does not '
                f'add up: {size} bytes, ETag {etag} (expected {total} bytes, '
                f'ETag {want})')

    def _refused(self, job):
        """Glance put the image back to queued: its location import failed.

        Glance's task says only "Task failed due to Internal Error" whether
        the URL did not match its store or the data did not hash to the
        validation data, so the sentence names both.
        """
        LOG.warning('Clone %s: %s refused the location of image %s (see its '
                    'location_import task)', job.clone_id, job.target.region,
                    job.target_image_id)
        raise LocationRefused(
            f"{job.target.region} refused the copied objects as the image's "
            f"data: either they do not hash to the source's "
            f"{job.source_image.get('os_hash_algo')} value, or its Glance "
            f"does not run the multi-tenant Swift store [{GROUP}] regions "
            f"declares; the copy was removed")


class _Copier:
    """Copies the pieces with a pool of workers; progress, checkpoints and
    the claim check stay on the calling thread.
    """

    def __init__(self, src, dst, same, pieces, total, progress, workers,
                 chunk_size, job, checkpoint):
        # src, dst: (SwiftAccount, container)
        (self.src, self.src_c), (self.dst, self.dst_c) = src, dst
        self.same = same
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
        the checkpoint recorded when it was copied.
        """
        have = {o['name']: o for o in self.dst.listing(
            self.dst_c, self.job.target_image_id)}
        done = set()
        for p in self.pieces:
            o = have.get(p.target)
            want = p.etag or recorded_etags.get(str(p.index))
            if o and want and o['hash'] == want and o['bytes'] == p.bytes:
                p.copied_etag = want
                done.add(p.index)
        return done

    def run(self):
        self.dst.ensure_container(self.dst_c)
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
                etag = self.dst.copy_from(self.dst_c, p.target, self.src,
                                          self.src_c, p.source, p.etag,
                                          p.byte_range)
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
            raise _unavailable(self.job, self.dst.region, e) from e
        if p.etag is None:
            if not etag:
                raise _unavailable(self.job, self.dst.region,
                                   f'no ETag for {p.target}')
            p.copied_etag = etag
        elif etag and etag != p.etag:
            raise SourceDataBroken(
                f"segment {p.source} of image {self.job.source_image['id']} "
                f"was copied with ETag {etag}, not {p.etag}")

    def _stream(self, p):
        resp, chunks = self.src.get_stream(self.src_c, p.source,
                                           self.chunk_size, p.byte_range)
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
            etag = self.dst.put(self.dst_c, p.target, counted(), p.etag)
            if digest is not None and (moved != p.bytes or
                                       etag != digest.hexdigest()):
                raise _unavailable(
                    self.job, self.dst.region, f'{p.target} arrived as '
                    f'{etag} ({moved} bytes), sent {digest.hexdigest()} '
                    f'({p.bytes} bytes)')
            return etag
        finally:
            resp.close()
            with self._lock:
                self._inflight -= moved

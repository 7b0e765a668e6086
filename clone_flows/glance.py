"""A small Image API v2 client for one region, over a keystoneauth session.

It speaks only the calls the clone graph needs, streams image data without
buffering it, and turns HTTP answers into :mod:`clone_flows.exceptions`.
"""
import json
import logging
import re

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ksa_exc
from oslo_config import cfg

from clone_flows import exceptions
from clone_flows import utils

LOG = logging.getLogger(__name__)

glance_opts = [
    cfg.FloatOpt('glance_retry_seconds', default=60.0, min=0,
                 help='How long a step keeps retrying a Glance call that '
                      'can be sent again (reads, property updates, '
                      'deletions) while the region does not answer '
                      '(connection refused or lost, timeouts, 5xx), with '
                      'backoff from 0.5 to 8 s; then it fails the step.  '
                      'Covers a Glance restart between two steps.'),
]


def register_opts(conf):
    conf.register_opts(glance_opts, group='clone')


def list_opts():
    return [('clone', glance_opts)]


class GlanceError(Exception):
    """An unexpected answer from Glance (not a user error)."""

    def __init__(self, region, method, url, status, body):
        super().__init__(
            f"{method} {url} in {region} answered {status}: {body[:300]}")
        self.status = status


class NotFound(GlanceError):
    pass


class Forbidden(GlanceError):
    pass


class Conflict(GlanceError):
    pass


_BY_STATUS = {404: NotFound, 403: Forbidden, 409: Conflict}


def _patch_path(key):
    return '/' + key.replace('~', '~0').replace('/', '~1')


_UNIFIED_LIMIT = re.compile(r'Resource (\w+) is over limit of (\d+) due to '
                            r'current usage (\d+)')
_STORAGE_QUOTA = re.compile(r'(-?\d+) bytes remaining')


def _over_limit(body):
    """(quota?, detail) from the text of Glance's 413 answer: whether a
    project quota refused (unified limits or user_storage_quota, else a size
    cap) and the figures it gave, in a few words.
    """
    m = _UNIFIED_LIMIT.search(body)
    if m:
        return True, f'{m.group(1)}: limit {m.group(2)}, in use {m.group(3)}'
    m = _STORAGE_QUOTA.search(body)
    if m:
        return True, f'{max(int(m.group(1)), 0)} bytes of storage left'
    return 'quota' in body.lower() or 'limit' in body.lower(), ''


def transport_detail(exc):
    """A few words for a connection-level failure, without the library's
    exception name or the URL (those go to the operator's log).
    """
    if isinstance(exc, ksa_exc.ConnectTimeout):
        return 'the connection timed out'
    if isinstance(exc, ksa_exc.ConnectFailure):
        return 'the connection was refused or lost'
    return 'the connection failed'


class GlanceRegion:
    """Image API v2 of one region, as seen by one keystoneauth session."""

    def __init__(self, session, region, interface='public', timeout=60,
                 retry_seconds=60.0):
        self.region = region
        self._api = adapter.Adapter(
            session, service_type='image', region_name=region,
            interface=interface, raise_exc=False)
        self._timeout = timeout
        self._retry_seconds = retry_seconds

    # -- plumbing ---------------------------------------------------------
    @property
    def session(self):
        """The keystoneauth session this region is reached with (a store
        strategy reaches the region's store with it too).
        """
        return self._api.session

    def endpoint(self):
        try:
            url = self._api.get_endpoint()
        except ksa_exc.EndpointNotFound:
            url = None
        except (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout) as e:
            LOG.warning('The identity service did not answer for %s\'s '
                        'endpoint: %s', self.region, e)
            raise exceptions.ServiceUnavailable(
                self.region, 'the identity service', transport_detail(e))
        if not url:
            raise exceptions.RegionNotFound(self.region)
        return url

    #: Requests safe to send again when Glance does not answer or answers
    #: 5xx (a busy database, a restarting server); uploads and creates are
    #: not (the steps that send them decide).
    IDEMPOTENT = ('GET', 'HEAD', 'PATCH', 'DELETE')

    def _request(self, method, url, ok=(200,), **kwargs):
        if method not in self.IDEMPOTENT or kwargs.get('stream'):
            return self._request_once(method, url, ok, **kwargs)
        return utils.keep_trying(
            lambda: self._request_once(method, url, ok, **kwargs),
            f'{method} {url} in {self.region}', self._retry_seconds,
            max_delay=8.0,
            retry_on=(GlanceError, exceptions.ServiceUnavailable),
            retry_if=lambda e: not isinstance(e, GlanceError) or
            e.status >= 500)

    def _request_once(self, method, url, ok, **kwargs):
        kwargs.setdefault('timeout', self._timeout)
        try:
            resp = self._api.request(url, method, **kwargs)
        except ksa_exc.EndpointNotFound:
            raise exceptions.RegionNotFound(self.region)
        except (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout,
                ksa_exc.RetriableConnectionFailure) as e:
            LOG.warning('%s %s in %s: %s', method, url, self.region, e)
            raise exceptions.ServiceUnavailable(self.region,
                                                detail=transport_detail(e))
        except ksa_exc.Unauthorized as e:
            LOG.warning('%s %s in %s: Keystone refused the delegation: %s',
                        method, url, self.region, e)
            raise exceptions.NotAuthenticated()
        if resp.status_code not in ok:
            if resp.status_code == 401:
                raise exceptions.NotAuthenticated(
                    f"{self.region} answered 401 Unauthorized")
            if resp.status_code in (502, 503, 504):
                raise exceptions.ServiceUnavailable(
                    self.region, detail=f"HTTP {resp.status_code}")
            if resp.status_code == 413:
                LOG.warning('%s %s in %s answered 413: %s', method, url,
                            self.region, (resp.text or '')[:500])
                raise exceptions.TargetRefusedSize(
                    self.region, *_over_limit(resp.text or ''))
            cls = _BY_STATUS.get(resp.status_code, GlanceError)
            raise cls(self.region, method, url, resp.status_code,
                      resp.text or '')
        return resp

    # -- images -----------------------------------------------------------
    def get_image(self, image_id):
        return self._request('GET', f'/v2/images/{image_id}').json()

    def find_images(self, **filters):
        """All images matching ``filters`` (hidden ones only if asked)."""
        images, url, params = [], '/v2/images', dict(filters, limit=100)
        while url:
            body = self._request('GET', url, params=params).json()
            images.extend(body.get('images', []))
            nxt = body.get('next')
            url, params = (nxt, None) if nxt else (None, None)
        return images

    def create_image(self, **fields):
        return self._request('POST', '/v2/images', ok=(201,),
                             json=fields).json()

    def update_image(self, image_id, replace=None, remove=()):
        ops = [{'op': 'add', 'path': _patch_path(k), 'value': v}
               for k, v in (replace or {}).items()]
        ops += [{'op': 'remove', 'path': _patch_path(k)} for k in remove]
        if not ops:
            return self.get_image(image_id)
        return self._request(
            'PATCH', f'/v2/images/{image_id}', data=json.dumps(ops),
            headers={'Content-Type':
                     'application/openstack-images-v2.1-json-patch'}
        ).json()

    def delete_image(self, image_id):
        """Delete; True if it was deleted now, False if it was already gone."""
        try:
            self._request('DELETE', f'/v2/images/{image_id}', ok=(204,))
        except NotFound:
            return False
        return True

    # -- data -------------------------------------------------------------
    def open_data(self, image_id):
        """A streaming response for the image's data (close it when done)."""
        resp = self._request('GET', f'/v2/images/{image_id}/file',
                             ok=(200, 204), stream=True)
        return resp

    def may_download(self, image_id):
        """Whether Glance lets this session download the image's data.

        Asks for its first byte only (``Range: bytes=0-0``), so Glance's own
        ``download_image`` policy decides, as it would for the user.  Glance
        checks that policy before it reads the store: a store that cannot
        serve ranges (Swift: 400 "Getting images randomly from this store is
        not supported") or an empty image (416) still means "allowed".
        """
        try:
            resp = self._request('GET', f'/v2/images/{image_id}/file',
                                 ok=(200, 204, 206, 400, 416), stream=True,
                                 headers={'Range': 'bytes=0-0'})
        except Forbidden:
            return False
        resp.close()
        return True

    def upload_data(self, image_id, chunks):
        """PUT an iterable of byte chunks as the image's data (chunked)."""
        self._request('PUT', f'/v2/images/{image_id}/file', ok=(204,),
                      data=chunks,
                      headers={'Content-Type': 'application/octet-stream'})

    # -- locations (Image API 2.17+: service-to-service) -----------------
    def add_location(self, image_id, url, validation_data, headers=None):
        """``headers``: e.g. an ``X-Service-Token`` (Glance allows
        non-http locations only to a caller with the service role).
        """
        self._request('POST', f'/v2/images/{image_id}/locations', ok=(202,),
                      json={'url': url, 'validation_data': validation_data},
                      **({'headers': headers} if headers else {}))

    def usage(self):
        """The project's quota usage where Glance reports it (unified
        limits: ``{name: {'usage': n, 'limit': n}}``, sizes in MiB), else
        ``{}``.
        """
        try:
            body = self._request('GET', '/v2/info/usage').json()
        except (NotFound, Forbidden):
            return {}
        return body.get('usage') or {}

    def default_store(self):
        """Id of the store new images go to (multi-store), or None."""
        try:
            stores = self._request('GET', '/v2/info/stores').json()
        except NotFound:
            return None
        return next((s['id'] for s in stores.get('stores', [])
                     if s.get('default')), None)

"""A small Image API v2 client for one region, over a keystoneauth session.

It speaks only the calls the clone graph needs, streams image data without
buffering it, and turns HTTP answers into :mod:`clone_flows.exceptions`.
"""
import json
import logging
import time

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ksa_exc

from clone_flows import exceptions

LOG = logging.getLogger(__name__)

# Attributes Glance computes or owns: never sent back in a create or patch.
READ_ONLY = frozenset((
    'id', 'status', 'checksum', 'os_hash_algo', 'os_hash_value', 'size',
    'virtual_size', 'created_at', 'updated_at', 'owner', 'locations', 'stores',
    'direct_url', 'file', 'schema', 'self'))


class GlanceError(Exception):
    """An unexpected answer from Glance (not a user error)."""

    def __init__(self, region, method, url, status, body):
        super().__init__(f"{method} {url} in {region} answered {status}: {body[:300]}")
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


class GlanceRegion:
    """Image API v2 of one region, as seen by one keystoneauth session."""

    def __init__(self, session, region, interface='public', timeout=60):
        self.region = region
        self._api = adapter.Adapter(
            session, service_type='image', region_name=region,
            interface=interface, raise_exc=False)
        self._timeout = timeout

    # -- plumbing ---------------------------------------------------------
    @property
    def session(self):
        """The keystoneauth session this region is reached with (a store
        strategy reaches the region's store with it too)."""
        return self._api.session

    def endpoint(self):
        try:
            url = self._api.get_endpoint()
        except ksa_exc.EndpointNotFound:
            url = None
        except ksa_exc.ConnectFailure as e:
            raise exceptions.ServiceUnavailable(self.region, 'the identity service',
                                                str(e))
        if not url:
            raise exceptions.RegionNotFound(self.region)
        return url

    #: Requests safe to send again when Glance answers 5xx (a busy
    #: database, a restarting worker); uploads and creates are not.
    IDEMPOTENT = ('GET', 'HEAD', 'PATCH', 'DELETE')

    def _request(self, method, url, ok=(200,), **kwargs):
        attempts = 4 if method in self.IDEMPOTENT and \
            not kwargs.get('stream') else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._request_once(method, url, ok, **kwargs)
            except GlanceError as e:
                if e.status < 500 or attempt == attempts:
                    raise
                LOG.warning('%s; trying again (%d/%d)', e, attempt, attempts - 1)
                time.sleep(0.5 * 2 ** (attempt - 1))

    def _request_once(self, method, url, ok, **kwargs):
        kwargs.setdefault('timeout', self._timeout)
        try:
            resp = self._api.request(url, method, **kwargs)
        except ksa_exc.EndpointNotFound:
            raise exceptions.RegionNotFound(self.region)
        except (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout,
                ksa_exc.RetriableConnectionFailure) as e:
            raise exceptions.ServiceUnavailable(self.region, detail=type(e).__name__)
        except ksa_exc.Unauthorized as e:
            raise exceptions.NotAuthenticated(str(e))
        if resp.status_code not in ok:
            if resp.status_code == 401:
                raise exceptions.NotAuthenticated(
                    f"{self.region} answered 401 Unauthorized")
            if resp.status_code in (502, 503, 504):
                raise exceptions.ServiceUnavailable(
                    self.region, detail=f"HTTP {resp.status_code}")
            cls = _BY_STATUS.get(resp.status_code, GlanceError)
            raise cls(self.region, method, url, resp.status_code, resp.text or '')
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
        return self._request('POST', '/v2/images', ok=(201,), json=fields).json()

    def update_image(self, image_id, replace=None, remove=()):
        ops = [{'op': 'add', 'path': _patch_path(k), 'value': v}
               for k, v in (replace or {}).items()]
        ops += [{'op': 'remove', 'path': _patch_path(k)} for k in remove]
        if not ops:
            return self.get_image(image_id)
        return self._request(
            'PATCH', f'/v2/images/{image_id}', data=json.dumps(ops),
            headers={'Content-Type': 'application/openstack-images-v2.1-json-patch'}
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

    def upload_data(self, image_id, chunks):
        """PUT an iterable of byte chunks as the image's data (chunked)."""
        self._request('PUT', f'/v2/images/{image_id}/file', ok=(204,),
                      data=chunks,
                      headers={'Content-Type': 'application/octet-stream'})

    # -- locations (Image API 2.17+: service-to-service) -----------------
    def add_location(self, image_id, url, validation_data, headers=None):
        """``headers``: e.g. an ``X-Service-Token`` (Glance allows
        non-http locations only to a caller with the service role)."""
        self._request('POST', f'/v2/images/{image_id}/locations', ok=(202,),
                      json={'url': url, 'validation_data': validation_data},
                      **({'headers': headers} if headers else {}))

    def get_locations(self, image_id):
        return self._request('GET', f'/v2/images/{image_id}/locations').json()

    def image_tasks(self, image_id):
        """The image's Glance tasks (imports, location imports), newest
        first."""
        try:
            body = self._request('GET', f'/v2/images/{image_id}/tasks').json()
        except (NotFound, Forbidden):
            return []
        return sorted(body.get('tasks', []),
                      key=lambda t: t.get('created_at') or '', reverse=True)

    def default_store(self):
        """Id of the store new images go to (multi-store), or None."""
        try:
            stores = self._request('GET', '/v2/info/stores').json()
        except NotFound:
            return None
        return next((s['id'] for s in stores.get('stores', [])
                     if s.get('default')), None)

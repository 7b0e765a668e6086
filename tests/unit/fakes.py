"""In-memory stand-ins for Glance regions, for fast unit tests only.

They mimic the parts of Image API v2 the clone graph uses, including the
status changes and hash computation of a real upload.
"""
import hashlib
import uuid

from clone_flows import exceptions
from clone_flows import glance
from clone_flows import metadata


class FakeResponse:
    def __init__(self, data, fail_after=None):
        self._data = data
        self._fail_after = fail_after
        self.closed = False

    def iter_content(self, chunk_size):
        for i in range(0, len(self._data), chunk_size):
            if self._fail_after is not None and i >= self._fail_after:
                raise ConnectionError('source went away')
            yield self._data[i:i + chunk_size]

    def close(self):
        self.closed = True


class FakeGlanceRegion:
    def __init__(self, region, project='p1'):
        self.region = region
        self.project = project
        self.images = {}
        self.data = {}
        self.down = False
        self.fail_upload_times = 0
        self.fail_source_after = None
        self.refuse_download = False     # Glance's download_image policy
        self.quota_usage = {}            # GET /v2/info/usage (unified limits)
        self.refuse_visibility = set()   # e.g. {'public'}: publicize_image
        self.calls = []

    def _check(self):
        if self.down:
            raise exceptions.ServiceUnavailable(self.region)

    def endpoint(self):
        self._check()
        return f'http://fake/{self.region}'

    def add_image(self, data=b'', **fields):
        image_id = fields.pop('id', None) or str(uuid.uuid4())
        image = {'id': image_id, 'status': 'active', 'visibility': 'private',
                 'os_hidden': False, 'protected': False, 'tags': [],
                 'owner': self.project, 'min_disk': 0, 'min_ram': 0,
                 'disk_format': 'raw', 'container_format': 'bare',
                 'name': 'img'}
        image.update(fields)
        if image['status'] == 'active':
            image.update(_hashes(data))
            self.data[image_id] = data
        self.images[image_id] = image
        return image

    def get_image(self, image_id):
        self._check()
        self.calls.append(('get', image_id))
        if image_id not in self.images:
            raise glance.NotFound(self.region, 'GET', image_id, 404, '')
        return dict(self.images[image_id])

    def find_images(self, **filters):
        self._check()
        hidden = str(filters.pop('os_hidden', 'false')).lower() == 'true'
        out = []
        for image in self.images.values():
            if bool(image.get('os_hidden')) != hidden:
                continue
            if all(str(image.get(k)) == str(v) for k, v in filters.items()):
                out.append(dict(image))
        return out

    def create_image(self, **fields):
        self._check()
        self.calls.append(('create', fields.get('name')))
        image = self.add_image(status='queued', **fields)
        for k in ('checksum', 'os_hash_algo', 'os_hash_value', 'size'):
            image[k] = None
        return dict(image)

    def update_image(self, image_id, replace=None, remove=()):
        self._check()
        if image_id not in self.images:
            raise glance.NotFound(self.region, 'PATCH', image_id, 404, '')
        if (replace or {}).get('visibility') in self.refuse_visibility:
            raise glance.Forbidden(self.region, 'PATCH', image_id, 403, '')
        self.images[image_id].update(replace or {})
        for k in remove:
            self.images[image_id].pop(k, None)
        return dict(self.images[image_id])

    def delete_image(self, image_id):
        self._check()
        if image_id not in self.images:
            return False
        if self.images[image_id].get('protected'):
            raise glance.Forbidden(self.region, 'DELETE', image_id, 403, '')
        del self.images[image_id]
        self.data.pop(image_id, None)
        return True

    def usage(self):
        self._check()
        return self.quota_usage

    def may_download(self, image_id):
        self._check()
        if image_id not in self.images:
            raise glance.NotFound(self.region, 'GET', image_id, 404, '')
        return not self.refuse_download

    def open_data(self, image_id):
        self._check()
        if self.refuse_download:
            raise glance.Forbidden(self.region, 'GET', image_id, 403, '')
        return FakeResponse(self.data[image_id], self.fail_source_after)

    def upload_data(self, image_id, chunks):
        self._check()
        if self.fail_upload_times:
            self.fail_upload_times -= 1
            raise exceptions.ServiceUnavailable(self.region)
        image = self.images[image_id]
        if image['status'] != 'queued':
            raise glance.Conflict(self.region, 'PUT', image_id, 409, '')
        image['status'] = 'saving'
        try:
            data = b''.join(chunks)
        except Exception:
            image['status'] = 'queued'
            raise
        self.data[image_id] = data
        image.update(_hashes(data), status='active')


def _hashes(data):
    return {'checksum': hashlib.md5(data).hexdigest(),
            'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(data).hexdigest(),
            'size': len(data)}


class FakeServices:
    """What tasks get, with fake regions and no Keystone."""

    def __init__(self, conf, regions, strategies=None, guard=None):
        self.conf = conf
        self.regions = regions
        self.trust_deleted = 0
        self.delegation = True           # Keystone still honours the trust
        self._strategies = strategies
        self._guard = guard

    def proceed(self, reverting=False, in_step=False, cancellable=True):
        if self._guard is not None:
            self._guard(reverting=reverting, in_step=in_step,
                        cancellable=cancellable)

    @property
    def session(self):
        return self

    def get_token(self):
        return 'not-a-real-token'

    def get_project_id(self):
        return 'p1'          # FakeGlanceRegion's default project

    roles = ('reader', 'member')      # of the delegation

    @property
    def auth(self):
        return self

    def get_access(self, session):
        import types
        return types.SimpleNamespace(role_names=list(self.roles))

    def glance(self, region):
        if region not in self.regions:
            raise exceptions.RegionNotFound(region)
        return self.regions[region]

    def strategies(self):
        if self._strategies is None:
            from clone_flows import stores
            self._strategies = stores.load_strategies(self.conf)
        return self._strategies

    def delegation_holds(self):
        return self.delegation

    def delete_trust(self):
        self.trust_deleted += 1
        return True


def leftovers(region, clone_id):
    """Images in ``region`` carrying the provenance of ``clone_id``."""
    return [i for i in region.images.values()
            if i.get(metadata.PROVENANCE_CLONE) == clone_id]

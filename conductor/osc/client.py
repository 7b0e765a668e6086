"""The HTTP client of the ``openstack image clone`` commands.

It talks to glance-clone's tasks API (``/v2/tasks``, ``/v2/images/{id}/
copies``) of one target region on the keystoneauth session the
``openstack`` command made, and to the image service of a source region
for finding an image by name.  Which URL serves a region's clone tasks:

1. ``--os-clone-endpoint`` (``OS_CLONE_ENDPOINT``; in ``clouds.yaml``
   ``clone_endpoint_override``): that clone-api, whatever the region (it is
   told the target region in the clone's input);
2. else the region's ``clone`` service in the catalog;
3. else the region's ``image`` service, when its Glance forwards clone tasks
   to glance-clone (``conductor.api.glance_filter``): asked once, through
   the task schema, whose ``type`` then includes ``clone``.

Every error is a :class:`CloneClientError` with one sentence.
"""
import urllib.parse
import uuid

from keystoneauth1 import exceptions as ksa_exc

SERVICE_TYPE = 'clone'
IMAGE_SERVICE_TYPE = 'image'


class CloneClientError(Exception):
    """A refusal or failure, told in one sentence."""


def is_uuid(text):
    try:
        return str(uuid.UUID(text)) == text.lower()
    except (TypeError, ValueError, AttributeError):
        return False


def _base(url):
    """The service root of an image or clone endpoint (``/v2`` cut off)."""
    url = url.rstrip('/')
    for suffix in ('/v2', '/v2.0'):
        if url.endswith(suffix):
            return url[:-len(suffix)]
    return url


def error_sentence(response):
    """The one sentence of an error answer (Glance's or glance-clone's JSON
    error document, else the status line).
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get('error')
        if isinstance(error, dict) and error.get('message'):
            return str(error['message'])
        if isinstance(body.get('message'), str) and body['message']:
            return body['message']
    return f'HTTP {response.status_code} {response.reason or ""}'.strip()


class CloneClient:
    """Clone tasks of the regions of one cloud, for one user.

    ``catalog``: a callable (service_type, region) -> URL or None (the
    user's catalog); ``override``: the URL given by the user, or None;
    ``default_region``: the cloud's region (``--os-region-name``).
    """

    def __init__(self, session, catalog, default_region=None, override=None,
                 interface='public'):
        self.session = session
        self._catalog = catalog
        self.default_region = default_region
        self._override = override
        self.interface = interface
        self._endpoints = {}
        self._via_image = set()      # regions served through their Glance

    # -- where ---------------------------------------------------------------

    def endpoint(self, region=None):
        """The root URL of the clone tasks API of ``region``."""
        region = region or self.default_region
        if region in self._endpoints:
            return self._endpoints[region]
        if self._override:
            url = _base(self._override)
        else:
            url = self._catalog(SERVICE_TYPE, region)
            if url:
                url = _base(url)
            else:
                url = self._image_endpoint_with_clone_tasks(region)
                self._via_image.add(region)
        self._endpoints[region] = url
        return url

    def image_endpoint(self, region):
        url = self._catalog(IMAGE_SERVICE_TYPE, region)
        if not url:
            raise CloneClientError(
                f'region {region!r} has no image service in your catalog')
        return _base(url)

    def _image_endpoint_with_clone_tasks(self, region):
        where = f'region {region!r}' if region else 'your cloud'
        image = self._catalog(IMAGE_SERVICE_TYPE, region)
        if not image:
            raise CloneClientError(
                f'{where} has neither a clone nor an image service in your '
                f'catalog; give the clone service\'s URL with '
                f'--os-clone-endpoint')
        image = _base(image)
        schema = self._send('GET', image + '/v2/schemas/task')
        types = (((schema.get('properties') or {}).get('type') or {})
                 .get('enum') or [])
        if 'clone' not in types:
            raise CloneClientError(
                f'the image service of {where} does not run clone tasks '
                f'(its catalog has no clone service and its Glance does not '
                f'forward them to glance-clone); give the clone service\'s '
                f'URL with --os-clone-endpoint')
        return image

    # -- HTTP ----------------------------------------------------------------

    def _send(self, method, url, json=None, params=None):
        try:
            response = self.session.request(
                url, method, json=json, params=params, raise_exc=False,
                headers={'Accept': 'application/json'})
        except ksa_exc.ConnectionError:
            host = urllib.parse.urlsplit(url).netloc
            raise CloneClientError(f'{host} did not answer')
        except ksa_exc.ClientException as e:
            raise CloneClientError(str(e).splitlines()[0] if str(e) else
                                   type(e).__name__)
        if response.status_code >= 400:
            raise CloneClientError(error_sentence(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CloneClientError(
                f'{urllib.parse.urlsplit(url).netloc} answered '
                f'{method} {urllib.parse.urlsplit(url).path} with something '
                f'that is not JSON')

    # -- clone tasks ---------------------------------------------------------

    def create(self, task_input, region=None):
        return self._send('POST', self.endpoint(region) + '/v2/tasks',
                          json={'type': 'clone', 'input': task_input})

    def get(self, task_id, region=None):
        self._check_id(task_id)
        task = self._send('GET', f'{self.endpoint(region)}/v2/tasks/{task_id}')
        if not isinstance(task, dict) or task.get('type') != 'clone':
            raise CloneClientError(f'task {task_id} is not a clone')
        return task

    def cancel(self, task_id, region=None):
        self._check_id(task_id)
        self.get(task_id, region)
        self._send('DELETE', f'{self.endpoint(region)}/v2/tasks/{task_id}')

    def list(self, region=None, status=None, limit=None, marker=None,
             sort_key=None, sort_dir=None):
        """Clone tasks, newest first unless sorted otherwise: every page up
        to ``limit`` (all with no limit).
        """
        base = self.endpoint(region)
        params = {'type': 'clone'}
        for key, value in (('status', status), ('marker', marker),
                           ('sort_key', sort_key), ('sort_dir', sort_dir)):
            if value is not None:
                params[key] = value
        if limit is not None:
            params['limit'] = limit
        tasks, url = [], base + '/v2/tasks'
        while True:
            page = self._send('GET', url, params=params)
            tasks.extend(page.get('tasks') or [])
            if limit is not None and len(tasks) >= limit:
                return tasks[:limit]
            nxt = page.get('next')
            if not nxt or not page.get('tasks'):
                return tasks
            url, params = base + nxt, None

    def copies(self, image_id, image_region, region=None):
        base = self.endpoint(region)
        if (region or self.default_region) in self._via_image:
            # (Glance's filter forwards clone tasks only)
            raise CloneClientError(
                "listing copies needs glance-clone's own API: the image "
                "service forwards only clone tasks to it; give its URL with "
                "--os-clone-endpoint")
        return self._send(
            'GET', f'{base}/v2/images/{image_id}/copies',
            params={'region': image_region})

    @staticmethod
    def _check_id(task_id):
        if not is_uuid(task_id):
            raise CloneClientError(
                f'{task_id[:64]!r} is not a clone id (clone ids are UUIDs)')

    # -- images --------------------------------------------------------------

    def find_image(self, name_or_id, region):
        """The id of the image ``name_or_id`` in ``region`` as the user sees
        it: an id is taken as it is (the clone checks it is visible); a
        name must name exactly one image.
        """
        if is_uuid(name_or_id):
            return name_or_id
        base = self.image_endpoint(region)
        found = self._send('GET', base + '/v2/images',
                           params={'name': name_or_id, 'limit': 2})
        images = (found or {}).get('images') or []
        if not images:
            raise CloneClientError(
                f'no image named {name_or_id!r} is visible to you in region '
                f'{region!r}')
        if len(images) > 1:
            raise CloneClientError(
                f'more than one image named {name_or_id!r} is visible to '
                f'you in region {region!r}; give its id')
        return images[0]['id']

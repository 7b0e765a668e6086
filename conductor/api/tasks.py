"""/v2/tasks: create, list, show and cancel clone tasks.

Every error a client can cause is a :class:`ApiError` with one sentence; the
app turns it into a Glance-style JSON error body
(``{"error": {"code", "title", "message"}}``, which python-glanceclient
prints).
"""
import datetime
import json
import logging
import urllib.parse
import uuid

from oslo_policy import policy as oslo_policy
import webob.exc

from conductor.api import bodies
from conductor.api import policies
from conductor.api import schemas
from conductor.db import api as db_api

LOG = logging.getLogger(__name__)

SORT_KEYS = db_api.SORT_KEYS
TOP_LEVEL_KEYS = ('type', 'input')


class ApiError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def bad_request(message):
    return ApiError(400, message)


def too_large():
    return ApiError(413, bodies.TOO_LARGE)


def not_found(task_id):
    if _is_uuid(task_id):
        return ApiError(404, f'No task found with ID {task_id}')
    # (never echo what is not an id: it may hold anything, of any length)
    return ApiError(404, 'No task found with that ID (task ids are UUIDs)')


def _is_uuid(text):
    try:
        return str(uuid.UUID(text)) == text.lower()
    except (ValueError, AttributeError, TypeError):
        return False


def _stalled_for(task, stalled_after, now=None):
    """Seconds since a processing clone's conductor last wrote, when that is
    longer than ``stalled_after``; else None.
    """
    if task['status'] != 'processing' or not stalled_after or \
            not task.get('updated_at'):
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    last = datetime.datetime.fromisoformat(
        task['updated_at'].rstrip('Z')).replace(tzinfo=datetime.timezone.utc)
    quiet = (now - last).total_seconds()
    return quiet if quiet > stalled_after else None


def task_view(task, partial=False, stalled_after=None):
    """The wire form of a task record (Glance v2 field names only).

    A processing clone no conductor has written for ``stalled_after``
    seconds is shown waiting: its transfer rate 0, ``result.waiting_since``
    and a message saying so (it continues when a conductor takes it).
    """
    view = {
        'id': task['id'],
        'type': task['type'],
        'status': task['status'],
        'owner': task['owner'] or '',
        'created_at': task['created_at'],
        'updated_at': task['updated_at'],
        'self': f"/v2/tasks/{task['id']}",
        'schema': '/v2/schemas/task',
    }
    if task.get('expires_at'):
        view['expires_at'] = task['expires_at']
    if task.get('user_id'):
        view['user_id'] = task['user_id']
    if task.get('request_id'):
        view['request_id'] = task['request_id']
    if not partial:
        view['input'] = task['input'] if isinstance(task['input'], dict) \
            else None
        view['result'] = task['result'] if isinstance(task['result'], dict) \
            else None
        view['message'] = task['message'] or ''
        if _stalled_for(task, stalled_after) is not None:
            result = dict(view['result'] or {})
            if isinstance(result.get('progress'), dict):
                result['progress'] = dict(result['progress'],
                                          rate_bytes_per_s=0)
            result['waiting_since'] = task['updated_at']
            view['result'] = result
            view['message'] = (f"no conductor has run this clone since "
                               f"{task['updated_at']}; it goes on from "
                               f"where it stopped when one takes it")
    return view


class TasksController:

    def __init__(self, conf, enforcer, submit=None):
        self.conf = conf
        self.enforcer = enforcer
        self._submit = submit

    # -- helpers ------------------------------------------------------------

    def _authorize(self, rule, context, project_id, do_raise=True):
        target = {'project_id': project_id}
        try:
            return self.enforcer.authorize(rule, target, context,
                                           do_raise=do_raise)
        except oslo_policy.PolicyNotAuthorized:
            raise ApiError(403, f'You are not authorized to {_ACTION[rule]}.')
        except oslo_policy.InvalidScope:
            raise ApiError(403, f'Your token\'s scope does not allow you to '
                                f'{_ACTION[rule]}.')

    def _can(self, rule, context, project_id):
        try:
            return self.enforcer.authorize(rule, {'project_id': project_id},
                                           context, do_raise=False)
        except oslo_policy.InvalidScope:
            return False

    def _visible_task(self, context, task_id):
        if not _is_uuid(task_id):
            raise not_found(task_id)
        task = db_api.get_task(self.conf, task_id)
        if task is None or not self._can(policies.GET, context,
                                         task['owner']):
            raise not_found(task_id)
        return task

    # -- POST /v2/tasks -----------------------------------------------------

    def create(self, req, context):
        self._authorize(policies.CREATE, context, context.project_id)
        body = _json_body(req)
        unknown = sorted(k for k in body if k not in TOP_LEVEL_KEYS)
        if unknown:
            raise bad_request(
                f"unknown key(s) {', '.join(repr(k[:64]) for k in unknown)}; "
                f"a task has 'type' and 'input'")
        task_type = body.get('type')
        if task_type is None:
            raise bad_request("'type' is required")
        if not isinstance(task_type, str) or task_type not in \
                schemas.TASK_TYPES:
            raise bad_request(
                f"Invalid type value: {str(task_type)[:64]!r}; this service "
                f"runs tasks of type 'clone'")
        if task_type != 'clone':
            raise bad_request(
                f"task type '{task_type}' is served by Glance itself; this "
                f"service runs tasks of type 'clone'")
        if 'input' not in body:
            raise bad_request("'input' is required")
        task_input = body['input']
        if not isinstance(task_input, dict):
            raise bad_request("'input' must be a JSON object")
        errors = schemas.input_errors(task_input)
        if errors:
            raise bad_request(errors[0])
        task_input = dict(task_input)
        if not task_input.get('target_region'):
            if not self.conf.api.region_name:
                raise bad_request(
                    'input.target_region is required (this API has no '
                    'default region)')
            task_input['target_region'] = self.conf.api.region_name
        _check_regions(req, task_input)
        try:
            task = self._submit(self.conf, context, task_input)
        except Exception as e:
            error = _submit_error(e)
            if error is None:
                raise
            raise error
        if task.get('request_id') and task['request_id'] != \
                context.request_id:
            # Same client_token and project: the existing clone, not a new one.
            return 200, task_view(task), None
        return 201, task_view(task), f"/v2/tasks/{task['id']}"

    # -- GET /v2/tasks ------------------------------------------------------

    def index(self, req, context):
        self._authorize(policies.LIST, context, context.project_id)
        params = req.GET
        for key in params:
            if key not in ('limit', 'marker', 'sort_key', 'sort_dir', 'type',
                           'status'):
                raise bad_request(f"unknown query parameter {key[:64]!r}")
        limit = self.conf.api.limit_param_default
        if 'limit' in params:
            try:
                limit = int(params['limit'])
            except ValueError:
                raise bad_request('limit param must be an integer')
            if limit < 0:
                raise bad_request('limit param must be positive')
            limit = min(limit, self.conf.api.api_limit_max)
        sort_key = params.get('sort_key', 'created_at')
        if sort_key not in SORT_KEYS:
            raise bad_request(
                f"sort_key must be one of: {', '.join(SORT_KEYS)}")
        sort_dir = params.get('sort_dir', 'desc')
        if sort_dir not in ('asc', 'desc'):
            raise bad_request('sort_dir must be asc or desc')
        status = params.get('status')
        if status is not None and status not in schemas.TASK_STATUSES:
            raise bad_request(
                f"status must be one of: {', '.join(schemas.TASK_STATUSES)}")
        task_type = params.get('type')
        if task_type is not None and task_type not in schemas.TASK_TYPES:
            raise bad_request(
                f"type must be one of: {', '.join(schemas.TASK_TYPES)}")
        marker = params.get('marker')
        if marker is not None and not _is_uuid(marker):
            raise bad_request(f'marker {marker[:64]!r} is not a task id')
        owner = None if self._can(policies.LIST_ALL, context,
                                  context.project_id) else context.project_id
        try:
            tasks = db_api.list_tasks(self.conf, owner=owner, status=status,
                                      type=task_type, sort_key=sort_key,
                                      sort_dir=sort_dir, limit=limit,
                                      marker=marker)
        except db_api.MarkerNotFound as e:
            raise bad_request(str(e))
        query = [(k, v) for k, v in params.items() if k != 'marker']
        body = {'tasks': [task_view(t, partial=True) for t in tasks],
                'first': '/v2/tasks', 'schema': '/v2/schemas/tasks'}
        if query:
            body['first'] += '?' + urllib.parse.urlencode(query)
        if limit and len(tasks) == limit:
            body['next'] = '/v2/tasks?' + urllib.parse.urlencode(
                query + [('marker', tasks[-1]['id'])])
        return 200, body, None

    # -- GET /v2/tasks/{id} -------------------------------------------------

    def show(self, req, context, task_id):
        return 200, task_view(self._visible_task(context, task_id),
                              stalled_after=self.conf.api.stalled_after), None

    # -- DELETE /v2/tasks/{id} ----------------------------------------------

    def delete(self, req, context, task_id):
        task = self._visible_task(context, task_id)
        self._authorize(policies.CANCEL, context, task['owner'])
        task = db_api.request_cancel(self.conf, task_id)
        if task['status'] not in ('pending', 'processing'):
            raise ApiError(409, f"task {task_id} already ended "
                                f"({task['status']}); nothing to cancel")
        LOG.info('Cancel requested for clone %s', task_id)
        return 204, None, None

    # -- GET /v2/images/{image_id}/copies -------------------------------------

    def copies(self, req, context, image_id):
        """The copies of an image across regions (as the caller's Glance
        shows them): ``?region=`` names the image's region (default: this
        API's).
        """
        self._authorize(policies.COPIES, context, context.project_id)
        for key in req.GET:
            if key != 'region':
                raise bad_request(f"unknown query parameter {key[:64]!r}; "
                                  f"only 'region' is known")
        region = req.GET.get('region') or self.conf.api.region_name
        if not region:
            raise bad_request('region is required (this API has no default '
                              'region)')
        if not _is_uuid(image_id):
            raise bad_request('the image id is not a valid UUID')
        from keystoneauth1 import session as ks_session

        from clone_flows import copies as copies_mod
        from clone_flows import exceptions
        from conductor import submit
        session = ks_session.Session(
            auth=submit.user_auth_plugin(self.conf, context))
        try:
            body = copies_mod.list_copies(session, self.conf, region,
                                          image_id)
        except exceptions.RegionNotFound:
            raise bad_request(f'region {region[:255]!r} has no image '
                              f'endpoint in the service catalog')
        except exceptions.ServiceUnavailable as e:
            LOG.warning('Copies of %s/%s: %s', region[:255], image_id, e)
            raise ApiError(503, 'an image service did not answer; try '
                                'again later')
        except exceptions.NotAuthenticated:
            raise ApiError(401, 'Glance did not accept your token; get a new '
                                'token')
        return 200, body, None


_ACTION = {
    policies.CREATE: 'create clone tasks in this project',
    policies.GET: 'see this task',
    policies.LIST: 'list tasks',
    policies.LIST_ALL: 'list the tasks of all projects',
    policies.CANCEL: 'cancel this task',
    policies.COPIES: "list an image's copies",
}


def _submit_error(exc):
    """The answer for a clone that could not be submitted, or None."""
    from keystoneauth1 import exceptions as ksa_exc

    from clone_flows import exceptions
    from conductor import submit
    if isinstance(exc, submit.SubmitFailed):
        return ApiError(503, str(exc))
    if isinstance(exc, submit.ClientTokenReused):
        return ApiError(409, str(exc))
    if isinstance(exc, submit.TooManyPending):
        return ApiError(429, str(exc))
    if isinstance(exc, exceptions.TrustRolesMissing):
        return ApiError(403, str(exc))
    if isinstance(exc, ksa_exc.Unauthorized):
        return ApiError(401, 'Keystone did not accept your token for '
                             'delegating the clone; get a new token')
    if isinstance(exc, ksa_exc.Forbidden):
        return ApiError(403, 'Keystone refused to let the clone service act '
                             'for you (creating the trust was forbidden)')
    if isinstance(exc, (ksa_exc.ConnectionError, ksa_exc.ServiceUnavailable,
                        ksa_exc.GatewayTimeout, ksa_exc.BadGateway)):
        return ApiError(503, 'Keystone did not answer; try again later')
    return None


def _json_body(req):
    ctype = (req.content_type or '').lower()
    if ctype != 'application/json':
        raise ApiError(415, f"Content-Type must be application/json, "
                            f"not {ctype[:64]!r}" if ctype else
                            'Content-Type must be application/json')
    try:
        body = bodies.parse_json(req.body)
    except webob.exc.HTTPRequestEntityTooLarge:
        # (a body without Content-Length, cut by the size limiter)
        raise too_large()
    except bodies.BodyError as e:
        raise ApiError(e.code, e.message)
    if not isinstance(body, dict):
        raise bad_request('the request body must be a JSON object with '
                          "'type' and 'input'")
    try:
        json.dumps(body, ensure_ascii=False).encode('utf-8')
    except UnicodeEncodeError:
        raise bad_request('the request body contains invalid unicode '
                          '(a lone surrogate escape)')
    return body


def _check_regions(req, task_input):
    """With the service catalog that auth_token passes on, an unknown
    region is a 400 now rather than a failed clone later.
    """
    raw = req.headers.get('X-Service-Catalog')
    if not raw:
        return
    try:
        catalog = json.loads(raw)
    except ValueError:
        return
    regions = set()
    for service in catalog if isinstance(catalog, list) else []:
        if service.get('type') == 'image':
            for ep in service.get('endpoints', []):
                regions.add(ep.get('region_id') or ep.get('region'))
    if not regions:
        return
    for key in ('source_region', 'target_region'):
        if task_input[key] not in regions:
            raise bad_request(
                f"input.{key}: region {task_input[key][:255]!r} has no image "
                f"endpoint in the service catalog")

"""clone-api described for machines: an OpenAPI 3.1 document.

Served without a token at ``GET /v2/openapi.json``; a unit test keeps its
operations equal to the routes of :class:`conductor.api.app.App`.  The
bodies reuse :mod:`conductor.api.schemas`, so the document states exactly
what the service enforces (the installed strategies included).
"""
import copy

from conductor.api import schemas

PATH = '/v2/openapi.json'
EXAMPLE_IMAGE = '6f1d2a3b-1111-4c4c-8d8d-0123456789ab'

_ERRORS = {
    400: 'The request is invalid; the message names the field.',
    401: 'No valid token (missing, expired, revoked or not project-scoped).',
    403: 'The policy does not let this token do it.',
    404: 'No such task, or not one this token may see.',
    409: 'The task ended already, or the client_token names another '
         'request.',
    413: 'The request body is over the size limit.',
    415: 'The request body is not application/json.',
    429: 'The project (or the service) already has as many clones waiting '
         'as it may ([api] max_pending_clones_per_project, '
         'max_pending_clones); nothing was made.',
    503: 'Keystone or the job board did not answer; nothing was made.',
}


def _json(schema_ref):
    return {'application/json': {'schema': {'$ref': schema_ref}}}


def _answers(ok, *errors):
    out = {}
    for code, (text, ref) in ok.items():
        out[str(code)] = {'description': text}
        if ref:
            out[str(code)]['content'] = _json(ref)
    for code in errors:
        out[str(code)] = {'description': _ERRORS[code],
                          'content': _json('#/components/schemas/Error')}
    return out


def _json_schema(glance_schema):
    """A Glance-style schema as a plain JSON schema (no ``name``, no
    ``links``).
    """
    schema = copy.deepcopy(glance_schema)
    schema.pop('name', None)
    schema.pop('links', None)
    schema['type'] = 'object'
    return schema


def _query(name, schema, text):
    return {'name': name, 'in': 'query', 'required': False,
            'schema': schema, 'description': text}


def _task_id():
    return {'name': 'task_id', 'in': 'path', 'required': True,
            'schema': {'type': 'string'},
            'description': 'The task (clone) id.'}


def document():
    """The OpenAPI document of this service."""
    from conductor.api import app as api_app
    versions = {'200': {'description': 'The API versions.',
                        'content': _json('#/components/schemas/Versions')}}
    keystone = [{'keystone': []}]
    return {
        'openapi': '3.1.0',
        'info': {
            'title': 'glance-clone clone-api',
            'version': api_app.API_VERSION,
            'description': 'The Glance v2 tasks API with tasks of type '
                           'clone: copy an image from another region into '
                           'this one.',
        },
        'components': {
            'securitySchemes': {'keystone': {
                'type': 'apiKey', 'in': 'header', 'name': 'X-Auth-Token',
                'description': 'A project-scoped Keystone token.'}},
            'schemas': {
                'CloneRequest': {
                    'type': 'object', 'additionalProperties': False,
                    'required': ['type', 'input'],
                    'properties': {'type': {'type': 'string',
                                            'enum': ['clone']},
                                   'input': {'$ref': '#/components/schemas/'
                                                     'CloneInput'}}},
                'CloneInput': schemas.clone_input_schema(),
                'Task': _json_schema(schemas.task_schema()),
                'Tasks': _json_schema(schemas.tasks_schema()),
                'Error': {
                    'type': 'object', 'required': ['error'],
                    'properties': {'error': {
                        'type': 'object',
                        'required': ['code', 'title', 'message'],
                        'properties': {'code': {'type': 'integer'},
                                       'title': {'type': 'string'},
                                       'message': {'type': 'string'}}}}},
                'Versions': {
                    'type': 'object', 'required': ['versions'],
                    'properties': {'versions': {'type': 'array'}}},
                'JsonSchema': {'type': 'object'},
                'Copies': {
                    'type': 'object', 'required': ['image', 'copies'],
                    'properties': {'image': {'type': 'object'},
                                   'copies': {'type': 'array',
                                              'items': {'type': 'object'}}}},
            },
        },
        'paths': {
            '/': {'get': {'operationId': 'listVersionsRoot',
                          'summary': 'API versions (300, as Glance)',
                          'responses': {'300': versions['200']}}},
            '/versions': {'get': {'operationId': 'listVersions',
                                  'summary': 'API versions',
                                  'responses': versions}},
            '/v2/schemas/task': {'get': {
                'operationId': 'showTaskSchema',
                'summary': 'The task schema python-glanceclient validates '
                           'with (its type enum holds clone)',
                'responses': _answers({200: (
                    'JSON schema', '#/components/schemas/JsonSchema')})}},
            '/v2/schemas/tasks': {'get': {
                'operationId': 'showTasksSchema',
                'summary': 'The task list schema',
                'responses': _answers({200: (
                    'JSON schema', '#/components/schemas/JsonSchema')})}},
            PATH: {'get': {
                'operationId': 'showOpenAPI',
                'summary': 'This document',
                'responses': _answers({200: (
                    'OpenAPI 3.1', '#/components/schemas/JsonSchema')})}},
            '/v2/tasks': {
                'post': {
                    'operationId': 'createClone',
                    'summary': 'Start a clone into the current project',
                    'security': keystone,
                    'requestBody': {'required': True, 'content': {
                        'application/json': {
                            'schema': {'$ref': '#/components/schemas/'
                                               'CloneRequest'},
                            'example': {'type': 'clone', 'input': {
                                'source_region': 'RegionOne',
                                'source_image_id': EXAMPLE_IMAGE}}}}},
                    'responses': _answers(
                        {201: ('The new clone task (Location: its URL)',
                               '#/components/schemas/Task'),
                         200: ('The task this client_token made already, '
                               'for the same input',
                               '#/components/schemas/Task')},
                        400, 401, 403, 409, 413, 415, 429, 503)},
                'get': {
                    'operationId': 'listTasks',
                    'summary': 'List clone tasks (newest first)',
                    'security': keystone,
                    'parameters': [
                        _query('limit', {'type': 'integer', 'minimum': 0},
                               'Tasks per page.'),
                        _query('marker', {'type': 'string'},
                               'The last task id of the previous page.'),
                        _query('sort_key', {'type': 'string', 'enum': list(
                            api_app.tasks.SORT_KEYS)}, 'Sort by.'),
                        _query('sort_dir', {'type': 'string',
                                            'enum': ['asc', 'desc']},
                               'Sort direction.'),
                        _query('type', {'type': 'string',
                                        'enum': schemas.TASK_TYPES},
                               'Only tasks of this type.'),
                        _query('status', {'type': 'string',
                                          'enum': schemas.TASK_STATUSES},
                               'Only tasks in this status.')],
                    'responses': _answers(
                        {200: ('A page of tasks',
                               '#/components/schemas/Tasks')},
                        400, 401, 403)}},
            '/v2/tasks/{task_id}': {
                'get': {
                    'operationId': 'showTask',
                    'summary': 'Show a task',
                    'security': keystone,
                    'parameters': [_task_id()],
                    'responses': _answers(
                        {200: ('The task', '#/components/schemas/Task')},
                        401, 404)},
                'delete': {
                    'operationId': 'cancelTask',
                    'summary': 'Cancel a pending or running clone (it '
                               'reverts and ends failure)',
                    'security': keystone,
                    'parameters': [_task_id()],
                    'responses': _answers({204: ('Cancel requested', None)},
                                          401, 403, 404, 409)}},
            '/v2/images/{image_id}/copies': {'get': {
                'operationId': 'listImageCopies',
                'summary': "The copies of an image in every region, made by "
                           "clones (hidden ones too), as each region's "
                           "Glance shows them to the caller: those naming "
                           "it as their origin and those descending from it "
                           "clone by clone",
                'security': keystone,
                'parameters': [
                    {'name': 'image_id', 'in': 'path', 'required': True,
                     'schema': {'type': 'string'},
                     'description': 'The image (original or copy).'},
                    _query('region', {'type': 'string'},
                           "The image's region (default: this API's).")],
                'responses': _answers(
                    {200: ('The image and its copies',
                           '#/components/schemas/Copies')},
                    400, 401, 403, 503)}},
        },
    }

"""The JSON schemas clone-api serves and enforces.

``task`` and ``tasks`` are Glance v2's shapes with ``clone`` added to the
``type`` enum: python-glanceclient validates its requests and our answers
against the schema it fetches from ``/v2/schemas/task``.  ``CLONE_INPUT`` is
what a clone's ``input`` must look like; :func:`input_errors` turns a
violation into one sentence naming the field.
"""
import copy

import jsonschema

UUID_PATTERN = ('^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}'
                '-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$')
GLANCE_TASK_TYPES = ['import', 'api_image_import', 'location_import']
TASK_TYPES = ['clone'] + GLANCE_TASK_TYPES
TASK_STATUSES = ['pending', 'processing', 'success', 'failure']
STRATEGIES = ['auto', 'http', 'swift', 'rbd']
VISIBILITIES = ['private', 'shared', 'community', 'public']

# Printable text: no C0/C1 control characters (a region, a name, a tag).
_PRINTABLE = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$'
# A property value may span lines (tab, LF, CR) but holds no other control.
_TEXT_BLOCK = '^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$'


def _text(max_length, min_length=1):
    return {'type': 'string', 'minLength': min_length,
            'maxLength': max_length, 'pattern': _PRINTABLE}


CLONE_INPUT = {
    'type': 'object',
    'additionalProperties': False,
    'required': ['source_region', 'source_image_id'],
    'properties': {
        'source_region': _text(255),
        'source_image_id': {'type': 'string', 'pattern': UUID_PATTERN},
        'target_region': _text(255),
        'name': _text(255, min_length=0),
        'visibility': {'type': 'string', 'enum': VISIBILITIES},
        'properties': {
            'type': 'object',
            'maxProperties': 128,
            'propertyNames': _text(255),
            'additionalProperties': {'type': 'string', 'maxLength': 65535,
                                     'pattern': _TEXT_BLOCK},
        },
        'tags': {'type': 'array', 'maxItems': 128, 'items': _text(255)},
        'strategy': {'type': 'string', 'enum': STRATEGIES},
        'client_token': _text(255),
        'preserve_id': {'type': 'boolean'},
        'dry_run': {'type': 'boolean'},
    },
}

_TASK_PROPERTIES = {
    'id': {'description': 'An identifier for the task (the clone id)',
           'pattern': UUID_PATTERN, 'type': 'string'},
    'type': {'description': 'The type of task represented by this content',
             'enum': TASK_TYPES, 'type': 'string'},
    'status': {'description': 'The current status of this task',
               'enum': TASK_STATUSES, 'type': 'string'},
    'input': {'description': 'The parameters required by task, JSON blob',
              'type': ['null', 'object']},
    'result': {'description': 'The result of current task, JSON blob',
               'type': ['null', 'object']},
    'owner': {'description': 'An identifier for the owner of this task',
              'type': 'string'},
    'message': {'description': 'Human-readable informative message only '
                               'included when appropriate (usually on '
                               'failure)', 'type': 'string'},
    'user_id': {'description': 'User associated with the task',
                'type': 'string'},
    'request_id': {'description': 'Request that created the task',
                   'type': 'string'},
    'expires_at': {'description': 'Datetime when this resource would be '
                                  'subject to removal',
                   'type': ['null', 'string']},
    'created_at': {'description': 'Datetime when this resource was created',
                   'type': 'string'},
    'updated_at': {'description': 'Datetime when this resource was updated',
                   'type': 'string'},
    'self': {'readOnly': True, 'type': 'string'},
    'schema': {'readOnly': True, 'type': 'string'},
}


def task_schema():
    return {'name': 'task', 'properties': copy.deepcopy(_TASK_PROPERTIES),
            'additionalProperties': False}


def partial_task_schema():
    schema = task_schema()
    for key in ('input', 'result', 'message'):
        del schema['properties'][key]
    return schema


def tasks_schema():
    return {
        'name': 'tasks',
        'properties': {
            'tasks': {'type': 'array', 'items': partial_task_schema()},
            'first': {'type': 'string'},
            'next': {'type': 'string'},
            'schema': {'type': 'string'},
        },
        'links': [{'rel': 'first', 'href': '{first}'},
                  {'rel': 'next', 'href': '{next}'},
                  {'rel': 'describedby', 'href': '{schema}'}],
    }


_VALIDATOR = jsonschema.Draft7Validator(CLONE_INPUT)


def _field(error):
    path = '.'.join(str(p) for p in error.absolute_path)
    return 'input' + ('.' + path if path else '')


def _sentence(error):
    """One short sentence; never echoes a (possibly huge) value."""
    field = _field(error)
    v, arg = error.validator, error.validator_value
    if v == 'additionalProperties' and error.absolute_path == error.path \
            and not error.absolute_path:
        extra = sorted(set(error.instance) - set(CLONE_INPUT['properties']))
        return (f"input: unknown key(s) {', '.join(repr(k[:64]) for k in extra)}; "
                f"allowed: {', '.join(sorted(CLONE_INPUT['properties']))}")
    if v == 'required':
        missing = [k for k in arg if k not in error.instance]
        return f"input.{missing[0]} is required"
    if v == 'type':
        want = arg if isinstance(arg, str) else ' or '.join(arg)
        return f"{field} must be of type {want}"
    if v == 'minLength':
        return f"{field} must not be empty" if arg == 1 else \
            f"{field} must be at least {arg} characters"
    if v == 'maxLength':
        return f"{field} is longer than {arg} characters"
    if v == 'pattern':
        if arg == UUID_PATTERN:
            return f"{field} is not a valid UUID"
        return f"{field} must not contain control characters"
    if v == 'enum':
        return f"{field} must be one of: {', '.join(map(str, arg))}"
    if v in ('maxItems', 'maxProperties'):
        return f"{field} has more than {arg} entries"
    if v == 'propertyNames':
        return f"{field} has an empty, overlong or unprintable key"
    return f"{field} is invalid ({v})"


def input_errors(instance):
    """Sentences for every violation of :data:`CLONE_INPUT`, best first."""
    errors = sorted(_VALIDATOR.iter_errors(instance),
                    key=lambda e: (len(e.absolute_path), str(e.validator)))
    return [_sentence(e) for e in errors]

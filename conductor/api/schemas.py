"""The JSON schemas clone-api serves and enforces.

``task`` and ``tasks`` are Glance v2's shapes with ``clone`` added to the
``type`` enum: python-glanceclient validates its requests and our answers
against the schema it fetches from ``/v2/schemas/task`` (whose ``input``
names the strategies installed here).  :func:`clone_input_schema` is what a
clone's ``input`` must look like; :func:`input_errors` turns a violation
into one sentence naming the field.
"""
import copy
import functools

import jsonschema
from stevedore import extension

from clone_flows import constants as c
from clone_flows import stores
from conductor.db import models

UUID_PATTERN = ('^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}'
                '-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$')
GLANCE_TASK_TYPES = ['import', 'api_image_import', 'location_import']
TASK_TYPES = ['clone'] + GLANCE_TASK_TYPES
TASK_STATUSES = list(models.TASK_STATUSES)
VISIBILITIES = ['private', 'shared', 'community', 'public']
IF_EXISTS = c.IF_EXISTS_CHOICES

# Characters a name must not hold: C0/C1 controls, and those that make
# text look other than it is (Unicode format characters): the soft hyphen,
# bidirectional marks, embeddings, overrides and isolates (U+061C,
# U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), zero-width space, joiners
# and word joiner (U+200B-U+200D, U+2060), invisible operators and
# deprecated format controls (U+2061-U+206F), the Mongolian vowel
# separator (U+180E), the byte order mark (U+FEFF) and the interlinear
# annotation controls (U+FFF9-U+FFFB).
_SPOOFING = ('\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u202a-\\u202e'
             '\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb')
# Printable text: no control and no spoofing character (a region, a name,
# a tag).
_PRINTABLE = '^[^\\u0000-\\u001f\\u007f-\\u009f' + _SPOOFING + ']*$'
# A property value may span lines (tab, LF, CR) but holds no other control
# and no spoofing character.
_TEXT_BLOCK = ('^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f'
               + _SPOOFING + ']*$')
_TEXT_PATTERNS = (_PRINTABLE, _TEXT_BLOCK)

#: Input keys that were once offered and are refused with the reason.
REFUSED_KEYS = {
    'preserve_id': 'input.preserve_id is not offered: a copy always gets a '
                   'new image id (find it by its checksum or os_hash_value '
                   'and its provenance properties)',
}


@functools.lru_cache(maxsize=None)
def installed_strategies():
    """Names of the store strategies installed here (the stevedore
    entry points of ``glance_clone.stores`` that load), sorted.
    """
    mgr = extension.ExtensionManager(stores.NAMESPACE, invoke_on_load=False)
    return tuple(sorted(mgr.names()))


def strategies():
    """What ``input.strategy`` may be: ``auto`` or an installed strategy."""
    return ['auto'] + list(installed_strategies())


def _text(max_length, min_length=1):
    return {'type': 'string', 'minLength': min_length,
            'maxLength': max_length, 'pattern': _PRINTABLE}


def clone_input_schema():
    """The JSON schema of a clone's ``input``."""
    return {
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
                'additionalProperties': {'type': 'string',
                                         'maxLength': 65535,
                                         'pattern': _TEXT_BLOCK},
            },
            'tags': {'type': 'array', 'maxItems': 128, 'items': _text(255)},
            'strategy': {'type': 'string', 'enum': strategies()},
            'client_token': _text(255),
            'dry_run': {'type': 'boolean'},
            'if_exists': {'type': 'string', 'enum': list(IF_EXISTS)},
            'include_dependencies': {'type': 'boolean'},
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
              'type': ['null', 'object']},   # + strategy, in task_schema()
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
    properties = copy.deepcopy(_TASK_PROPERTIES)
    # Only the strategy: Glance's own task types share this schema (through
    # the glance-api filter) and their inputs have other keys.
    properties['input']['properties'] = {
        'strategy': clone_input_schema()['properties']['strategy']}
    return {'name': 'task', 'properties': properties,
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


@functools.lru_cache(maxsize=None)
def _validator():
    return jsonschema.Draft7Validator(clone_input_schema())


def _field(error):
    path = '.'.join(str(p) for p in error.absolute_path)
    return 'input' + ('.' + path if path else '')


def _sentence(error):
    """One short sentence; never echoes a (possibly huge) value."""
    field = _field(error)
    v, arg = error.validator, error.validator_value
    if 'propertyNames' in error.schema_path:
        return (f"{field} has a key that is empty, longer than 255 "
                f"characters or holds control, bidirectional or zero-width "
                f"characters")
    if v == 'additionalProperties' and error.absolute_path == error.path \
            and not error.absolute_path:
        allowed = clone_input_schema()['properties']
        extra = sorted(set(error.instance) - set(allowed))
        return (f"input: unknown key(s) "
                f"{', '.join(repr(k[:64]) for k in extra)}; "
                f"allowed: {', '.join(sorted(allowed))}")
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
        if arg in _TEXT_PATTERNS:
            return (f"{field} must not contain control characters (nor "
                    f"bidirectional or zero-width ones)")
        return f"{field} is invalid (pattern)"
    if v == 'enum':
        return f"{field} must be one of: {', '.join(map(str, arg))}"
    if v in ('maxItems', 'maxProperties'):
        return f"{field} has more than {arg} entries"
    return f"{field} is invalid ({v})"


def input_errors(instance):
    """Sentences for every violation of :func:`clone_input_schema`, best
    first (a key that is refused on purpose first of all).
    """
    refused = [REFUSED_KEYS[k] for k in sorted(REFUSED_KEYS)
               if k in instance]
    errors = sorted(_validator().iter_errors(instance),
                    key=lambda e: (len(e.absolute_path), str(e.validator)))
    return refused + [_sentence(e) for e in errors]

"""The tasks API in-process, behind a fake auth_token."""
import datetime
import json
import uuid

import jsonschema
import pytest

from conductor.api import schemas
from conductor.db import api as db_api

IMAGE = '6f1d2a3b-1111-4c4c-8d8d-0123456789ab'


def validate_task(body):
    """What python-glanceclient's warlock model enforces on an answer."""
    jsonschema.validate(body, schemas.task_schema())
    uuid.UUID(body['id'])
    assert isinstance(body['message'], str)
    assert isinstance(body['owner'], str)


# -- discovery and schemas ---------------------------------------------------

def test_versions_answer_without_a_token(client):
    for path, code in (('/', 300), ('/versions', 200)):
        r = client.get(path, token=None)
        assert r.status_int == code
        assert r.json['versions'][0]['status'] == 'CURRENT'


def test_task_schema_offers_clone_and_glance_types(client):
    r = client.get('/v2/schemas/task')
    assert r.status_int == 200
    assert r.json['properties']['type']['enum'][0] == 'clone'
    assert 'import' in r.json['properties']['type']['enum']
    assert r.json['properties']['message']['type'] == 'string'
    r = client.get('/v2/schemas/tasks')
    assert r.json['properties']['tasks']['type'] == 'array'


def test_strategy_enum_is_the_installed_strategies(client):
    from importlib import metadata
    installed = sorted(ep.name for ep in metadata.entry_points(
        group='glance_clone.stores'))
    assert installed and 'cinder' not in installed
    served = client.get('/v2/schemas/task').json
    assert served['properties']['input']['properties']['strategy']['enum'] \
        == ['auto'] + installed
    for name in installed:
        assert client.create(strategy=name).status_int == 201


def test_public_endpoint_makes_location_whatever_the_host_header(
        client, api_conf):
    api_conf.set_override('public_endpoint', 'https://clone.example.org/',
                          group='api')
    r = client.request('POST', '/v2/tasks', {'type': 'clone', 'input': {
        'source_region': 'RegionOne', 'source_image_id': IMAGE}},
        headers={'Host': 'evil.example:666'})
    assert r.status_int == 201
    assert r.headers['Location'] == \
        f"https://clone.example.org/v2/tasks/{r.json['id']}"


def test_bodies_over_the_limit_get_a_json_413(client, api_conf):
    limit = api_conf.oslo_middleware.max_request_body_size
    big = b'{"type": "clone", "input": {"name": "' + b'x' * limit + b'"}}'
    r = client.post('/v2/tasks', raw=big)
    assert r.status_int == 413
    assert r.json['error']['message'] == \
        'The request body is larger than this service accepts.'
    # without Content-Length (chunked): the limiter cuts the read
    r = client.post('/v2/tasks', raw=big, chunked=True)
    assert r.status_int == 413, r.body
    assert r.json['error']['message'] == \
        'The request body is larger than this service accepts.'
    assert client.create().status_int == 201


def test_every_answer_carries_a_request_id(client):
    r = client.get('/v2/tasks/' + IMAGE)
    assert r.headers['x-openstack-request-id'].startswith('req-')


# -- create ------------------------------------------------------------------

def test_create_returns_201_location_and_a_pending_clone(client, trusts):
    r = client.create(name='copy', tags=['a'], properties={'k': 'v'})
    assert r.status_int == 201, r.body
    body = r.json
    validate_task(body)
    assert body['status'] == 'pending' and body['type'] == 'clone'
    assert body['owner'] == 'demo-project'
    assert body['input']['target_region'] == 'RegionTwo'   # [api] region_name
    assert r.location.endswith(f"/v2/tasks/{body['id']}")
    record = db_api.get_task(client.app.fake_auth.app.app.conf, body['id'])
    assert record['trust_id'] == 'trust-1'
    assert trusts['made'][0]['roles'] == ['member', 'reader']


def test_task_record_never_holds_the_token(client, api_conf):
    r = client.create()
    record = db_api.get_task(api_conf, r.json['id'])
    assert 'demo-user:demo-project' not in json.dumps(record)


def test_same_client_token_same_project_is_the_same_task(clients, trusts):
    a = clients['demo'].create(client_token='tok-1')
    b = clients['demo'].create(client_token='tok-1')
    assert a.status_int == 201 and b.status_int == 200
    assert a.json['id'] == b.json['id']
    assert len(trusts['made']) == 1
    c = clients['alt'].create(client_token='tok-1')
    assert c.status_int == 201 and c.json['id'] != a.json['id']


def test_same_client_token_with_another_input_is_409(clients, trusts,
                                                     api_conf):
    a = clients['demo'].create(client_token='tok-2', name='one')
    assert a.status_int == 201
    b = clients['demo'].create(client_token='tok-2', name='two')
    assert b.status_int == 409
    assert b.json['error']['message'] == (
        f"client_token already names task {a.json['id']}, created with "
        f"another input; use a new client_token for a new clone")
    assert len(trusts['made']) == 1
    assert db_api.get_task(api_conf, a.json['id'])['input']['name'] == 'one'
    again = clients['demo'].create(client_token='tok-2', name='one')
    assert again.status_int == 200 and again.json['id'] == a.json['id']


def test_client_token_race_with_another_input_is_409(clients, trusts,
                                                     api_conf, monkeypatch):
    """Two requests with one token pass the first look-up together: the
    loser's insert meets the winner's row, and its trust is deleted.
    """
    from conductor import submit
    first = clients['demo'].create(client_token='tok-3', name='one').json
    monkeypatch.setattr(submit.db_api, 'get_task_by_token',
                        lambda conf, owner, token: None)
    r = clients['demo'].create(client_token='tok-3', name='two')
    assert r.status_int == 409 and first['id'] in r.json['error']['message']
    assert trusts['deleted'] == ['trust-2']
    r = clients['demo'].create(client_token='tok-3', name='one')
    assert r.status_int == 200 and r.json['id'] == first['id']


def test_reader_cannot_create(clients):
    r = clients['reader'].create()
    assert r.status_int == 403
    assert 'not authorized' in r.json['error']['message']


def test_unknown_region_is_refused_with_the_catalog(app, client):
    app.fake_auth.catalog = [{'type': 'image', 'endpoints': [
        {'region': 'RegionOne'}, {'region': 'RegionTwo'}]}]
    r = client.create(source_region='Régiön')
    assert r.status_int == 400
    assert "input.source_region: region 'Régiön'" in r.json['error']['message']
    assert client.create().status_int == 201


# -- bad input: one clear 4xx each, the service stays up ---------------------

BAD_INPUTS = [
    ('malformed json', dict(raw=b'{"type": "clone", "input": {'), 400,
     'Malformed JSON'),
    ('invalid utf-8', dict(raw=b'{"type": "clone", "input": "\xff"}'), 400,
     'Malformed JSON'),
    ('wrong content type', dict(raw=b'type=clone', content_type='text/plain'),
     415, 'application/json'),
    ('body not an object', dict(body=[1, 2]), 400, 'JSON object'),
    ('input not an object', dict(body={'type': 'clone', 'input': 'x'}), 400,
     "'input' must be a JSON object"),
    ('input missing', dict(body={'type': 'clone'}), 400,
     "'input' is required"),
    ('unknown type', dict(body={'type': 'copy', 'input': {}}), 400,
     'Invalid type'),
    ('glance type', dict(body={'type': 'import', 'input': {}}), 400,
     'served by Glance'),
    ('unknown top-level key', dict(body={'type': 'clone', 'input': {},
                                         'x': 1}), 400, "unknown key(s) 'x'"),
    ('invalid uuid', dict(input={'source_image_id': 'not-a-uuid'}), 400,
     'input.source_image_id is not a valid UUID'),
    ('missing source_region', dict(input={'source_region': None}), 400,
     'input.source_region is required'),
    ('empty region', dict(input={'source_region': ''}), 400,
     'input.source_region must not be empty'),
    ('1 MB region', dict(input={'target_region': 'R' * 2 ** 20}), 413, ''),
    ('300 char region', dict(input={'target_region': 'R' * 300}), 400,
     'input.target_region is longer than 255 characters'),
    ('unknown key', dict(input={'colour': 'blue'}), 400,
     "input: unknown key(s) 'colour'"),
    ('control character', dict(input={'source_region': 'Region\x00One'}),
     400, 'input.source_region must not contain control characters'),
    ('control character in a tag', dict(input={'tags': ['a\x07']}), 400,
     'input.tags.0 must not contain control characters'),
    ('lone surrogate', dict(raw=b'{"type": "clone", "input": '
                                b'{"name": "\\ud800"}}'), 400,
     'invalid unicode'),
    ('bad strategy', dict(input={'strategy': 'ftp'}), 400,
     'input.strategy must be one of: auto, http, rbd, swift'),
    ('strategy not installed', dict(input={'strategy': 'cinder'}), 400,
     'input.strategy must be one of: auto, http, rbd, swift'),
    ('non-string property', dict(input={'properties': {'a': 1}}), 400,
     'input.properties.a must be of type string'),
    ('preserve_id', dict(input={'preserve_id': True}), 400,
     'input.preserve_id is not offered: a copy always gets a new image id'),
    ('preserve_id false', dict(input={'preserve_id': False}), 400,
     'input.preserve_id is not offered'),
    ('dry_run not a boolean', dict(input={'dry_run': 'yes'}), 400,
     'input.dry_run must be of type boolean'),
    ('unknown if_exists', dict(input={'if_exists': 'replace'}), 400,
     'input.if_exists must be one of: copy, reuse, fail'),
    ('bidi override in a name', dict(input={'name': 'invoice\u202egnp.exe'}),
     400, 'input.name must not contain control characters (nor '
          'bidirectional or zero-width ones)'),
    ('bidi isolate in a region', dict(input={'source_region': 'Region\u2067'
                                                              'One'}),
     400, 'input.source_region must not contain control characters'),
    ('zero-width space in a tag', dict(input={'tags': ['a\u200bb']}), 400,
     'input.tags.0 must not contain control characters'),
    ('zero-width joiner in a property key',
     dict(input={'properties': {'os\u200ddistro': 'x'}}), 400,
     'input.properties has a key that is empty, longer than 255 characters '
     'or holds control, bidirectional or zero-width characters'),
    ('byte order mark in a property value',
     dict(input={'properties': {'k': '\ufeffx'}}), 400,
     'input.properties.k must not contain control characters'),
    ('right-to-left mark in a client_token',
     dict(input={'client_token': 'a\u200fb'}), 400,
     'input.client_token must not contain control characters'),
    ('5000-deep JSON', dict(raw=b'{"type": "clone", "input": '
                                + b'[' * 5000 + b']' * 5000 + b'}'), 400,
     'nested deeper than 32 levels'),
    ('40-deep JSON in a value', dict(
        raw=b'{"type": "clone", "input": {"name": ' + b'[' * 40 + b']' * 40
        + b'}}'), 400, 'nested deeper than 32 levels'),
]


@pytest.mark.parametrize('case', BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_a_clear_4xx_and_the_service_stays_up(client, case):
    _, how, code, text = case
    if 'input' in how:
        base = {'source_region': 'RegionOne', 'source_image_id': IMAGE}
        base.update(how['input'])
        base = {k: v for k, v in base.items() if v is not None}
        r = client.post('/v2/tasks', {'type': 'clone', 'input': base})
    else:
        r = client.post('/v2/tasks', **how)
    assert r.status_int == code, r.body[:300]
    if text:
        assert text in r.json['error']['message'], r.json
    assert len(r.body) < 2000          # never echoes a huge value
    assert client.create().status_int == 201


def test_unicode_names_are_accepted(client):
    r = client.create(name='Ímage ☃ 画像', tags=['ñ'], properties={'k': 'é\nx'})
    assert r.status_int == 201
    assert client.get(f"/v2/tasks/{r.json['id']}").json['input']['name'] == \
        'Ímage ☃ 画像'


def test_missing_and_expired_tokens_get_401(client):
    assert client.get('/v2/tasks', token=None).status_int == 401
    assert client.get('/v2/tasks', token='expired').status_int == 401
    assert client.create().status_int == 201


def test_unknown_path_and_method(client):
    assert client.get('/v2/images').status_int == 404
    assert client.request('PUT', '/v2/tasks').status_int == 405


# -- show, list, isolation ---------------------------------------------------

def test_show_and_isolation_between_projects(clients):
    task = clients['demo'].create().json
    r = clients['demo'].get(f"/v2/tasks/{task['id']}")
    assert r.status_int == 200
    validate_task(r.json)
    assert clients['reader'].get(f"/v2/tasks/{task['id']}").status_int == 200
    assert clients['alt'].get(f"/v2/tasks/{task['id']}").status_int == 404
    assert clients['admin'].get(f"/v2/tasks/{task['id']}").status_int == 200
    assert clients['demo'].get('/v2/tasks/nope').status_int == 404
    assert task['id'] not in [t['id'] for t in
                              clients['alt'].get('/v2/tasks').json['tasks']]


def test_admin_lists_all_projects(clients):
    a = clients['demo'].create().json['id']
    b = clients['alt'].create().json['id']
    ids = [t['id'] for t in clients['admin'].get('/v2/tasks').json['tasks']]
    assert {a, b} <= set(ids)
    assert [t['id'] for t in clients['demo'].get('/v2/tasks').json['tasks']] \
        == [a]


def test_list_pages_with_limit_and_marker(client, api_conf):
    made = [client.create().json['id'] for _ in range(5)]
    seen, url, pages = [], '/v2/tasks?limit=2', 0
    while url:
        body = client.get(url).json
        jsonschema.validate(body, schemas.tasks_schema())
        assert body['first'].startswith('/v2/tasks')
        seen += [t['id'] for t in body['tasks']]
        url = body.get('next')
        pages += 1
    assert sorted(seen) == sorted(made) and len(seen) == 5
    assert pages == 3
    assert seen == made[::-1]                      # newest first


def test_list_filters_and_sorting(client, api_conf):
    ids = [client.create().json['id'] for _ in range(3)]
    db_api.update_task(api_conf, ids[0], status='success')
    body = client.get('/v2/tasks?status=success').json
    assert [t['id'] for t in body['tasks']] == [ids[0]]
    assert client.get('/v2/tasks?type=import').json['tasks'] == []
    asc = client.get('/v2/tasks?sort_dir=asc&sort_key=created_at').json
    assert [t['id'] for t in asc['tasks']] == ids
    for bad in ('status=done', 'sort_key=owner', 'sort_dir=up', 'limit=x',
                'limit=-1', 'marker=nope', f'marker={uuid.uuid4()}',
                'type=copy', 'colour=blue'):
        r = client.get('/v2/tasks?' + bad)
        assert r.status_int == 400, bad


def test_other_projects_task_is_no_marker(clients):
    other = clients['alt'].create().json['id']
    assert clients['demo'].get(f'/v2/tasks?marker={other}').status_int == 400


# -- cancel ------------------------------------------------------------------

def test_cancel_pending_sets_cancel_requested(clients, api_conf):
    task = clients['demo'].create().json
    assert clients['alt'].delete(f"/v2/tasks/{task['id']}").status_int == 404
    assert clients['reader'].delete(f"/v2/tasks/{task['id']}").status_int \
        == 403
    r = clients['demo'].delete(f"/v2/tasks/{task['id']}")
    assert r.status_int == 204 and r.body == b''
    assert db_api.get_task(api_conf, task['id'])['cancel_requested'] is True


def test_cancel_finished_is_409(client, api_conf):
    task = client.create().json
    db_api.update_task(api_conf, task['id'], status='failure',
                       message='it broke')
    r = client.delete(f"/v2/tasks/{task['id']}")
    assert (r.status_int == 409
            and 'already ended' in r.json['error']['message'])
    shown = client.get(f"/v2/tasks/{task['id']}").json
    assert shown['message'] == 'it broke' and shown['expires_at']


# -- the OpenAPI document -----------------------------------------------------

def _routes(app):
    """(path, method) of every route the app's mapper serves."""
    return {(route.routepath, method.lower())
            for route in app.mapper.matchlist
            for method in route.conditions['method']}


def test_openapi_document_describes_exactly_the_routes(client):
    r = client.get('/v2/openapi.json')
    assert r.status_int == 200
    doc = r.json
    documented = {(path, method) for path, ops in doc['paths'].items()
                  for method in ops}
    served = _routes(client.app.fake_auth.app.app)
    assert documented == served
    assert doc['components']['schemas']['CloneInput'] == \
        schemas.clone_input_schema()
    assert doc['components']['schemas']['CloneInput']['properties'][
        'strategy']['enum'] == schemas.strategies()
    # Every answer the app can give to a documented operation is listed.
    create = doc['paths']['/v2/tasks']['post']['responses']
    assert {'200', '201', '400', '409', '413', '415'} <= set(create)


def test_openapi_document_is_valid_openapi_31(client):
    import schemathesis
    doc = client.get('/v2/openapi.json').json
    loaded = schemathesis.openapi.from_dict(doc)
    operations = {op.ok().label for op in loaded.get_all_operations()}
    assert 'POST /v2/tasks' in operations and len(operations) == 10


def test_a_processing_clone_nobody_reports_on_is_shown_waiting():
    from conductor.api import tasks as tasks_api
    task = {'id': 't', 'type': 'clone', 'status': 'processing', 'owner': 'p',
            'created_at': '2026-01-01T00:00:00Z',
            'updated_at': '2026-01-01T00:00:10Z', 'input': {},
            'message': '', 'result': {'progress': {'percent': 40.0,
                                                   'rate_bytes_per_s': 9}}}
    shown = tasks_api.task_view(task, stalled_after=45)
    assert shown['result']['progress'] == {'percent': 40.0,
                                           'rate_bytes_per_s': 0}
    assert shown['result']['waiting_since'] == '2026-01-01T00:00:10Z'
    assert shown['message'].startswith('no conductor has run this clone '
                                       'since 2026-01-01T00:00:10Z')
    assert task['result']['progress']['rate_bytes_per_s'] == 9  # not changed
    fresh = dict(task, updated_at=datetime.datetime.now(
        datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))
    assert tasks_api.task_view(fresh, stalled_after=45)['message'] == ''


@pytest.mark.parametrize('path,text', [
    (f'/v2/images/{IMAGE}/copies?colour=blue', "unknown query parameter "
                                               "'colour'"),
    ('/v2/images/not-a-uuid/copies', 'the image id is not a valid UUID'),
])
def test_copies_route_refuses_what_it_does_not_serve(client, path, text):
    r = client.get(path)
    assert r.status_int == 400 and text in r.json['error']['message']


def test_copies_route_needs_a_token(client):
    assert client.get(f'/v2/images/{IMAGE}/copies', token=None
                      ).status_int == 401

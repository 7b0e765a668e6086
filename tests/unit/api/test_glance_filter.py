"""The glance-api paste filter: clone task calls go to clone-api (here the
in-process app behind the fake auth, served on a loopback port), everything
else reaches Glance (here a stub)."""
import json
import threading
import wsgiref.simple_server

import pytest
import webob
import webob.dec

from conductor.api import glance_filter
from tests.unit.api.conftest import DEMO

IMAGE = '6f1d2a3b-1111-4c4c-8d8d-0123456789ab'


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def clone_api_url(app):
    server = wsgiref.simple_server.make_server('127.0.0.1', 0, app,
                                               handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_port}'
    server.shutdown()
    server.server_close()


@webob.dec.wsgify
def glance_stub(req):
    resp = webob.Response(content_type='application/json')
    resp.body = json.dumps({'glance': True, 'path': req.path_info,
                            'body': req.body.decode()}).encode()
    return resp


@pytest.fixture
def glance(clone_api_url):
    factory = glance_filter.filter_factory({}, clone_api_url=clone_api_url)
    return factory(glance_stub)


def call(app, method, path, body=None, token=DEMO):
    req = webob.Request.blank(path, method=method)
    req.headers['X-Auth-Token'] = token
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = 'application/json'
    resp = req.get_response(app)
    return resp, (json.loads(resp.body) if resp.body else None)


def test_clone_create_goes_to_clone_api_and_import_to_glance(glance):
    r, body = call(glance, 'POST', '/v2/tasks', {
        'type': 'clone', 'input': {'source_region': 'RegionOne',
                                   'source_image_id': IMAGE}})
    assert r.status_int == 201 and body['type'] == 'clone'
    assert r.location == f"http://localhost/v2/tasks/{body['id']}"
    r, shown = call(glance, 'GET', f"/v2/tasks/{body['id']}")
    assert shown['id'] == body['id'] and 'glance' not in shown
    r, glance_body = call(glance, 'POST', '/v2/tasks',
                          {'type': 'import', 'input': {}})
    assert glance_body['glance'] is True
    assert json.loads(glance_body['body'])['type'] == 'import'  # body intact


def test_unknown_task_ids_and_other_calls_reach_glance(glance):
    _, body = call(glance, 'GET', f'/v2/tasks/{IMAGE}')
    assert body['glance'] and body['path'] == f'/v2/tasks/{IMAGE}'
    _, body = call(glance, 'GET', '/v2/images')
    assert body['glance']
    _, body = call(glance, 'GET', '/v2/tasks?type=import')
    assert body['glance']


def test_schemas_and_task_lists_come_from_clone_api(glance):
    _, schema = call(glance, 'GET', '/v2/schemas/task')
    assert 'clone' in schema['properties']['type']['enum']
    call(glance, 'POST', '/v2/tasks', {'type': 'clone', 'input': {
        'source_region': 'RegionOne', 'source_image_id': IMAGE}})
    _, listed = call(glance, 'GET', '/v2/tasks?limit=5')
    assert len(listed['tasks']) == 1 and listed['schema'] == '/v2/schemas/tasks'


def test_cancel_through_glance(glance):
    _, task = call(glance, 'POST', '/v2/tasks', {'type': 'clone', 'input': {
        'source_region': 'RegionOne', 'source_image_id': IMAGE}})
    r, _ = call(glance, 'DELETE', f"/v2/tasks/{task['id']}")
    assert r.status_int == 204


def test_clone_api_down_is_a_503_not_a_hang():
    factory = glance_filter.filter_factory({},
                                           clone_api_url='http://127.0.0.1:9',
                                           timeout='2')
    r, body = call(factory(glance_stub), 'GET', '/v2/schemas/task')
    assert r.status_int == 503 and 'did not answer' in body['error']['message']
    r, body = call(factory(glance_stub), 'GET', '/v2/images')
    assert body['glance']
    r, body = call(factory(glance_stub), 'GET', f'/v2/tasks/{IMAGE}')
    assert body['glance']             # Glance's own tasks still answer


def test_filter_needs_a_url():
    with pytest.raises(ValueError):
        glance_filter.filter_factory({})

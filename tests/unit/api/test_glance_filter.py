"""The glance-api paste filter: clone task calls go to clone-api (here the
in-process app behind the fake auth, served on a loopback port), everything
else reaches Glance (here a stub).
"""
import contextlib
import json
import socket
import ssl
import subprocess
import threading
import wsgiref.simple_server

import pytest
import webob
import webob.dec

from conductor.api import glance_filter
from tests.unit.api.conftest import DEMO
from tests.unit.api.conftest import without_length

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


def call(app, method, path, body=None, token=DEMO, raw=None, headers=None,
         chunked=False):
    req = webob.Request.blank(path, method=method)
    if token:
        req.headers['X-Auth-Token'] = token
    if body is not None or raw is not None:
        req.body = raw if raw is not None else json.dumps(body).encode()
        req.content_type = 'application/json'
    if chunked:
        without_length(req)
    req.headers.update(headers or {})
    resp = req.get_response(app)
    return resp, (json.loads(resp.body) if resp.body else None)


def test_clone_create_goes_to_clone_api_and_import_to_glance(glance):
    r, body = call(glance, 'POST', '/v2/tasks', {
        'type': 'clone', 'input': {'source_region': 'RegionOne',
                                   'source_image_id': IMAGE}})
    assert r.status_int == 201 and body['type'] == 'clone'
    # (the path, made absolute by webob as Glance's own Locations are)
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
    assert (len(listed['tasks']) == 1
            and listed['schema'] == '/v2/schemas/tasks')


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


# -- what it reads before authentication, and how it fails --------------------

@webob.dec.wsgify
def glance_must_not_be_reached(req):
    raise AssertionError(f'Glance reached: {req.method} {req.path_info}')


def strict_filter(clone_api_url='http://127.0.0.1:9', **options):
    factory = glance_filter.filter_factory({}, clone_api_url=clone_api_url,
                                           timeout='2', **options)
    return factory(glance_must_not_be_reached)


@pytest.mark.parametrize('chunked', [False, True],
                         ids=['content-length', 'chunked'])
def test_bodies_over_the_limit_are_413_without_a_token(chunked):
    app = strict_filter(max_request_body_size='1000')
    raw = b'{"type": "clone", "input": {"name": "' + b'x' * 2000 + b'"}}'
    r, body = call(app, 'POST', '/v2/tasks', raw=raw, token=None,
                   chunked=chunked)
    assert r.status_int == 413
    assert body['error']['message'] == \
        'The request body is larger than this service accepts.'


def test_default_limit_is_clone_apis():
    from oslo_middleware import sizelimit
    default = {o.name: o.default for o in sizelimit.OPTS}
    assert glance_filter.DEFAULT_MAX_BODY == default['max_request_body_size']


@pytest.mark.parametrize('raw,text', [
    (b'[' * 5000 + b']' * 5000, 'nested deeper than 32 levels'),
    (b'{"type": "clone", "input": ' + b'{"a": ' * 40 + b'1' + b'}' * 41,
     'nested deeper than 32 levels'),
    (b'{"type": "clone", "input": {', 'Malformed JSON in request body.'),
    (b'\xff\xfe', 'Malformed JSON in request body.'),
])
def test_deep_or_malformed_json_is_400_never_500(raw, text):
    r, body = call(strict_filter(), 'POST', '/v2/tasks', raw=raw, token=None)
    assert r.status_int == 400
    assert text in body['error']['message']


def test_a_body_under_the_limit_still_reaches_glance_whole():
    factory = glance_filter.filter_factory(
        {}, clone_api_url='http://127.0.0.1:9', max_request_body_size='1000')
    raw = json.dumps({'type': 'import', 'input': {'x': 'y' * 900}}).encode()
    for chunked in (False, True):
        _, body = call(factory(glance_stub), 'POST', '/v2/tasks', raw=raw,
                       chunked=chunked)
        assert body['glance'] and body['body'].encode() == raw


@contextlib.contextmanager
def serving_garbage():
    """A TCP server that answers every request with something that is not
    HTTP; yields its http:// URL.
    """
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(b'NOT HTTP AT ALL\r\n\r\n')
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.getsockname()[1]}'
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def garbage_server():
    with serving_garbage() as url:
        yield url


def test_a_broken_answer_from_clone_api_is_a_clear_502(garbage_server):
    factory = glance_filter.filter_factory({}, clone_api_url=garbage_server,
                                           timeout='2')
    r, body = call(factory(glance_stub), 'POST', '/v2/tasks', {
        'type': 'clone', 'input': {'source_region': 'RegionOne',
                                   'source_image_id': IMAGE}})
    assert r.status_int == 502
    assert body['error']['message'] == ('The clone service gave no valid '
                                        'answer; try again later.')
    r, body = call(factory(glance_stub), 'GET', f'/v2/tasks/{IMAGE}')
    assert body['glance']             # Glance's own tasks still answer


def test_public_endpoint_makes_the_location_not_the_host_header(
        clone_api_url):
    factory = glance_filter.filter_factory(
        {}, clone_api_url=clone_api_url,
        public_endpoint='https://image.example.org/')
    r, body = call(
        factory(glance_stub), 'POST', '/v2/tasks',
        {'type': 'clone', 'input': {'source_region': 'RegionOne',
                                    'source_image_id': IMAGE}},
        headers={'Host': 'evil.example:666'})
    assert r.status_int == 201
    assert r.location == f"https://image.example.org/v2/tasks/{body['id']}"


def test_without_its_option_the_location_is_glance_apis_public_endpoint(
        clone_api_url):
    from oslo_config import cfg
    conf = cfg.CONF
    conf.register_opt(cfg.StrOpt('public_endpoint'))   # as glance-api does
    conf.set_override('public_endpoint', 'https://glance.example.org')
    try:
        factory = glance_filter.filter_factory({}, clone_api_url=clone_api_url)
        r, body = call(
            factory(glance_stub), 'POST', '/v2/tasks',
            {'type': 'clone', 'input': {'source_region': 'RegionOne',
                                        'source_image_id': IMAGE}},
            headers={'Host': 'evil.example:666'})
    finally:
        conf.clear_override('public_endpoint')
    assert r.status_int == 201
    assert r.location == f"https://glance.example.org/v2/tasks/{body['id']}"


@pytest.mark.parametrize('options,text', [
    ({'ca_file': '/etc/ssl/certs/ca-certificates.crt'}, 'need an https'),
    ({'insecure': 'maybe'}, 'insecure must be true or false'),
    ({'key_file': '/x.key'}, 'key_file needs cert_file'),
    ({'public_endpoint': 'ftp://x'}, 'public_endpoint'),
])
def test_options_that_would_do_nothing_are_refused(options, text):
    with pytest.raises(ValueError, match=text):
        glance_filter.filter_factory(
            {}, clone_api_url='http://127.0.0.1:9393', **options)(glance_stub)


def make_cert(tmp_path, name='127.0.0.1'):
    """A self-signed certificate for 127.0.0.1 (its own CA)."""
    cert, key = tmp_path / 'cert.pem', tmp_path / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-days', '1', '-subj', f'/CN={name}',
                    '-addext', f'subjectAltName=IP:{name}',
                    '-keyout', str(key), '-out', str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_clone_api_url(app, tmp_path):
    cert, key = make_cert(tmp_path)
    server = wsgiref.simple_server.make_server('127.0.0.1', 0, app,
                                               handler_class=_QuietHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'https://127.0.0.1:{server.server_port}', cert
    server.shutdown()
    server.server_close()


def test_https_clone_api_is_verified_with_ca_file(tls_clone_api_url):
    url, cert = tls_clone_api_url
    body = {'type': 'clone', 'input': {'source_region': 'RegionOne',
                                       'source_image_id': IMAGE}}
    trusted = glance_filter.filter_factory({}, clone_api_url=url,
                                           ca_file=str(cert))(glance_stub)
    r, task = call(trusted, 'POST', '/v2/tasks', body)
    assert r.status_int == 201 and task['type'] == 'clone'
    # The system's CAs do not know this certificate: no answer, no leak.
    untrusted = glance_filter.filter_factory({}, clone_api_url=url,
                                             timeout='5')(glance_stub)
    r, error = call(untrusted, 'POST', '/v2/tasks', body)
    assert r.status_int == 503
    assert error['error']['message'] == ('The clone service did not '
                                         'answer; try again later.')
    insecure = glance_filter.filter_factory({}, clone_api_url=url,
                                            insecure='true')(glance_stub)
    assert call(insecure, 'POST', '/v2/tasks', body)[0].status_int == 201

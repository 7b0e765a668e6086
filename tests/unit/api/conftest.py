"""clone-api in-process, behind a fake auth_token: fast tests of the app.

The fake reads ``X-Auth-Token: user:project:role,role`` and sets the headers
keystonemiddleware would; ``expired`` and no token answer 401 as it does.
"""
import io
import json

from oslo_middleware import request_id
from oslo_middleware import sizelimit
import pytest
import webob
import webob.dec

from conductor.api import app as api_app
from conductor.api import middleware
from conductor.db import api as db_api
from conductor import submit

DEMO = 'demo-user:demo-project:member,reader'
ALT = 'alt-user:alt-project:member,reader'
READER = 'reader-user:demo-project:reader'
ADMIN = 'admin-user:admin-project:admin,member,reader'


class FakeAuthToken:
    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        for h in ('X-Identity-Status', 'X-User-Id', 'X-Project-Id',
                  'X-Roles', 'X-Service-Catalog'):
            req.headers.pop(h, None)
        token = req.headers.get('X-Auth-Token')
        if not token or token == 'expired':
            resp = webob.Response(status=401, content_type='application/json')
            resp.body = json.dumps({'error': {
                'code': 401, 'title': 'Unauthorized',
                'message': 'The request you have made requires '
                           'authentication.'}}).encode()
            return resp
        user, project, roles = token.split(':')
        req.headers.update({'X-Identity-Status': 'Confirmed',
                            'X-User-Id': user, 'X-Project-Id': project,
                            'X-Roles': roles})
        catalog = getattr(self, 'catalog', None)
        if catalog is not None:
            req.headers['X-Service-Catalog'] = json.dumps(catalog)
        return req.get_response(self.app)


@pytest.fixture
def api_conf(conf, tmp_path):
    conf.set_override('connection', f'sqlite:///{tmp_path}/tasks.sqlite',
                      group='database')
    conf.set_override('region_name', 'RegionTwo', group='api')
    yield conf
    db_api.dispose(conf)


@pytest.fixture
def trusts(monkeypatch):
    """Trusts made and deleted by submit_clone (no Keystone)."""
    made, deleted = [], []

    def create(conf, context):
        assert context.auth_token
        made.append({'project': context.project_id, 'roles': context.roles,
                     'token': context.auth_token})
        return f'trust-{len(made)}'
    monkeypatch.setattr(submit, 'create_user_trust', create)
    monkeypatch.setattr(submit.auth, 'delete_trust',
                        lambda conf, trust_id: deleted.append(trust_id))
    # no jobboard: a posted clone is simply not started
    monkeypatch.setattr(submit.jobboard, 'post_clone',
                        lambda conf, store, project_id=None: None)
    return {'made': made, 'deleted': deleted}


@pytest.fixture
def fake_auth():
    return FakeAuthToken


@pytest.fixture
def app(api_conf, trusts):
    inner = FakeAuthToken(middleware.ContextMiddleware(api_app.App(api_conf)))
    pipeline = request_id.RequestId(middleware.VersionsFilter(
        middleware.JsonTooLarge(sizelimit.RequestBodySizeLimiter(
            inner, api_conf)), api_conf), api_conf)
    pipeline.fake_auth = inner
    return pipeline


def without_length(req):
    """``req``'s body sent chunked: no Content-Length."""
    req.body_file = io.BytesIO(req.body)
    req.content_length = None
    req.headers['Transfer-Encoding'] = 'chunked'
    req.is_body_readable = True


class Client:
    def __init__(self, app, token=DEMO):
        self.app = app
        self.token = token

    def request(self, method, path, body=None, token='default',
                content_type='application/json', raw=None, headers=None,
                chunked=False):
        req = webob.Request.blank(path, method=method)
        token = self.token if token == 'default' else token
        if token:
            req.headers['X-Auth-Token'] = token
        if raw is not None:
            req.body = raw
            req.content_type = content_type
        elif body is not None:
            req.body = json.dumps(body).encode()
            req.content_type = content_type
        if chunked:
            without_length(req)
        req.headers.update(headers or {})
        resp = req.get_response(self.app)
        resp.json_body_or_none = (json.loads(resp.body) if resp.body and
                                  resp.content_type == 'application/json'
                                  else None)
        return resp

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def post(self, path, body=None, **kw):
        return self.request('POST', path, body, **kw)

    def delete(self, path, **kw):
        return self.request('DELETE', path, **kw)

    def create(self, **input_):
        input_.setdefault('source_region', 'RegionOne')
        input_.setdefault('source_image_id',
                          '6f1d2a3b-1111-4c4c-8d8d-0123456789ab')
        return self.post('/v2/tasks', {'type': 'clone', 'input': input_})


@pytest.fixture
def client(app):
    return Client(app)


@pytest.fixture
def clients(app):
    return {name: Client(app, token) for name, token in
            (('demo', DEMO), ('alt', ALT), ('reader', READER),
             ('admin', ADMIN))}

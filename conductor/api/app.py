"""The clone-api WSGI application: routes, JSON answers, errors.

``load_app(conf)`` builds the whole paste pipeline (request id, size limit,
auth_token, context, this app) from ``etc/glance-clone-paste.ini``;
``app_factory`` is the pipeline's last element.
"""
import json
import logging

import routes
import webob
import webob.dec
import webob.exc

from conductor.api import bodies
from conductor.api import config
from conductor.api import middleware
from conductor.api import openapi
from conductor.api import policies
from conductor.api import schemas
from conductor.api import tasks

LOG = logging.getLogger(__name__)

API_VERSION = 'v2.17'


def base_url(conf, req):
    """``[api] public_endpoint``, else the URL the request came to."""
    return (conf.api.public_endpoint or req.host_url).rstrip('/')


def versions_body(conf, req):
    href = base_url(conf, req) + '/v2/'
    return {'versions': [{'id': API_VERSION, 'status': 'CURRENT',
                          'links': [{'rel': 'self', 'href': href}]}]}


def json_response(status, body=None, location=None):
    resp = webob.Response(status=status)
    if body is None:
        resp.content_type = None
        resp.body = b''
    else:
        resp.content_type = 'application/json'
        resp.charset = 'UTF-8'
        resp.body = json.dumps(body).encode('utf-8')
    if location:
        resp.location = location
    return resp


def error_response(code, message):
    resp = webob.Response(status=code, content_type='application/json',
                          charset='UTF-8')
    resp.body = bodies.error_body(code, webob.exc.status_map[code].title,
                                  message)
    return resp


#: (path, method, action): every route of the API; the OpenAPI document
#: (:mod:`conductor.api.openapi`) describes exactly these.
ROUTES = (
    ('/', 'GET', 'versions'),
    ('/versions', 'GET', 'versions'),
    ('/v2/schemas/task', 'GET', 'schema_task'),
    ('/v2/schemas/tasks', 'GET', 'schema_tasks'),
    (openapi.PATH, 'GET', 'openapi'),
    ('/v2/tasks', 'POST', 'create'),
    ('/v2/tasks', 'GET', 'index'),
    ('/v2/tasks/{task_id}', 'GET', 'show'),
    ('/v2/tasks/{task_id}', 'DELETE', 'delete'),
    ('/v2/images/{image_id}/copies', 'GET', 'copies'),
)


class App:
    """Routes to the tasks controller; answers JSON, Glance-style."""

    def __init__(self, conf, submit=None):
        self.conf = conf
        if submit is None:
            from conductor import submit as submit_mod
            submit = submit_mod.submit_clone
        self.tasks = tasks.TasksController(conf, policies.get_enforcer(conf),
                                           submit=submit)
        m = routes.Mapper()
        for path, method, action in ROUTES:
            m.connect(path, action=action, conditions={'method': [method]})
        self.mapper = m
        self._paths = {path for path, _, _ in ROUTES}

    @webob.dec.wsgify
    def __call__(self, req):
        match = self.mapper.match(environ=req.environ)
        if match is None:
            path = req.path_info.rstrip('/') or '/'
            if path in self._paths or path.startswith('/v2/tasks/'):
                return error_response(405, f'{req.method} is not allowed '
                                           f'on {req.path_info}')
            return error_response(404, f'{req.path_info} is not a resource '
                                       f'of this API')
        action = match['action']
        try:
            if action == 'versions':
                code = 300 if req.path_info in ('', '/') else 200
                return json_response(code, versions_body(self.conf, req))
            if action == 'schema_task':
                return json_response(200, schemas.task_schema())
            if action == 'schema_tasks':
                return json_response(200, schemas.tasks_schema())
            if action == 'openapi':
                return json_response(200, openapi.document())
            context = req.environ.get(middleware.CONTEXT_KEY)
            if context is None or not context.project_id:
                return error_response(
                    401, 'The request you have made requires authentication '
                         '(a project-scoped token).')
            kwargs = {k: v for k, v in match.items()
                      if k in ('task_id', 'image_id')}
            code, body, location = getattr(self.tasks, action)(
                req, context, **kwargs)
            if location:
                location = base_url(self.conf, req) + location
            return json_response(code, body, location)
        except tasks.ApiError as e:
            LOG.info('%s %s -> %s: %s', req.method, req.path_info, e.code,
                     e.message)
            return error_response(e.code, e.message)
        except Exception:
            LOG.exception('Unexpected error on %s %s', req.method,
                          req.path_info)
            return error_response(
                500, 'Internal error; the operator can find the details in '
                     'the clone-api log under this request\'s id.')


def app_factory(global_conf, **local_conf):
    """paste.app_factory for the last element of the pipeline."""
    return App(config.get_conf())


def load_app(conf, pipeline=None):
    """The served WSGI callable: the paste pipeline named in
    ``[api] paste_pipeline`` of ``[api] paste_config``.
    """
    from paste import deploy
    config.set_conf(conf)
    path = config.find_paste_config(conf)
    return deploy.loadapp(f'config:{path}',
                          name=pipeline or conf.api.paste_pipeline)

"""Paste filters of the clone-api pipeline.

Each factory hands the service's ``ConfigOpts`` (see
:mod:`conductor.api.config`) to the middleware it wraps, so options are read
from glance-clone's own configuration files, not from a global.
"""
import logging

from keystoneauth1 import exceptions as ksa_exceptions
from keystonemiddleware import auth_token
from oslo_context import context as oslo_context
from oslo_middleware import request_id
from oslo_middleware import sizelimit
import webob.dec

from conductor.api import bodies
from conductor.api import config

LOG = logging.getLogger(__name__)
CONTEXT_KEY = 'glance_clone.context'


def request_id_factory(global_conf, **local_conf):
    return lambda app: request_id.RequestId(app, config.get_conf())


def sizelimit_factory(global_conf, **local_conf):
    """Bodies over ``[oslo_middleware] max_request_body_size`` get 413
    (with the JSON error body of every other answer).
    """
    return lambda app: JsonTooLarge(sizelimit.RequestBodySizeLimiter(
        app, config.get_conf()))


class JsonTooLarge:
    """oslo.middleware's size limiter answers 413 in webob's own format;
    this gives that answer the Glance-style JSON error body.
    """

    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        resp = req.get_response(self.app)
        if resp.status_int == 413 and resp.content_type != 'application/json':
            from conductor.api import app as api_app
            return api_app.error_response(413, bodies.TOO_LARGE)
        return resp


#: the sentence of conductor.api.tasks' 503 for its own Keystone calls
KEYSTONE_DOWN = 'Keystone did not answer; try again later'


class KeystoneUnavailable:
    """auth_token lets keystoneauth's connection errors (a Keystone that
    does not answer within ``http_connect_timeout``) escape as a 500 page:
    they become a 503 with one sentence, like the API's own Keystone calls.
    """

    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        try:
            return req.get_response(self.app)
        except ksa_exceptions.ConnectionError as e:
            LOG.warning('%s %s -> 503: validating the token: %s', req.method,
                        req.path_info, e)
            from conductor.api import app as api_app
            return api_app.error_response(503, KEYSTONE_DOWN)


def authtoken_factory(global_conf, **local_conf):
    """keystonemiddleware's auth_token, configured by
    ``[keystone_authtoken]`` of glance-clone's configuration.
    """
    conf = dict(local_conf)
    conf['oslo_config_config'] = config.get_conf()

    def _filter(app):
        return KeystoneUnavailable(auth_token.AuthProtocol(app, conf))
    return _filter


class ContextMiddleware:
    """Turns auth_token's X-* headers into an oslo.context RequestContext.

    Requests without a confirmed identity get no context (the app answers
    401 for task routes); discovery and schema routes need none.
    """

    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        if req.environ.get('HTTP_X_IDENTITY_STATUS') == 'Confirmed':
            ctx = oslo_context.RequestContext.from_environ(req.environ)
            # auth_token's validated token body: lets the API act with the
            # token without asking Keystone again (never logged or stored).
            ctx.token_info = req.environ.get('keystone.token_info')
            req.environ[CONTEXT_KEY] = ctx
        return req.get_response(self.app)


def context_factory(global_conf, **local_conf):
    return ContextMiddleware


class VersionsFilter:
    """Answers ``GET /`` and ``GET /versions`` before authentication (as
    Glance does), so clients can discover the API without a token.
    """

    def __init__(self, app, conf):
        self.app = app
        self.conf = conf

    @webob.dec.wsgify
    def __call__(self, req):
        if req.method in ('GET', 'HEAD') and req.path_info in ('', '/',
                                                               '/versions'):
            from conductor.api import app as api_app
            code = 200 if req.path_info == '/versions' else 300
            return api_app.json_response(code, api_app.versions_body(
                self.conf, req))
        return req.get_response(self.app)


def versions_factory(global_conf, **local_conf):
    return lambda app: VersionsFilter(app, config.get_conf())

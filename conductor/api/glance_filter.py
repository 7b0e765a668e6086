"""Clone tasks at Glance's own endpoint: a paste filter for glance-api.

Inserted into a glance-api pipeline *before* ``authtoken``, it sends the
task calls that belong to glance-clone to a clone-api and lets every other
call through to Glance untouched::

    [filter:glance_clone]
    paste.filter_factory = conductor.api.glance_filter:filter_factory
    clone_api_url = http://127.0.0.1:9393

    [pipeline:glance-api-keystone]
    pipeline = cors healthcheck http_proxy_to_wsgi versionnegotiation
               osprofiler glance_clone authtoken context rootapp

What goes to glance-clone (the request, with its ``X-Auth-Token``, is
forwarded as is; clone-api validates the token itself):

* ``POST /v2/tasks`` whose JSON body has ``"type": "clone"``;
* ``GET /v2/schemas/task`` and ``/v2/schemas/tasks`` (its enum holds
  ``clone`` and Glance's own types);
* ``GET /v2/tasks`` unless ``type`` names one of Glance's task types;
* ``GET`` and ``DELETE /v2/tasks/{id}`` when clone-api knows the task (it
  answers something other than 404); otherwise, or when clone-api does not
  answer, Glance answers.

Only the standard library and webob (both in any glance-api) are imported,
so the module loads in Glance's own virtualenv with this source tree on its
``sys.path``.
"""
import http.client
import json
import logging
import re
import urllib.parse

import webob
import webob.dec

LOG = logging.getLogger(__name__)

GLANCE_TASK_TYPES = ('import', 'api_image_import', 'location_import')
_TASK_PATH = re.compile(r'^/v2/tasks/(?P<id>[^/]+)/?$')
_HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-authenticate',
               'proxy-authorization', 'te', 'trailers', 'transfer-encoding',
               'upgrade', 'content-length', 'host'}


class GlanceCloneFilter:

    def __init__(self, app, clone_api_url, timeout=60):
        self.app = app
        parsed = urllib.parse.urlsplit(clone_api_url)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise ValueError(f'clone_api_url {clone_api_url!r} is not an '
                             f'http(s) URL')
        self.scheme = parsed.scheme
        self.netloc = parsed.netloc
        self.prefix = parsed.path.rstrip('/')
        self.timeout = float(timeout)

    # -- which calls are ours -------------------------------------------------

    def _is_clone_create(self, req):
        if req.method != 'POST' or req.path_info.rstrip('/') != '/v2/tasks':
            return False
        try:
            body = json.loads(req.body or b'{}')
        except ValueError:
            return False
        return isinstance(body, dict) and body.get('type') == 'clone'

    @webob.dec.wsgify
    def __call__(self, req):
        path = req.path_info.rstrip('/') or '/'
        if req.method == 'GET' and path in ('/v2/schemas/task',
                                            '/v2/schemas/tasks'):
            return self._forward(req)
        if path == '/v2/tasks':
            if req.method == 'GET' and \
                    req.GET.get('type') not in GLANCE_TASK_TYPES:
                return self._forward(req)
            if self._is_clone_create(req):
                return self._forward(req)
            return req.get_response(self.app)
        match = _TASK_PATH.match(req.path_info)
        if match and req.method in ('GET', 'DELETE'):
            probe = self._forward(req, method='GET', body=b'')
            # 404: not a clone task (or not yours); 503: glance-clone is down
            # -- either way Glance's own tasks still answer.
            if probe.status_int not in (404, 503):
                return probe if req.method == 'GET' else self._forward(req)
        return req.get_response(self.app)

    # -- forwarding --------------------------------------------------------------

    def _forward(self, req, method=None, body=None):
        method = method or req.method
        body = req.body if body is None else body
        headers = {k: v for k, v in req.headers.items()
                   if k.lower() not in _HOP_BY_HOP}
        if not body:
            headers.pop('Content-Type', None)
        url = self.prefix + req.path_info
        if req.query_string:
            url += '?' + req.query_string
        conn_cls = (http.client.HTTPSConnection if self.scheme == 'https'
                    else http.client.HTTPConnection)
        conn = conn_cls(self.netloc, timeout=self.timeout)
        try:
            conn.request(method, url, body=body or None, headers=headers)
            upstream = conn.getresponse()
            data = upstream.read()
        except OSError as e:
            LOG.error('glance-clone at %s://%s did not answer: %s',
                      self.scheme, self.netloc, e)
            return _error(503, 'The clone service did not answer; try '
                               'again later.')
        finally:
            conn.close()
        resp = webob.Response(status=upstream.status)
        resp.headerlist = [(k, v) for k, v in upstream.getheaders()
                           if k.lower() not in _HOP_BY_HOP]
        resp.body = data
        location = resp.headers.get('Location')
        if location:
            # clone-api's absolute Location -> this endpoint's.
            tail = urllib.parse.urlsplit(location).path
            if self.prefix and tail.startswith(self.prefix):
                tail = tail[len(self.prefix):]
            resp.headers['Location'] = req.host_url + tail
        return resp


def _error(code, message):
    resp = webob.Response(status=code, content_type='application/json')
    resp.body = json.dumps({'error': {'code': code, 'title': 'Service '
                                      'Unavailable', 'message': message}}
                           ).encode()
    return resp


def filter_factory(global_conf, **local_conf):
    """paste.filter_factory: ``clone_api_url`` (required), ``timeout``."""
    conf = dict(global_conf or {})
    conf.update(local_conf)
    url = conf.get('clone_api_url')
    if not url:
        raise ValueError('glance_clone filter: set clone_api_url')
    timeout = conf.get('timeout', 60)

    def _filter(app):
        return GlanceCloneFilter(app, url, timeout=timeout)
    return _filter

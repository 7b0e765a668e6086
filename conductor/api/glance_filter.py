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

What it reads before authentication is bounded: a task-create body over
``max_request_body_size`` is a 413, one that is not JSON or nests too deeply
a 400 (Glance's own routes are not touched).  The ``Location`` of a new
clone task is built on the ``public_endpoint`` option, not on the client's
``Host`` header (unset: the path alone, which glance-api's pipeline
resolves as it does for Glance's own answers).

Only the standard library, webob (both in any glance-api) and
:mod:`conductor.api.bodies` are imported, so the module loads in Glance's
own virtualenv with this source tree on its ``sys.path``.
"""
import http.client
import logging
import re
import ssl
import urllib.parse

import webob
import webob.dec
import webob.exc

from conductor.api import bodies

LOG = logging.getLogger(__name__)

GLANCE_TASK_TYPES = ('import', 'api_image_import', 'location_import')
#: oslo.middleware's default ``max_request_body_size``, clone-api's limit.
DEFAULT_MAX_BODY = 114688
_TASK_PATH = re.compile(r'^/v2/tasks/(?P<id>[^/]+)/?$')
_HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-authenticate',
               'proxy-authorization', 'te', 'trailers', 'transfer-encoding',
               'upgrade', 'content-length', 'host'}
_TRUE, _FALSE = ('true', 'yes', 'on', '1'), ('false', 'no', 'off', '0')


class GlanceCloneFilter:

    def __init__(self, app, clone_api_url, timeout=60,
                 max_request_body_size=DEFAULT_MAX_BODY, ssl_context=None,
                 public_endpoint=None):
        self.app = app
        public = urllib.parse.urlsplit(public_endpoint or '')
        if public_endpoint and (public.scheme not in ('http', 'https') or
                                not public.hostname):
            raise ValueError(f'glance_clone filter: public_endpoint '
                             f'{public_endpoint!r} is not an http(s) URL')
        self.public_endpoint = (public_endpoint or '').rstrip('/')
        parsed = urllib.parse.urlsplit(clone_api_url)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise ValueError(f'clone_api_url {clone_api_url!r} is not an '
                             f'http(s) URL')
        if ssl_context is not None and parsed.scheme != 'https':
            raise ValueError('glance_clone filter: the TLS options (ca_file, '
                             'cert_file, key_file, insecure) need an https '
                             'clone_api_url')
        self.scheme = parsed.scheme
        self.netloc = parsed.netloc
        self.prefix = parsed.path.rstrip('/')
        self.timeout = float(timeout)
        self.max_body = int(max_request_body_size)
        self.ssl_context = ssl_context

    # -- which calls are ours -------------------------------------------------

    def _is_clone_create(self, req):
        """True for a clone request; reads (at most ``max_body`` bytes of)
        the body, which stays readable for Glance. :class:`BodyError` for a
        body that is too large, not JSON or too deep.
        """
        if req.method != 'POST' or req.path_info.rstrip('/') != '/v2/tasks':
            return False
        raw = bodies.read_capped(req, self.max_body)
        body = bodies.parse_json(raw or b'{}')
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
            try:
                ours = self._is_clone_create(req)
            except bodies.BodyError as e:
                return _error(e.code, e.message)
            return self._forward(req) if ours else req.get_response(self.app)
        match = _TASK_PATH.match(req.path_info)
        if match and req.method in ('GET', 'DELETE'):
            probe = self._forward(req, method='GET', body=b'')
            # 404: not a clone task (or not yours); 502/503: glance-clone is
            # down or broken -- either way Glance's own tasks still answer.
            if probe.status_int not in (404, 502, 503):
                return probe if req.method == 'GET' else self._forward(req)
        return req.get_response(self.app)

    # -- forwarding -----------------------------------------------------------

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
        if self.scheme == 'https':
            conn = http.client.HTTPSConnection(self.netloc,
                                               timeout=self.timeout,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self.netloc,
                                              timeout=self.timeout)
        try:
            conn.request(method, url, body=body or None, headers=headers)
            upstream = conn.getresponse()
            data = upstream.read()
        except OSError as e:       # refused, timed out, TLS not verified
            LOG.error('glance-clone at %s://%s did not answer %s %s: %s',
                      self.scheme, self.netloc, method, req.path_info, e)
            return _error(503, 'The clone service did not answer; try '
                               'again later.')
        except Exception as e:     # noqa: BLE001 - a broken answer
            LOG.error('glance-clone at %s://%s answered %s %s with no valid '
                      'HTTP response: %r', self.scheme, self.netloc, method,
                      req.path_info, e)
            return _error(502, 'The clone service gave no valid answer; try '
                               'again later.')
        finally:
            conn.close()
        resp = webob.Response(status=upstream.status)
        resp.headerlist = [(k, v) for k, v in upstream.getheaders()
                           if k.lower() not in _HOP_BY_HOP]
        resp.body = data
        location = resp.headers.get('Location')
        if location:
            # clone-api's Location -> this endpoint's: public_endpoint + the
            # path, or the path alone, which glance-api's pipeline resolves
            # as it does for Glance's own answers.
            tail = urllib.parse.urlsplit(location).path
            if self.prefix and tail.startswith(self.prefix):
                tail = tail[len(self.prefix):]
            resp.headers['Location'] = (self.public_endpoint or
                                        _glance_public_endpoint()) + tail
        return resp


def _glance_public_endpoint():
    """The ``public_endpoint`` of the glance-api this filter runs in (its
    ``[DEFAULT] public_endpoint``), or '' where it has none.
    """
    try:
        from oslo_config import cfg
        return (cfg.CONF.public_endpoint or '').rstrip('/')
    except Exception:  # noqa: BLE001 - not in glance-api, or not set
        return ''


def _error(code, message):
    resp = webob.Response(status=code, content_type='application/json')
    resp.body = bodies.error_body(code, webob.exc.status_map[code].title,
                                  message)
    return resp


def _flag(name, value):
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f'glance_clone filter: {name} must be true or false, '
                     f'not {value!r}')


def ssl_context(conf):
    """The TLS context for an https ``clone_api_url`` from the filter's
    options, or None when none is set: ``ca_file`` (CA bundle that signed
    clone-api's certificate; default: the system's), ``cert_file`` and
    ``key_file`` (this glance-api's client certificate, if clone-api asks
    for one), ``insecure`` (true: do not verify clone-api's certificate).
    """
    ca_file = conf.get('ca_file') or None
    cert_file = conf.get('cert_file') or None
    key_file = conf.get('key_file') or None
    insecure = _flag('insecure', conf.get('insecure', 'false'))
    if not (ca_file or cert_file or key_file or insecure):
        return None
    if key_file and not cert_file:
        raise ValueError('glance_clone filter: key_file needs cert_file')
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def filter_factory(global_conf, **local_conf):
    """paste.filter_factory: ``clone_api_url`` (required), ``timeout``,
    ``max_request_body_size`` (bytes of a task-create body this filter
    reads; set it to clone-api's ``[oslo_middleware]
    max_request_body_size``), ``public_endpoint`` (this image endpoint's
    URL as users know it: the ``Location`` of a new clone task is built on
    it, never on the request's ``Host`` header; default: glance-api's own
    ``public_endpoint``), and for https
    :func:`ssl_context`'s ``ca_file``, ``cert_file``, ``key_file``,
    ``insecure``.
    """
    conf = dict(global_conf or {})
    conf.update(local_conf)
    url = conf.get('clone_api_url')
    if not url:
        raise ValueError('glance_clone filter: set clone_api_url')
    timeout = conf.get('timeout', 60)
    max_body = int(conf.get('max_request_body_size', DEFAULT_MAX_BODY))
    context = ssl_context(conf)
    public_endpoint = conf.get('public_endpoint') or None

    def _filter(app):
        return GlanceCloneFilter(app, url, timeout=timeout,
                                 max_request_body_size=max_body,
                                 ssl_context=context,
                                 public_endpoint=public_endpoint)
    return _filter

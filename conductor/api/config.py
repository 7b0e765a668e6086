"""Options of clone-api, and the configuration its paste factories share.

Paste factories get only strings from the ini file, so the loaded
``ConfigOpts`` is handed to them through :func:`set_conf` /
:func:`get_conf` (one service configuration per process).
"""
import os

from oslo_config import cfg

api_opts = [
    cfg.StrOpt('region_name',
               help='The region this API serves: the default target_region '
                    'of a clone request that names none. Required for '
                    'requests that omit target_region.'),
    cfg.HostAddressOpt('bind_host', default='127.0.0.1',
                       help='Address clone-api listens on.'),
    cfg.PortOpt('bind_port', default=9393, help='Port clone-api listens on.'),
    cfg.IntOpt('workers', default=2, min=1,
               help='gunicorn worker processes.'),
    cfg.IntOpt('threads', default=8, min=1,
               help='Threads per gunicorn worker (gthread).'),
    cfg.StrOpt('paste_config', default='glance-clone-paste.ini',
               help='The paste pipeline file; a relative name is looked up '
                    'next to the configuration files, then in etc/ of the '
                    'source tree.'),
    cfg.StrOpt('paste_pipeline', default='clone-api',
               help='Name of the pipeline in the paste file to serve.'),
    cfg.URIOpt('public_endpoint', schemes=['http', 'https'],
               help='The URL clients reach clone-api at (behind a proxy or '
                    'a load balancer). The Location of a new task and the '
                    'links of the versions document are built on it; '
                    'unset, on the URL of each request (its Host header).'),
    cfg.FloatOpt('stalled_after', default=45.0, min=1,
                 help='A processing clone whose conductor has written '
                      'nothing for this many seconds (progress or '
                      'heartbeat: [conductor] heartbeat_interval, keep this '
                      'several times larger) is shown as waiting for a '
                      'conductor: its transfer rate 0 and its message '
                      'saying since when.'),
    cfg.IntOpt('limit_param_default', default=25, min=1,
               help='Tasks per page when a list request gives no limit.'),
    cfg.IntOpt('api_limit_max', default=1000, min=1,
               help='Largest page of tasks a list request may ask for.'),
    cfg.IntOpt('max_pending_clones_per_project', default=50, min=0,
               help='Clones one project may have waiting for a conductor '
                    '(status pending); a request over it is refused with '
                    '429 before any trust or job is made (0: no limit). '
                    'Each pending clone holds a Keystone trust and a '
                    'ZooKeeper entry.'),
    cfg.IntOpt('max_pending_clones', default=5000, min=0,
               help='Clones all projects together may have waiting (status '
                    'pending); over it, requests are refused with 429 (0: '
                    'no limit).'),
]

_CONF = {'conf': None}


def register_opts(conf):
    conf.register_opts(api_opts, group='api')


def list_opts():
    return [('api', api_opts)]


def set_conf(conf):
    _CONF['conf'] = conf


def get_conf():
    if _CONF['conf'] is None:
        raise RuntimeError('clone-api: configuration not loaded (use '
                           'conductor.api.app.load_app)')
    return _CONF['conf']


def find_paste_config(conf):
    name = conf.api.paste_config
    if os.path.isabs(name):
        return name
    candidates = [os.path.join(os.path.dirname(os.path.abspath(f)), name)
                  for f in conf.config_file or []]
    here = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    candidates.append(os.path.join(here, 'etc', name))
    candidates.append(os.path.join('/etc/glance-clone', name))
    for path in candidates:
        if os.path.exists(path):
            return path
    raise RuntimeError(f'paste config {name} not found in {candidates}')

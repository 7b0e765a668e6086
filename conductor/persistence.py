"""Where clone graphs persist their state: a TaskFlow SQLAlchemy backend.

sqlite file by default; MariaDB (``mysql+pymysql://``) and PostgreSQL
(``postgresql+psycopg2://``) through the same connection URL.
"""
import contextlib
import os

from oslo_config import cfg
from taskflow.persistence import backends

persistence_opts = [
    cfg.StrOpt('state_path', default='/var/lib/glance-clone',
               help='Directory for local state (the default sqlite file).'),
]

persistence_group_opts = [
    cfg.StrOpt('connection',
               default='sqlite:///$state_path/glance-clone.sqlite',
               secret=True,
               help='SQLAlchemy URL of the TaskFlow persistence (logbooks, '
                    'flow and atom details).'),
]


def register_opts(conf):
    conf.register_opts(persistence_opts)
    conf.register_opts(persistence_group_opts, group='persistence')


def list_opts():
    return [('DEFAULT', persistence_opts),
            ('persistence', persistence_group_opts)]


def _ensure_sqlite_dir(url):
    if url.startswith('sqlite:///'):
        path = url[len('sqlite:///'):]
        if path and path != ':memory:':
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def get_backend(conf):
    """A TaskFlow persistence backend with its tables created/upgraded."""
    url = conf.persistence.connection
    _ensure_sqlite_dir(url)
    backend = backends.fetch({'connection': url})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend

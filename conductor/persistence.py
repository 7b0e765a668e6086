"""Where clone graphs persist their state: a TaskFlow SQLAlchemy backend.

sqlite file by default; MariaDB (``mysql+pymysql://``) and PostgreSQL
(``postgresql+psycopg2://``) through the same connection URL.  Several
processes (conductors, ``clone-manage``) may share one database.

The storage fix (``[persistence] cache_table_metadata``, on by default)
----------------------------------------------------------------------
TaskFlow 6.5's ``impl_sqlalchemy.Connection.__init__`` builds a new
``sqlalchemy.MetaData`` and the three tables (``tables.fetch(metadata)``)
every time ``SQLAlchemyBackend.get_connection()`` is called, and
``taskflow.storage.Storage`` calls it for every single save (each atom state
change, each progress event, each flow state change).  That costs twice:

* CPU: SQLAlchemy's compiled-statement cache is keyed by the identity of the
  ``Table`` objects, so every statement on fresh tables misses the cache and
  is compiled again, on top of building the tables themselves;
* memory, without bound: the ``atomdetails`` table has two ``Enum`` columns.
  The dialect memoises each type's dialect implementation in
  ``dialect._type_memos``, a ``WeakKeyDictionary`` keyed by the type, but
  the memoised ``Enum`` (made by ``SchemaType.adapt``) keeps the original's
  ``metadata`` and ``_adapted_from``: the value keeps its own key alive, so
  the whole ``MetaData`` with its tables of every connection that touched
  ``atomdetails`` stays reachable from the engine's dialect for as long as
  the backend lives (~150 KB per storage call).

:class:`CachedTablesBackend` builds the metadata and tables once per backend
and hands them to every :class:`CachedTablesConnection`; everything else is
TaskFlow's own code, so the rows written are the same.  Nothing is patched
globally: the stock backend stays selectable (``cache_table_metadata =
false``), which the benchmark (``bench/persistence.py``) uses to compare.

Schema
------
:func:`get_backend` creates or upgrades TaskFlow's tables (``conn.upgrade()``:
``create_all`` on sqlite, TaskFlow's alembic migrations elsewhere) once per
backend, serialised between processes (an advisory lock on MariaDB and
PostgreSQL, a retry on sqlite), so two conductors starting together on an
empty database do not trip over each other's ``CREATE TABLE``.
"""
import contextlib
import os
import time
import zlib

import sqlalchemy as sa
from oslo_config import cfg
from taskflow import exceptions as tf_exc
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.persistence.backends.sqlalchemy import tables as tf_tables

persistence_opts = [
    cfg.StrOpt('state_path', default='/var/lib/glance-clone',
               help='Directory for local state (the default sqlite file).'),
]

persistence_group_opts = [
    cfg.StrOpt('connection',
               default='sqlite:///$state_path/glance-clone.sqlite',
               secret=True,
               help='SQLAlchemy URL of the TaskFlow persistence (logbooks, '
                    'flow and atom details): sqlite:///PATH, '
                    'mysql+pymysql://USER:PASSWORD@HOST/DB or '
                    'postgresql+psycopg2://USER:PASSWORD@HOST/DB. Several '
                    'conductors may share one MariaDB or PostgreSQL database '
                    '(or, on one host, one sqlite file).'),
    cfg.BoolOpt('cache_table_metadata', default=True,
                help='Build the SQLAlchemy table metadata of the TaskFlow '
                     'persistence once per process instead of on every '
                     'storage call, as TaskFlow 6.5 does (which recompiles '
                     'every statement and keeps each copy alive: memory grows '
                     'with every call). Turn off only to measure the '
                     'difference.'),
    cfg.IntOpt('upgrade_lock_timeout', default=300, min=1,
               help='Seconds a process waits for another one that is '
                    'creating or upgrading the persistence tables.'),
]

#: Name of the advisory lock held while the schema is created or upgraded.
UPGRADE_LOCK_NAME = 'glance_clone_taskflow_schema'


def register_opts(conf):
    conf.register_opts(persistence_opts)
    conf.register_opts(persistence_group_opts, group='persistence')


def list_opts():
    return [('DEFAULT', persistence_opts),
            ('persistence', persistence_group_opts)]


class CachedTablesConnection(impl_sqlalchemy.Connection):
    """TaskFlow's connection, on its backend's tables instead of new ones.

    ``impl_sqlalchemy.Connection.__init__`` sets exactly these attributes,
    building ``_metadata``/``_tables``/``_converter`` anew; every method of
    the stock class works on them unchanged.  (A unit test checks that the
    stock constructor still sets no other attribute, so a TaskFlow upgrade
    that changes it fails the tests rather than production.)
    """

    def __init__(self, backend, upgrade_lock):
        # Not calling super().__init__(): that is the per-call rebuild.
        self._backend = backend
        self._upgrade_lock = upgrade_lock
        self._engine = backend.engine
        self._metadata = backend.metadata
        self._tables = backend.tables
        self._converter = backend.converter


class CachedTablesBackend(impl_sqlalchemy.SQLAlchemyBackend):
    """TaskFlow's SQLAlchemy backend with its table metadata built once."""

    def __init__(self, conf, engine=None):
        super().__init__(conf, engine=engine)
        self.metadata = sa.MetaData()
        self.tables = tf_tables.fetch(self.metadata)
        self.converter = impl_sqlalchemy._Alchemist(self.tables)

    def get_connection(self):
        # As SQLAlchemyBackend.get_connection, with the cached tables.
        conn = CachedTablesConnection(self, upgrade_lock=self._upgrade_lock)
        if not self._validated:
            conn.validate(max_retries=self._max_retries)
            self._validated = True
        return conn


def _ensure_sqlite_dir(url):
    if url.startswith('sqlite:///'):
        path = url[len('sqlite:///'):]
        if path and path != ':memory:':
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def backend_conf(conf):
    """The TaskFlow backend configuration for ``[persistence]``."""
    return {'connection': conf.persistence.connection}


def make_backend(conf):
    """A backend for ``[persistence]``, without touching the schema."""
    url = conf.persistence.connection
    _ensure_sqlite_dir(url)
    cls = (CachedTablesBackend if conf.persistence.cache_table_metadata
           else impl_sqlalchemy.SQLAlchemyBackend)
    return cls(backend_conf(conf))


@contextlib.contextmanager
def _schema_lock(engine, timeout):
    """Held while the schema is created/upgraded, across processes.

    MariaDB/MySQL ``GET_LOCK`` and PostgreSQL ``pg_advisory_lock`` are
    session locks: they are released when this connection closes, also when
    the process dies.  sqlite has none (see :func:`upgrade`).
    """
    dialect = engine.dialect.name
    if dialect not in ('mysql', 'mariadb', 'postgresql'):
        yield
        return
    with engine.connect() as lock_conn:
        if dialect == 'postgresql':
            key = zlib.crc32(UPGRADE_LOCK_NAME.encode())
            lock_conn.exec_driver_sql(f'SET lock_timeout = {int(timeout * 1000)}')
            lock_conn.execute(sa.text('SELECT pg_advisory_lock(:k)'), {'k': key})
            lock_conn.commit()
            try:
                yield
            finally:
                lock_conn.execute(sa.text('SELECT pg_advisory_unlock(:k)'),
                                  {'k': key})
                lock_conn.commit()
        else:
            got = lock_conn.execute(sa.text('SELECT GET_LOCK(:n, :t)'),
                                    {'n': UPGRADE_LOCK_NAME,
                                     't': int(timeout)}).scalar()
            if got != 1:
                raise tf_exc.StorageFailure(
                    f'another process held the schema lock '
                    f'{UPGRADE_LOCK_NAME!r} for more than {timeout} s')
            try:
                yield
            finally:
                lock_conn.execute(sa.text('SELECT RELEASE_LOCK(:n)'),
                                  {'n': UPGRADE_LOCK_NAME})


def upgrade(backend, timeout=300, attempts=3):
    """Create or upgrade TaskFlow's tables; safe with several processes."""
    with _schema_lock(backend.engine, timeout):
        for attempt in range(1, attempts + 1):
            try:
                with contextlib.closing(backend.get_connection()) as conn:
                    conn.upgrade()
                return
            except tf_exc.StorageFailure:
                # sqlite: another process created a table between
                # create_all's check and its CREATE; the next pass sees it.
                if attempt == attempts or backend.engine.dialect.name != 'sqlite':
                    raise
                time.sleep(0.1 * attempt)


def get_backend(conf):
    """A TaskFlow persistence backend with its tables created/upgraded."""
    backend = make_backend(conf)
    upgrade(backend, timeout=conf.persistence.upgrade_lock_timeout)
    return backend

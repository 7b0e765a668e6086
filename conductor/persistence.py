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
This is the one place that relies on TaskFlow's private internals
(``Connection``'s attributes and ``_Alchemist``); what TaskFlow should
change instead is written down in ``doc/source/contributor/upstream.rst``.

A sqlite file gets a connection pool and write-ahead logging (TaskFlow
opens the file anew for every storage call, which re-reads its schema).

Schema
------
:func:`get_backend` creates or upgrades TaskFlow's tables (``conn.upgrade()``:
``create_all`` on sqlite, TaskFlow's alembic migrations elsewhere) once per
backend, serialised between processes (an advisory lock on MariaDB and
PostgreSQL, a retry on sqlite), so two conductors starting together on an
empty database do not trip over each other's ``CREATE TABLE``.
"""
import contextlib
import logging
import time
import zlib

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import pool as sa_pool
from taskflow import exceptions as tf_exc
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.persistence.backends.sqlalchemy import tables as tf_tables
from taskflow.persistence import models

from conductor import sqlite

LOG = logging.getLogger(__name__)

#: Name of the advisory lock held while the schema is created or upgraded.
UPGRADE_LOCK_NAME = 'glance_clone_taskflow_schema'


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
    """TaskFlow's SQLAlchemy backend with its table metadata built once;
    its connections (:class:`CachedTablesConnection`) run TaskFlow's own
    code on those tables.
    """

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


def flow_details(backend):
    """Every stored flow detail, without its atoms.

    One query on our backend; TaskFlow's API would load every logbook with
    every flow and atom (the periodic sweep looks at all of them).
    """
    if not isinstance(backend, CachedTablesBackend):
        with contextlib.closing(backend.get_connection()) as conn:
            return [fd for book in conn.get_logbooks() for fd in book]
    with backend.engine.connect() as conn:
        return [models.FlowDetail.from_dict(dict(row._mapping))
                for row in conn.execute(sa.select(backend.tables.flowdetails))]


def backend_conf(conf):
    """The TaskFlow backend configuration for ``[persistence]``.

    A sqlite file gets a connection pool (TaskFlow uses none: every storage
    call would open the file and parse its schema again) and write-ahead
    logging (:func:`make_backend`), so that processes sharing the file read
    while one writes.  On MariaDB and PostgreSQL a pooled connection is
    checked before use (SQLAlchemy's ``pool_pre_ping``; TaskFlow pings only
    MariaDB's, with a listener of its own, turned off here): one the server
    or a proxy closed is replaced instead of failing a save.
    """
    url = conf.persistence.connection
    size = conf.persistence.max_pool_size
    tf_conf = {'connection': url}
    if sqlite.is_file(url):
        tf_conf['engine_args'] = {'poolclass': sa_pool.QueuePool,
                                  'pool_size': size}
    elif not url.startswith('sqlite'):
        tf_conf['max_pool_size'] = size
        tf_conf['checkout_ping'] = False
        tf_conf['engine_args'] = {'pool_pre_ping': True}
    return tf_conf


def make_backend(conf):
    """A backend for ``[persistence]``, without touching the schema."""
    url = conf.persistence.connection
    sqlite.ensure_dir(url)
    if conf.persistence.cache_table_metadata:
        backend = CachedTablesBackend(backend_conf(conf))
    else:
        backend = impl_sqlalchemy.SQLAlchemyBackend(backend_conf(conf))
    if sqlite.is_file(url):
        sa.event.listen(backend.engine, 'connect', sqlite.on_connect(
            synchronous=conf.persistence.sqlite_synchronous))
    return backend


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
            # SET LOCAL: the timeout ends with this transaction, the
            # (session) lock does not; the pooled connection keeps no setting.
            lock_conn.exec_driver_sql(
                f'SET LOCAL lock_timeout = {int(timeout * 1000)}')
            lock_conn.execute(sa.text('SELECT pg_advisory_lock(:k)'),
                              {'k': key})
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


#: TaskFlow's schema indexes only the uuids; a flow's atoms and a logbook's
#: flows are looked up by ``parent_uuid``.  InnoDB indexes a foreign key
#: column by itself; sqlite and PostgreSQL do not, and every load or save of
#: a flow then scans every atom of every clone ever stored: the cost of a
#: clone grew with the database (sqlite lean: 19 -> 38 ms of CPU per clone
#: between 300 and 1,300 stored clones).
PARENT_INDEXES = (('glance_clone_atomdetails_parent_idx', 'atomdetails'),
                  ('glance_clone_flowdetails_parent_idx', 'flowdetails'))


def _ensure_parent_indexes(engine):
    """Create the indexes that are missing.  Looked up in the catalog first:
    a ``CREATE INDEX IF NOT EXISTS`` takes a share lock on the table even
    when the index exists, and deadlocks with processes already saving.
    """
    if engine.dialect.name not in ('sqlite', 'postgresql'):
        return
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        for name, table in PARENT_INDEXES:
            if name in {ix['name'] for ix in inspector.get_indexes(table)}:
                continue
            conn.execute(sa.text(
                f'CREATE INDEX IF NOT EXISTS {name} ON {table} (parent_uuid)'))


def upgrade(backend, timeout=300, attempts=3):
    """Create or upgrade TaskFlow's tables; safe with several processes."""
    with _schema_lock(backend.engine, timeout):
        for attempt in range(1, attempts + 1):
            try:
                with contextlib.closing(backend.get_connection()) as conn:
                    conn.upgrade()
                _ensure_parent_indexes(backend.engine)
                return
            except (tf_exc.StorageFailure, sa_exc.OperationalError):
                # sqlite: another process created a table or an index
                # between the check and the CREATE (or held the file's write
                # lock meanwhile); the next pass sees it.
                sqlite = backend.engine.dialect.name == 'sqlite'
                if attempt == attempts or not sqlite:
                    raise
                time.sleep(0.1 * attempt)


def get_backend(conf):
    """A TaskFlow persistence backend with its tables created/upgraded."""
    backend = make_backend(conf)
    upgrade(backend, timeout=conf.persistence.upgrade_lock_timeout)
    return backend

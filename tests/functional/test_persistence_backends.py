"""The TaskFlow persistence on sqlite, MariaDB and PostgreSQL.

Each test gets a new, empty database (``glance_clone_flows_test_<random>``
on MariaDB at 127.0.0.1:3306 as root, on PostgreSQL at 127.0.0.1:5432 as
postgres; see tests/unit/databases.py for other servers) and drops it
afterwards.  A server that does not answer skips its tests with the reason,
or fails them in ``tools/test.sh``.  The checks themselves are the ones of
tests/unit/test_persistence.py.
"""
import contextlib
import uuid

import pytest
import sqlalchemy as sa

from conductor import persistence
from tests.unit import databases as servers
from tests.unit import test_flowtables
from tests.unit import test_persistence as tp

SERVERS = servers.SERVERS


class Databases:
    """Creates databases on one kind of server; drops them all at close."""

    def __init__(self, kind, tmp_path):
        self.kind = kind
        self.tmp_path = tmp_path
        self.made = []
        self._admin = None
        if kind != 'sqlite':
            self._admin = sa.create_engine(SERVERS[kind],
                                           isolation_level='AUTOCOMMIT',
                                           poolclass=sa.pool.NullPool)
            try:
                with self._admin.connect() as conn:
                    conn.exec_driver_sql('SELECT 1')
            except servers.NOT_ANSWERING as e:
                servers.not_available(kind, e)

    def new(self):
        """The URL of a new, empty database."""
        name = f'glance_clone_flows_test_{uuid.uuid4().hex[:10]}'
        if self.kind == 'sqlite':
            return f'sqlite:///{self.tmp_path}/{name}.sqlite'
        with self._admin.connect() as conn:
            if self.kind == 'mysql':
                conn.exec_driver_sql(
                    f'CREATE DATABASE {name} CHARACTER SET utf8mb4')
            else:
                conn.exec_driver_sql(f'CREATE DATABASE {name}')
        self.made.append(name)
        return servers.with_database(SERVERS[self.kind], name)

    def close(self):
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self.made:
                if self.kind == 'postgresql':
                    conn.exec_driver_sql(
                        'SELECT pg_terminate_backend(pid) FROM '
                        f"pg_stat_activity WHERE datname = '{name}' "
                        'AND pid <> pg_backend_pid()')
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS {name}')
        self._admin.dispose()


@pytest.fixture(params=['sqlite', 'mysql', 'postgresql'])
def databases(request, tmp_path):
    dbs = Databases(request.param, tmp_path)
    yield dbs
    dbs.close()


@pytest.fixture(params=sorted(tp.VARIANTS))
def variant(request):
    return request.param


@contextlib.contextmanager
def backend_on(url, variant='cached'):
    conf = tp.make_conf(url, variant)
    backend = persistence.get_backend(conf)
    try:
        yield conf, backend
    finally:
        backend.close()


def test_schema_is_created_then_left_alone(databases):
    url = databases.new()
    for _ in range(2):
        with backend_on(url) as (_, backend):
            names = set(sa.inspect(backend.engine).get_table_names())
    assert {'logbooks', 'flowdetails', 'atomdetails'} <= names


def test_flows_and_atoms_are_found_by_an_index(databases):
    """A flow's atoms (and a book's flows) are looked up by parent_uuid: an
    index serves them on every database (InnoDB's foreign-key index on
    MariaDB, ours on sqlite and PostgreSQL), so a clone's storage cost does
    not grow with the clones stored before it.
    """
    url = databases.new()
    for _ in range(2):                   # made once, then found again
        with backend_on(url) as (_, backend):
            inspector = sa.inspect(backend.engine)
            for table in ('atomdetails', 'flowdetails'):
                indexed = [ix['column_names'] for ix in
                           inspector.get_indexes(table)]
                assert ['parent_uuid'] in indexed, (table, indexed)


def test_round_trip(databases, variant):
    with backend_on(databases.new(), variant) as (_, backend):
        tp.check_round_trip(backend)


def test_clone_flow_succeeds(databases, variant):
    with backend_on(databases.new(), variant) as (conf, backend):
        tp.check_clone_succeeds(conf, backend)


def test_killed_clone_resumes(databases, variant):
    with backend_on(databases.new(), variant) as (conf, backend):
        tp.check_killed_clone_resumes(conf, backend)


@pytest.mark.parametrize('fail', [False, True], ids=['success', 'reverted'])
def test_fixed_backends_store_what_taskflow_stores(databases, fail):
    url = databases.new()       # one database: the variants side by side
    dumps, memories = {}, {}
    for v in tp.VARIANTS:
        with backend_on(url, v) as (_, backend):
            dumps[v], memories[v] = tp.run_deterministic(backend, fail)
    assert dumps['cached'] == dumps['stock']
    assert memories['cached'] == memories['stock']


def test_memory_stays_flat_with_the_fix(databases):
    url = databases.new()
    tp.check_memory_flat(lambda variant: url)


def test_processes_share_one_database(databases):
    # Three processes start together on an empty database (schema creation
    # races), then clone at the same time.
    tp.check_processes_share_database(databases.new(), processes=3)


# -- the connection pools ----------------------------------------------------

def _kill_connections(databases, url):
    """End, on the server, every connection to the database of ``url``."""
    name = sa.engine.make_url(url).database
    with databases._admin.connect() as conn:
        if databases.kind == 'postgresql':
            conn.exec_driver_sql(
                'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
            return
        ids = conn.exec_driver_sql(
            'SELECT id FROM information_schema.processlist '
            f"WHERE db = '{name}' AND id <> CONNECTION_ID()").scalars().all()
        for i in ids:
            conn.exec_driver_sql(f'KILL {int(i)}')


@pytest.mark.parametrize('kind', ['mysql', 'postgresql'])
def test_a_dead_connection_is_replaced_before_use(kind, tmp_path):
    """A pooled connection the server closed meanwhile is found dead before
    a save uses it (``pool_pre_ping``) and replaced, so the clone does not
    notice.
    """
    dbs = Databases(kind, tmp_path)
    try:
        url = dbs.new()
        conf = tp.make_conf(url)
        backend = persistence.get_backend(conf)
        replaced, failed = [], []
        try:
            tp.check_clone_succeeds(conf, backend)      # fills the pool
            sa.event.listen(backend.engine, 'invalidate',
                            lambda *a: replaced.append(a))
            sa.event.listen(backend.engine, 'handle_error',
                            lambda ctx: failed.append(ctx))
            _kill_connections(dbs, url)
            tp.check_clone_succeeds(conf, backend)
        finally:
            backend.close()
        assert replaced, 'no dead connection was found and replaced'
        # (the check before use fails on a dead connection: that one is
        # expected; no statement of the clone may fail)
        assert [ctx.original_exception for ctx in failed
                if not ctx.is_pre_ping] == []
    finally:
        dbs.close()


@pytest.mark.parametrize('fail', [False, True], ids=['success', 'reverted'])
def test_flowtables_reads_what_taskflow_wrote(databases, fail):
    """``flow show``'s reader agrees with TaskFlow's API on each database
    (JSON is text on sqlite and MariaDB, native on PostgreSQL).
    """
    with backend_on(databases.new()) as (_, backend):
        test_flowtables.check_reads_what_taskflow_wrote(backend, fail)

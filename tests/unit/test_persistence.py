"""The TaskFlow persistence (conductor.persistence) on a sqlite file.

The same checks run against MariaDB and PostgreSQL in
tests/functional/test_persistence_backends.py, which reuses the helpers
here.  Variants of the backend, by ``[persistence]`` options:

* ``stock``: TaskFlow's own backend (``cache_table_metadata = false``),
* ``cached``: the table metadata built once, TaskFlow's code otherwise (the
  default).
"""
import contextlib
import gc
import multiprocessing
import os
import tracemalloc
import uuid

import pytest
import sqlalchemy as sa
from taskflow import engines
from taskflow import exceptions as tf_exc
from taskflow.patterns import linear_flow
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.persistence import models
from taskflow import retry
from taskflow import states
from taskflow import task
from taskflow.types import failure

from clone_flows import constants as c
from conductor import opts
from conductor import outcome
from conductor import persistence
from conductor import runner
from conductor import sweep
from tests.unit import fakes

VARIANTS = {
    'stock': {'cache_table_metadata': False},
    'cached': {'cache_table_metadata': True},
}


class Crash(BaseException):
    """Stands for kill -9: not an Exception, so TaskFlow does not revert."""


def make_conf(url, variant='cached', **overrides):
    conf = opts.new_conf([], default_config_files=[], log=False)
    conf.set_override('connection', url, group='persistence')
    for k, v in dict(VARIANTS[variant], **overrides).items():
        conf.set_override(k, v, group='persistence')
    conf.set_override('copy_retry_delay', 0, group='clone')
    conf.set_override('revert_timeout', 1, group='clone')
    conf.set_override('chunk_size', 4096, group='http_stream')
    return conf


def sqlite_url(tmp_path, name='flows'):
    return f'sqlite:///{tmp_path}/{name}.sqlite'


# -- round trip -----------------------------------------------------------

def _failure():
    try:
        raise ValueError('Régiön ☃ went away')
    except ValueError:
        return failure.Failure()


def check_round_trip(backend):
    """Logbook, flow and atom details (task and retry) come back equal."""
    book = models.LogBook('book-Régiön', uuid=str(uuid.uuid4()))
    book.meta = {'k': ['v', 1]}
    fd = models.FlowDetail('flow', uuid=str(uuid.uuid4()))
    fd.state = states.RUNNING
    fd.meta = {'store': {'clone_id': 'x'}, 'n': 1.5}
    book.add(fd)
    td = models.TaskDetail('task', uuid=str(uuid.uuid4()))
    td.state, td.intention = states.FAILURE, states.REVERT
    td.results = {'image_id': 'i', 'sizes': [1, 2, 3]}
    td.failure = _failure()
    td.meta = {'progress': 0.5, 'progress_details': {'at_progress': 0.5,
                                                     'details': {'b': 3}}}
    td.version = '1.0'
    rd = models.RetryDetail('retry', uuid=str(uuid.uuid4()))
    rd.state = states.RETRYING
    rd.results = [(1, {'task': _failure()}), (2, {})]
    fd.add(td)
    fd.add(rd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
        got = conn.get_logbook(book.uuid)
        assert (got.name, got.meta) == (book.name, book.meta)
        got_fd = got.find(fd.uuid)
        assert (got_fd.name, got_fd.state, got_fd.meta) == \
            (fd.name, fd.state, fd.meta)
        assert sorted(ad.name for ad in got_fd) == ['retry', 'task']
        got_td = conn.get_atom_details(td.uuid)
        assert isinstance(got_td, models.TaskDetail)
        assert _json(got_td.to_dict()) == _json(td.to_dict())
        assert got_td.failure.matches(td.failure)
        got_rd = conn.get_atom_details(rd.uuid)
        assert isinstance(got_rd, models.RetryDetail)
        # (TaskFlow's RetryDetail.from_dict replaces the data of a failed
        # attempt by its failure -- a name shadowed in decode_results -- on
        # every backend: compare with what its own decoding gives.)
        decoded = models.RetryDetail.from_dict(_json(rd.to_dict()))
        assert _json(got_rd.to_dict()) == _json(decoded.to_dict())

        # Updates: an atom, then the flow with a new atom.
        td.state, td.failure, td.results = states.SUCCESS, None, {'ok': True}
        td.meta = dict(td.meta, progress=1.0)
        ret = conn.update_atom_details(td.copy())
        assert ret.to_dict() == td.to_dict()
        assert _json(conn.get_atom_details(td.uuid).to_dict()) == \
            _json(td.to_dict())
        td2 = models.TaskDetail('task2', uuid=str(uuid.uuid4()))
        fd2 = fd.copy()
        fd2.add(td2)
        fd2.state = states.SUCCESS
        ret = conn.update_flow_details(fd2)
        assert sorted(ad.name for ad in ret) == ['retry', 'task', 'task2']
        again = conn.get_flow_details(fd.uuid)
        assert again.state == states.SUCCESS
        assert sorted(ad.name for ad in again) == ['retry', 'task', 'task2']

        # Unknown details are NotFound, as with TaskFlow's own code.
        with pytest.raises(tf_exc.NotFound):
            conn.update_atom_details(models.TaskDetail('x', uuid='nope'))
        with pytest.raises(tf_exc.NotFound):
            conn.update_flow_details(models.FlowDetail('x', uuid='nope'))
        conn.destroy_logbook(book.uuid)
        with pytest.raises(tf_exc.NotFound):
            conn.get_logbook(book.uuid)


def _json(d):
    """What a JSON column gives back (tuples become lists)."""
    from oslo_serialization import jsonutils
    return jsonutils.loads(jsonutils.dumps(d))


# -- a deterministic flow, to compare what the variants store -------------

class Produce(task.Task):
    def execute(self):
        self.notifier.notify(task.EVENT_UPDATE_PROGRESS,
                             {'progress': 0.5, 'step': 'half'})
        return {'value': 'Régiön ☃', 'list': [1, 2]}


class FlakyOnce(task.Task):
    def execute(self, produced, history):
        if not history.get('failed'):
            history['failed'] = True
            raise IOError('blink')
        return produced['list'] + [3]


class Boom(task.Task):
    def execute(self, produced):
        raise RuntimeError('boom')

    def revert(self, produced, **kwargs):
        return 'cleaned'


def deterministic_flow(fail):
    f = linear_flow.Flow('det').add(
        Produce('produce', provides='produced'),
        linear_flow.Flow('det-retry', retry=retry.Times(3, 'again')).add(
            FlakyOnce('flaky', provides='flaked')))
    if fail:
        f.add(Boom('boom'))
    return f


def run_deterministic(backend, fail):
    """Run the flow under a new logbook; its stored rows, normalised."""
    book = models.LogBook('det')
    fd = models.FlowDetail('det', uuid=str(uuid.uuid4()))
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    engine = engines.load(deterministic_flow(fail), book=book, flow_detail=fd,
                          backend=backend, store={'history': {}},
                          engine='serial')
    if fail:    # RuntimeError, wrapped with the retried blink
        with pytest.raises((RuntimeError, tf_exc.WrappedFailure)):
            engine.run()
    else:
        engine.run()
    memory = {ad.name: _atom_row(ad.to_dict())
              for ad in engine.storage._flowdetail}
    return dump_book(backend, book.uuid), memory


def _atom_row(d):
    d = _json(d)
    d.pop('uuid')
    for key in ('failure', 'revert_failure'):
        if d.get(key):
            d[key].pop('traceback_str', None)   # same code, but be safe
    if d['name'] == 'again':                    # retry history failures
        for _, fails in d['results']:
            for f in fails.values():
                f.pop('traceback_str', None)
    return d


def dump_book(backend, book_uuid):
    """A logbook's stored content, without uuids and timestamps."""
    with contextlib.closing(backend.get_connection()) as conn:
        book = conn.get_logbook(book_uuid)
    flows = []
    for fd in book:
        atoms = {ad.name: (type(ad).__name__, _atom_row(ad.to_dict()))
                 for ad in fd}
        flows.append((fd.name, fd.state, _json(fd.meta), atoms))
    return book.name, _json(book.meta), flows


# -- the clone graph on fakes ---------------------------------------------

def new_cloud():
    return {'R1': fakes.FakeGlanceRegion('R1'),
            'R2': fakes.FakeGlanceRegion('R2')}


def new_store(image_id):
    return {c.CLONE_ID: str(uuid.uuid4()), c.SOURCE_REGION: 'R1',
            c.SOURCE_IMAGE_ID: image_id, c.TARGET_REGION: 'R2',
            c.TRUST_ID: 'trust-1', c.OVERRIDES: {}, c.STRATEGY_NAME: 'auto'}


def clone(conf, backend, cloud, store):
    book, fd, flow = runner.save_new_flow(conf, backend, store)
    engine = runner.prepare_engine(conf, backend, book, fd, flow=flow,
                                   services=fakes.FakeServices(conf, cloud))
    return runner.run(engine, backend, store[c.CLONE_ID])


def check_clone_succeeds(conf, backend):
    cloud = new_cloud()
    data = os.urandom(5000)
    src = cloud['R1'].add_image(data, os_distro='debian')
    store = new_store(src['id'])
    out = clone(conf, backend, cloud, store)
    assert out.succeeded, out.message
    assert cloud['R2'].data[out.result['image_id']] == data
    _, fd = runner.load_flow(backend, store[c.CLONE_ID])
    assert fd.state == states.SUCCESS
    assert {ad.state for ad in fd} == {states.SUCCESS}
    # The outcome the runner made from the engine is the persisted one.
    assert out == outcome.from_flow_detail(fd)
    assert out.result['copy']['strategy'] == 'http'
    return out


def check_killed_clone_resumes(conf, backend):
    """As test_clone_flow's kill test: resumed into the same image."""
    cloud = new_cloud()
    data = os.urandom(30_000)
    src = cloud['R1'].add_image(data)
    store = new_store(src['id'])
    original = cloud['R2'].upload_data
    crashed = []

    def crash_once(image_id, chunks):
        if not crashed:
            crashed.append(1)
            raise Crash()
        return original(image_id, chunks)
    cloud['R2'].upload_data = crash_once
    with pytest.raises(Crash):
        clone(conf, backend, cloud, store)
    reserved = fakes.leftovers(cloud['R2'], store[c.CLONE_ID])
    assert len(reserved) == 1

    # A new process would make a new backend on the same database.
    backend2 = persistence.get_backend(conf)
    try:
        book, fd = runner.load_flow(backend2, store[c.CLONE_ID])
        assert not runner.is_finished(fd)
        engine = runner.prepare_engine(
            conf, backend2, book, fd, services=fakes.FakeServices(conf, cloud))
        creates = [x for x in cloud['R2'].calls if x[0] == 'create']
        out = runner.run(engine, backend2, store[c.CLONE_ID])
        assert out.succeeded, out.message
        assert out.result['image_id'] == reserved[0]['id']
        assert [x for x in cloud['R2'].calls if x[0] == 'create'] == creates
        assert cloud['R2'].data[reserved[0]['id']] == data
    finally:
        backend2.close()


# -- memory -----------------------------------------------------------------

def traced_growth_per_call(backend, calls):
    """Bytes still allocated after ``calls`` storage calls, per call."""
    book = models.LogBook('mem')
    fd = models.FlowDetail('mem', uuid=str(uuid.uuid4()))
    ad = models.TaskDetail('mem', uuid=str(uuid.uuid4()))
    fd.add(ad)
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)

    def call(i):
        with contextlib.closing(backend.get_connection()) as conn:
            ad.meta = {'progress': i / calls}
            conn.update_atom_details(ad.copy())
            conn.get_atom_details(ad.uuid)
    for i in range(20):         # warm every cache first
        call(i)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(calls):
            call(i)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / calls


def check_memory_flat(url_for):
    """The fixed backends keep memory flat where TaskFlow's grows.

    ``url_for(variant)``: a database URL for each variant.  The bound is
    relative to the stock backend's growth measured here, not absolute.
    """
    growth = {}
    for variant, calls in (('stock', 20), ('cached', 200)):
        backend = persistence.get_backend(make_conf(url_for(variant), variant))
        try:
            growth[variant] = traced_growth_per_call(backend, calls)
        finally:
            backend.close()
    # TaskFlow 6.5 + SQLAlchemy 2.x keep every call's MetaData alive (see
    # conductor/persistence.py); if this fails, TaskFlow fixed it upstream.
    assert growth['stock'] > 20_000, growth
    assert growth['cached'] * 100 < growth['stock'], growth
    return growth


# -- several processes on one database -------------------------------------

def _process_clones(url, barrier, clones, results):
    """In a child process: start on a possibly empty database, clone."""
    try:
        barrier.wait(timeout=60)
        conf = make_conf(url)
        backend = persistence.get_backend(conf)     # races the others
        outs = [check_clone_succeeds(conf, backend).succeeded
                for _ in range(clones)]
        results.put(('ok', all(outs)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        results.put(('error', repr(e)))


def check_processes_share_database(url, processes=3, clones=3):
    ctx = multiprocessing.get_context('spawn')
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=_process_clones,
                         args=(url, barrier, clones, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    got = [results.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert got == [('ok', True)] * processes, got
    backend = persistence.get_backend(make_conf(url))
    try:
        with contextlib.closing(backend.get_connection()) as conn:
            books = list(conn.get_logbooks(lazy=True))
    finally:
        backend.close()
    assert len(books) == processes * clones


# == the tests (sqlite) =====================================================

@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    return request.param


@pytest.fixture
def backend(tmp_path, variant):
    b = persistence.get_backend(make_conf(sqlite_url(tmp_path), variant))
    yield b
    b.close()


def test_variants_are_the_backend_classes_intended(tmp_path):
    url = sqlite_url(tmp_path)
    stock = persistence.make_backend(make_conf(url, 'stock'))
    cached = persistence.make_backend(make_conf(url, 'cached'))
    assert type(stock) is impl_sqlalchemy.SQLAlchemyBackend
    assert type(stock.get_connection()) is impl_sqlalchemy.Connection
    assert type(cached.get_connection()) is persistence.CachedTablesConnection
    for b in (stock, cached):
        b.close()


def test_cached_connections_share_one_set_of_tables(tmp_path):
    backend = persistence.make_backend(make_conf(sqlite_url(tmp_path)))
    one, two = backend.get_connection(), backend.get_connection()
    assert one._tables is two._tables is backend.tables
    assert one._metadata is backend.metadata
    assert one._converter is backend.converter
    backend.close()


def test_stock_connection_sets_what_the_cached_one_replaces(tmp_path):
    # CachedTablesConnection re-implements Connection.__init__; if TaskFlow
    # changes what it sets, this must be looked at again.
    backend = impl_sqlalchemy.SQLAlchemyBackend(
        {'connection': sqlite_url(tmp_path)})
    stock = impl_sqlalchemy.Connection(backend, upgrade_lock=None)
    assert set(vars(stock)) == {'_backend', '_upgrade_lock', '_engine',
                                '_metadata', '_tables', '_converter'}
    cached = persistence.make_backend(make_conf(sqlite_url(tmp_path, 'b')))
    assert set(vars(cached.get_connection())) == set(vars(stock))
    backend.close()
    cached.close()


def test_default_connection_is_a_sqlite_file_under_state_path(tmp_path):
    conf = opts.new_conf([], default_config_files=[], log=False)
    conf.set_override('state_path', str(tmp_path / 'state'))
    backend = persistence.get_backend(conf)
    try:
        assert (tmp_path / 'state' / 'glance-clone.sqlite').is_file()
        check_round_trip(backend)
        with backend.engine.connect() as conn:
            assert conn.exec_driver_sql(
                'PRAGMA journal_mode').scalar() == 'wal'
    finally:
        backend.close()


def test_get_backend_twice_on_one_database(tmp_path):
    conf = make_conf(sqlite_url(tmp_path))
    persistence.get_backend(conf).close()
    b = persistence.get_backend(conf)      # tables exist: nothing to do
    check_round_trip(b)
    b.close()


def test_round_trip(backend):
    check_round_trip(backend)


def test_clone_flow_succeeds(tmp_path, variant, backend):
    check_clone_succeeds(make_conf(sqlite_url(tmp_path), variant), backend)


def test_killed_clone_resumes(tmp_path, variant, backend):
    check_killed_clone_resumes(make_conf(sqlite_url(tmp_path), variant),
                               backend)


@pytest.mark.parametrize('fail', [False, True], ids=['success', 'reverted'])
def test_fixed_backends_store_what_taskflow_stores(tmp_path, fail):
    dumps, memories = {}, {}
    for v in VARIANTS:
        b = persistence.get_backend(make_conf(sqlite_url(tmp_path, v), v))
        try:
            dumps[v], memories[v] = run_deterministic(b, fail)
        finally:
            b.close()
    assert dumps['stock'][2][0][1] == (states.REVERTED if fail
                                       else states.SUCCESS)
    assert dumps['cached'] == dumps['stock']
    assert memories['cached'] == memories['stock']


def test_memory_stays_flat_with_the_fix(tmp_path):
    check_memory_flat(lambda v: sqlite_url(tmp_path, f'mem-{v}'))


def test_processes_share_one_sqlite_file(tmp_path):
    check_processes_share_database(sqlite_url(tmp_path, 'shared'), processes=2)


@pytest.mark.parametrize('variant', ['stock', 'cached'])
def test_sweep_finds_marked_flows_without_reading_their_atoms(
        tmp_path, variant):
    conf = make_conf(sqlite_url(tmp_path), variant)
    b = persistence.get_backend(conf)
    loaded = []
    if variant == 'cached':
        convert = b.converter.convert_atom_detail
        b.converter.convert_atom_detail = lambda row: loaded.append(row) or \
            convert(row)
    try:
        fds = []
        for name in ('clean', 'marked', 'swept'):
            book = models.LogBook(name)
            fd = models.FlowDetail(name, uuid=str(uuid.uuid4()))
            fd.add(models.TaskDetail('t', uuid=str(uuid.uuid4())))
            book.add(fd)
            with contextlib.closing(b.get_connection()) as conn:
                conn.save_logbook(book)
            fds.append(fd)
        sweep.mark(b, fds[1], 'revert failed')
        sweep.mark(b, fds[2], 'revert failed')
        fds[2].meta[sweep.SWEPT] = 1.0
        with contextlib.closing(b.get_connection()) as conn:
            conn.update_flow_details(fds[2])
        loaded.clear()          # (TaskFlow's flow saves read the atoms)
        found = list(sweep.pending(b))
        assert [fd.name for fd in found] == ['marked']
        assert found[0].meta[sweep.NEEDS_SWEEP] == 'revert failed'
        assert loaded == []
    finally:
        b.close()


@pytest.mark.parametrize('synchronous, code', [('NORMAL', 1), ('FULL', 2)])
def test_sqlite_file_is_wal_with_the_configured_synchronous(
        tmp_path, synchronous, code):
    b = persistence.get_backend(make_conf(
        sqlite_url(tmp_path), sqlite_synchronous=synchronous))
    try:
        with b.engine.connect() as conn:
            assert conn.execute(sa.text('PRAGMA journal_mode')).scalar() \
                == 'wal'
            assert conn.execute(sa.text('PRAGMA synchronous')).scalar() \
                == code
    finally:
        b.close()

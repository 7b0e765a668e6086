"""The TaskFlow persistence (conductor.persistence) on a sqlite file.

The same checks run against MariaDB and PostgreSQL in
tests/functional/test_persistence_backends.py, which reuses the helpers
here.  Variants of the backend, by ``[persistence]`` options:

* ``stock``: TaskFlow's own backend (``cache_table_metadata = false``),
* ``cached``: the table metadata built once, TaskFlow's code otherwise,
* ``lean``: cached tables and one-statement saves (the default).
"""
import contextlib
import gc
import multiprocessing
import os
import threading
import time
import tracemalloc
import uuid

import pytest
import sqlalchemy as sa
from taskflow import engines
from taskflow import exceptions as tf_exc
from taskflow import retry
from taskflow import states
from taskflow import storage
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import models
from taskflow.persistence.backends import impl_sqlalchemy
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
    'cached': {'cache_table_metadata': True, 'lean_saves': False},
    'lean': {'cache_table_metadata': True, 'lean_saves': True},
}


class Crash(BaseException):
    """Stands for kill -9: not an Exception, so TaskFlow does not revert."""


def make_conf(url, variant='lean', **overrides):
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

        # Updates: an atom, then the flow with a new atom.  (A task that
        # succeeds ends at progress 1.0: the lean saves store a state change
        # with the progress TaskFlow's engine saves right after it.)
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
    for variant, calls in (('stock', 20), ('cached', 200), ('lean', 200)):
        backend = persistence.get_backend(make_conf(url_for(variant), variant))
        try:
            growth[variant] = traced_growth_per_call(backend, calls)
        finally:
            backend.close()
    # TaskFlow 6.5 + SQLAlchemy 2.x keep every call's MetaData alive (see
    # conductor/persistence.py); if this fails, TaskFlow fixed it upstream.
    assert growth['stock'] > 20_000, growth
    assert growth['cached'] * 100 < growth['stock'], growth
    assert growth['lean'] * 100 < growth['stock'], growth
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
    lean = persistence.make_backend(make_conf(url, 'lean'))
    assert type(stock) is impl_sqlalchemy.SQLAlchemyBackend
    assert type(stock.get_connection()) is impl_sqlalchemy.Connection
    assert type(cached.get_connection()) is persistence.CachedTablesConnection
    assert type(lean.get_connection()) is persistence.LeanSavesConnection
    for b in (stock, cached, lean):
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
    lean = persistence.make_backend(make_conf(sqlite_url(tmp_path, 'b')))
    assert set(vars(lean.get_connection())) == set(vars(stock))
    backend.close()
    lean.close()


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


def test_a_new_flow_holds_what_an_engine_would_add(tmp_path):
    """save_new_flow makes the store's and every step's detail itself (so
    they are written with the flow, in one transaction): the same details
    TaskFlow's engine adds to an empty flow detail before its first run."""
    conf = make_conf(sqlite_url(tmp_path))
    store = new_store('image-1')

    def details(fd):
        return {ad.name: (type(ad).__name__,
                          {k: v for k, v in ad.to_dict().items()
                           if k != 'uuid'}) for ad in fd}
    ours = models.FlowDetail(c.CLONE_FLOW, uuid=store[c.CLONE_ID])
    flow = runner.FACTORY(**runner.clone_flow_mod.factory_kwargs(conf))
    runner.add_atom_details(ours, flow, store)

    theirs = models.FlowDetail(c.CLONE_FLOW, uuid=store[c.CLONE_ID])
    engine = engines.load(runner.FACTORY(), store=store, flow_detail=theirs,
                          engine='serial')
    engine.compile()
    engine.prepare()
    assert len(theirs) == 14            # the store, 11 tasks and 2 retries
    assert details(ours) == details(theirs)


def test_clone_engines_storage_uses_the_reentrant_lock(tmp_path):
    conf = make_conf(sqlite_url(tmp_path))
    backend = persistence.get_backend(conf)
    try:
        book, fd, flow = runner.save_new_flow(conf, backend,
                                              new_store('image-1'))
        engine = runner.prepare_engine(conf, backend, book, fd, flow=flow,
                                       services=object())
        lock = engine.storage.lock          # what TaskFlow's code takes
        assert isinstance(lock, runner.ReentrantStorageLock)
        with lock.write_lock(), lock.read_lock():       # reentrant
            held = threading.Thread(target=lambda: lock.read_lock().acquire(
                blocking=False) and out.append('got'))
            out = []
            held.start()
            held.join()
            assert out == []            # exclusive: no other thread gets in
    finally:
        backend.close()


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
    assert dumps['lean'] == dumps['stock']
    assert memories['cached'] == memories['stock']
    assert memories['lean'] == memories['stock']


def test_memory_stays_flat_with_the_fix(tmp_path):
    check_memory_flat(lambda v: sqlite_url(tmp_path, f'mem-{v}'))


def test_processes_share_one_sqlite_file(tmp_path):
    check_processes_share_database(sqlite_url(tmp_path, 'shared'), processes=2)


# -- lean saves skip only saves that change nothing -------------------------

@pytest.mark.parametrize('fail', [False, True], ids=['success', 'reverted'])
def test_lean_saves_skip_exactly_the_engines_progress_saves(
        tmp_path, monkeypatch, fail):
    b = persistence.get_backend(make_conf(sqlite_url(tmp_path), 'lean',
                                          running_write_delay=0))
    atom_saves, engine_progress, updates = [0], [0], [0]
    in_atom_save = [False]
    get_connection = b.get_connection

    def counting_connection():
        conn = get_connection()
        update = conn.update_atom_details

        def counted(ad):
            atom_saves[0] += 1
            in_atom_save[0] = True
            try:
                return update(ad)
            finally:
                in_atom_save[0] = False
        conn.update_atom_details = counted
        return conn

    set_task_progress = storage.Storage.set_task_progress

    def counting_progress(self, name, progress, details=None):
        if details is None:         # the engine's own 0.0 / 1.0
            engine_progress[0] += 1
        return set_task_progress(self, name, progress, details)

    def count_update(conn, cursor, statement, params, context, many):
        if in_atom_save[0] and statement.startswith('UPDATE atomdetails'):
            updates[0] += 1

    monkeypatch.setattr(b, 'get_connection', counting_connection)
    monkeypatch.setattr(storage.Storage, 'set_task_progress',
                        counting_progress)
    sa.event.listen(b.engine, 'before_cursor_execute', count_update)
    try:
        run_deterministic(b, fail)
    finally:
        b.close()
    # Each task start/end/revert is one state save plus one progress save;
    # the progress a task reports itself (Produce's 0.5) is written.
    assert engine_progress[0] >= 6
    assert updates[0] == atom_saves[0] - engine_progress[0]


class Slow(task.Task):
    def execute(self, seconds):
        time.sleep(seconds)


def _running_rows(engine):
    """Atom names whose row says RUNNING, read by a connection of its own."""
    with engine.connect() as conn:
        return {r.name for r in conn.exec_driver_sql(
            "SELECT name FROM atomdetails WHERE state = 'RUNNING'")}


def _run_flow(backend, flow, store=None):
    book = models.LogBook('b')
    fd = models.FlowDetail('f', uuid=str(uuid.uuid4()))
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    engine = engines.load(flow, book=book, flow_detail=fd, backend=backend,
                          store=store or {}, engine='serial')
    engine.run()
    return book


def _states_written(tmp_path, delay):
    """States of the atom rows a lean backend writes for the deterministic
    flow, in order; and the rows it stores."""
    b = persistence.get_backend(make_conf(sqlite_url(tmp_path, f'd{delay}'),
                                          'lean', running_write_delay=delay))
    written = []

    def record(conn, cursor, statement, params, context, many):
        if statement.startswith('UPDATE atomdetails'):
            for p in (params if many else [params]):
                written.append(next(v for v in p if v in (
                    states.PENDING, states.RUNNING, states.SUCCESS,
                    states.FAILURE, states.REVERTING, states.REVERTED,
                    states.RETRYING)))

    sa.event.listen(b.engine, 'before_cursor_execute', record)
    try:
        rows, _ = run_deterministic(b, fail=False)
    finally:
        b.close()
    return written, rows


def test_a_short_steps_running_state_is_not_written(tmp_path):
    at_once, _ = _states_written(tmp_path, 0)
    deferred, rows = _states_written(tmp_path, 30)
    # produce, the retry, flaky twice: each start written at once ...
    assert at_once.count('RUNNING') >= 4
    # ... and deferred, only Produce's start, with the progress it reports.
    assert deferred.count('RUNNING') == 1
    assert [s for s in at_once if s != 'RUNNING'] == [
        s for s in deferred if s != 'RUNNING']
    # What is stored at the end is what TaskFlow's own backend stores.
    stock = persistence.get_backend(make_conf(sqlite_url(tmp_path, 'stock'),
                                              'stock'))
    try:
        stock_rows, _ = run_deterministic(stock, fail=False)
    finally:
        stock.close()
    assert rows == stock_rows


def test_a_long_steps_running_state_is_written_while_it_runs(tmp_path):
    """With a deferred RUNNING write, a step still running after the delay
    gets its RUNNING row: the step itself waits until it can read that row
    (a poll against a deadline, no wall-clock threshold)."""
    b = persistence.get_backend(make_conf(sqlite_url(tmp_path), 'lean',
                                          running_write_delay=0.2))
    seen = []

    class WaitsToBeSeenRunning(task.Task):
        def execute(self):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.name in _running_rows(b.engine):
                    seen.append(self.name)
                    return
                time.sleep(0.02)

    flow = linear_flow.Flow('slow').add(
        Slow('quick', inject={'seconds': 0}), WaitsToBeSeenRunning('long'))
    try:
        _run_flow(b, flow)
    finally:
        b.close()
    assert seen == ['long'], "the long step's RUNNING was never written"


def _row(engine, uuid_):
    """(state, results) of an atom row, read without the backend."""
    with engine.connect() as conn:
        return tuple(conn.exec_driver_sql(
            'SELECT state, results FROM atomdetails WHERE uuid = ?',
            (uuid_,)).one())


def test_a_deferred_running_never_overwrites_the_steps_end(tmp_path):
    b = persistence.get_backend(make_conf(sqlite_url(tmp_path), 'lean',
                                          running_write_delay=30))
    book = models.LogBook('b')
    fd = models.FlowDetail('f', uuid=str(uuid.uuid4()))
    td = models.TaskDetail('t', uuid=str(uuid.uuid4()))
    td2 = models.TaskDetail('t2', uuid=str(uuid.uuid4()))
    for d in (td, td2):
        d.state = states.PENDING
        fd.add(d)
    book.add(fd)
    try:
        with contextlib.closing(b.get_connection()) as conn:
            conn.save_logbook(book)
            conn.update_flow_details(fd)                # PENDING, recorded
            td.state = states.RUNNING
            conn.update_atom_details(td)                # deferred
            assert _row(b.engine, td.uuid)[0] == states.PENDING
            pending = b.written._pending[td.uuid]
            td.state = states.SUCCESS
            td.results = 'done'
            conn.update_atom_details(td)                # the step's end
            assert td.uuid not in b.written._pending
            # A flusher that took the RUNNING write just before must not
            # land it over the step's end.
            assert b.written._write_deferred(pending.params,
                                             pending.expect) is False
            assert _row(b.engine, td.uuid) == (states.SUCCESS, '"done"')
            td2.state = states.RUNNING
            conn.update_atom_details(td2)               # deferred
            assert _row(b.engine, td2.uuid)[0] == states.PENDING
            # A flow save that finds td2 as its deferred write leaves that
            # write pending, not recorded as done.
            td2.meta = {'progress': 0.0}
            conn.update_atom_details(td2)               # still deferred
            conn.update_flow_details(fd)
            assert _row(b.engine, td2.uuid)[0] == states.PENDING
    finally:
        b.close()                                       # writes it
    assert _row(b.engine, td2.uuid)[0] == states.RUNNING


def test_lean_save_after_a_nested_change_is_written(tmp_path):
    b = persistence.get_backend(make_conf(sqlite_url(tmp_path), 'lean'))
    book = models.LogBook('b')
    fd = models.FlowDetail('f', uuid=str(uuid.uuid4()))
    td = models.TaskDetail('t', uuid=str(uuid.uuid4()))
    td.state = states.RUNNING
    td.meta = {'checkpoint': {'bytes_done': 1}, 'progress': 0.0}
    fd.add(td)
    book.add(fd)
    try:
        with contextlib.closing(b.get_connection()) as conn:
            conn.save_logbook(book)
            conn.update_atom_details(td)
            td.meta['checkpoint']['bytes_done'] = 2      # same dict, changed
            conn.update_atom_details(td)
            got = conn.get_atom_details(td.uuid)
            assert got.meta['checkpoint'] == {'bytes_done': 2}
            # Saving the unchanged detail again leaves the row as it is.
            conn.update_atom_details(td)
            assert conn.get_atom_details(td.uuid).meta == td.meta
    finally:
        b.close()


def test_lean_flow_save_rewrites_only_the_atoms_that_changed(tmp_path):
    conf = make_conf(sqlite_url(tmp_path), 'lean')
    b = persistence.get_backend(conf)
    other = persistence.get_backend(conf)   # as another process would
    book = models.LogBook('b')
    fd = models.FlowDetail('f', uuid=str(uuid.uuid4()))
    tds = [models.TaskDetail(f't{i}', uuid=str(uuid.uuid4())) for i in range(3)]
    for td in tds:
        fd.add(td)
    book.add(fd)
    rewritten, statements = [], []

    def count_update(conn, cursor, statement, params, context, many):
        statements.append(statement.split()[0:3])
        if statement.startswith('UPDATE atomdetails'):
            rewritten.extend(p[-1] for p in (params if many else [params]))

    for backend in (b, other):
        sa.event.listen(backend.engine, 'before_cursor_execute',
                        count_update)
    try:
        with contextlib.closing(b.get_connection()) as conn:
            conn.save_logbook(book)             # the atoms, as they are
            del statements[:]
            fd.state = states.RUNNING
            conn.update_flow_details(fd)        # no atom changed: one UPDATE
            assert rewritten == []
            assert statements == [['UPDATE', 'flowdetails', 'SET']]
        with contextlib.closing(other.get_connection()) as conn:
            conn.update_flow_details(fd)        # all three: never written
            assert sorted(rewritten) == sorted(td.uuid for td in tds)
            del rewritten[:]
            tds[1].state = states.SUCCESS
            tds[1].results = {'size': 1}
            conn.update_flow_details(fd)
            assert rewritten == [tds[1].uuid]
            del rewritten[:]
            conn.update_flow_details(fd)        # nothing changed
            assert rewritten == []
            got = conn.get_logbook(book.uuid).find(fd.uuid)
            assert got.state == states.RUNNING
            assert {a.name: (a.state, a.results) for a in got} == {
                a.name: (a.state, a.results) for a in tds}
        # A process that read the flow (a conductor resuming the clone)
        # knows what its atoms' rows hold.
        resumer = persistence.get_backend(conf)
        sa.event.listen(resumer.engine, 'before_cursor_execute', count_update)
        with contextlib.closing(resumer.get_connection()) as conn:
            read = conn.get_logbook(book.uuid).find(fd.uuid)
            del statements[:]
            read.meta['attempts'] = 1
            conn.update_flow_details(read)
            assert statements == [['UPDATE', 'flowdetails', 'SET']]
            del rewritten[:]
            for ad in read:
                conn.update_atom_details(ad)        # as read: skipped
            assert rewritten == []
            changed = read.find(tds[2].uuid)
            changed.state = states.RUNNING
            conn.update_flow_details(read)
            assert rewritten == [tds[2].uuid]
        resumer.close()
    finally:
        b.close()
        other.close()


def test_lean_flow_save_of_a_lazily_loaded_flow_returns_its_atoms(tmp_path):
    """A flow detail loaded without its atoms is saved the full way, which
    reads the stored atoms back into it (TaskFlow's storage would otherwise
    take them for missing and make new ones)."""
    conf = make_conf(sqlite_url(tmp_path), 'lean')
    b = persistence.get_backend(conf)
    try:
        book = models.LogBook('b')
        fd = models.FlowDetail('f', uuid=str(uuid.uuid4()))
        fd.add(models.TaskDetail('t', uuid=str(uuid.uuid4())))
        book.add(fd)
        with contextlib.closing(b.get_connection()) as conn:
            conn.save_logbook(book)
            lazy = conn.get_logbook(book.uuid, lazy=True)
            bare = models.FlowDetail('f', uuid=fd.uuid)
            assert len(lazy) == 0 and len(bare) == 0
            saved = conn.update_flow_details(bare)
        assert [ad.name for ad in saved] == ['t']
    finally:
        b.close()


@pytest.mark.parametrize('variant', ['stock', 'lean'])
def test_sweep_finds_marked_flows_without_reading_their_atoms(
        tmp_path, variant):
    conf = make_conf(sqlite_url(tmp_path), variant)
    b = persistence.get_backend(conf)
    loaded = []
    if variant == 'lean':
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

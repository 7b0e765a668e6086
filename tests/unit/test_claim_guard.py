"""The conductor's claim logic, driven by a fake kazoo client.

:class:`conductor.worker.guards.SessionWatch` follows the client's states,
:class:`conductor.worker.guards.ClaimGuard` answers ``services.proceed()``, \
and the
conductor gives up (abandons) a clone it lost and trashes a poison job.
No ZooKeeper: the states and the claim's owner are set by the test.
"""
import threading

from kazoo.protocol import states as kz_states
import pytest
from taskflow.conductors.backends import impl_nonblocking

from clone_flows import exceptions
from conductor.worker import conductor as worker
from conductor.worker import guards
from conductor.worker import history

CONNECTED = kz_states.KazooState.CONNECTED
SUSPENDED = kz_states.KazooState.SUSPENDED
LOST = kz_states.KazooState.LOST


class FakeKazoo:
    """What SessionWatch uses of a KazooClient: ``connected`` and the state
    listeners, which :meth:`change` calls as kazoo's event thread would.
    """

    def __init__(self):
        self.connected = True
        self.listeners = []

    def add_listener(self, listener):
        self.listeners.append(listener)

    def change(self, state):
        self.connected = state == CONNECTED
        for listener in self.listeners:
            listener(state)


class FakeBoard:
    def __init__(self, owner):
        self.owner = owner
        self.reads = 0
        self.failures = []          # exceptions the next reads raise
        self.abandoned = []

    def find_owner(self, job):
        self.reads += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.owner

    def abandon(self, job, who):
        self.abandoned.append((job, who))


class FakeRecords:
    def __init__(self):
        self.cancelled = set()
        self.failed_with = {}
        self.forgotten = []

    def cancel_requested(self, clone_id):
        return clone_id in self.cancelled

    def failed(self, clone_id, message):
        self.failed_with[clone_id] = message

    def processing(self, clone_id):
        pass

    def get(self, clone_id):
        return None             # no per-project limit in these tests

    def forget(self, clone_id):
        self.forgotten.append(clone_id)


class FakeConductor:
    """The attributes ClaimGuard reads of a CloneConductor."""

    def __init__(self, session_timeout=30.0):
        self.client = FakeKazoo()
        self.session = guards.SessionWatch(self.client)
        self.session._changed = SeenWaiting()
        self.session_timeout = session_timeout
        self.name = 'me'
        self.board = FakeBoard('me')
        self.records = FakeRecords()
        self.stopping = False


class Clock:
    """An injected time.monotonic."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def cond():
    return FakeConductor()


def guard_of(cond, **kwargs):
    return guards.ClaimGuard(cond, job='job1', clone_id='c1', **kwargs)


def in_thread(fn):
    """Runs ``fn`` in a thread; returns (thread, outcome dict)."""
    outcome = {}

    def run():
        try:
            outcome['value'] = fn()
        except BaseException as e:        # noqa: BLE001 - handed to the test
            outcome['error'] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


class SeenWaiting(threading.Condition):
    """The session watch's condition, telling when someone waits on it."""

    def __init__(self):
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout=None):
        self.waiting.set()
        return super().wait(timeout)


def wait_until_waiting(cond, thread):
    """Until ``thread`` waits for the session to come back (or ended)."""
    while thread.is_alive() and not cond.session._changed.waiting.wait(0.01):
        pass


# -- ClaimGuard ------------------------------------------------------------

def test_a_connected_owner_proceeds(cond):
    guard_of(cond)()
    assert cond.board.reads == 1


def test_a_claim_held_by_another_conductor_interrupts(cond):
    cond.board.owner = 'other'
    with pytest.raises(exceptions.Interrupted, match="held by 'other'"):
        guard_of(cond)()


def test_a_released_claim_interrupts(cond):
    cond.board.owner = None
    with pytest.raises(exceptions.Interrupted, match='held by None'):
        guard_of(cond)()


def test_a_stopping_conductor_interrupts_before_reading_anything(cond):
    cond.stopping = True
    with pytest.raises(exceptions.Interrupted, match='stopping'):
        guard_of(cond)()
    assert cond.board.reads == 0


def suspended_then(cond, state):
    """The guard called while the session is suspended: it waits; then
    the session becomes ``state``.  The guard's outcome.
    """
    guard = guard_of(cond)
    cond.client.change(SUSPENDED)
    thread, outcome = in_thread(guard)
    wait_until_waiting(cond, thread)
    assert thread.is_alive(), outcome       # waits while suspended
    cond.client.change(state)
    thread.join(30)
    assert not thread.is_alive()
    return outcome


def test_suspended_then_reconnected_waits_and_proceeds(cond):
    assert suspended_then(cond, CONNECTED) == {'value': None}
    assert cond.board.reads == 1


def test_suspended_then_lost_interrupts(cond):
    outcome = suspended_then(cond, LOST)
    assert isinstance(outcome.get('error'), exceptions.Interrupted)
    assert 'session lost' in str(outcome['error'])
    assert cond.board.reads == 0


def test_suspended_past_the_session_timeout_interrupts():
    cond = FakeConductor(session_timeout=0.05)
    guard = guard_of(cond)
    cond.client.change(SUSPENDED)
    with pytest.raises(exceptions.Interrupted, match='session lost'):
        guard()


def test_a_new_session_after_a_lost_one_never_gets_the_claim_back(cond):
    guard = guard_of(cond)
    cond.client.change(LOST)
    cond.client.change(CONNECTED)           # kazoo made a new session
    assert cond.session.epoch == 1
    # even if the board says "me" (a new claim by this conductor), the
    # run that began under the old session must not go on
    with pytest.raises(exceptions.Interrupted, match='session lost'):
        guard()
    guard_of(cond)()                        # a run begun now may


def test_an_owner_read_that_fails_once_is_read_again(cond):
    cond.board.failures = [RuntimeError('connection blinked')]
    guard_of(cond)()
    assert cond.board.reads == 2


def test_an_owner_that_cannot_be_read_interrupts(cond):
    cond.board.failures = [RuntimeError('x'), RuntimeError('still nothing')]
    with pytest.raises(exceptions.Interrupted, match='claim unknown'):
        guard_of(cond)()


def test_an_owner_read_failing_with_the_session_lost_interrupts(cond):
    guard = guard_of(cond)

    class LostMidRead(RuntimeError):
        pass
    cond.board.failures = [LostMidRead()]
    original = cond.board.find_owner

    def find_owner(job):
        if cond.board.failures:
            cond.client.change(LOST)
        return original(job)
    cond.board.find_owner = find_owner
    with pytest.raises(exceptions.Interrupted, match='session lost'):
        guard()


def test_within_a_step_the_owner_is_read_again_only_after_recheck(
        cond, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(guards.time, 'monotonic', clock)
    guard = guard_of(cond, recheck=1.0)
    guard()                                  # a step starts: read
    guard(in_step=True)
    clock.now += 0.5
    guard(in_step=True)
    assert cond.board.reads == 1
    cond.board.owner = 'other'
    clock.now += 0.6                         # past recheck: read again
    with pytest.raises(exceptions.Interrupted):
        guard(in_step=True)
    assert cond.board.reads == 2


def test_session_flags_are_read_on_every_call_even_within_recheck(
        cond, monkeypatch):
    monkeypatch.setattr(guards.time, 'monotonic', Clock())
    guard = guard_of(cond, recheck=1.0)
    guard()
    cond.client.change(LOST)
    with pytest.raises(exceptions.Interrupted, match='session lost'):
        guard(in_step=True)


def test_a_cancel_stops_steps_but_not_reverts_or_the_last_step(cond):
    cond.records.cancelled.add('c1')
    guard = guard_of(cond)
    with pytest.raises(exceptions.Cancelled):
        guard()
    guard(reverting=True)
    guard(cancellable=False)


# -- SessionWatch ---------------------------------------------------------

def test_the_watch_starts_suspended_when_the_client_is_not_connected():
    client = FakeKazoo()
    client.connected = False
    assert guards.SessionWatch(client).state == SUSPENDED


def test_each_lost_session_grows_the_epoch(cond):
    watch = cond.session
    for state in (SUSPENDED, CONNECTED, SUSPENDED, LOST, CONNECTED, LOST):
        cond.client.change(state)
    assert watch.epoch == 2 and watch.state == LOST


def test_connected_state_with_a_disconnected_client_is_not_settled():
    cond = FakeConductor(session_timeout=0.05)
    cond.client.connected = False            # the state change not seen yet
    assert cond.session.wait_connected(0.05) == SUSPENDED
    cond.client.connected = True
    assert cond.session.wait_connected(0.05) == CONNECTED


# -- the conductor: lost clones are abandoned, poison jobs trashed ------------

class Job:
    uuid = 'job-uuid'
    details = {'flow_uuid': 'c1', 'store': {'trust_id': 't1'}}
    book = object()


def conductor_for(conf, cond_fake):
    cloned = object.__new__(worker.CloneConductor)
    cloned.conf = conf
    cloned.board = cond_fake.board
    cloned.records = cond_fake.records
    cloned.session = cond_fake.session
    cloned.session_timeout = 30.0
    cloned.stopping = False
    cloned._lost = set()
    cloned._poisoned = set()
    cloned._services = {}
    cloned._name = 'me'
    return cloned


def test_an_interrupted_clone_is_left_for_another_conductor_and_abandoned(
        conf, cond, monkeypatch):
    conductor = conductor_for(conf, cond)
    finished = []

    def dispatch(self, job):
        raise exceptions.Interrupted("claim now held by 'other'")
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_dispatch_job', dispatch)
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_try_finish_job',
                        lambda self, job, consume, trash=False:
                        finished.append((job, consume, trash)))
    assert conductor._dispatch_job(Job()) is False      # not consumed
    assert cond.records.forgotten == ['c1']
    conductor._try_finish_job(Job(), False)
    # the claim is released, never consumed or trashed by the loser
    assert [who for _, who in cond.board.abandoned] == ['me']
    assert finished == []
    conductor._try_finish_job(Job(), True)              # a later run: normal
    assert len(finished) == 1


def test_a_stopping_conductor_leaves_the_claim_to_the_normal_release(
        conf, cond, monkeypatch):
    conductor = conductor_for(conf, cond)
    conductor.stopping = True
    finished = []
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_dispatch_job',
                        lambda self, job: (_ for _ in ()).throw(
                            exceptions.Interrupted('conductor is stopping')))
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_try_finish_job',
                        lambda self, job, consume, trash=False:
                        finished.append(consume))
    assert conductor._dispatch_job(Job()) is False
    conductor._try_finish_job(Job(), False)
    assert finished == [False] and cond.board.abandoned == []


class FlowDetail:
    def __init__(self, attempts):
        self.uuid = 'c1'
        self.meta = {'attempts': attempts}


class Storage:
    """What the conductor uses of the engine's storage (public API)."""

    def __init__(self, fd):
        self._fd = fd
        self.saved = []

    @property
    def flow_uuid(self):
        return self._fd.uuid

    @property
    def flow_meta(self):
        return self._fd.meta

    def update_flow_metadata(self, update_with):
        self._fd.meta.update(update_with)
        self.saved.append(dict(self._fd.meta))

    def fetch(self, name):
        return {'trust_id': 't1'}[name]


class Engine:
    def __init__(self, fd):
        self.storage = Storage(fd)


def poison_setup(conf, cond, monkeypatch, attempts):
    conf.set_override('max_attempts', 2, group='jobboard')
    conductor = conductor_for(conf, cond)
    conductor.backend = object()
    conductor._poisoned = set()
    fd = FlowDetail(attempts)
    engine = Engine(FlowDetail(attempts))
    # TaskFlow's own _engine_from_job (what super() returns)
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_engine_from_job', lambda self, job: engine)
    monkeypatch.setattr(worker.runner, 'load_flow',
                        lambda backend, clone_id: (None, fd))
    failed, marked, swept, prepared = cond.records.failed_with, [], [], []
    monkeypatch.setattr(worker.sweep, 'mark',
                        lambda backend, fd, why: marked.append(why))
    monkeypatch.setattr(worker.sweep, 'sweep_one',
                        lambda conf, backend, fd: swept.append(fd.uuid))
    monkeypatch.setattr(worker.runner, 'prepare_transients',
                        lambda conf, engine, **kw: prepared.append(kw))
    return conductor, engine, fd, failed, marked, swept, prepared


def test_each_claim_counts_an_attempt_in_the_flow(conf, cond, monkeypatch):
    conductor, engine, _, failed, marked, _, prepared = poison_setup(
        conf, cond, monkeypatch, attempts=1)
    assert conductor._engine_from_job(Job()) is engine
    assert engine.storage.saved == [{'attempts': 2}]
    assert failed == {} and marked == []
    # the run's proceed() is this conductor's guard of this job
    cond.board.owner = 'other'
    with pytest.raises(exceptions.Interrupted, match="held by 'other'"):
        prepared[0]['services'].proceed()


def test_a_job_past_max_attempts_fails_the_clone_and_goes_to_the_sweep(
        conf, cond, monkeypatch):
    conductor, engine, fd, failed, marked, swept, prepared = poison_setup(
        conf, cond, monkeypatch, attempts=2)
    with pytest.raises(worker.PoisonJob):
        conductor._engine_from_job(Job())
    assert engine.storage.saved == [{'attempts': 3}]
    assert 'started 2 times and never finished' in failed['c1']
    assert marked == ['poison job'] and swept == ['c1']
    assert prepared == []
    assert worker.outcome_mod.GAVE_UP in fd.meta


def test_a_failing_sweep_does_not_keep_a_poison_job_alive(
        conf, cond, monkeypatch):
    conductor, *_ = poison_setup(conf, cond, monkeypatch, attempts=5)

    def sweep_fails(conf, backend, fd):
        raise RuntimeError('Glance down')
    monkeypatch.setattr(worker.sweep, 'sweep_one', sweep_fails)
    with pytest.raises(worker.PoisonJob):
        conductor._engine_from_job(Job())


def test_a_poison_job_is_trashed_not_abandoned(conf, cond, monkeypatch):
    conductor, *_ = poison_setup(conf, cond, monkeypatch, attempts=2)
    finished = []
    # TaskFlow's _dispatch_job builds the engine first, outside its try
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_dispatch_job',
                        lambda self, job: self._engine_from_job(job))
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_try_finish_job',
                        lambda self, job, consume, trash=False:
                        finished.append((consume, trash)))
    assert conductor._dispatch_job(Job()) is False
    conductor._try_finish_job(Job(), False)
    assert finished == [(False, True)]
    conductor._try_finish_job(Job(), True)              # a later job: normal
    assert finished == [(False, True), (True, False)]


def test_taskflows_listeners_are_kept(conf, cond, monkeypatch):
    conductor = conductor_for(conf, cond)
    monkeypatch.setattr(impl_nonblocking.NonBlockingConductor,
                        '_listeners_from_job',
                        lambda self, job, engine: ['taskflow-listener'])
    listeners = conductor._listeners_from_job(Job(), Engine(FlowDetail(0)))
    assert listeners[0] == 'taskflow-listener'
    assert [type(x) for x in listeners[1:]] == [worker.StepLogger,
                                                history.HistoryRecorder]

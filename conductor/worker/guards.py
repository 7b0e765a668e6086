"""What keeps a conductor from working on a clone it no longer owns, and
what wakes it when a clone may have become claimable.

* :class:`SessionWatch` follows the ZooKeeper session (an epoch per loss);
* :class:`ClaimGuard` answers every task's ``services.proceed()``: it raises
  :class:`~clone_flows.exceptions.Interrupted` when the claim is no longer
  this conductor's, :class:`~clone_flows.exceptions.Cancelled` when the
  user cancelled;
* :class:`BoardWatch` cuts the conductor's pause between two looks at the
  board short when a job is posted or a claim goes.
"""
import logging
import threading
import time

from kazoo.protocol import states as kz_states
from kazoo.recipe import watchers as kz_watchers
from taskflow.types import timing as tf_timing

from clone_flows import exceptions

LOG = logging.getLogger(__name__)


class SessionWatch:
    """Follows the kazoo client's state; ``epoch`` grows on each lost
    session (every claim made before it is gone).
    """

    def __init__(self, client):
        self.state = kz_states.KazooState.CONNECTED if client.connected \
            else kz_states.KazooState.SUSPENDED
        self.epoch = 0
        self._client = client
        self._changed = threading.Condition()
        client.add_listener(self._listener)

    def _listener(self, state):
        with self._changed:
            if state == kz_states.KazooState.LOST:
                self.epoch += 1
            self.state = state
            self._changed.notify_all()
        if state != kz_states.KazooState.CONNECTED:
            LOG.warning('ZooKeeper session %s: clones will pause until it is '
                        'back or stop if it is lost', state.lower())

    def wait_connected(self, timeout):
        """Wait until the client is connected again (CONNECTED) or the
        session is lost (LOST); SUSPENDED after ``timeout``.
        """
        def settled():
            if self.state == kz_states.KazooState.LOST:
                return True
            return self.state == kz_states.KazooState.CONNECTED and \
                self._client.connected
        deadline = time.monotonic() + timeout
        with self._changed:
            # polled too: a failed read can come before the state change
            while not settled() and time.monotonic() < deadline:
                self._changed.wait(0.1)
            return self.state if settled() else kz_states.KazooState.SUSPENDED


class ClaimGuard:
    """``services.proceed()`` for one job in one conductor.

    The session flags are read on every call; the claim's owner (a
    ZooKeeper read) and the user's cancellation (a database read) at most
    every ``recheck`` seconds, and always before a step starts or reverts.
    """

    def __init__(self, conductor, job, clone_id, recheck=1.0):
        self._conductor = conductor
        self._job = job
        self._clone_id = clone_id
        self._epoch = conductor.session.epoch
        self._recheck = recheck
        self._checked_at = 0.0

    def __call__(self, reverting=False, in_step=False, cancellable=True):
        cond = self._conductor
        if cond.stopping:
            raise exceptions.Interrupted('conductor is stopping')
        watch = cond.session
        state = watch.state
        if state == kz_states.KazooState.SUSPENDED:
            state = watch.wait_connected(cond.session_timeout)
        if (watch.epoch != self._epoch
                or state != kz_states.KazooState.CONNECTED):
            raise exceptions.Interrupted('ZooKeeper session lost')
        now = time.monotonic()
        if in_step and now - self._checked_at < self._recheck:
            return
        self._checked_at = now
        owner = self._owner(cond)
        if owner != cond.name:
            raise exceptions.Interrupted(f'claim now held by {owner!r}')
        if cancellable and not reverting and \
                cond.records.cancel_requested(self._clone_id):
            raise exceptions.Cancelled()

    def _owner(self, cond):
        """The claim's owner; a read that fails because the connection
        blinked waits for the session to come back and reads again.
        """
        for attempt in (1, 2):
            try:
                return cond.board.find_owner(self._job)
            except Exception as e:
                if attempt == 2:
                    raise exceptions.Interrupted(f'claim unknown: {e}')
                state = cond.session.wait_connected(cond.session_timeout)
                if cond.session.epoch != self._epoch or \
                        state != kz_states.KazooState.CONNECTED:
                    raise exceptions.Interrupted('ZooKeeper session lost')


class BoardWatch(tf_timing.Timeout):
    """The conductor's pause between two looks at the board, cut short when
    a clone may have become claimable.

    TaskFlow's conductor looks at the board every ``WAIT_TIMEOUT`` (0.5 s)
    when it starts nothing.  A ZooKeeper watch on the board's children (the
    jobs and their ``.lock`` claims) ends the pause when a job is posted or
    a claim disappears -- released by a conductor stopping on SIGTERM, or
    gone with a dead conductor's session -- so the clone is claimed then,
    not up to 0.5 s later (bench/conductors.py).  New claims do not wake it.

    The jobboard learns of a new job through a watch of its own and then
    reads the job's data: the conductor woken by this watch may look before
    the board lists the job.  So for ``settle`` seconds after a change the
    pause is ``settle_step`` short, and the conductor looks again soon.
    """

    def __init__(self, client, path, value, lock_suffix='.lock',
                 settle=0.5, settle_step=0.02):
        super().__init__(value)
        self._changed = threading.Event()
        self._lock_suffix = lock_suffix
        self._seen = None
        self._settle, self._settle_step = settle, settle_step
        self._settle_until = 0.0
        kz_watchers.ChildrenWatch(client, path, func=self._on_children,
                                  allow_session_lost=True)

    def _on_children(self, children):
        if self.is_stopped():
            return False                      # ends the ZooKeeper watch
        now, seen = set(children), self._seen
        self._seen = now
        if seen is not None and (
                any(n.endswith(self._lock_suffix) for n in seen - now) or
                any(not n.endswith(self._lock_suffix) for n in now - seen)):
            self._settle_until = time.monotonic() + self._settle
            self._changed.set()

    def interrupt(self):
        super().interrupt()
        self._changed.set()

    def reset(self):
        super().reset()
        self._changed.clear()

    def wait(self):
        settling = time.monotonic() < self._settle_until
        self._changed.wait(self._settle_step if settling else self.value)
        self._changed.clear()

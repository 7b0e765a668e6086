"""Each clone's state transitions, in order, with the conductor that made
each: what ``clone-manage flow history`` and ``flow show`` read.

TaskFlow keeps only the latest state of every atom.  :class:`HistoryRecorder`
is an engine listener that appends ``[time, kind, name, state, conductor]``
to the clone's flow detail meta (``meta['history']``) through the engine's
own storage (``Storage.update_flow_metadata``), on every transition of the
flow, its tasks and its retries.

Why the flow detail and not rows of our own database: the history then lives
and dies with the logbook it describes (``flow purge`` removes both in one
transaction, no second database to keep in step), it is written by the same
storage object that writes the flow's state (so the engine's own flow saves
never overwrite it with an older meta), and it survives crashes.

Writes are batched: an entry is kept in memory and saved with a later one,
unless it is a flow transition, a failure, revert or retry, the copy's
start (the step that runs for minutes, which ``flow show --watch``
follows), or ``save_after`` seconds have passed since the last save.  A
short clone's history thus costs a few saves, not one per transition
(doc/source/benchmarks.rst, bench/manage.py).  A crash loses only the entries
of the steps that started or succeeded since the last save, at most
``save_after`` seconds earlier or since the start of the step it
interrupted; their states are in the atom details anyway.  Bounded: at
most :data:`MAX_ENTRIES` entries are kept (the oldest go first and
``meta['history_dropped']`` counts them); a clone makes ~25 transitions per
attempt, so the bound is reached only by a clone retried many times.
Nothing in an entry comes from the user: names, states, a time and the
conductor's name.
"""
import logging
import time

from taskflow.listeners import base as tf_listeners
from taskflow import states
from taskflow.types import notifier as tf_notifier

from clone_flows import constants as c
from conductor import flowtables

LOG = logging.getLogger(__name__)

#: Entries kept per clone.
MAX_ENTRIES = 500
HISTORY, DROPPED = flowtables.HISTORY, flowtables.DROPPED
FLOW, TASK, RETRY = flowtables.FLOW, flowtables.TASK, flowtables.RETRY


class HistoryRecorder(tf_listeners.Listener):
    """Records every transition of one clone's engine in its flow detail."""

    #: Steps whose start is saved when it happens (the long ones).
    SAVED_AT_ONCE = frozenset([c.COPY_DATA])

    #: States saved at once (with whatever waits): not the ordinary ones.
    ORDINARY = frozenset([states.RUNNING, states.SUCCESS])

    def __init__(self, engine, conductor_name, clock=time.time,
                 save_after=0.5):
        super().__init__(engine, task_listen_for=(tf_notifier.Notifier.ANY,),
                         flow_listen_for=(tf_notifier.Notifier.ANY,),
                         retry_listen_for=(tf_notifier.Notifier.ANY,))
        self._who = conductor_name
        self._clock = clock
        self._save_after = save_after
        self._saved_at = clock()
        self._pending = []

    def _record(self, kind, name, state):
        now = self._clock()
        self._pending.append([round(now, 3), kind, name, state, self._who])
        if kind != FLOW and state in self.ORDINARY and \
                name not in self.SAVED_AT_ONCE and \
                now - self._saved_at < self._save_after:
            return                          # saved with a later entry
        storage = self._engine.storage
        meta = storage.flow_meta or {}
        history = list(meta.get(HISTORY) or ())
        history.extend(self._pending)
        self._pending = []
        self._saved_at = now
        update = {HISTORY: history}
        if len(history) > MAX_ENTRIES:
            drop = len(history) - MAX_ENTRIES
            update = {HISTORY: history[drop:],
                      DROPPED: int(meta.get(DROPPED, 0)) + drop}
        try:
            storage.update_flow_metadata(update)
        except Exception:
            LOG.warning('Could not record %s %s of flow %s', name, state,
                        storage.flow_uuid, exc_info=True)

    def _task_receiver(self, state, details):
        self._record(TASK, details.get('task_name'), state)

    def _retry_receiver(self, state, details):
        self._record(RETRY, details.get('retry_name'), state)

    def _flow_receiver(self, state, details):
        self._record(FLOW, details.get('flow_name'), state)

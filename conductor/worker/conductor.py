"""Conductors that claim clone jobs from the ZooKeeper jobboard and run them.

What TaskFlow's stock conductor does not do, and this one adds:

* **Claim loss stops work.**  A conductor whose ZooKeeper session was
  suspended or lost (it was paused, or partitioned) must not go on while
  another conductor resumes the clone.  Every task asks
  ``services.proceed()`` before it changes the world and the copy asks it
  about once a second; the :class:`ClaimGuard` answers by re-reading the
  claim's owner in ZooKeeper and raises :class:`Interrupted` (no revert)
  when it is no longer ours.
* **Graceful stop.**  On SIGTERM the guard interrupts the running step,
  the claim is released at once, and another conductor resumes the clone
  without waiting for the session timeout.
* **Poison jobs end.**  Each claim counts an attempt in the flow's
  persisted details; past ``[jobboard] max_attempts`` the job is trashed,
  the clone marked failed and handed to the sweep.
* **The user's record.**  Progress, success and failure reach the clone's
  task record.
"""
import contextlib
import logging
import os
import socket
import time

from oslo_config import cfg
from taskflow.conductors.backends import impl_nonblocking
from taskflow.listeners import base as tf_listeners
from taskflow.types import notifier as tf_notifier

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import services as services_mod
from conductor.db import records as records_mod
from conductor import outcome as outcome_mod
from conductor import runner
from conductor import sweep
from conductor.worker import guards
from conductor.worker import history

LOG = logging.getLogger(__name__)

conductor_opts = [
    cfg.StrOpt('name', default=None,
               help='Name of this conductor on the jobboard (default: '
                    'host-pid).'),
    cfg.IntOpt('max_concurrent_clones', default=2, min=1,
               help='Clones one conductor process runs at the same time.'),
    cfg.IntOpt('sweep_interval', default=300, min=0,
               help='Seconds between two sweeps of leftovers of clones '
                    'whose cleanup failed (0 disables the periodic sweep).'),
    cfg.IntOpt('max_running_clones_per_project', default=4, min=0,
               help='Clones of one project that run at the same time across '
                    'all conductors; more wait as "pending" (0: no limit). '
                    'Conductors skip a project at its limit without '
                    'claiming anything; the count lives in ZooKeeper, so '
                    'conductors on several hosts keep it between them.'),
    cfg.FloatOpt('stop_timeout', default=30.0, min=0,
                 help='Seconds a stopping conductor waits for its clones '
                      'to reach a safe point.'),
    cfg.FloatOpt('heartbeat_interval', default=10.0, min=0.1,
                 help='Seconds between two "still running" marks a '
                      'conductor writes on each clone it runs (the task\'s '
                      'updated_at); clone-api shows a clone nobody marked '
                      'for [api] stalled_after seconds as waiting for a '
                      'conductor.'),
]


def register_opts(conf):
    conf.register_opts(conductor_opts, group='conductor')


def list_opts():
    return [('conductor', conductor_opts)]


class PoisonJob(Exception):
    """The job was claimed more than ``[jobboard] max_attempts`` times:
    the conductor trashes it (:meth:`CloneConductor._try_finish_job`).
    """


class StepLogger(tf_listeners.Listener):
    """One INFO line per step transition: what each clone's graph did, when."""

    def __init__(self, engine, clone_id, conductor_name):
        super().__init__(engine, task_listen_for=(tf_notifier.Notifier.ANY,),
                         flow_listen_for=(tf_notifier.Notifier.ANY,),
                         retry_listen_for=(tf_notifier.Notifier.ANY,))
        self._clone_id = clone_id
        self._who = conductor_name

    def _task_receiver(self, state, details):
        LOG.info('Clone %s: step %s %s on %s', self._clone_id,
                 details.get('task_name'), state, self._who)

    def _retry_receiver(self, state, details):
        LOG.info('Clone %s: retry %s %s on %s', self._clone_id,
                 details.get('retry_name'), state, self._who)

    def _flow_receiver(self, state, details):
        LOG.info('Clone %s: flow %s on %s', self._clone_id, state, self._who)


class CloneConductor(impl_nonblocking.NonBlockingConductor):
    """TaskFlow's non-blocking conductor; each hook below runs TaskFlow's
    own code (``super()``) and adds the clone's part:

    * :meth:`_engine_from_job`: TaskFlow's engine for the job, with the
      attempt counted and the run's transient inputs (its
      :class:`Services`, whose ``proceed()`` is this job's
      :class:`~conductor.worker.guards.ClaimGuard`; the progress relay);
      past ``[jobboard] max_attempts`` it raises :class:`PoisonJob`;
    * :meth:`_listeners_from_job`: TaskFlow's (its logging listener) and a
      :class:`StepLogger`;
    * :meth:`_dispatch_job`: the task record (processing, then its end)
      around TaskFlow's dispatch; a clone interrupted (claim lost, or the
      conductor stopping) is left for another conductor;
    * :meth:`_try_finish_job`: a poison job is trashed, the claim of an
      interrupted clone released; other jobs end as TaskFlow ends them.
    """

    def __init__(self, conf, board, backend, client, name=None):
        self.conf = conf
        self.board = board
        self.backend = backend
        self.session = guards.SessionWatch(client)
        self.session_timeout = conf.jobboard.session_timeout
        self.records = records_mod.TaskRecords(conf)
        self._services = {}     # clone id -> the Services of its run
        self.stopping = False
        self._lost = set()      # jobs interrupted: release their claims
        self._poisoned = set()  # jobs past max_attempts: trash them
        name = name or conf.conductor.name or \
            f'{socket.gethostname()}-{os.getpid()}'
        wait = guards.BoardWatch(
            client, board.path, self.WAIT_TIMEOUT,
            lock_suffix=getattr(board, 'LOCK_POSTFIX', '.lock'))
        super().__init__(
            name, board, persistence=backend, engine='serial',
            max_simultaneous_jobs=conf.conductor.max_concurrent_clones,
            wait_timeout=wait)

    @property
    def name(self):
        return self._name

    def stop(self):
        self.stopping = True
        super().stop()

    # -- hooks ----------------------------------------------------------------
    def _engine_from_job(self, job):
        engine = super()._engine_from_job(job)
        clone_id = engine.storage.flow_uuid
        attempts = int(engine.storage.flow_meta.get('attempts', 0)) + 1
        engine.storage.update_flow_metadata({'attempts': attempts})
        if attempts > self.conf.jobboard.max_attempts:
            self._give_up(clone_id, attempts - 1)
        services = services_mod.Services(
            self.conf, trust_id=engine.storage.fetch(c.TRUST_ID),
            guard=guards.ClaimGuard(self, job, clone_id))
        self._services[clone_id] = services
        LOG.info('Clone %s: attempt %d on conductor %s', clone_id, attempts,
                 self.name)
        runner.prepare_transients(
            self.conf, engine, services=services,
            on_progress=lambda d: self.records.progress(clone_id, d))
        return engine

    def _give_up(self, clone_id, attempts):
        """Fail a clone that was started too often and hand it to the
        sweep; raises :class:`PoisonJob`.
        """
        message = (f'the clone was started {attempts} times and never '
                   f'finished (its conductor kept failing); it was stopped '
                   f'and what it made is being removed')
        LOG.error('Clone %s: poison job after %d attempts, trashing it',
                  clone_id, attempts)
        self.records.failed(clone_id, message)
        _, fd = runner.load_flow(self.backend, clone_id)
        fd.meta[outcome_mod.GAVE_UP] = message
        sweep.mark(self.backend, fd, 'poison job')
        with contextlib.suppress(Exception):
            sweep.sweep_one(self.conf, self.backend, fd)
        raise PoisonJob(message)

    def _listeners_from_job(self, job, engine):
        clone_id = (job.details or {}).get('flow_uuid')
        return super()._listeners_from_job(job, engine) + [
            StepLogger(engine, clone_id, self.name),
            history.HistoryRecorder(engine, self.name)]

    def _dispatch_job(self, job):
        clone_id = (job.details or {}).get('flow_uuid')
        started = time.time()
        if clone_id:
            self.records.processing(clone_id)
        try:
            consume = super()._dispatch_job(job)
        except PoisonJob:
            self._poisoned.add(job.uuid)
            return False
        except exceptions.Interrupted as e:
            LOG.warning('Clone %s interrupted on %s (%s): left for another '
                        'conductor', clone_id, self.name, e)
            if not self.stopping:
                self._lost.add(job.uuid)    # nothing to release: not ours
            self.records.forget(clone_id)
            self._services.pop(clone_id, None)
            return False
        if clone_id and consume:
            self._record_end(clone_id, started)
        return consume

    def _try_finish_job(self, job, consume, trash=False):
        if job.uuid in self._poisoned:
            self._poisoned.discard(job.uuid)
            return super()._try_finish_job(job, False, trash=True)
        if job.uuid in self._lost:
            # Probably no longer ours; if the session survived after all,
            # releasing the claim lets a conductor resume the clone now.
            self._lost.discard(job.uuid)
            try:
                self.board.abandon(job, self.name)
                LOG.info('Job %s: claim released', job.uuid)
            except Exception as e:
                LOG.info('Job %s: claim already gone (%s)', job.uuid,
                         type(e).__name__)
            return
        return super()._try_finish_job(job, consume, trash)

    def _record_end(self, clone_id, started):
        try:
            _, fd = runner.load_flow(self.backend, clone_id)
        except LookupError:
            return
        if not runner.is_finished(fd):
            return
        out = outcome_mod.from_flow_detail(fd)
        if out.cleanup_failed:
            sweep.mark(self.backend, fd, 'revert failed')
        services = self._services.pop(clone_id, None)
        self.records.finished(clone_id, out, started=started,
                              trust_released=getattr(
                                  services, 'trust_released', False))
        LOG.info('Clone %s ended: %s %s', clone_id,
                 'success' if out.succeeded else 'failure', out.message)

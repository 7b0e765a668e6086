"""The clone-conductor process: one ZooKeeper client, one conductor,
a periodic sweep, and signals handled like an OpenStack service.

SIGTERM/SIGINT: stop claiming, interrupt running clones at their next safe
point and release their claims so another conductor resumes them at once.
SIGHUP: reopen log files (logrotate).
"""
import contextlib
import logging
import signal
import threading

import sqlalchemy as sa

from conductor import jobboard
from conductor import persistence
from conductor import purge
from conductor import sweep
from conductor.worker import conductor as worker

LOG = logging.getLogger(__name__)


def reopen_log_files():
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            stream = open(handler.baseFilename, handler.mode,
                          encoding=handler.encoding, errors=handler.errors)
            old = handler.setStream(stream)
            if old is not None:
                old.close()


def marked_for_sweep(backend):
    """Whether a clone may be marked for the sweep and not swept yet.

    ``sweep.sweep`` finds marked clones by loading every logbook with all
    its flow and atom details, so each pass costs time and memory in
    proportion to the whole history (bench/conductors.py: the conductor's
    RSS grew ~25 KiB per finished clone with a 30 s interval, flat without
    the periodic sweep).  One query on ``flowdetails.meta`` (the JSON text
    ``sweep.mark`` writes) answers the usual case, nothing marked, without
    loading anything; when it cannot tell, the answer is yes.
    """
    engine = getattr(backend, 'engine', None)
    if engine is None:
        return True
    meta = sa.cast(sa.table('flowdetails', sa.column('meta')).c.meta, sa.Text)
    query = sa.select(sa.literal(1)).where(
        meta.contains(f'"{sweep.NEEDS_SWEEP}"', autoescape=True),
        sa.not_(meta.contains(f'"{sweep.SWEPT}"', autoescape=True))).limit(1)
    try:
        with engine.connect() as conn:
            return conn.execute(query).first() is not None
    except Exception:
        LOG.debug('Could not query for clones marked for the sweep',
                  exc_info=True)
        return True


class Sweeper(threading.Thread):
    def __init__(self, conf, backend, client=None, board=None):
        super().__init__(name='clone-sweeper', daemon=True)
        self._conf = conf
        self._backend = backend
        self._client, self._board = client, board
        self._stop = threading.Event()

    def purge(self):
        """Remove finished clones' flow records and trashed jobs older
        than ``[persistence] keep_finished`` (0: kept for ever).
        """
        keep = purge.parse_duration(self._conf.persistence.keep_finished)
        if not keep:
            return
        purged = purge.purge(self._backend, keep)
        trashed = 0
        if self._client is not None and self._board is not None:
            trashed = purge.purge_trash(self._client, self._board, keep)
        if purged or trashed:
            LOG.info('Purge: flow records of %d finished clones and %d '
                     'trashed jobs removed', len(purged), trashed)

    def run(self):
        interval = self._conf.conductor.sweep_interval
        while not self._stop.wait(interval):
            try:
                swept = left = 0
                if marked_for_sweep(self._backend):
                    swept, left = sweep.sweep(self._conf, self._backend)
                if swept or left:
                    LOG.info('Sweep: %d clones cleaned, %d left', swept, left)
            except Exception:
                LOG.exception('Sweep failed')
            try:
                released, left = sweep.release_trusts(self._conf)
                if left:
                    LOG.info('Sweep: %d trusts of ended clones deleted, %d '
                             'still to delete', released, left)
            except Exception:
                LOG.exception('Releasing the trusts of ended clones failed')
            try:
                # tasks the API recorded but died before queueing
                from conductor import submit
                orphans = submit.fail_orphans(self._conf)
                if orphans:
                    LOG.info('Sweep: %d orphaned tasks failed', len(orphans))
            except Exception:
                LOG.exception('Orphaned task check failed')
            try:
                self.purge()
            except Exception:
                LOG.exception('Purging finished clones failed')

    def stop(self):
        self._stop.set()


class Heartbeat(threading.Thread):
    """Marks the clones this conductor runs as alive, every
    ``[conductor] heartbeat_interval``: how clone-api tells a clone that
    runs from one that waits for a conductor.
    """

    def __init__(self, conf, records):
        super().__init__(name='clone-heartbeat', daemon=True)
        self._interval = conf.conductor.heartbeat_interval
        self._records = records
        self._stop = threading.Event()

    def run(self):
        while not self._stop.wait(self._interval):
            try:
                self._records.heartbeat()
            except Exception:
                LOG.exception('Heartbeat failed')

    def stop(self):
        self._stop.set()


def serve(conf):
    backend = persistence.get_backend(conf)
    client = jobboard.make_client(conf)
    client.start(timeout=conf.jobboard.session_timeout * 2)
    board = jobboard.make_conductor_board(conf, client, backend)
    cond = worker.CloneConductor(conf, board, backend, client)

    def on_stop(signum, _frame):
        LOG.info('Signal %s: stopping conductor %s gracefully', signum,
                 cond.name)
        cond.stop()

    def on_hup(signum, _frame):
        reopen_log_files()
        LOG.info('SIGHUP: log files reopened')

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    sweeper = None
    if conf.conductor.sweep_interval > 0:
        sweeper = Sweeper(conf, backend, client=client, board=board)
        sweeper.start()
    heartbeat = Heartbeat(conf, cond.records)
    heartbeat.start()
    LOG.info('Conductor %s serving %s on %s (up to %d clones at a time)',
             cond.name, conf.jobboard.path,
             ','.join(conf.jobboard.zookeeper_hosts),
             conf.conductor.max_concurrent_clones)
    try:
        cond.run()
        cond.wait(timeout=conf.conductor.stop_timeout)
    finally:
        heartbeat.stop()
        if sweeper is not None:
            sweeper.stop()
        with contextlib.suppress(Exception):
            board.close()
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
        LOG.info('Conductor %s stopped', cond.name)

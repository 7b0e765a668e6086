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

On top of it (``lean_saves``, on by default), :class:`LeanSavesConnection`
saves an atom detail with one prepared ``UPDATE`` instead of a ``SELECT``
plus a freshly built ``UPDATE``, and a flow detail with batched statements;
it writes the same rows (tests compare them with the stock backend's).

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
import collections
import contextlib
import hashlib
import logging
import os
import pickle
import threading
import time
import zlib

from oslo_config import cfg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import pool as sa_pool
from taskflow import exceptions as tf_exc
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.persistence.backends.sqlalchemy import tables as tf_tables
from taskflow.persistence import models

LOG = logging.getLogger(__name__)

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
                     'persistence once per backend instead of on every '
                     'storage call, as TaskFlow 6.5 does (which recompiles '
                     'every statement and keeps each copy alive: memory grows '
                     'with every call). Turn off only to measure the '
                     'difference.'),
    cfg.BoolOpt('lean_saves', default=True,
                help='With cache_table_metadata: save an atom detail with one '
                     'UPDATE (TaskFlow reads the row first, then rewrites '
                     'it), a flow detail and a new logbook with batched '
                     'statements, and skip saves that change nothing; on '
                     'MariaDB and PostgreSQL, single-statement saves use a '
                     'second, autocommit connection pool (up to '
                     'max_pool_size more connections), and pooled '
                     'connections are checked only after ping_idle_after. '
                     'The rows written are the same.'),
    cfg.FloatOpt('running_write_delay', default=0.5, min=0,
                 help='With lean_saves: write that a step started RUNNING '
                      'only once it has run this many seconds (or reports '
                      'progress); most steps end sooner, and their end is '
                      'written anyway. A crash loses nothing: a step whose '
                      'start was not written is run again on resume, as '
                      'one whose start was. 0 writes every start at once.'),
    cfg.FloatOpt('ping_idle_after', default=30.0, min=0,
                 help='With lean_saves, on MariaDB and PostgreSQL: seconds a '
                      'pooled database connection may sit unused before it '
                      'is checked (a "SELECT 1") on its next use; '
                      'connections used more recently are trusted. Keep it '
                      'below any idle timeout between the conductors and '
                      'the database (a proxy\'s, the server\'s '
                      'wait_timeout). A connection that died anyway fails '
                      'its statement, the pool is invalidated and TaskFlow '
                      'saves again on a new one. 0 checks every use, as '
                      'TaskFlow does on MariaDB.'),
    cfg.IntOpt('max_pool_size', default=5, min=1,
               help='Database connections kept open per process and pool '
                    '(with lean_saves, MariaDB and PostgreSQL get two pools: '
                    'transactions and single statements). Keep it at '
                    'least [conductor] max_concurrent_clones + 1: a storage '
                    'call beyond it opens and closes a connection of its own '
                    '(with PyMySQL that alone is costly: it builds a TLS '
                    'context for every new connection).'),
    cfg.StrOpt('sqlite_synchronous', default='NORMAL',
               choices=['OFF', 'NORMAL', 'FULL', 'EXTRA'],
               help='SQLite\'s "PRAGMA synchronous" for a sqlite file (in '
                    'write-ahead-log mode). NORMAL: a commit is not flushed '
                    'to disk by itself, so a progress report does not stall '
                    'the copy behind an fsync while the disk is busy with '
                    'image data; a killed process loses nothing, a power '
                    'cut may lose the last commits (the clone then resumes '
                    'from an earlier step: every step is idempotent). FULL: '
                    'flush every commit.'),
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


#: Columns an atom detail's save rewrites (``AtomDetail.to_dict()`` less
#: ``uuid``, the key); the stock ``_update_atom_details`` writes the same.
_AD_COLUMNS = ('failure', 'revert_failure', 'meta', 'name', 'results',
               'revert_results', 'state', 'version', 'intention')
#: A flow detail's save rewrites these (the stock code writes ``name`` too,
#: but the value it writes is the one already stored).
_FD_COLUMNS = ('meta', 'state')


class _Statements:
    """The update/insert statements of the lean saves, built once.

    Re-executing the same statement objects skips building them, their
    cache keys and their compilation on every save.
    """

    def __init__(self, tables):
        ad, fd = tables.atomdetails, tables.flowdetails
        self.update_atom = (
            sa.update(ad).where(ad.c.uuid == sa.bindparam('b_uuid'))
            .values({k: sa.bindparam(k) for k in _AD_COLUMNS}))
        self.insert_atom = sa.insert(ad).values(
            {k: sa.bindparam(k) for k in
             _AD_COLUMNS + ('uuid', 'parent_uuid', 'atom_type')})
        self.update_atom_if_state = (
            sa.update(ad).where(ad.c.uuid == sa.bindparam('b_uuid'),
                                ad.c.state == sa.bindparam('b_state'))
            .values({k: sa.bindparam(k) for k in _AD_COLUMNS}))
        self.update_flow = (
            sa.update(fd).where(fd.c.uuid == sa.bindparam('b_uuid'))
            .values({k: sa.bindparam(k) for k in _FD_COLUMNS}))
        self.insert_logbook = sa.insert(tables.logbooks)
        self.insert_flow = sa.insert(fd)
        self.logbook_uuid = sa.select(tables.logbooks.c.uuid).where(
            tables.logbooks.c.uuid == sa.bindparam('b_uuid'))
        self.atom_uuids = sa.select(ad.c.uuid).where(
            ad.c.parent_uuid == sa.bindparam('b_parent'))
        self.atoms_by_uuid = sa.select(ad).where(
            ad.c.uuid.in_(sa.bindparam('b_uuids', expanding=True)))


def _atom_params(ad):
    values = ad.to_dict()
    params = {k: values[k] for k in _AD_COLUMNS}
    params['b_uuid'] = ad.uuid
    return params


def _new_atom_params(ad, params, parent_uuid):
    """The INSERT's parameters, from the UPDATE's (``_atom_params``)."""
    new = {k: params[k] for k in _AD_COLUMNS}
    new.update(uuid=ad.uuid, parent_uuid=parent_uuid,
               atom_type=models.atom_detail_type(ad))
    return new


#: The progress TaskFlow's engine saves right after it moves a task into
#: these states (``actions/task.py``: ``change_state(..., progress=...)``;
#: ``runtime.py``: resets and ignores go through ``progress=0.0`` too).
_ENGINE_PROGRESS = {'RUNNING': 0.0, 'REVERTING': 0.0, 'PENDING': 0.0,
                    'IGNORE': 0.0, 'SUCCESS': 1.0, 'REVERTED': 1.0}


def _fold_engine_progress(ad, params, last_state):
    """Write a task's state change with the progress the engine sets next.

    TaskFlow saves a task twice per state change: the state (and result),
    then the progress it starts or ends at -- 18 of a clone's 48 commits.
    The first write already carries that progress, so the second one
    changes nothing in the row and :meth:`LeanSavesConnection.
    update_atom_details` skips it.  Only on a state change: a progress the
    task reports while it runs (the copy's bytes) is written as it comes.
    """
    progress = _ENGINE_PROGRESS.get(params['state'])
    if (progress is None or params['state'] == last_state
            or not isinstance(ad, models.TaskDetail)):
        return params
    meta = dict(params['meta'] or {})
    meta['progress'] = progress
    return dict(params, meta=meta)


class _Deferred:
    """A row write held back: a step's move into RUNNING."""

    __slots__ = ('params', 'snapshot', 'state', 'expect', 'due')

    def __init__(self, params, snapshot, expect, due):
        self.params, self.snapshot = params, snapshot
        self.state, self.expect, self.due = params['state'], expect, due


class _WrittenRows:
    """What this process last wrote to each atom row, as a snapshot, and
    the RUNNING states it has not written yet.

    Bounded (least recently written dropped first); an atom that is not
    here is simply written.  A row is kept as a 16-byte digest of its
    pickled values, not as objects, so that a change the caller makes later
    to a dict it passed cannot alter the record (equal rows pickle alike,
    or at worst are written again), and the record's size does not depend
    on what the rows hold.

    Deferred RUNNING writes (:meth:`defer`): most steps of a clone end
    within tens of milliseconds of starting, and their end is written
    anyway, so writing that they started is a commit nobody reads.  A
    step's RUNNING is written only once it has run ``delay`` seconds (by a
    thread of this record, :meth:`_flush_loop`), or with its first progress
    report, or not at all if the step ended first.  A crash loses nothing:
    on resume TaskFlow runs a step whose row says PENDING exactly as one
    that says RUNNING (again: steps are idempotent).  The flush is a
    conditional ``UPDATE ... WHERE state = <the state this process last
    wrote>``: if the step's end was written meanwhile, it changes nothing.
    """

    def __init__(self, size=4096, write_deferred=None, delay=0.0):
        self._rows = collections.OrderedDict()
        self._size = size
        self._pending = {}
        self._write_deferred = write_deferred
        self._delay = delay
        self._cond = threading.Condition(threading.Lock())
        self._flusher = None
        self._stopping = False

    @staticmethod
    def snapshot(params):
        return hashlib.blake2b(
            pickle.dumps(params, protocol=pickle.HIGHEST_PROTOCOL),
            digest_size=16).digest()

    def get(self, uuid):
        """(state, snapshot) the row holds or is about to hold (a deferred
        RUNNING), or (None, None)."""
        with self._cond:
            deferred = self._pending.get(uuid)
            if deferred is not None:
                return deferred.state, deferred.snapshot
            return self._rows.get(uuid, (None, None))

    def put(self, uuid, state, snapshot):
        """Record a committed write (it supersedes a deferred one)."""
        with self._cond:
            self._pending.pop(uuid, None)
            self._record(uuid, state, snapshot)

    def _record(self, uuid, state, snapshot):
        self._rows[uuid] = (state, snapshot)
        self._rows.move_to_end(uuid)
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def observed(self, uuid, state, snapshot):
        """Record what a row was just read to hold (unless this process
        holds a RUNNING of its own back for it: that write still stands)."""
        with self._cond:
            if uuid not in self._pending:
                self._record(uuid, state, snapshot)

    def defer(self, uuid, params, snapshot):
        """Hold back writing ``params`` (a move into RUNNING); False if it
        must be written now (deferring is off, or this process does not
        know what the row holds)."""
        if self._delay <= 0 or self._write_deferred is None:
            return False
        with self._cond:
            committed = self._rows.get(uuid)
            if committed is None or self._stopping:
                return False
            self._pending[uuid] = _Deferred(
                params, snapshot, committed[0],
                time.monotonic() + self._delay)
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, daemon=True,
                    name='glance-clone-deferred-running')
                self._flusher.start()
            self._cond.notify()
        return True

    def _flush_loop(self):
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    due = [(u, d) for u, d in self._pending.items()
                           if self._stopping or d.due <= now]
                    if due or (self._stopping and not self._pending):
                        break
                    wait = min((d.due for d in self._pending.values()),
                               default=now + 60) - now
                    self._cond.wait(max(wait, 0.001))
                if not due:
                    return
            for uuid, deferred in due:
                self._flush(uuid, deferred)

    def _flush(self, uuid, deferred):
        try:
            written = self._write_deferred(deferred.params, deferred.expect)
        except Exception:
            LOG.warning('Could not write the RUNNING state of atom %s (it '
                        'is written when the step ends)', uuid, exc_info=True)
            written = False
        with self._cond:
            if self._pending.get(uuid) is deferred:
                del self._pending[uuid]
                if written:
                    self._record(uuid, deferred.state, deferred.snapshot)

    def close(self):
        """Write what is still deferred, and stop the flushing thread."""
        with self._cond:
            self._stopping = True
            flusher = self._flusher
            self._cond.notify()
        if flusher is not None:
            flusher.join(timeout=30)


class _RecordingAlchemist(impl_sqlalchemy._Alchemist):
    """TaskFlow's row converter; an atom read from the database is recorded
    in :class:`_WrittenRows` as what its row holds, so a save that would
    write it back unchanged is skipped (a conductor resuming a clone reads
    every atom, then saves the flow: one ``UPDATE`` of the flow row instead
    of every atom rewritten)."""

    def __init__(self, tables, written):
        super().__init__(tables)
        self._written = written

    def convert_atom_detail(self, row):
        ad = super().convert_atom_detail(row)
        params = _atom_params(ad)
        self._written.observed(ad.uuid, params['state'],
                               self._written.snapshot(params))
        return ad


class LeanSavesConnection(CachedTablesConnection):
    """Saves of atom and flow details in fewer, prepared statements.

    TaskFlow's ``update_atom_details`` reads the row, merges the incoming
    detail into it and writes every column back; the merge takes every
    column from the incoming detail (``AtomDetail.merge``/``TaskDetail``/
    ``RetryDetail``), so the row written is the incoming detail's
    ``to_dict()`` -- the read only proves the row exists.  This writes the
    same columns with one ``UPDATE`` and proves existence by its row count.

    ``update_flow_details`` likewise updates the flow row, then inserts the
    atoms the database lacks and rewrites the others that changed (batched,
    one ``executemany`` each) -- the same rows as TaskFlow's code, which
    rewrites every atom of the flow on every flow save.  Atoms that
    only the database has (another process added them) are read and
    returned with the flow detail, as TaskFlow does; a flow save that
    changes no atom is one ``UPDATE`` of the flow row
    (:meth:`_update_flow_row`).  ``save_logbook`` inserts a new logbook
    with its flows and atoms in batches.

    A save that would write exactly what the row holds (what this process
    last wrote or read there) is skipped: with :func:`_fold_engine_progress`
    that is the engine's progress save after each task state change; a
    step's move into RUNNING is deferred (:class:`_WrittenRows`).  The row
    still ends as TaskFlow's code leaves it.  Single-statement saves run on
    the backend's autocommit pool where it has one
    (:meth:`CachedTablesBackend.single_statement`).
    """

    def save_logbook(self, book):
        """A new logbook with its flow and atom details: a few batched
        inserts (TaskFlow builds and runs one ``INSERT`` per row); a
        logbook that exists already is merged by TaskFlow's code."""
        st = self._backend.statements
        try:
            with self._engine.begin() as conn:
                if conn.execute(st.logbook_uuid,
                                {'b_uuid': book.uuid}).first() is not None:
                    new = None
                else:
                    conn.execute(st.insert_logbook, book.to_dict())
                    flows = [dict(fd.to_dict(), parent_uuid=book.uuid)
                             for fd in book]
                    if flows:
                        conn.execute(st.insert_flow, flows)
                    new = [(ad, _atom_params(ad), fd.uuid)
                           for fd in book for ad in fd]
                    if new:
                        conn.execute(st.insert_atom, [
                            _new_atom_params(ad, params, parent)
                            for ad, params, parent in new])
        except sa_exc.SQLAlchemyError:
            tf_exc.raise_with_cause(
                tf_exc.StorageFailure,
                "Failed saving logbook '%s'" % book.uuid)
        if new is None:
            return super().save_logbook(book)
        written = self._backend.written
        for ad, params, _ in new:
            written.put(ad.uuid, params['state'], written.snapshot(params))
        return book

    def update_atom_details(self, atom_detail):
        written = self._backend.written
        last_state, last = written.get(atom_detail.uuid)
        params = _fold_engine_progress(
            atom_detail, _atom_params(atom_detail), last_state)
        snapshot = written.snapshot(params)
        if snapshot == last:
            return atom_detail
        if (params['state'] == 'RUNNING' and last_state != 'RUNNING'
                and written.defer(atom_detail.uuid, params, snapshot)):
            return atom_detail
        try:
            with self._backend.single_statement() as conn:
                r = conn.execute(self._backend.statements.update_atom, params)
            if r.rowcount == 0:
                raise tf_exc.NotFound(
                    "No atom details found with uuid '%s'" % atom_detail.uuid)
            written.put(atom_detail.uuid, params['state'], snapshot)
            # TaskFlow returns a new detail equal to the one written; the
            # caller (Storage._save_atom_detail) copies it into its own.
            return atom_detail
        except sa_exc.SQLAlchemyError:
            tf_exc.raise_with_cause(
                tf_exc.StorageFailure,
                "Failed updating atom details with uuid '%s'"
                % atom_detail.uuid)

    def write_deferred(self, params, expect_state):
        """Write a deferred RUNNING if the row still holds ``expect_state``
        (the step's end was not written meanwhile); True if written."""
        with self._backend.single_statement() as conn:
            r = conn.execute(self._backend.statements.update_atom_if_state,
                             dict(params, b_state=expect_state))
        return r.rowcount == 1

    def update_flow_details(self, flow_detail):
        st = self._backend.statements
        written = self._backend.written
        rows = {ad.uuid: _atom_params(ad) for ad in flow_detail}
        snapshots = {u: written.snapshot(p) for u, p in rows.items()}
        # (A flow detail without atoms may be one loaded lazily: the full
        # save reads the atoms the database has back into it.)
        if rows and all(written.get(u)[1] == snapshots[u] for u in rows):
            return self._update_flow_row(flow_detail)
        try:
            with self._engine.begin() as conn:
                r = conn.execute(st.update_flow, {
                    'b_uuid': flow_detail.uuid, 'meta': flow_detail.meta,
                    'state': flow_detail.state})
                if r.rowcount == 0:
                    raise tf_exc.NotFound(
                        "No flow details found with uuid '%s'"
                        % flow_detail.uuid)
                stored = set(conn.execute(
                    st.atom_uuids, {'b_parent': flow_detail.uuid}).scalars())
                changed = [ad for ad in flow_detail if ad.uuid not in stored
                           or written.get(ad.uuid)[1] != snapshots[ad.uuid]]
                new = [_new_atom_params(ad, rows[ad.uuid], flow_detail.uuid)
                       for ad in changed if ad.uuid not in stored]
                old = [rows[ad.uuid] for ad in changed if ad.uuid in stored]
                if new:
                    conn.execute(st.insert_atom, new)
                if old:
                    conn.execute(st.update_atom, old)
                e_fd = flow_detail.copy()
                theirs = stored.difference(rows)
                if theirs:
                    for row in conn.execute(st.atoms_by_uuid,
                                            {'b_uuids': sorted(theirs)}):
                        e_fd.add(self._converter.convert_atom_detail(
                            row._mapping))
            for ad in changed:                  # committed: what rows hold
                written.put(ad.uuid, rows[ad.uuid]['state'],
                            snapshots[ad.uuid])
            return e_fd
        except sa_exc.SQLAlchemyError:
            tf_exc.raise_with_cause(
                tf_exc.StorageFailure,
                "Failed updating flow details with uuid '%s'"
                % flow_detail.uuid)

    def _update_flow_row(self, flow_detail):
        """A flow save that changes no atom: one ``UPDATE`` of the flow row.

        Every atom of ``flow_detail`` is one this process wrote (or is about
        to write) as it is, so nothing else needs writing; the atoms another
        process may have added are not read back, as the full save does: no
        process adds atoms to a clone's flow but the one running it, and
        they are all made with the flow (``runner.save_new_flow``).
        """
        try:
            with self._backend.single_statement() as conn:
                r = conn.execute(self._backend.statements.update_flow, {
                    'b_uuid': flow_detail.uuid, 'meta': flow_detail.meta,
                    'state': flow_detail.state})
        except sa_exc.SQLAlchemyError:
            tf_exc.raise_with_cause(
                tf_exc.StorageFailure,
                "Failed updating flow details with uuid '%s'"
                % flow_detail.uuid)
        if r.rowcount == 0:
            raise tf_exc.NotFound(
                "No flow details found with uuid '%s'" % flow_detail.uuid)
        return flow_detail


class CachedTablesBackend(impl_sqlalchemy.SQLAlchemyBackend):
    """TaskFlow's SQLAlchemy backend with its table metadata built once.

    ``lean_saves``: connections are :class:`LeanSavesConnection` (else
    :class:`CachedTablesConnection`, TaskFlow's code on cached tables).
    """

    def __init__(self, conf, engine=None, lean_saves=True,
                 running_write_delay=0.0):
        super().__init__(conf, engine=engine)
        self.metadata = sa.MetaData()
        self.tables = tf_tables.fetch(self.metadata)
        self.statements = _Statements(self.tables)
        self.written = _WrittenRows(
            write_deferred=self._write_deferred,
            delay=running_write_delay if lean_saves else 0.0)
        self.converter = (_RecordingAlchemist(self.tables, self.written)
                          if lean_saves else
                          impl_sqlalchemy._Alchemist(self.tables))
        self._connection_cls = (LeanSavesConnection if lean_saves
                                else CachedTablesConnection)
        self._autocommit = None

    def use_autocommit_pool(self, pool_size, ping_idle_after):
        """Run single-statement saves on a pool of their own whose
        connections autocommit (MariaDB, PostgreSQL).

        An atom's save is one ``UPDATE``; in a transaction it costs a
        ``COMMIT`` round trip more (and a ``BEGIN`` with psycopg2): 15 of
        a clone's 16 commits.  Flow and logbook saves of several
        statements stay transactions on TaskFlow's engine.
        """
        engine = sa.create_engine(
            self.engine.url, isolation_level='AUTOCOMMIT',
            # Nothing to roll back on an autocommit connection: no
            # ROLLBACK round trip when a connection goes back to the pool.
            skip_autocommit_rollback=True,
            pool_size=pool_size, pool_recycle=3600)
        _watch_idle(engine, ping_idle_after)
        self._autocommit = engine

    @contextlib.contextmanager
    def single_statement(self):
        """A connection for one statement, committed when the block ends
        (at once on the autocommit pool)."""
        if self._autocommit is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._autocommit.connect() as conn:
                yield conn

    def _write_deferred(self, params, expect_state):
        with contextlib.closing(self.get_connection()) as conn:
            return conn.write_deferred(params, expect_state)

    def close(self):
        self.written.close()
        if self._autocommit is not None:
            self._autocommit.dispose()
        super().close()

    def get_connection(self):
        # As SQLAlchemyBackend.get_connection, with the cached tables.
        conn = self._connection_cls(self, upgrade_lock=self._upgrade_lock)
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
        return [backend.converter.convert_flow_detail(row._mapping)
                for row in conn.execute(sa.select(backend.tables.flowdetails))]


def _ensure_sqlite_dir(url):
    if url.startswith('sqlite:///'):
        path = url[len('sqlite:///'):]
        if path and path != ':memory:':
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _is_sqlite_file(url):
    url = sa.engine.make_url(url)
    return (url.get_backend_name() == 'sqlite' and url.database
            and url.database != ':memory:' and 'mode=memory' not in str(url))


def _sqlite_pragmas(synchronous):
    def on_connect(dbapi_conn, connection_record):
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute('PRAGMA journal_mode=WAL')
            cursor.execute(f'PRAGMA synchronous={synchronous}')
        finally:
            cursor.close()
    return on_connect


#: Where a pooled connection's record keeps the time it was returned.
_IDLE_SINCE = 'glance_clone_idle_since'
#: PyMySQL's ``server_status`` bit: a transaction is open on the session.
_PYMYSQL_IN_TRANS = 1


def _watch_idle(engine, ping_after):
    """Check a pooled connection before use only if it sat unused for more
    than ``ping_after`` seconds.

    TaskFlow pings every MariaDB checkout (``SELECT 1``): one round trip per
    transaction, on connections used milliseconds earlier.
    A connection that has been busy is trusted; one that idled is checked
    and, if dead, replaced (``DisconnectionError``: the pool invalidates it
    and checks out another).  A connection that dies between the check and
    its statement fails that statement; SQLAlchemy then invalidates the
    pool and TaskFlow's storage saves again on a new connection.
    """
    dialect = engine.dialect

    def on_checkin(dbapi_conn, record):
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    def on_checkout(dbapi_conn, record, proxy):
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since <= ping_after:
            return      # just connected, or used recently
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute('SELECT 1')
            cursor.fetchall()
        except dialect.loaded_dbapi.Error as e:
            if dialect.is_disconnect(e, dbapi_conn, cursor):
                raise sa_exc.DisconnectionError(
                    'database connection idle for %.0f s was dead'
                    % (time.monotonic() - since)) from e
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    sa.event.listen(engine, 'checkin', on_checkin)
    sa.event.listen(engine, 'checkout', on_checkout)


def _pymysql_reset(dbapi_conn, record, reset_state):
    """Roll back a returned PyMySQL connection only if a transaction is
    open on it.

    SQLAlchemy rolls back every connection returned to the pool, also
    right after a commit (``engine.begin()`` commits, then returns the
    connection): a ``ROLLBACK`` round trip per storage call for nothing.
    PyMySQL tracks the server's own "in transaction" flag from every reply,
    so a connection with nothing open is returned as it is.
    """
    if reset_state.terminate_only:
        return
    if dbapi_conn.server_status & _PYMYSQL_IN_TRANS:
        dbapi_conn.rollback()


def _lean(conf):
    p = conf.persistence
    return p.cache_table_metadata and p.lean_saves


def backend_conf(conf):
    """The TaskFlow backend configuration for ``[persistence]``.

    A sqlite file gets a connection pool (TaskFlow uses none: every storage
    call would open the file and parse its schema again) and write-ahead
    logging, so that processes sharing the file read while one writes.
    With ``lean_saves``, MariaDB and PostgreSQL connections are checked only
    after idling (:func:`_watch_idle`, not on every checkout) and PyMySQL's
    are rolled back on return only with a transaction open
    (:func:`_pymysql_reset`).
    """
    url = conf.persistence.connection
    size = conf.persistence.max_pool_size
    tf_conf = {'connection': url}
    if _is_sqlite_file(url):
        tf_conf['engine_args'] = {'poolclass': sa_pool.QueuePool,
                                  'pool_size': size}
    elif not url.startswith('sqlite'):
        tf_conf['max_pool_size'] = size
        if _lean(conf):
            tf_conf['checkout_ping'] = False
            if _is_pymysql(url):
                tf_conf['engine_args'] = {'pool_reset_on_return': None}
    return tf_conf


def _is_pymysql(url):
    return sa.engine.make_url(url).get_driver_name() == 'pymysql'


def make_backend(conf):
    """A backend for ``[persistence]``, without touching the schema."""
    url = conf.persistence.connection
    _ensure_sqlite_dir(url)
    if conf.persistence.cache_table_metadata:
        backend = CachedTablesBackend(
            backend_conf(conf), lean_saves=conf.persistence.lean_saves,
            running_write_delay=conf.persistence.running_write_delay)
    else:
        backend = impl_sqlalchemy.SQLAlchemyBackend(backend_conf(conf))
    if _is_sqlite_file(url):
        sa.event.listen(backend.engine, 'connect', _sqlite_pragmas(
            conf.persistence.sqlite_synchronous))
    elif not url.startswith('sqlite') and _lean(conf):
        _watch_idle(backend.engine, conf.persistence.ping_idle_after)
        if _is_pymysql(url):
            sa.event.listen(backend.engine, 'reset', _pymysql_reset)
        backend.use_autocommit_pool(conf.persistence.max_pool_size,
                                    conf.persistence.ping_idle_after)
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
#: clone grew with the database (figures: doc/source/benchmarks.rst,
#: "Persistence").
PARENT_INDEXES = (('glance_clone_atomdetails_parent_idx', 'atomdetails'),
                  ('glance_clone_flowdetails_parent_idx', 'flowdetails'))


def _ensure_parent_indexes(engine):
    """Create the indexes that are missing.  Looked up in the catalog first:
    a ``CREATE INDEX IF NOT EXISTS`` takes a share lock on the table even
    when the index exists, and deadlocks with processes already saving."""
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

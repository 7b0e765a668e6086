"""A clone's persisted flow and steps, read straight from TaskFlow's tables.

``clone-manage flow show`` and ``flow history`` read one clone: its row of
``flowdetails`` and its rows of ``atomdetails``, by the clone's id (both
indexed).  Through TaskFlow's persistence API that read costs a cold
process importing TaskFlow's SQLAlchemy backend, which brings eventlet,
alembic and networkx with it: most of the command's time (figures:
doc/source/benchmarks.rst, "clone-manage").  This module reads the same
rows with SQLAlchemy Core into plain records and changes nothing; the
conductors and every command that writes still go through TaskFlow
(:mod:`conductor.persistence`).

The columns read are those of TaskFlow's schema, created and migrated by
TaskFlow itself (``taskflow/persistence/backends/sqlalchemy/tables.py``);
JSON columns are text on sqlite and MariaDB and native JSON on PostgreSQL,
as TaskFlow writes them.  A failure is kept as TaskFlow stores it
(``Failure.to_dict()``) and formatted as ``Failure.pformat`` does.  What
TaskFlow could offer instead (a light read-only view) is written down in
doc/source/contributor/upstream.rst.
"""
import json
import os

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import pool as sa_pool

from conductor import outcome

#: Flow detail meta key: the names of the clone graph's steps in the
#: graph's order, written with the flow
#: (:func:`conductor.runner.save_new_flow`) so that a reader needs no
#: TaskFlow to rebuild the graph.
GRAPH_ORDER = 'graph_order'

#: Flow detail meta keys of the history the conductors record
#: (:mod:`conductor.worker.history`), and of the count of entries dropped to
#: keep it bounded.
HISTORY = 'history'
DROPPED = 'history_dropped'
#: ``kind`` of a history entry.
FLOW, TASK, RETRY = 'flow', 'task', 'retry'

#: Flow states after which the engine does no more (TaskFlow's).
ENDED = frozenset(['SUCCESS', 'REVERTED', 'FAILURE'])

_META = sa.MetaData()
_FLOWS = sa.Table(
    'flowdetails', _META,
    sa.Column('uuid', sa.String(64), primary_key=True),
    sa.Column('name', sa.String(255)),
    sa.Column('state', sa.String(255)),
    sa.Column('meta', sa.UnicodeText),
)
_ATOMS = sa.Table(
    'atomdetails', _META,
    sa.Column('uuid', sa.String(64), primary_key=True),
    sa.Column('parent_uuid', sa.String(64)),
    sa.Column('name', sa.String(255)),
    sa.Column('state', sa.String(255)),
    sa.Column('intention', sa.String(255)),
    sa.Column('atom_type', sa.String(255)),
    sa.Column('results', sa.UnicodeText),
    sa.Column('failure', sa.UnicodeText),
    sa.Column('revert_failure', sa.UnicodeText),
    sa.Column('meta', sa.UnicodeText),
)


class FailureRecord:
    """A step's stored failure (TaskFlow's ``Failure.to_dict()``)."""

    def __init__(self, data):
        self.exception_str = data.get('exception_str') or ''
        self.traceback_str = data.get('traceback_str')
        self.exc_type_names = list(data.get('exc_type_names') or ())

    def pformat(self, traceback=False):
        """As TaskFlow's ``Failure.pformat``."""
        if self.exc_type_names:
            text = f'Failure: {self.exc_type_names[0]}: {self.exception_str}'
        else:
            text = f'Failure: {self.exception_str}'
        if traceback:
            tb = (self.traceback_str or '').rstrip()
            text += os.linesep + (
                f'Traceback (most recent call last):{os.linesep}{tb}' if tb
                else 'Traceback not available.')
        return text


class AtomRecord:
    """One step (task or retry) of a clone as last saved."""

    def __init__(self, row):
        self.name = row['name']
        self.state = row['state']
        self.intention = row['intention']
        self.is_retry = row['atom_type'] == 'RETRY_DETAIL'
        self.results = row['results']
        self.meta = row['meta'] or {}
        self.failure = _failure(row['failure'])
        self.revert_failure = _failure(row['revert_failure'])


class FlowRecord:
    """A clone's flow as last saved; iterating gives its steps."""

    def __init__(self, row, atoms):
        self.uuid = row['uuid']
        self.name = row['name']
        self.state = row['state']
        self.meta = row['meta'] or {}
        self.atoms = atoms

    def __iter__(self):
        return iter(self.atoms)

    @property
    def finished(self):
        return is_finished(self)


def is_finished(fd):
    """Whether the engine will do no more for the clone: its flow ended,
    or a conductor gave it up (a TaskFlow flow detail or a
    :class:`FlowRecord`).
    """
    return fd.state in ENDED or bool((fd.meta or {}).get(outcome.GAVE_UP))


def entries(meta):
    """The history stored in a flow detail's ``meta``, as dicts, oldest
    first (an empty list for a clone run before it was recorded).
    """
    out = []
    for e in (meta or {}).get(HISTORY) or ():
        if isinstance(e, (list, tuple)) and len(e) == 5:
            t, kind, name, state, who = e
            out.append({'time': t, 'kind': kind, 'name': name,
                        'state': state, 'conductor': who})
    return out


def _failure(data):
    return FailureRecord(data) if data else None


def _json(value):
    # text on sqlite and MariaDB, already decoded on PostgreSQL
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def engine(url):
    """A SQLAlchemy engine for reading ``url`` (no pool: a command reads
    once or every second).
    """
    return sa.create_engine(url, poolclass=sa_pool.NullPool)


def load(engine_, clone_id):
    """The clone's :class:`FlowRecord`; LookupError if it is not stored."""
    try:
        with engine_.connect() as conn:
            flow = conn.execute(sa.select(_FLOWS).where(
                _FLOWS.c.uuid == clone_id)).mappings().first()
            if flow is None:
                raise LookupError(f'no clone {clone_id} in this persistence')
            atoms = conn.execute(sa.select(_ATOMS).where(
                _ATOMS.c.parent_uuid == clone_id)).mappings().all()
    except (sa_exc.OperationalError, sa_exc.ProgrammingError):
        if not sa.inspect(engine_).has_table('flowdetails'):
            # a persistence no conductor has used yet: nothing stored
            raise LookupError(f'no clone {clone_id} in this persistence')
        raise
    return FlowRecord(_decoded(flow, ('meta',)),
                      [AtomRecord(_decoded(a, ('results', 'failure',
                                               'revert_failure', 'meta')))
                       for a in atoms])


def _decoded(row, json_columns):
    row = dict(row)
    for col in json_columns:
        row[col] = _json(row[col])
    return row

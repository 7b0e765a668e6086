"""Removes finished clones' flow records: logbooks, flow and atom details
(``clone-manage flow purge`` and the conductors' periodic purge,
``[persistence] keep_finished``), and the trashed jobs TaskFlow leaves in
ZooKeeper.

A clone is purged when its flow ended (SUCCESS, REVERTED, FAILURE, or the
conductors gave up on it) and its flow detail was last written before the
cut-off.  Never purged: a clone still running or waiting, and a clone marked
for the sweep and not swept yet (the sweep needs its record to know what to
remove).
"""
import contextlib
import datetime
import json
import logging
import re
import time

from oslo_config import cfg
from oslo_utils import timeutils
import sqlalchemy as sa

from conductor import persistence

LOG = logging.getLogger(__name__)

FINISHED = ('SUCCESS', 'REVERTED', 'FAILURE')
#: Flow records deleted per transaction.
BATCH = 200

_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
DURATION_RE = r'^\s*(\d+)\s*([smhdw]?)\s*$'

purge_opts = [
    cfg.StrOpt('keep_finished', default='30d', regex=DURATION_RE,
               help='How long the flow records (logbook, flow and atom '
                    'details, transition history) of a finished clone are '
                    'kept; the conductors then remove them, and the trashed '
                    'jobs as old, with their periodic sweep (every '
                    '[conductor] sweep_interval). A number with a unit s, m, '
                    'h, d or w; '
                    '0 keeps them for ever. Running clones and clones '
                    'waiting for the sweep are never removed.'),
]


def register_opts(conf):
    conf.register_opts(purge_opts, group='persistence')


def list_opts():
    return [('persistence', purge_opts)]


def parse_duration(text):
    """Seconds in a duration such as ``90s``, ``15m``, ``12h``, ``30d``,
    ``2w`` (a bare number is seconds); ValueError with a sentence.
    """
    m = re.match(DURATION_RE, str(text))
    if not m:
        raise ValueError(f'{text!r} is not a duration: write a number with '
                         f'an optional unit s, m, h, d or w (e.g. 30d)')
    return int(m.group(1)) * _UNITS[m.group(2) or 's']


def _gave_up_or_finished(state, meta):
    return state in FINISHED or bool((meta or {}).get('gave_up'))


def _purgeable(state, meta):
    meta = meta or {}
    if not _gave_up_or_finished(state, meta):
        return False
    return not (meta.get('needs_sweep') and not meta.get('swept_at'))


def candidates(backend, older_than, now=None):
    """Ids of the clones a purge of records older than ``older_than``
    seconds removes.
    """
    cutoff = (now or timeutils.utcnow()) - \
        datetime.timedelta(seconds=older_than)
    if not isinstance(backend, persistence.CachedTablesBackend):
        return [fd.uuid for fd in persistence.flow_details(backend)
                if _purgeable(fd.state, fd.meta)]      # (no times: all)
    fds = backend.tables.flowdetails
    meta_text = sa.cast(fds.c.meta, sa.Text)
    query = sa.select(fds.c.uuid, fds.c.state, fds.c.meta).where(
        fds.c.updated_at < cutoff,
        sa.or_(fds.c.state.in_(FINISHED),
               meta_text.contains('"gave_up"', autoescape=True)))
    out = []
    with backend.engine.connect() as conn:
        for uuid, state, meta in conn.execute(query):
            if isinstance(meta, str):
                meta = json.loads(meta)
            if _purgeable(state, meta):          # the exact test
                out.append(uuid)
    return out


def delete(backend, clone_ids):
    """Delete the logbooks of ``clone_ids`` with their flow and atom
    details, ``BATCH`` clones per transaction; returns how many logbooks
    went.  A clone whose flow detail changed meanwhile (it was retried)
    is kept: the state is checked again inside the transaction.
    """
    if not isinstance(backend, persistence.CachedTablesBackend):
        n = 0
        with contextlib.closing(backend.get_connection()) as conn:
            for cid in clone_ids:
                conn.destroy_logbook(cid)
                n += 1
        return n
    t = backend.tables
    removed = 0
    for i in range(0, len(clone_ids), BATCH):
        batch = clone_ids[i:i + BATCH]
        with backend.engine.begin() as conn:
            still = [u for u, s, m in conn.execute(
                sa.select(t.flowdetails.c.uuid, t.flowdetails.c.state,
                          t.flowdetails.c.meta)
                .where(t.flowdetails.c.uuid.in_(batch)))
                if _purgeable(s, json.loads(m) if isinstance(m, str) else m)]
            if not still:
                continue
            conn.execute(sa.delete(t.atomdetails).where(
                t.atomdetails.c.parent_uuid.in_(still)))
            conn.execute(sa.delete(t.flowdetails).where(
                t.flowdetails.c.uuid.in_(still)))
            removed += conn.execute(sa.delete(t.logbooks).where(
                t.logbooks.c.uuid.in_(still))).rowcount
    return removed


def purge(backend, older_than, dry_run=False):
    """Purge finished clones last written more than ``older_than`` seconds
    ago; returns their ids.
    """
    ids = candidates(backend, older_than)
    if ids and not dry_run:
        delete(backend, ids)
        LOG.info('Purged the flow records of %d finished clones', len(ids))
    return ids


def purge_trash(client, board, older_than, now=None):
    """Delete trashed job znodes (TaskFlow moves a trashed job there and
    never removes it) created more than ``older_than`` seconds ago; returns
    how many.
    """
    from kazoo import exceptions as kz_exc
    now = now or time.time()
    removed = 0
    try:
        children = client.get_children(board.trash_path)
    except kz_exc.NoNodeError:
        return 0
    for child in children:
        path = f'{board.trash_path}/{child}'
        with contextlib.suppress(kz_exc.NoNodeError):
            _data, stat = client.get(path)
            if now - stat.ctime / 1000.0 > older_than:
                client.delete(path, version=stat.version)
                removed += 1
    return removed

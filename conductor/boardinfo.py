"""What the jobboard says, for operators: the live conductors and the clone
jobs (``clone-manage conductor list``, ``job list|show|release|trash``).

Conductors: TaskFlow's conductor registers itself when it runs
(``register_entity``): an ephemeral znode under the board's entities path,
named ``<conductor name>@<host>:<pid>`` and holding its host and pid; it
goes with the conductor's ZooKeeper session.  A job's claim names the
conductor (its ``<conductor name>``) that holds it.

Job details are read through :func:`clone_id_of` and :func:`project_of`
only, so a change of what a posted job carries touches these two.
"""
import datetime
import json
import logging

from kazoo import exceptions as kz_exc

LOG = logging.getLogger(__name__)

#: TaskFlow's ``Conductor.ENTITY_KIND``: the entities path's child.
CONDUCTOR_KIND = 'conductor'


def clone_id_of(job):
    details = job.details or {}
    if details.get('flow_uuid'):
        return details['flow_uuid']
    name = job.name or ''
    return name[len('clone-'):] if name.startswith('clone-') else None


def project_of(job):
    details = job.details or {}
    return details.get('project_id')


def conductors(client, board):
    """The conductors registered on ``board`` (alive: their session holds
    the znode), as dicts: name, entity, host, pid, since (epoch seconds).
    """
    path = f'{board.entity_path}/{CONDUCTOR_KIND}'
    try:
        children = client.get_children(path)
    except kz_exc.NoNodeError:
        return []
    out = []
    for child in sorted(children):
        try:
            data, stat = client.get(f'{path}/{child}')
        except kz_exc.NoNodeError:
            continue                        # gone meanwhile
        try:
            meta = json.loads(data.decode('utf-8')).get('metadata') or {}
        except ValueError:
            meta = {}
        out.append({'name': child.split('@', 1)[0], 'entity': child,
                    'host': meta.get('hostname'), 'pid': meta.get('pid'),
                    'since': stat.ctime / 1000.0})
    return out


def live_names(client, board):
    return {c['name'] for c in conductors(client, board)}


def jobs(board):
    """(job, owner or None) of every job on the board, oldest first."""
    out = []
    for job in board.iterjobs(ensure_fresh=True):
        try:
            owner = board.find_owner(job)
        except Exception:
            owner = None
        out.append((job, owner))
    out.sort(key=lambda jo: jo[0].created_on or datetime.datetime.min)
    return out


def find_job(board, ident):
    """The job whose uuid or clone id is ``ident``; LookupError if none."""
    for job in board.iterjobs(ensure_fresh=True):
        if ident in (job.uuid, clone_id_of(job)):
            return job
    raise LookupError(f'no job {ident} on the board (not posted, or it '
                      f'ended and was consumed or trashed)')


def release(client, board, job):
    """Delete the job's claim znode (as its owner's session ending would):
    the job becomes claimable again.  Returns the former owner, or None
    when it was not claimed.
    """
    lock_path = job.path + getattr(board, 'LOCK_POSTFIX', '.lock')
    try:
        data, stat = client.get(lock_path)
    except kz_exc.NoNodeError:
        return None
    try:
        owner = json.loads(data.decode('utf-8')).get('owner')
    except ValueError:
        owner = None
    client.delete(lock_path, version=stat.version)
    return owner

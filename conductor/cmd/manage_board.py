"""clone-manage's jobboard commands: the live conductors and the clone jobs.

    clone-manage conductor list
    clone-manage job list | show ID | release ID [--force]
    clone-manage job trash ID --reason TEXT [--force]
    clone-manage jobs            (the former listing: job list)
"""
import contextlib
import datetime
import logging
import os
import socket
import time

from cliff import lister
from cliff import show

from conductor import boardinfo
from conductor.cmd import manage
from conductor import pending
from conductor import persistence

LOG = logging.getLogger(__name__)

#: Longest --reason recorded on the user's task.
REASON_LENGTH = 300


@contextlib.contextmanager
def board_session(conf):
    """(kazoo client, jobboard, persistence backend), closed afterwards."""
    from kazoo.handlers import threading as kz_threading

    from conductor import jobboard
    backend = persistence.get_backend(conf)
    client = jobboard.make_client(conf)
    try:
        client.start(timeout=conf.jobboard.session_timeout)
    except kz_threading.KazooTimeoutError:
        with contextlib.suppress(Exception):
            client.close()
        raise manage.CommandError(
            f'ZooKeeper ({",".join(conf.jobboard.zookeeper_hosts)}) cannot '
            f'be reached: no answer within '
            f'{conf.jobboard.session_timeout:g} s')
    try:
        board = jobboard.make_board(conf, client, backend)
        try:
            yield client, board, backend
        finally:
            board.close()
    finally:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()


def age(seconds):
    """A short human age: 45s, 12m05s, 3h02m, 4d03h."""
    if seconds is None:
        return None
    s = int(max(seconds, 0))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m{s % 60:02d}s'
    if s < 86400:
        return f'{s // 3600}h{s % 3600 // 60:02d}m'
    return f'{s // 86400}d{s % 86400 // 3600:02d}h'


def iso(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _created(job):
    created = job.created_on
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    return created.timestamp()


def flow_or_none(backend, clone_id):
    """The clone's stored flow detail, or None."""
    from conductor import runner
    try:
        return runner.load_flow(backend, clone_id)[1]
    except LookupError:
        return None


def job_row(job, owner, live, backend):
    clone_id = boardinfo.clone_id_of(job)
    fd = flow_or_none(backend, clone_id) if clone_id else None
    created = _created(job)
    return {
        'job': job.uuid,
        'clone': clone_id,
        'state': 'claimed' if owner else 'unclaimed',
        'owner': owner,
        'owner_alive': (owner in live) if owner else None,
        'created': iso(created) if created else None,
        'age': age(time.time() - created) if created else None,
        'attempts': int((fd.meta or {}).get('attempts', 0)) if fd else None,
        'project': boardinfo.project_of(job),
        'flow_state': fd.state if fd else None,
    }


class ConductorList(lister.Lister):
    """List the live conductors and the clones each holds.

    From ZooKeeper: name, host, pid, since when, clones held.
    """

    def take_action(self, parsed_args):
        conf = self.app.conf()
        with board_session(conf) as (client, board, _backend):
            cons = boardinfo.conductors(client, board)
            held = {}
            for job, owner in boardinfo.jobs(board):
                if owner:
                    held.setdefault(owner, []).append(
                        boardinfo.clone_id_of(job))
        columns = ('Name', 'Host', 'PID', 'Since', 'Clones held', 'Clones')
        rows = [(c['name'], c['host'], c['pid'], iso(c['since']),
                 len(held.get(c['name'], ())),
                 ' '.join(sorted(held.get(c['name'], ()))))
                for c in cons]
        return columns, manage.for_humans(parsed_args, rows)


class JobList(lister.Lister):
    """List the clone jobs on the jobboard, oldest first.

    Unclaimed or claimed (and by whom), age, attempts, project, clone id.
    """

    COLUMNS = ('Job', 'Clone', 'State', 'Owner', 'Owner alive', 'Created',
               'Age', 'Attempts', 'Project', 'Flow state')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--state', choices=['claimed', 'unclaimed'],
                            help='only jobs in this state')
        return parser

    def take_action(self, parsed_args):
        conf = self.app.conf()
        with board_session(conf) as (client, board, backend):
            live = boardinfo.live_names(client, board)
            rows = [job_row(job, owner, live, backend)
                    for job, owner in boardinfo.jobs(board)]
        if parsed_args.state:
            rows = [r for r in rows if r['state'] == parsed_args.state]
        keys = ('job', 'clone', 'state', 'owner', 'owner_alive', 'created',
                'age', 'attempts', 'project', 'flow_state')
        return self.COLUMNS, manage.for_humans(
            parsed_args, [tuple(r[k] for k in keys) for r in rows])


class JobShow(show.ShowOne):
    """Show one clone job (by job id or clone id)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='job id or clone id')
        return parser

    def take_action(self, parsed_args):
        conf = self.app.conf()
        with board_session(conf) as (client, board, backend):
            job = boardinfo.find_job(board, parsed_args.id)
            owner = board.find_owner(job)
            row = job_row(job, owner, boardinfo.live_names(client, board),
                          backend)
        store = (job.details or {}).get('store') or {}
        row.update(name=job.name, source=f"{store.get('source_region')}/"
                   f"{store.get('source_image_id')}",
                   target_region=store.get('target_region'))
        keys = sorted(row)
        return tuple(k.replace('_', ' ').capitalize() for k in keys), \
            manage.for_humans(parsed_args, [tuple(row[k] for k in keys)])[0]


def _who():
    return f'clone-manage@{socket.gethostname()}:{os.getpid()}'


def _refuse_live_owner(client, board, job, owner, force, what):
    if owner and not force and owner in boardinfo.live_names(client, board):
        raise manage.CommandError(
            f'job {job.uuid} is held by conductor {owner}, which is alive '
            f'and may be running the clone; {what} it anyway with --force '
            f'(that conductor then stops the clone at its next check)')


class JobRelease(manage.Command):
    """Make a stuck claim available again.

    Deletes the job's claim so that any conductor may take the clone (it
    resumes from its last saved step).  Refused while the owner is alive,
    unless --force.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='job id or clone id')
        parser.add_argument('--force', action='store_true',
                            help='release it even though its owner is alive')
        return parser

    def take_action(self, parsed_args):
        conf = self.app.conf()
        with board_session(conf) as (client, board, _backend):
            job = boardinfo.find_job(board, parsed_args.id)
            owner = board.find_owner(job)
            if not owner:
                raise manage.CommandError(f'job {job.uuid} is not claimed; '
                                          f'nothing to release')
            _refuse_live_owner(client, board, job, owner, parsed_args.force,
                               'release')
            boardinfo.release(client, board, job)
        self.app.stdout.write(f'job {job.uuid} (clone '
                              f'{boardinfo.clone_id_of(job)}) released from '
                              f'{owner}\n')
        return 0


def stop_message(reason):
    return f'an operator stopped the clone: {reason}'


class JobTrash(manage.Command):
    """Take a clone job off the board for good (a poison job), or a clone
    that waits to start out of its project's queue.

    The clone ends failed with the reason given on the task the user sees;
    what it made is left to the sweep (clone sweep --apply).  Refused while
    a live conductor holds it, unless --force.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='job id or clone id')
        parser.add_argument('--reason', required=True,
                            help='why, in one sentence: the user reads it in '
                                 'the task\'s message')
        parser.add_argument('--force', action='store_true',
                            help='trash it even though a live conductor '
                                 'holds it')
        return parser

    def take_action(self, parsed_args):
        reason = ' '.join(parsed_args.reason.split())
        if not reason:
            raise manage.UsageError('--reason must say why')
        if len(reason) > REASON_LENGTH:
            raise manage.UsageError(f'--reason is longer than '
                                    f'{REASON_LENGTH} characters')
        conf = self.app.conf()
        from conductor.db import records
        from conductor import outcome
        from conductor import sweep
        with board_session(conf) as (client, board, backend):
            who = _who()
            try:
                job = boardinfo.find_job(board, parsed_args.id)
            except LookupError:
                # not started yet: it waits in its project's queue
                if not pending.dequeue(client, conf.jobboard.path,
                                       parsed_args.id):
                    raise
                job = None
                clone_id = parsed_args.id
            if job is not None:
                owner = board.find_owner(job)
                _refuse_live_owner(client, board, job, owner,
                                   parsed_args.force, 'trash')
                if owner:
                    boardinfo.release(client, board, job)
                board.claim(job, who)
                trash_board(client, board, job, who)
                clone_id = boardinfo.clone_id_of(job)
            message = stop_message(reason)
            fd = flow_or_none(backend, clone_id)
            if fd is not None:
                fd.meta[outcome.GAVE_UP] = message
                fd.meta['trashed_by'] = who
                sweep.mark(backend, fd, 'trashed by an operator')
        records.TaskRecords(conf).failed(clone_id, message)
        what = (f'job {job.uuid} trashed' if job is not None else
                f'clone {clone_id} taken from its project\'s queue')
        self.app.stdout.write(
            f'{what}; clone {clone_id} ended failure '
            f'("{message}"); clone sweep --apply removes what it made\n')
        return 0


def trash_board(client, board, job, who):
    """Move a job we claimed to the board's trash.  TaskFlow names the
    trash entry after the job's sequence number, in a trash path shared by
    every board with the same parent: a board made again (or a sibling
    board) may have used the name already, and TaskFlow's trash then fails
    every time.  The job is then consumed instead (its clone's records keep
    everything the trash entry would).
    """
    from taskflow import exceptions as tf_exc
    try:
        board.trash(job, who)
    except tf_exc.JobFailure:
        taken = job.path.replace(board.path, board.trash_path)
        if not client.exists(taken):
            raise
        LOG.warning('Trash entry %s exists already: job %s consumed instead',
                    taken, job.uuid)
        board.consume(job, who)
    # the clone no longer runs: its project's running slot is free
    project_id = boardinfo.project_of(job)
    if project_id:
        pending.release(client, board.path, project_id,
                        boardinfo.clone_id_of(job))


class QueueList(lister.Lister):
    """List per project how many clones wait and how many run.

    Pending clones wait in their project's queue in ZooKeeper, not on the
    jobboard (``job list`` shows the started ones).
    """

    def take_action(self, parsed_args):
        conf = self.app.conf()
        with board_session(conf) as (client, board, _backend):
            counts = pending.counts(client, conf.jobboard.path)
        rows = [(project, n_pending, n_running)
                for project, (n_pending, n_running) in sorted(counts.items())
                if n_pending or n_running]
        return ('Project', 'Pending', 'Running'), rows


class LegacyJobs(JobList):
    """List clone jobs on the jobboard (the former listing: job list)."""

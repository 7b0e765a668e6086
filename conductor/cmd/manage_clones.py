"""clone-manage's clone commands (the task records and what clones left).

    clone-manage clone list [--status S] [--project P] [--region R]
                            [--older-than D] [--newer-than D]
    clone-manage clone retry ID      re-post a failed clone
    clone-manage clone cancel ID
    clone-manage clone sweep [--apply] [--region R ...]
    clone-manage sweep               (the former command: clone sweep --apply
                                      of the marked clones)
"""
import argparse
import contextlib
import datetime
import time

from cliff import lister
from taskflow import storage as tf_storage

from clone_flows import constants as c
from clone_flows import metadata
from clone_flows.tasks import clone_dependencies
from conductor import boardinfo
from conductor.cmd import manage
from conductor.cmd import manage_board
from conductor.cmd import manage_run
from conductor import outcome
from conductor import persistence
from conductor import purge
from conductor import runner
from conductor import sweep

#: Image statuses a clone's debris may be in (an active image is debris
#: only while hidden: a revealed copy is the user's).
DEBRIS_STATUSES = ('queued', 'saving', 'uploading', 'importing', 'active')


def duration(text):
    try:
        return purge.parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def _epoch(iso):
    return datetime.datetime.fromisoformat(iso.rstrip('Z')).replace(
        tzinfo=datetime.timezone.utc).timestamp()


class CloneList(lister.Lister):
    """List clones (their task records, newest first)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--status', choices=['pending', 'processing',
                                                 'success', 'failure'])
        parser.add_argument('--project', help='only this project\'s clones')
        parser.add_argument('--region', help='only clones from or into this '
                                             'region')
        parser.add_argument('--older-than', type=duration, metavar='DURATION',
                            help='only clones created longer ago (e.g. 2h)')
        parser.add_argument('--newer-than', type=duration, metavar='DURATION',
                            help='only clones created more recently (e.g. 2h)')
        parser.add_argument('--limit', type=int, default=1000,
                            help='at most this many (default 1000)')
        return parser

    def take_action(self, a):
        from conductor.db import api as db_api
        tasks = db_api.list_tasks(self.app.conf(), owner=a.project,
                                  status=a.status, type='clone')
        now = time.time()
        rows = []
        for t in tasks:
            inp = t.get('input') or {}
            created = _epoch(t['created_at'])
            if a.region and a.region not in (inp.get('source_region'),
                                             inp.get('target_region')):
                continue
            if a.older_than is not None and now - created < a.older_than:
                continue
            if a.newer_than is not None and now - created > a.newer_than:
                continue
            rows.append((t['id'], t['status'], t['owner'],
                         f"{inp.get('source_region')}/"
                         f"{inp.get('source_image_id')}",
                         inp.get('target_region'), t['created_at'],
                         manage_board.age(now - created), t['attempts'],
                         t['message']))
            if len(rows) >= a.limit:
                break
        return ('ID', 'Status', 'Project', 'Source', 'Target region',
                'Created', 'Age', 'Attempts', 'Message'), \
            manage.for_humans(a, rows)


class CloneCancel(manage.Command):
    """Cancel a pending or running clone.

    As the user's DELETE of the task does: its conductor stops it at the
    next step and removes what it made.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='clone id')
        return parser

    def take_action(self, a):
        from conductor.db import api as db_api
        try:
            task = db_api.request_cancel(self.app.conf(), a.id)
        except db_api.TaskNotFound:
            raise LookupError(f'no clone {a.id} in the task records')
        if task['status'] not in ('pending', 'processing'):
            raise manage.CommandError(f"clone {a.id} already ended "
                                      f"({task['status']}); nothing to cancel")
        self.app.stdout.write(f'cancel requested for clone {a.id} '
                              f'({task["status"]})\n')
        return 0


def reset_for_retry(fd):
    """Make a failed clone's flow detail runnable again: steps that ended
    SUCCESS keep their results (the clone resumes after them), every other
    step goes back to PENDING; the marks of the failure go.
    """
    for ad in fd:
        if ad.name == tf_storage.Storage.injector_name or \
                ad.state == 'SUCCESS' and \
                fd.state != 'REVERTED':
            continue
        ad.state = 'PENDING'
        ad.intention = 'EXECUTE'
        ad.failure = None
        ad.revert_failure = None
        ad.results = None
        ad.revert_results = None
    fd.state = 'PENDING'
    for key in (outcome.GAVE_UP, sweep.NEEDS_SWEEP, 'trashed_by', 'attempts'):
        fd.meta.pop(key, None)


class CloneRetry(manage.Command):
    """Re-post a failed clone; it resumes from what was kept.

    Steps that had succeeded are not run again.  Possible while the clone's
    trust (the user's delegation) still exists: after a poison job or an
    operator's trash not yet swept, or a failed cleanup.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='clone id')
        return parser

    def take_action(self, a):
        from conductor.db import api as db_api
        from conductor import pending
        conf = self.app.conf()
        task = db_api.get_task(conf, a.id)
        if task is None:
            raise LookupError(f'no clone {a.id} in the task records')
        if task['status'] != 'failure':
            raise manage.CommandError(f"clone {a.id} is {task['status']}: "
                                      f"only a failed clone can be retried")
        if not task['trust_id']:
            raise manage.CommandError(
                f'clone {a.id} cannot be retried: its trust (the user\'s '
                f'delegation) was deleted when it ended; the user clones '
                f'again')
        with manage_board.board_session(conf) as (client, board, backend):
            book, fd = runner.load_flow(backend, a.id)
            if (fd.meta or {}).get(sweep.SWEPT):
                raise manage.CommandError(
                    f'clone {a.id} cannot be retried: the sweep already '
                    f'removed what it made and its trust')
            with contextlib.suppress(LookupError):
                job = boardinfo.find_job(board, a.id)
                raise manage.CommandError(f'clone {a.id} still has job '
                                          f'{job.uuid} on the board')
            reset_for_retry(fd)
            with contextlib.closing(backend.get_connection()) as conn:
                conn.update_flow_details(fd)
            db_api.update_task(conf, a.id, status='pending', message='',
                               result=None, expires_at=None,
                               cancel_requested=False)
            # back in its project's queue: a conductor starts it in turn
            pending.enqueue(client, conf.jobboard.path, a.id,
                            task['owner'] or '-')
            db_api.update_task(conf, a.id, job_id=a.id)
        self.app.stdout.write(f'clone {a.id} re-posted: it waits in project '
                              f"{task['owner']}'s queue\n")
        return 0


# -- the sweep ---------------------------------------------------------------

def _marked(conf, backend, apply):
    rows = []
    for fd in list(sweep.pending(backend)):
        store = (fd.meta or {}).get('store') or {}
        region = store.get(c.TARGET_REGION)
        images = []
        try:
            images = sweep.leftover_images(conf, fd)
        except Exception as e:          # a region that does not answer
            images = None
            note = f'cannot look: {e}'.splitlines()[0][:120]
        else:
            note = ''
        action = 'would sweep'
        if apply:
            done = sweep.sweep_one(conf, backend, fd)
            action = 'swept' if done else 'left for a later sweep'
        for image in images or [None]:
            rows.append((fd.uuid, region, image and image['id'],
                         image and image['status'],
                         fd.meta.get(sweep.NEEDS_SWEEP), action, note))
    return rows


def _live(conf, backend, clone_id):
    """Whether the clone may still be working: its task pending or
    processing, or its flow stored and not finished.
    """
    from conductor.db import api as db_api
    task = db_api.get_task(conf, clone_id)
    if task is not None and task['status'] in ('pending', 'processing'):
        return True
    try:
        _, fd = runner.load_flow(backend, clone_id)
    except LookupError:
        return False
    if fd.state == 'SUCCESS':
        return True                 # its image is the copy, not debris
    return not runner.is_finished(fd)


def orphans(conf, backend, session, regions):
    """(region, image) of every image carrying a clone's provenance, not
    revealed, whose clone is neither running nor successful, as the
    operator's session (an admin's) sees the regions.
    """
    from clone_flows import glance
    found = []
    for region in regions:
        g = glance.GlanceRegion(session, region,
                                interface=conf.clone.endpoint_interface,
                                timeout=conf.clone.glance_timeout)
        seen = {}
        for status in DEBRIS_STATUSES:
            for hidden in ('true', 'false'):
                if status == 'active' and hidden == 'false':
                    continue
                for image in g.find_images(status=status, os_hidden=hidden):
                    if image.get(metadata.PROVENANCE_CLONE):
                        seen[image['id']] = image
        for image in seen.values():
            # a dependency copy (kernel, ramdisk) lives and dies with the
            # clone that made it
            if not _live(conf, backend, clone_dependencies.owner(
                    image[metadata.PROVENANCE_CLONE])):
                found.append((region, g, image))
    return found


class CloneSweep(lister.Lister):
    """Find (and with --apply remove) what failed clones left behind.

    The images and store data of clones marked for the sweep (their revert
    failed, or they were trashed), through each clone's copy strategy's own
    cleanup; and, with --region, images in those regions that carry a
    clone's provenance while that clone is neither running nor successful
    (listed as the admin of the OS_* environment).  Nothing else: images are
    recognised by the clone id they carry, never by name.  A dry run by
    default.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--apply', action='store_true',
                            help='remove what is found (default: only list '
                                 'it)')
        parser.add_argument('--region', action='append', default=[],
                            help='also look for leftover images of any clone '
                                 'in this region (repeatable; needs an admin '
                                 'in the OS_* environment)')
        return parser

    def take_action(self, a):
        conf = self.app.conf()
        backend = persistence.get_backend(conf)
        rows = _marked(conf, backend, a.apply)
        if a.region:
            session = manage_run.user_session_from_env(conf)
            marked = {r[0] for r in rows}
            for region, g, image in orphans(conf, backend, session,
                                            a.region):
                clone_id = image[metadata.PROVENANCE_CLONE]
                if clone_id in marked:
                    continue
                action = 'would delete'
                if a.apply:
                    g.delete_image(image['id'])
                    action = 'deleted'
                rows.append((clone_id, region, image['id'], image['status'],
                             'no running clone', action, ''))
        return ('Clone', 'Region', 'Image', 'Image status', 'Why', 'Action',
                'Note'), manage.for_humans(a, rows)


class LegacySweep(manage.Command):
    """Remove what clones whose cleanup failed left (the former sweep).

    Images in the target, trusts: as clone sweep --apply does for the
    clones marked for the sweep.
    """

    def take_action(self, a):
        conf = self.app.conf()
        swept, left = sweep.sweep(conf, persistence.get_backend(conf))
        self.app.stdout.write(f'{swept} clone(s) cleaned, {left} left for a '
                              f'later sweep\n')
        return 0 if left == 0 else 1

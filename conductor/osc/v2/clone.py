"""``openstack image clone create|show|list|cancel|copies``.

Each command is a thin shell over one tasks API call
(:class:`conductor.osc.client.CloneClient`); output follows OSC's
conventions (``-f json|yaml|value|table``, ``-c COLUMN``).
"""
import logging
import sys
import time

from osc_lib.cli import format_columns
from osc_lib.cli import parseractions
from osc_lib.command import command
from osc_lib import exceptions

from conductor.osc import client as client_mod

LOG = logging.getLogger(__name__)

SHOW_COLUMNS = ('id', 'status', 'message', 'source_region',
                'source_image_id', 'target_region', 'image_id',
                'os_hash_value', 'progress', 'input', 'result', 'owner',
                'user_id', 'created_at', 'updated_at', 'expires_at')
LIST_COLUMNS = ('ID', 'Status', 'Owner', 'Created At', 'Updated At')
_LIST_KEYS = ('id', 'status', 'owner', 'created_at', 'updated_at')
VISIBILITIES = ('public', 'private', 'community', 'shared')
IF_EXISTS = ('copy', 'reuse', 'fail')
ENDED = ('success', 'failure')
POLL_SECONDS = 2.0


def _client(cmd):
    return cmd.app.client_manager.image_clone


def _fail(e):
    return exceptions.CommandError(str(e))


def _progress_text(progress):
    """``42% 27.0/64.0 MiB 12.3 MiB/s`` of a task's ``result.progress``."""
    if not isinstance(progress, dict):
        return ''
    parts = []
    if progress.get('percent') is not None:
        parts.append(f"{progress['percent']:.0f}%")
    done, total = progress.get('bytes_done'), progress.get('bytes_total')
    if done is not None and total:
        parts.append(f'{done / 2 ** 20:.1f}/{total / 2 ** 20:.1f} MiB')
    elif done is not None:
        parts.append(f'{done / 2 ** 20:.1f} MiB')
    if progress.get('rate_bytes_per_s'):
        parts.append(f"{progress['rate_bytes_per_s'] / 2 ** 20:.1f} MiB/s")
    return ' '.join(parts)


def task_row(task):
    """(columns, values) of a clone task for ShowOne."""
    task_input = task.get('input') if isinstance(task.get('input'), dict) \
        else {}
    result = task.get('result') if isinstance(task.get('result'), dict) \
        else {}
    progress = result.get('progress')
    values = {
        'id': task.get('id'),
        'status': task.get('status'),
        'message': task.get('message') or '',
        'source_region': task_input.get('source_region'),
        'source_image_id': task_input.get('source_image_id'),
        'target_region': task_input.get('target_region'),
        'image_id': result.get('image_id'),
        'os_hash_value': result.get('os_hash_value'),
        'progress': _progress_text(progress) if progress else
        ('100%' if task.get('status') == 'success' else ''),
        'input': format_columns.DictColumn(task_input),
        'result': format_columns.DictColumn(result),
        'owner': task.get('owner'),
        'user_id': task.get('user_id'),
        'created_at': task.get('created_at'),
        'updated_at': task.get('updated_at'),
        'expires_at': task.get('expires_at'),
    }
    return SHOW_COLUMNS, tuple(values[c] for c in SHOW_COLUMNS)


class ProgressBar:
    """One line on stderr, redrawn in place: the clone's status, a bar
    and its bytes and rate.
    """

    WIDTH = 30

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._last = None

    def show(self, task):
        result = task.get('result') if isinstance(task.get('result'), dict) \
            else {}
        progress = result.get('progress') if isinstance(
            result.get('progress'), dict) else {}
        percent = progress.get('percent')
        if task.get('status') == 'success':
            percent = 100
        filled = int(self.WIDTH * min(max(percent or 0, 0), 100) / 100)
        if task.get('status') == 'success':
            text = '100%'
        elif result.get('waiting_since'):
            text = f"waiting for a conductor since {result['waiting_since']}"
        else:
            text = _progress_text(progress)
        line = (f"{task.get('status', ''):<10} "
                f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {text}")
        if line != self._last:
            self.stream.write('\r' + line.ljust(len(self._last or '')))
            self.stream.flush()
            self._last = line

    def close(self):
        if self._last is not None:
            self.stream.write('\n')
            self.stream.flush()


def wait_for(clone_client, task_id, region, bar=None, poll=POLL_SECONDS):
    """Follow a clone until it ends; returns its last task."""
    while True:
        task = clone_client.get(task_id, region)
        if bar is not None:
            bar.show(task)
        if task.get('status') in ENDED:
            return task
        time.sleep(poll)


class CreateClone(command.ShowOne):
    _description = ('Clone an image of another region into the target '
                    'region (a glance-clone task)')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'image', metavar='<image>',
            help='Image to clone (name or ID, in the source region)')
        parser.add_argument(
            '--source-region', metavar='<region>', required=True,
            help='Region that holds the image')
        parser.add_argument(
            '--target-region', metavar='<region>',
            help='Region to clone the image into (default: the cloud\'s '
                 'region, --os-region-name)')
        parser.add_argument(
            '--name', metavar='<name>',
            help='Name of the copy (default: the source image\'s name)')
        visibility = parser.add_mutually_exclusive_group()
        for value in VISIBILITIES:
            visibility.add_argument(
                f'--{value}', dest='visibility', action='store_const',
                const=value, help=f'Make the copy {value}')
        parser.add_argument(
            '--property', metavar='<key=value>',
            action=parseractions.KeyValueAction, dest='properties',
            help='Set a property on the copy (repeat option to set '
                 'multiple properties)')
        parser.add_argument(
            '--tag', metavar='<tag>', action='append', dest='tags',
            help='Set a tag on the copy (repeat option to set multiple '
                 'tags)')
        parser.add_argument(
            '--strategy', metavar='<strategy>',
            help='How the data moves: auto (default: the first that '
                 'applies) or an installed strategy such as http or swift')
        parser.add_argument(
            '--if-exists', metavar='<copy|reuse|fail>', choices=IF_EXISTS,
            help='When your project in the target already holds a verified '
                 'copy of the image: copy again (default), reuse that copy, '
                 'or fail naming it')
        parser.add_argument(
            '--include-dependencies', action='store_true', default=None,
            help='Also clone the kernel and ramdisk images the image names '
                 'that have no verified copy in the target yet')
        parser.add_argument(
            '--dry-run', action='store_true', default=None,
            help='Run the checks and plan only: nothing is copied; the plan '
                 'is in the result')
        parser.add_argument(
            '--client-token', metavar='<token>',
            help='Idempotency token: the same token and the same request '
                 'give back the same clone')
        parser.add_argument(
            '--wait', action='store_true',
            help='Wait for the clone to end, showing its progress on '
                 'stderr; exit 1 when it fails')
        return parser

    def take_action(self, parsed_args):
        clone_client = _client(self)
        target = parsed_args.target_region or clone_client.default_region
        try:
            image_id = clone_client.find_image(parsed_args.image,
                                               parsed_args.source_region)
            task_input = {'source_region': parsed_args.source_region,
                          'source_image_id': image_id}
            if target:
                task_input['target_region'] = target
            for key in ('name', 'visibility', 'properties', 'tags',
                        'strategy', 'if_exists', 'include_dependencies',
                        'dry_run', 'client_token'):
                value = getattr(parsed_args, key)
                if value is not None:
                    task_input[key] = value
            task = clone_client.create(task_input, target)
            if parsed_args.wait:
                bar = ProgressBar()
                try:
                    task = wait_for(clone_client, task['id'], target, bar)
                finally:
                    bar.close()
        except client_mod.CloneClientError as e:
            raise _fail(e)
        if parsed_args.wait and task.get('status') == 'failure':
            raise exceptions.CommandError(
                f"clone {task['id']} failed: "
                f"{task.get('message') or 'no reason given'}")
        return task_row(task)


class _OneClone(command.ShowOne):

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('clone', metavar='<clone>',
                            help='Clone (task) ID')
        parser.add_argument(
            '--target-region', metavar='<region>',
            help='Region the clone was made into (default: the cloud\'s '
                 'region)')
        return parser


class ShowClone(_OneClone):
    _description = 'Show a clone: its status, progress, result or error'

    def take_action(self, parsed_args):
        try:
            task = _client(self).get(parsed_args.clone,
                                     parsed_args.target_region)
        except client_mod.CloneClientError as e:
            raise _fail(e)
        return task_row(task)


class ListClone(command.Lister):
    _description = 'List clones (newest first)'

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--target-region', metavar='<region>',
            help='Region whose clones to list (default: the cloud\'s '
                 'region)')
        parser.add_argument(
            '--status', metavar='<status>',
            choices=('pending', 'processing', 'success', 'failure'),
            help='Only clones in this status')
        parser.add_argument(
            '--sort', metavar='<key>[:<direction>]',
            help='Sort by created_at, updated_at, id or status, asc or desc '
                 '(default: created_at:desc)')
        parser.add_argument(
            '--limit', metavar='<num-clones>', type=int,
            help='Maximum number of clones to list')
        parser.add_argument(
            '--marker', metavar='<clone>',
            help='List clones after this one (ID)')
        return parser

    def take_action(self, parsed_args):
        sort_key = sort_dir = None
        if parsed_args.sort:
            sort_key, _, sort_dir = parsed_args.sort.partition(':')
            sort_dir = sort_dir or None
        if parsed_args.limit is not None and parsed_args.limit < 0:
            raise exceptions.CommandError('--limit must not be negative')
        try:
            tasks = _client(self).list(
                parsed_args.target_region, status=parsed_args.status,
                limit=parsed_args.limit, marker=parsed_args.marker,
                sort_key=sort_key, sort_dir=sort_dir)
        except client_mod.CloneClientError as e:
            raise _fail(e)
        return LIST_COLUMNS, [tuple(t.get(k) for k in _LIST_KEYS)
                              for t in tasks]


class CancelClone(command.Command):
    _description = ('Cancel running or waiting clones (each reverts what it '
                    'did and ends failure "cancelled by user")')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('clones', metavar='<clone>', nargs='+',
                            help='Clone (task) ID(s) to cancel')
        parser.add_argument(
            '--target-region', metavar='<region>',
            help='Region the clones were made into (default: the cloud\'s '
                 'region)')
        return parser

    def take_action(self, parsed_args):
        clone_client = _client(self)
        failed = 0
        for clone_id in parsed_args.clones:
            try:
                clone_client.cancel(clone_id, parsed_args.target_region)
            except client_mod.CloneClientError as e:
                failed += 1
                LOG.error('Failed to cancel clone %s: %s', clone_id[:64], e)
        if failed:
            raise exceptions.CommandError(
                f'{failed} of {len(parsed_args.clones)} clones failed to '
                f'cancel.')


class ListCopies(command.Lister):
    _description = ("List an image's copies in every region of your "
                    "catalog (made by glance-clone)")

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'image', metavar='<image>',
            help='The image (name or ID, in --image-region)')
        parser.add_argument(
            '--image-region', metavar='<region>',
            help='Region of the image (default: the cloud\'s region)')
        return parser

    def take_action(self, parsed_args):
        clone_client = _client(self)
        region = parsed_args.image_region or clone_client.default_region
        if not region:
            raise exceptions.CommandError(
                'give the image\'s region with --image-region or '
                '--os-region-name')
        try:
            image_id = clone_client.find_image(parsed_args.image, region)
            found = clone_client.copies(image_id, region)
        except client_mod.CloneClientError as e:
            raise _fail(e)
        columns = ('Region', 'ID', 'Name', 'Status', 'Verified', 'Hidden',
                   'Source', 'Clone ID')
        rows = []
        for copy in (found or {}).get('copies') or []:
            source = copy.get('source')
            rows.append((copy.get('region'), copy.get('image_id'),
                         copy.get('name'), copy.get('status'),
                         copy.get('verified'), copy.get('os_hidden'),
                         format_columns.DictColumn(source)
                         if isinstance(source, dict) else source,
                         copy.get('clone_id')))
        return columns, rows

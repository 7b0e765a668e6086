"""clone-manage flow purge: finished clones' flow records and old trashed
jobs removed.

    clone-manage flow purge --older-than DURATION [--dry-run]
"""
from cliff import lister

from conductor.cmd import manage
from conductor.cmd import manage_board
from conductor.cmd import manage_clones
from conductor import persistence
from conductor import purge


class FlowPurge(lister.Lister):
    """Remove finished clones' flow records and old trashed jobs.

    The logbook, flow and atom details and history of clones that finished
    longer than DURATION ago, and the trashed jobs as old.  Running clones,
    and clones waiting for the sweep, are never touched.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--older-than', required=True,
                            type=manage_clones.duration, metavar='DURATION',
                            help='e.g. 30d, 12h, 90m (a bare number: seconds)')
        parser.add_argument('--dry-run', action='store_true',
                            help='list what would go; remove nothing')
        return parser

    def take_action(self, a):
        conf = self.app.conf()
        backend = persistence.get_backend(conf)
        ids = purge.purge(backend, a.older_than, dry_run=a.dry_run)
        trashed = 0
        if not a.dry_run:
            try:
                with manage_board.board_session(conf) as (client, board, _b):
                    trashed = purge.purge_trash(client, board, a.older_than)
            except manage.CommandError as e:
                self.partial = True
                self.app.stderr.write(f'clone-manage: trashed jobs not '
                                      f'purged: {e}\n')
        action = 'would purge' if a.dry_run else 'purged'
        rows = [(cid, action) for cid in ids]
        if trashed:
            rows.append((f'{trashed} trashed job(s)', action))
        return ('Clone', 'Action'), rows

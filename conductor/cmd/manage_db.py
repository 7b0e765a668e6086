"""clone-manage's task-record commands.

    clone-manage db sync        create/upgrade the task tables (alembic)
    clone-manage tasks purge    delete tasks past their expires_at
    clone-manage tasks fail-orphans   end tasks the API recorded but never
                                      queued (it died in between)
"""
from conductor.cmd import manage


class DbSync(manage.Command):
    """Create or upgrade the task tables to the newest revision."""

    def take_action(self, parsed_args):
        from conductor.db import api as db_api
        conf = self.conf()
        revision = db_api.sync(conf)
        self.app.stdout.write(f'task records at revision {revision} '
                              f'({_safe_url(conf.database.connection)})\n')
        return 0


class TasksPurge(manage.Command):
    """Delete finished tasks whose expires_at has passed.

    That is [api] task_ttl_hours after they ended.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--before', metavar='ISO_TIME',
                            help='purge what expires before this time instead '
                                 'of now (e.g. 2030-01-01T00:00:00Z)')
        return parser

    def take_action(self, parsed_args):
        from conductor.db import api as db_api
        count = db_api.purge_expired(self.conf(), now=parsed_args.before)
        self.app.stdout.write(f'purged {count} expired task(s)\n')
        return 0


class TasksFailOrphans(manage.Command):
    """End pending tasks that never got a job, and delete their trusts.

    The API died between recording the task and posting its job.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--older-than', type=int, default=300,
                            metavar='SECONDS', help='only tasks pending this '
                                                    'long (default 300)')
        return parser

    def take_action(self, parsed_args):
        from conductor import submit
        ended = submit.fail_orphans(self.conf(),
                                    older_than=parsed_args.older_than)
        for task_id in ended:
            self.app.stdout.write(task_id + '\n')
        self.app.stdout.write(f'{len(ended)} task(s) without a job ended '
                              f'failure\n')
        return 0


def _safe_url(url):
    from oslo_db.sqlalchemy import utils
    return utils.sanitize_db_url(url)

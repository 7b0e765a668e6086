"""clone-manage's task-record commands.

    clone-manage db sync        create/upgrade the task tables (alembic)
    clone-manage tasks purge    delete tasks past their expires_at
    clone-manage tasks fail-orphans   end tasks the API recorded but never
                                      queued (it died in between)
"""
import sys


def cmd_db_sync(conf, args):
    from conductor.db import api as db_api
    revision = db_api.sync(conf)
    print(f'task records at revision {revision} '
          f'({_safe_url(conf.database.connection)})')
    return 0


def cmd_tasks_purge(conf, args):
    from conductor.db import api as db_api
    count = db_api.purge_expired(conf, now=args.before)
    print(f'purged {count} expired task(s)')
    return 0


def cmd_tasks_fail_orphans(conf, args):
    from conductor import submit
    ended = submit.fail_orphans(conf, older_than=args.older_than)
    for task_id in ended:
        print(task_id)
    print(f'{len(ended)} task(s) without a job ended failure')
    return 0


def _safe_url(url):
    from oslo_db.sqlalchemy import utils
    return utils.sanitize_db_url(url)


def add_parsers(subparsers):
    db = subparsers.add_parser('db', help='task record tables')
    db_sub = db.add_subparsers(dest='db_command', metavar='DB_COMMAND')
    db_sub.required = True
    sync = db_sub.add_parser('sync', help='create or upgrade the task '
                                          'tables to the newest revision')
    sync.set_defaults(func=cmd_db_sync)

    tasks = subparsers.add_parser('tasks', help='task records')
    tasks_sub = tasks.add_subparsers(dest='tasks_command',
                                     metavar='TASKS_COMMAND')
    tasks_sub.required = True
    purge = tasks_sub.add_parser(
        'purge', help='delete finished tasks whose expires_at has passed '
                      '([api] task_ttl_hours after they ended)')
    purge.add_argument('--before', metavar='ISO_TIME',
                       help='purge what expires before this time instead of '
                            'now (e.g. 2030-01-01T00:00:00Z)')
    purge.set_defaults(func=cmd_tasks_purge)
    orphans = tasks_sub.add_parser(
        'fail-orphans', help='end pending tasks that never got a jobboard '
                             'job (the API died between the two) and '
                             'delete their trusts')
    orphans.add_argument('--older-than', type=int, default=300,
                         metavar='SECONDS', help='only tasks pending this '
                                                 'long (default 300)')
    orphans.set_defaults(func=cmd_tasks_fail_orphans)


if __name__ == '__main__':
    sys.exit('use clone-manage db sync | clone-manage tasks purge')

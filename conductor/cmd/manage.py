"""clone-manage: run, inspect and repair clones from a shell.

A cliff application, as python-openstackclient and the ``*-manage`` tools
are: every command takes ``--help``; listing and showing commands take
``-f table|json|yaml|value|csv`` and ``-c COLUMN``.  Exit codes: 0 done,
1 the operation failed (one line on stderr says why; the traceback goes to
the log file, or to stderr with ``--debug``), 2 a usage error (unknown
command, bad option or argument).

    clone-manage clone --source-region R1 --image ID --target-region R2
    clone-manage clone --resume CLONE_ID
    clone-manage copies --region R1 --image ID
    clone-manage conductor list
    clone-manage job list|show|release|trash
    clone-manage clone list|retry|cancel|sweep
    clone-manage flow show|history|graph|purge
    clone-manage db sync;  clone-manage tasks purge|fail-orphans
"""
import argparse
import json
import logging
import os
import socket
import sys
import time

from cliff import app as cliff_app
from cliff import command as cliff_command
from cliff import commandmanager

from clone_flows import constants as c
from clone_flows import exceptions
from conductor import opts
from conductor import outcome
from conductor import persistence
from conductor import runner

LOG = logging.getLogger(__name__)


def _user_session_from_env(conf):
    """A keystoneauth session for the user of the usual OS_* variables."""
    from keystoneauth1.identity import v3

    from clone_flows import auth as clone_auth
    env = os.environ
    if not env.get('OS_AUTH_URL'):
        raise SystemExit('clone-manage: OS_AUTH_URL is not set; source an '
                         'openrc file for the user who clones')
    common = dict(
        auth_url=env['OS_AUTH_URL'],
        project_id=env.get('OS_PROJECT_ID'),
        project_name=env.get('OS_PROJECT_NAME') or env.get('OS_TENANT_NAME'),
        project_domain_name=env.get('OS_PROJECT_DOMAIN_NAME') or (
            None if env.get('OS_PROJECT_DOMAIN_ID') else 'Default'),
        project_domain_id=env.get('OS_PROJECT_DOMAIN_ID'))
    if env.get('OS_TOKEN'):
        auth = v3.Token(token=env['OS_TOKEN'], **common)
    else:
        auth = v3.Password(
            username=env.get('OS_USERNAME'), user_id=env.get('OS_USER_ID'),
            password=env.get('OS_PASSWORD'),
            user_domain_name=env.get('OS_USER_DOMAIN_NAME') or (
                None if env.get('OS_USER_DOMAIN_ID') else 'Default'),
            user_domain_id=env.get('OS_USER_DOMAIN_ID'), **common)
    return clone_auth.user_session(conf, auth,
                                   verify=env.get('OS_CACERT', True))


class ProgressBar:
    """One line on stderr: percent, bytes, rate, strategy."""

    def __init__(self, stream=sys.stderr, enabled=True):
        self._stream = stream
        self._quiet = not enabled
        self._enabled = enabled and stream.isatty()
        self._last_line = 0.0

    def __call__(self, details):
        if self._quiet:
            return
        done = details.get('bytes_done', 0)
        total = details.get('bytes_total', 0) or 0
        pct = details.get('percent', 0.0)
        rate = details.get('rate_bytes_per_s', 0) / 2**20
        width = 30
        filled = int(width * pct / 100)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}%  "
                f"{done / 2**20:,.1f}/{total / 2**20:,.1f} MiB  "
                f"{rate:,.1f} MiB/s  ({details.get('strategy')})")
        if self._enabled:
            self._stream.write('\r' + line)
        elif time.monotonic() - self._last_line >= 5 or pct >= 100:
            self._last_line = time.monotonic()
            self._stream.write(line + '\n')
        self._stream.flush()

    def end(self):
        if self._enabled:
            self._stream.write('\n')


def _follow(backend, clone_id, bar, poll=0.5):
    """Wait for a clone run by a conductor, relaying its progress."""
    while True:
        _, fd = runner.load_flow(backend, clone_id)
        for ad in fd:
            if ad.name == c.COPY_DATA and ad.state == 'RUNNING':
                details = ((ad.meta or {}).get('progress_details') or {}).get(
                    'details')
                if details:
                    bar(details)
        if runner.is_finished(fd):
            return outcome.from_flow_detail(fd)
        time.sleep(poll)


def cmd_clone(conf, args):
    user_session = None if args.resume else _user_session_from_env(conf)
    backend = persistence.get_backend(conf)
    bar = ProgressBar(enabled=not args.no_progress)
    if args.conductor and not args.resume:
        from conductor import jobboard
        jobboard.register_opts(conf)
        store = _new_store(conf, user_session, args)
        if store is None:
            return 1
        job = jobboard.Poster(conf)
        try:
            job.post(store, project_id=user_session.get_project_id())
        finally:
            job.close()
        clone_id = store['clone_id']
        print(f'clone {clone_id} posted for the conductors', file=sys.stderr)
        if args.no_wait:
            print(clone_id)
            return 0
        return _report(args, clone_id, _follow(backend, clone_id, bar), bar)
    if args.resume:
        try:
            book, fd = runner.load_flow(backend, args.resume)
        except LookupError as e:
            print(f'clone-manage: {e}', file=sys.stderr)
            return 2
        if runner.is_finished(fd):
            print(f'clone-manage: clone {args.resume} already ended '
                  f'({fd.state}); nothing to resume', file=sys.stderr)
            return 2
        engine = runner.prepare_engine(conf, backend, book, fd,
                                       on_progress=bar)
        clone_id = args.resume
    else:
        missing = [n for n in ('source_region', 'image', 'target_region')
                   if not getattr(args, n)]
        if missing:
            print('clone-manage: clone needs ' + ', '.join(
                '--' + m.replace('_', '-') for m in missing), file=sys.stderr)
            return 2
        store = _new_store(conf, user_session, args)
        if store is None:
            return 1
        book, fd, flow = runner.save_new_flow(conf, backend, store)
        clone_id = store['clone_id']
        print(f'clone {clone_id}: {args.source_region}/{args.image} -> '
              f'{args.target_region}', file=sys.stderr)
        engine = runner.prepare_engine(conf, backend, book, fd, flow=flow,
                                       on_progress=bar)
    from conductor.worker import history
    with history.HistoryRecorder(
            engine, f'clone-manage@{socket.gethostname()}:{os.getpid()}'):
        result = runner.run(engine, backend, clone_id)
    return _report(args, clone_id, result, bar)


def _new_store(conf, user_session, args):
    """The new clone's store (its trust made), or None after printing why
    not (e.g. the user lacks a role the clone needs).
    """
    try:
        return runner.new_store(conf, user_session, _request(args))
    except exceptions.CloneError as e:
        print(f'clone-manage: {_for_the_cli(e)}', file=sys.stderr)
        return None


def _request(args):
    return {
        'source_region': args.source_region,
        'source_image_id': args.image,
        'target_region': args.target_region,
        'name': args.name, 'visibility': args.visibility,
        'strategy': args.strategy,
        'properties': dict(args.property) if args.property else None,
        'tags': args.tag,
        'dry_run': args.dry_run,
        'if_exists': args.if_exists,
        'include_dependencies': args.include_dependencies,
    }


def _report(args, clone_id, result, bar):
    bar.end()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    if result.succeeded:
        r = result.result
        if not args.json:
            print(_summary(r))
        return 0
    print(f'clone {clone_id} failed: {result.message}', file=sys.stderr)
    return 1


def _summary(r):
    """A successful outcome's result, for a person."""
    if r.get('dry_run'):
        lines = [f"dry run: a clone into {r['region']} would move "
                 f"{r['bytes_to_move']} bytes with strategy {r['strategy']} "
                 f"({r['strategy_reason']})"]
        if r.get('would_reuse'):
            lines.append(f"  it would reuse image {r['existing_copy']}")
        lines += [f"  passed: {ch['check']}: {ch['detail']}"
                  for ch in r['checks']]
        lines += [f'  not proven: {text}' for text in r['not_proven']]
        lines += [f"  {key}: {d['action']}" for key, d in
                  sorted(r['properties'].items())]
        return '\n'.join(lines)
    verb = 'reused in' if r.get('reused') else 'cloned into'
    return (f"{verb} {r['region']}: image {r['image_id']}\n"
            f"  {r['os_hash_algo']} {r['os_hash_value']}\n"
            f"  md5 {r['checksum']}  size {r['size']}")


def _for_the_cli(error):
    """A domain error's sentence, with what it means at this command line."""
    if isinstance(error, exceptions.CredentialsRefused):
        return f'{error} (the OS_* variables)'
    if isinstance(error, exceptions.ServiceNotConfigured):
        return f'{error} (given with --config-file)'
    return str(error)


def _key_value(text):
    if '=' not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    return tuple(text.split('=', 1))


def cmd_copies(conf, args):
    from clone_flows import copies
    try:
        listing = copies.list_copies(_user_session_from_env(conf), conf,
                                     args.region, args.image)
    except exceptions.CloneError as e:
        print(f'clone-manage: {_for_the_cli(e)}', file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(listing, indent=2, sort_keys=True))
        return 0
    image = listing['image']
    if not image['found']:
        print(f"image {args.image} is not visible in {args.region} "
              f"(deleted?); its copies:", file=sys.stderr)
    print(f"{'REGION':12}  {'IMAGE':36}  {'STATUS':8}  {'VERIFIED':8}  "
          f"SOURCE")
    for e in listing['copies']:
        print(f"{e['region']:12}  {e['image_id']:36}  {e['status']:8}  "
              f"{str(e['verified']):8}  {e['source']['region']}/"
              f"{e['source']['image_id']}")
    return 0


# -- the cliff application ---------------------------------------------------

class CommandError(Exception):
    """An operation that failed for a reason the operator can act on; its
    text is one sentence (exit code 1).
    """


class UsageError(CommandError):
    """Arguments that make no sense together (exit code 2)."""


def _hosts(conf):
    return ','.join(conf.jobboard.zookeeper_hosts)


def describe(err, conf=None):
    """One sentence for an error an operator may meet: an unknown id, an
    unreachable ZooKeeper or database; None for an unexpected one.
    """
    if isinstance(err, KeyError):
        return None
    if isinstance(err, (CommandError, LookupError)):
        return str(err)
    from kazoo import exceptions as kz_exc
    from kazoo.handlers import threading as kz_threading
    if isinstance(err, (kz_threading.KazooTimeoutError,
                        kz_exc.ConnectionLoss, kz_exc.SessionExpiredError)):
        hosts = _hosts(conf) if conf is not None else 'ZooKeeper'
        return f'ZooKeeper ({hosts}) cannot be reached: {err or "timed out"}'
    if isinstance(err, kz_exc.NoAuthError):
        return ('ZooKeeper refused access to the jobboard: check [jobboard] '
                'username and password')
    from oslo_db import exception as db_exc
    import sqlalchemy.exc as sa_exc
    from taskflow import exceptions as tf_exc
    cause = err
    while isinstance(cause, tf_exc.TaskFlowException) and cause.cause:
        cause = cause.cause
    if isinstance(cause, (sa_exc.OperationalError, sa_exc.InterfaceError,
                          db_exc.DBConnectionError)):
        first = str(getattr(cause, 'orig', None) or cause).splitlines()[0]
        return f'the database cannot be reached: {first[:200]}'
    return None


class App(cliff_app.App):
    """clone-manage."""

    NAME = 'clone-manage'
    CONSOLE_MESSAGE_FORMAT = '%(message)s'

    def __init__(self):
        manager = commandmanager.CommandManager(None)
        for name, factory in COMMANDS.items():
            manager.add_command(name, factory)
        super().__init__(
            description='Run, inspect and repair glance-clone clones '
                        '(cross-region image copies).',
            version='0.1.0', command_manager=manager, deferred_help=True)
        self._conf = None
        self._exit_code = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.add_argument('--config-file', action='append', default=[],
                            metavar='PATH',
                            help='glance-clone configuration file '
                                 '(repeatable)')
        return parser

    def configure_logging(self):
        # oslo.log configures logging from the configuration files (see
        # conf()); errors reach the operator through clean_up() only.
        for name in ('cliff', self.NAME, type(self).LOG.name):
            cliff_log = logging.getLogger(name)
            cliff_log.propagate = bool(self.options.debug)
            if not cliff_log.handlers:
                cliff_log.addHandler(logging.NullHandler())

    def conf(self, modules=opts.ALL):
        """The parsed configuration, with the options of ``modules``."""
        if self._conf is None:
            args = []
            for f in self.options.config_file:
                args += ['--config-file', f]
            self._conf = opts.new_conf(args, modules=modules)
            if not (self._conf.log_file or self._conf.log_dir or
                    self.options.verbose_level > 1 or self.options.debug):
                # kazoo narrates every connection attempt: on a terminal,
                # the one-line error says it all
                logging.getLogger('kazoo').setLevel(logging.ERROR)
            if self.options.debug:
                logging.getLogger().addHandler(logging.StreamHandler(
                    self.stderr))
        else:
            opts.register_opts(self._conf, modules)
        return self._conf

    def run_subcommand(self, argv):
        try:
            self.command_manager.find_command(argv)
        except ValueError:
            self.stderr.write(f"clone-manage: '{' '.join(argv)}' is not a "
                              f"clone-manage command; see clone-manage "
                              f"--help\n")
            return 2
        self._exit_code = None
        result = super().run_subcommand(argv)
        return self._exit_code if self._exit_code is not None else result

    def clean_up(self, cmd, result, err):
        if err is None:
            return
        sentence = describe(err, self._conf)
        if sentence is None:
            sentence = f'{type(err).__name__}: {err}'.splitlines()[0]
        self.stderr.write(f'clone-manage: {sentence}\n')
        self._exit_code = 2 if isinstance(err, UsageError) else 1
        conf = self._conf
        if self.options.debug or (conf is not None and (
                conf.log_file or conf.log_dir)):
            # the details, where the operator keeps them (never on stderr
            # unless asked with --debug)
            LOG.error('%s failed: %s', getattr(cmd, 'cmd_name', None) or
                      type(cmd).__name__, sentence, exc_info=err)


class Command(cliff_command.Command):
    """A clone-manage command: ``self.app.conf()`` is its configuration."""

    #: Option modules the command needs.
    opt_modules = opts.ALL

    def conf(self):
        return self.app.conf(self.opt_modules)


class CloneRun(Command):
    """Clone an image into another region.

    Runs the persisted clone graph in this process (as the user of the
    OS_* environment), or posts it for the conductors (--conductor).
    """

    opt_modules = opts.CLONE

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        c = parser
        c.add_argument('--source-region', help='region the image is in')
        c.add_argument('--image', help='id of the image to clone')
        c.add_argument('--target-region',
                       default=os.environ.get('OS_REGION_NAME'),
                       help='region to clone into (default: $OS_REGION_NAME)')
        c.add_argument('--name',
                       help='name of the copy (default: the source\'s)')
        c.add_argument('--visibility',
                       choices=['private', 'shared', 'community', 'public'])
        c.add_argument('--property', action='append', type=_key_value,
                       metavar='KEY=VALUE', help='set a property on the copy')
        c.add_argument('--tag', action='append', help='tags of the copy '
                       '(replace the source\'s)')
        c.add_argument('--strategy', default='auto',
                       help='store strategy: auto (default), http, ...')
        c.add_argument('--dry-run', action='store_true',
                       help='run the checks of the clone and print its plan '
                            '(strategy, bytes, property diff); change nothing')
        c.add_argument('--include-dependencies', action='store_true',
                       help='also clone the kernel and ramdisk images the '
                            'image refers to (kernel_id, ramdisk_id) when '
                            'your project in the target region has no '
                            'verified copy of them yet, in the same clone')
        c.add_argument('--if-exists', choices=['copy', 'reuse', 'fail'],
                       default='copy',
                       help='when your project in the target region already '
                            'holds a verified copy of the image: copy anyway '
                            '(default), reuse it, or fail naming it')
        c.add_argument('--resume', metavar='CLONE_ID',
                       help='continue a clone whose process was killed')
        c.add_argument('--conductor', action='store_true',
                       help='post the clone to the jobboard for the '
                            'conductors and follow it, instead of running it '
                            'here')
        c.add_argument('--no-wait', action='store_true',
                       help='with --conductor: print the clone id and return')
        c.add_argument('--no-progress', action='store_true',
                       help='do not draw the progress bar')
        c.add_argument('--json', action='store_true',
                       help='print the outcome as JSON')
        return parser

    def take_action(self, parsed_args):
        return cmd_clone(self.conf(), parsed_args)


class Copies(Command):
    """List an image's copies in every region.

    As the user of the OS_* environment sees them.
    """

    opt_modules = opts.CLONE

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--region', required=True,
                            help='region the image is in')
        parser.add_argument('--image', required=True, help='id of the image')
        parser.add_argument('--json', action='store_true',
                            help='print the listing as JSON')
        return parser

    def take_action(self, parsed_args):
        return cmd_copies(self.conf(), parsed_args)


def for_humans(parsed_args, rows):
    """Rows as given for machine formats (json, yaml: null stays null);
    for table, value and csv, an empty cell instead of "None".
    """
    if getattr(parsed_args, 'formatter', None) in ('json', 'yaml'):
        return rows
    return [tuple('' if v is None else v for v in row) for row in rows]


def _commands():
    from conductor.cmd import manage_board
    from conductor.cmd import manage_clones
    from conductor.cmd import manage_db
    from conductor.cmd import manage_flows
    return {
        'clone': CloneRun,
        'copies': Copies,
        **manage_db.COMMANDS,
        **manage_board.COMMANDS,
        **manage_clones.COMMANDS,
        **manage_flows.COMMANDS,
    }


COMMANDS = {}


def main(argv=None):
    COMMANDS.update(_commands())
    return App().run(sys.argv[1:] if argv is None else list(argv))


if __name__ == '__main__':
    sys.exit(main())

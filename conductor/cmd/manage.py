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
import importlib.metadata
import logging
import re
import sys

from cliff import app as cliff_app
from cliff import command as cliff_command
from cliff import commandmanager

from conductor import opts

LOG = logging.getLogger(__name__)


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
        # cliff's entry points, made here rather than read from the
        # installed metadata (which would import every command's module)
        manager.commands.update(
            (name, importlib.metadata.EntryPoint(name, target,
                                                 'clone_manage.commands'))
            for name, target in COMMANDS.items())
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


#: Characters a terminal acts on instead of showing: C0 and C1 controls
#: but newline and tab (escape sequences, carriage return, bell),
#: zero-width and bidirectional marks, overrides and isolates.
_UNPRINTABLE = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f'
                          '\u202a-\u202e\u2060-\u2069\ufeff]')


def printable(text):
    """``text`` with every character a terminal would act on written as a
    visible escape (``\\x1b``, ``\\u202e``): what users named (an image's
    name in a step's result, a message quoting it) cannot move the
    operator's cursor, rewrite the screen or reorder what it shows.
    """
    return _UNPRINTABLE.sub(
        lambda m: m.group().encode('unicode_escape').decode('ascii'), text)


def for_humans(parsed_args, rows):
    """Rows as given for machine formats (json, yaml: null stays null);
    for table, value and csv, an empty cell instead of "None" and every
    text :func:`printable`.
    """
    if getattr(parsed_args, 'formatter', None) in ('json', 'yaml'):
        return rows
    return [tuple('' if v is None else printable(v) if isinstance(v, str)
                  else v for v in row) for row in rows]


#: Every command and the class that serves it (``module:Class``), imported
#: only when it runs (or when help lists them all): a command does not pay
#: for the imports of the others (``flow show`` reads one clone without
#: TaskFlow's engines; doc/source/benchmarks.rst, "clone-manage").
COMMANDS = {
    'clone': 'conductor.cmd.manage_run:CloneRun',
    'copies': 'conductor.cmd.manage_run:Copies',
    'db sync': 'conductor.cmd.manage_db:DbSync',
    'tasks purge': 'conductor.cmd.manage_db:TasksPurge',
    'tasks fail-orphans': 'conductor.cmd.manage_db:TasksFailOrphans',
    'conductor list': 'conductor.cmd.manage_board:ConductorList',
    'job list': 'conductor.cmd.manage_board:JobList',
    'job show': 'conductor.cmd.manage_board:JobShow',
    'job release': 'conductor.cmd.manage_board:JobRelease',
    'job trash': 'conductor.cmd.manage_board:JobTrash',
    'queue list': 'conductor.cmd.manage_board:QueueList',
    'jobs': 'conductor.cmd.manage_board:LegacyJobs',
    'clone list': 'conductor.cmd.manage_clones:CloneList',
    'clone retry': 'conductor.cmd.manage_clones:CloneRetry',
    'clone cancel': 'conductor.cmd.manage_clones:CloneCancel',
    'clone sweep': 'conductor.cmd.manage_clones:CloneSweep',
    'sweep': 'conductor.cmd.manage_clones:LegacySweep',
    'flow show': 'conductor.cmd.manage_flows:FlowShow',
    'flow history': 'conductor.cmd.manage_flows:FlowHistory',
    'flow graph': 'conductor.cmd.manage_graph:FlowGraph',
    'flow purge': 'conductor.cmd.manage_purge:FlowPurge',
}


def main(argv=None):
    return App().run(sys.argv[1:] if argv is None else list(argv))


if __name__ == '__main__':
    sys.exit(main())

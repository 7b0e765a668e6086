"""clone-manage's flow-state commands: what the engine recorded.

    clone-manage flow show ID [--watch] [--traceback]
    clone-manage flow history ID

They read the persistence through :mod:`conductor.flowtables` and import
nothing else heavy: an operator's ``flow show`` answers from a cold process
(doc/source/benchmarks.rst, "clone-manage").  ``flow graph`` and ``flow
purge`` are in :mod:`conductor.cmd.manage_graph` and
:mod:`conductor.cmd.manage_purge`.
"""
import time

from cliff import lister

from clone_flows import constants as c
from conductor.cmd import manage
from conductor import flowstate
from conductor import flowtables

#: The options these commands read: the persistence's only (a cold
#: ``flow show`` imports no more than it needs).
OPTS = ('conductor.persistence_opts',)


def reader(app):
    """The persistence, to read clones from (:mod:`conductor.flowtables`)."""
    return flowtables.engine(app.conf(OPTS).persistence.connection)


SHOW_COLUMNS = ('Step', 'State', 'Start', 'End', 'Duration (s)', 'Attempts',
                'Result', 'Failure')
SHOW_KEYS = ('name', 'state', 'start', 'end', 'duration_s', 'attempts',
             'result', 'failure')


def _bar(progress, width=30):
    pct = float(progress.get('percent') or 0.0)
    done = progress.get('bytes_done') or 0
    total = progress.get('bytes_total') or 0
    filled = int(width * min(pct, 100.0) / 100)
    return (f"copy [{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}%  "
            f"{done / 2**20:,.1f}/{total / 2**20:,.1f} MiB  "
            f"{(progress.get('rate_bytes_per_s') or 0) / 2**20:,.1f} MiB/s")


def _text_table(rows):
    cells = [['' if r.get(k) is None else manage.printable(str(r.get(k)))
              for k in SHOW_KEYS] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells))
              for i, h in enumerate(SHOW_COLUMNS)]
    out = ['  '.join(f'{h:{w}}' for h, w in zip(SHOW_COLUMNS, widths))]
    for row in cells:
        out.append('  '.join(f'{v:{w}}' for v, w in zip(row, widths)))
    return '\n'.join(out)


class FlowShow(lister.Lister):
    """Show every step of a clone's graph and its state.

    State, start, end, duration, attempts, a short result (never a secret)
    and its failure; --traceback adds the
    failures' tracebacks (for operators only: they may name hosts and
    paths); --watch redraws it until the clone ends, with the copy's
    progress bar.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='clone id')
        parser.add_argument('--traceback', action='store_true',
                            help='add a Traceback column')
        parser.add_argument('--watch', action='store_true',
                            help='redraw every --interval seconds until the '
                                 'clone ends, then print it as asked')
        parser.add_argument('--interval', type=float, default=1.0,
                            help='seconds between two redraws (default 1)')
        return parser

    def take_action(self, a):
        db = reader(self.app)
        fd = flowtables.load(db, a.id)
        names = flowstate.order(fd)
        if a.watch:
            fd = self._watch(db, a, names, fd)
        rows = flowstate.atom_rows(fd, names)
        columns, keys = SHOW_COLUMNS, SHOW_KEYS
        if a.traceback:
            columns, keys = columns + ('Traceback',), keys + ('traceback',)
        return columns, manage.for_humans(
            a, [tuple(r[k] for k in keys) for r in rows])

    def _watch(self, db, a, names, fd):
        out = self.app.stdout
        tty = out.isatty()
        while True:
            rows = flowstate.atom_rows(fd, names)
            s = flowstate.summary(fd)
            text = [f"clone {fd.uuid}: {s['flow_state']}  (attempts "
                    f"{s['attempts']}, conductor {s['conductor'] or '-'})",
                    _text_table(rows)]
            copy = next((r for r in rows if r['name'] == c.COPY_DATA), None)
            if copy and copy['progress']:
                text.append(_bar(copy['progress']))
            out.write(('\x1b[H\x1b[2J' if tty else '') + '\n'.join(text) +
                      '\n\n')
            out.flush()
            if fd.finished:
                return fd
            time.sleep(max(a.interval, 0.1))
            fd = flowtables.load(db, a.id)


class FlowHistory(lister.Lister):
    """Show a clone's state transitions with the conductor that made each.

    In order (recorded by the conductors; a step's start is written with
    its end, so a crash loses only the start of the step it cut).
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='clone id')
        return parser

    def take_action(self, a):
        fd = flowtables.load(reader(self.app), a.id)
        rows = flowstate.history_rows(fd)
        return ('Time', 'Kind', 'Name', 'State', 'Conductor'), \
            manage.for_humans(a, [(r['time'], r['kind'], r['name'],
                                   r['state'], r['conductor'])
                                  for r in rows])

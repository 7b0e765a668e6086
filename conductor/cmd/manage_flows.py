"""clone-manage's flow-state commands: what the engine recorded.

    clone-manage flow show ID [--watch] [--traceback]
    clone-manage flow history ID
    clone-manage flow graph ID -o FILE.svg|png|dot
    clone-manage flow purge --older-than DURATION [--dry-run]
"""
import os
import time

from cliff import lister

from clone_flows import constants as c
from conductor.cmd import manage
from conductor.cmd import manage_clones
from conductor import flowgraph
from conductor import flowstate
from conductor import persistence
from conductor import purge
from conductor import runner

SHOW_COLUMNS = ('Step', 'State', 'Start', 'End', 'Duration (s)', 'Attempts',
                'Result', 'Failure')
SHOW_KEYS = ('name', 'state', 'start', 'end', 'duration_s', 'attempts',
             'result', 'failure')


def _load(backend, clone_id):
    return runner.load_flow(backend, clone_id)[1]


def _bar(progress, width=30):
    pct = float(progress.get('percent') or 0.0)
    done = progress.get('bytes_done') or 0
    total = progress.get('bytes_total') or 0
    filled = int(width * min(pct, 100.0) / 100)
    return (f"copy [{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}%  "
            f"{done / 2**20:,.1f}/{total / 2**20:,.1f} MiB  "
            f"{(progress.get('rate_bytes_per_s') or 0) / 2**20:,.1f} MiB/s")


def _text_table(rows):
    widths = [max(len(str(h)), *(len(str(r.get(k) if r.get(k) is not None
                                         else '')) for r in rows))
              for h, k in zip(SHOW_COLUMNS, SHOW_KEYS)]
    line = '  '.join(f'{h:{w}}' for h, w in zip(SHOW_COLUMNS, widths))
    out = [line]
    for r in rows:
        out.append('  '.join(
            f"{'' if r.get(k) is None else str(r.get(k)):{w}}"
            for k, w in zip(SHOW_KEYS, widths)))
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
        conf = self.app.conf(('conductor.persistence',))
        backend = persistence.get_backend(conf)
        fd = _load(backend, a.id)
        names = flowstate.order(fd)
        if a.watch:
            fd = self._watch(backend, a, names, fd)
        rows = flowstate.atom_rows(fd, names)
        columns, keys = SHOW_COLUMNS, SHOW_KEYS
        if a.traceback:
            columns, keys = columns + ('Traceback',), keys + ('traceback',)
        return columns, manage.for_humans(
            a, [tuple(r[k] for k in keys) for r in rows])

    def _watch(self, backend, a, names, fd):
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
            if runner.is_finished(fd):
                return fd
            time.sleep(max(a.interval, 0.1))
            fd = _load(backend, a.id)


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
        conf = self.app.conf(('conductor.persistence',))
        fd = _load(persistence.get_backend(conf), a.id)
        rows = flowstate.history_rows(fd)
        return ('Time', 'Kind', 'Name', 'State', 'Conductor'), \
            manage.for_humans(a, [(r['time'], r['kind'], r['name'],
                                   r['state'], r['conductor'])
                                  for r in rows])


class FlowGraph(manage.Command):
    """Draw a clone's graph, each step coloured by its state.

    Colours: (grey pending,
    blue running, green success, red failure, yellow reverted, dark red
    revert failure, orange reverting, purple retrying), as SVG, PNG (with
    Graphviz's dot) or DOT text, by the file's extension.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='clone id')
        parser.add_argument('-o', '--output', required=True, metavar='FILE',
                            help='FILE.svg, FILE.png or FILE.dot')
        return parser

    def take_action(self, a):
        fmt = os.path.splitext(a.output)[1].lstrip('.').lower()
        if fmt not in flowgraph.FORMATS:
            raise manage.UsageError(f'-o FILE must end in .svg, .png or '
                                    f'.dot, not {a.output!r}')
        conf = self.app.conf(('conductor.persistence',))
        fd = _load(persistence.get_backend(conf), a.id)
        try:
            flowgraph.render(flowgraph.flow_dot(fd), a.output, fmt)
        except flowgraph.GraphvizMissing as e:
            raise manage.CommandError(str(e))
        self.app.stdout.write(f'{a.output}: graph of clone {a.id} '
                              f'({fd.state})\n')
        return 0


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
            from conductor.cmd import manage_board
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


COMMANDS = {
    'flow show': FlowShow,
    'flow history': FlowHistory,
    'flow graph': FlowGraph,
    'flow purge': FlowPurge,
}

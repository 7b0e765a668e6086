"""Benchmark: TaskFlow persistence cost per clone, with and without the fix.

    .venv/bin/python bench/persistence.py [--rounds 5] [--clones 20]
        [--rss-clones 1000] [--rss-clones-stock 100]
        [--backends sqlite,mysql,postgresql] [--compare REV] [--json]

INTRO: one story, top to bottom.  A clone of a 1 KiB image runs the whole
clone graph in-process (``conductor.runner``: save the logbook, build and
prepare the engine, run the nine tasks and the retry, read the outcome)
against the fake Glance regions of ``tests/unit/fakes.py``, so what is
measured is TaskFlow's engine, its persistence and the little work the
tasks themselves do against the fakes (no network).  Each persistence
backend -- a sqlite file, MariaDB (127.0.0.1:3306, root) and PostgreSQL
(127.0.0.1:5432, postgres); each in a database of its own made for this run
and dropped at the end -- is measured in two variants, by
``[persistence]`` options of ``conductor.persistence``:

  stock   TaskFlow 6.5's backend as it is (``cache_table_metadata = false``):
          table metadata rebuilt on every storage call;
  cached  the default: table metadata built once per backend, TaskFlow's
          code otherwise.

``--compare REV`` adds the same clones run by the code of commit ``REV``
(a ``git archive`` snapshot, in its own child processes, interleaved with
the others round by round) in its default variant, ``before``: so code
that was removed is measured side by side with the code that replaced it.
For a snapshot that still has them, ``before-cached`` is that code with
``[persistence] lean_saves = false``.

plus ``memory``: TaskFlow's in-memory backend (no copies), i.e. the engine
alone, the floor any database backend adds to; and ``tasks``: no TaskFlow
at all, each task's ``execute()`` called in the graph's order with its
arguments wired by hand -- the work of the tasks themselves (against the
fakes), which the orchestration overhead (the target: <= 20 ms per clone)
is the CPU per clone less.

CPU (``time.process_time``) and wall time per clone: every (backend,
variant) pair runs ``--clones`` clones (after 5 unmeasured ones) in a fresh
child process -- so the memory one variant leaks cannot slow another's
garbage collection -- and the pairs are interleaved round by round (the
order rotated every round), ``--rounds`` times; the table gives medians
over rounds.  Then, one child per pair: resident memory (``VmRSS`` after a
full garbage collection) before and after ``--rss-clones`` clones
(``--rss-clones-stock`` for the stock variant, which is slow and grows),
given per clone.  Finally ``get_backend()`` on an up-to-date database (the
schema check a process does once).
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import sqlalchemy as sa  # noqa: E402

SERVERS = {
    'mysql': os.environ.get('GLANCE_CLONE_BENCH_MYSQL_URL',
                            'mysql+pymysql://root@127.0.0.1:3306/'),
    'postgresql': os.environ.get(
        'GLANCE_CLONE_BENCH_POSTGRESQL_URL',
        'postgresql+psycopg2://postgres@127.0.0.1:5432/postgres'),
}
VARIANTS = {
    'stock': {'cache_table_metadata': False},
    'cached': {'cache_table_metadata': True},
    # --compare: the snapshot's defaults, and (if it has the option) its
    # lean saves off.
    'before': {},
    'before-cached': {'cache_table_metadata': True, 'lean_saves': False},
}
TARGET_CPU_MS = 20
WARMUP = 5
IMAGE = os.urandom(1024)


# -- the child: clones in this process ---------------------------------------

def _rss_kib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])


def _tasks_alone(flow, store, services):
    """Each task's ``execute`` called in the graph's order, its arguments
    wired by hand: the work of the tasks themselves, without TaskFlow.
    """
    from clone_flows import constants as c
    from conductor import runner
    from taskflow import retry as tf_retry
    values = dict(store, **{c.SERVICES: services, c.COPY_CHECKPOINT: None})
    for t in runner.atoms(flow):
        if isinstance(t, tf_retry.Retry):
            continue
        result = t.execute(**{arg: values.get(name)
                              for arg, name in t.rebind.items()})
        for name, index in t.save_as.items():
            values[name] = result if index is None else result[index]


def _child(args):
    if args.tree:           # --compare: the snapshot's code, not this tree's
        sys.path.insert(0, args.tree)
    from clone_flows import constants as c
    from clone_flows import flow as flow_mod
    from conductor import opts
    from conductor import persistence
    from conductor import runner
    from taskflow.persistence.backends import impl_memory
    from tests.unit import fakes
    # As a clone-conductor process is (conductor.cmd.launch): what the
    # imports made is left out of the garbage collector's full passes.
    gc.freeze()

    conf = opts.new_conf([], default_config_files=[], log=False)
    conf.set_override('copy_retry_delay', 0, group='clone')
    factory_kwargs = flow_mod.factory_kwargs(conf)
    if args.variant in ('memory', 'tasks'):
        backend = impl_memory.MemoryBackend({'deep_copy': False})
    else:
        conf.set_override('connection', args.url, group='persistence')
        for k, v in VARIANTS[args.variant].items():
            conf.set_override(k, v, group='persistence')
        backend = persistence.get_backend(conf)
    calls = [0]
    get_connection = backend.get_connection

    def counting_get_connection():
        calls[0] += 1
        return get_connection()
    backend.get_connection = counting_get_connection
    commits = [0]       # transactions the database committed
    if args.variant not in ('memory', 'tasks'):
        import sqlalchemy as sa

        def count(*args):
            commits[0] += 1
        sa.event.listen(backend.engine, 'commit', count)
        autocommit = getattr(backend, '_autocommit', None)
        if autocommit is not None:      # each statement commits by itself
            sa.event.listen(autocommit, 'before_cursor_execute', count)

    cloud = {'R1': fakes.FakeGlanceRegion('R1'),
             'R2': fakes.FakeGlanceRegion('R2')}
    src = cloud['R1'].add_image(IMAGE)
    services = fakes.FakeServices(conf, cloud)

    def clone():
        store = {c.CLONE_ID: str(uuid.uuid4()), c.SOURCE_REGION: 'R1',
                 c.SOURCE_IMAGE_ID: src['id'], c.TARGET_REGION: 'R2',
                 c.TRUST_ID: 'trust-bench', c.OVERRIDES: {},
                 c.STRATEGY_NAME: 'auto'}
        if args.variant == 'tasks':
            _tasks_alone(runner.FACTORY(**factory_kwargs), store, services)
        else:
            book, fd, flow = runner.save_new_flow(conf, backend, store)
            engine = runner.prepare_engine(conf, backend, book, fd, flow=flow,
                                           services=services)
            out = runner.run(engine, backend, store[c.CLONE_ID])
            if not out.succeeded:
                raise SystemExit(f'clone failed: {out.message}')
        # The fakes keep what they are given; keep them from growing.
        cloud['R2'].images.clear()
        cloud['R2'].data.clear()
        cloud['R1'].calls.clear()
        cloud['R2'].calls.clear()

    for _ in range(WARMUP):
        clone()
    result = {}
    if args.mode == 'time':
        calls[0] = commits[0] = 0
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(args.clones):
            clone()
        cpu1, wall1 = time.process_time(), time.perf_counter()
        result = {'cpu_ms': (cpu1 - cpu0) * 1000 / args.clones,
                  'wall_ms': (wall1 - wall0) * 1000 / args.clones,
                  'calls': calls[0] / args.clones,
                  'commits': commits[0] / args.clones}
    elif args.mode == 'rss':
        gc.collect()
        before = _rss_kib()
        half = None
        for i in range(args.clones):
            clone()
            if i + 1 == args.clones // 2:
                gc.collect()
                half = _rss_kib()
        gc.collect()
        after = _rss_kib()
        result = {'rss_before_kib': before, 'rss_half_kib': half,
                  'rss_after_kib': after, 'clones': args.clones}
    elif args.mode == 'open':
        times = []
        for _ in range(5):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            persistence.get_backend(conf).close()
            times.append(((time.process_time() - cpu0) * 1000,
                          (time.perf_counter() - wall0) * 1000))
        result = {'cpu_ms': statistics.median(t[0] for t in times),
                  'wall_ms': statistics.median(t[1] for t in times)}
    print(json.dumps(result))


def _run_child(mode, url, variant, clones, tree=None):
    cmd = [sys.executable, os.path.abspath(__file__), '--child', mode,
           '--url', url or '', '--variant', variant, '--clones', str(clones)]
    if tree:
        cmd += ['--tree', tree]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         timeout=7200)
    if out.returncode != 0:
        raise SystemExit(f'child {mode} {variant} {url} failed:\n'
                         f'{out.stdout}\n{out.stderr}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def _snapshot(rev, tmpdir):
    """The code of commit ``rev`` (what the children import), unpacked."""
    dest = os.path.join(tmpdir, 'before')
    os.makedirs(dest)
    tar = subprocess.run(['git', 'archive', rev, 'conductor', 'clone_flows',
                          'tests'], cwd=ROOT, check=True,
                         capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', dest], input=tar, check=True)
    return dest


def _has_lean_saves(tree):
    with open(os.path.join(tree, 'conductor', 'persistence.py')) as f:
        return "'lean_saves'" in f.read()


# -- the databases of this run ----------------------------------------------

class Databases:
    def __init__(self, backends, tmpdir):
        self.name = f'glance_clone_bench_{uuid.uuid4().hex[:8]}'
        self.urls = {}
        self._made = []
        for kind in backends:
            if kind == 'sqlite':
                self.urls[kind] = f'sqlite:///{tmpdir}/{self.name}.sqlite'
                continue
            admin = sa.create_engine(SERVERS[kind],
                                     isolation_level='AUTOCOMMIT',
                                     poolclass=sa.pool.NullPool)
            with admin.connect() as conn:
                extra = ' CHARACTER SET utf8mb4' if kind == 'mysql' else ''
                conn.exec_driver_sql(f'CREATE DATABASE {self.name}{extra}')
            admin.dispose()
            self._made.append(kind)
            self.urls[kind] = (sa.engine.make_url(SERVERS[kind])
                               .set(database=self.name)
                               .render_as_string(hide_password=False))

    def drop(self):
        for kind in self._made:
            admin = sa.create_engine(SERVERS[kind],
                                     isolation_level='AUTOCOMMIT',
                                     poolclass=sa.pool.NullPool)
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS {self.name}')
            admin.dispose()


# -- the parent: interleave, then print ------------------------------------

LABELS = {'sqlite': 'sqlite file', 'mysql': 'MariaDB 10.11',
          'postgresql': 'PostgreSQL 15', 'memory': '(in-memory, no DB)',
          'tasks': '(tasks alone, no TaskFlow)'}


def _fmt(x, digits=1):
    return '-' if x is None else f'{x:,.{digits}f}'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--clones', type=int, default=20,
                   help='measured clones per pair and round')
    p.add_argument('--rss-clones', type=int, default=1000)
    p.add_argument('--rss-clones-stock', type=int, default=100)
    p.add_argument('--backends', default='sqlite,mysql,postgresql')
    p.add_argument('--compare', metavar='REV',
                   help='also run the code of commit REV, side by side')
    p.add_argument('--json', action='store_true')
    p.add_argument('--child', choices=['time', 'rss', 'open'],
                   help=argparse.SUPPRESS)
    p.add_argument('--url', help=argparse.SUPPRESS)
    p.add_argument('--variant', help=argparse.SUPPRESS)
    p.add_argument('--tree', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.mode = args.child
        return _child(args)

    backends = [b for b in args.backends.split(',') if b]
    tmpdir = tempfile.mkdtemp(prefix='glance-clone-bench-')
    variants = ['stock', 'cached']
    tree = {}
    if args.compare:
        tree['before'] = tree['before-cached'] = _snapshot(args.compare,
                                                           tmpdir)
        variants += ['before'] + (['before-cached'] if _has_lean_saves(
            tree['before']) else [])
    pairs = [(b, v) for b in backends for v in variants]
    pairs.append(('memory', 'memory'))
    pairs.append(('tasks', 'tasks'))
    results = {pair: {'cpu': [], 'wall': [], 'calls': [], 'commits': []}
               for pair in pairs}
    dbs = Databases(backends, tmpdir)
    dbs.urls['memory'] = dbs.urls['tasks'] = ''
    try:
        # Make each schema once, so no child pays for it while timed.
        for kind in backends:
            _run_child('open', dbs.urls[kind], 'cached', 1)
        t0 = time.monotonic()
        for r in range(args.rounds):
            order = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
            for kind, variant in order:
                got = _run_child('time', dbs.urls[kind], variant, args.clones,
                                 tree.get(variant))
                results[(kind, variant)]['cpu'].append(got['cpu_ms'])
                results[(kind, variant)]['wall'].append(got['wall_ms'])
                results[(kind, variant)]['calls'].append(got['calls'])
                results[(kind, variant)]['commits'].append(got['commits'])
            print(f'round {r + 1}/{args.rounds} done '
                  f'({time.monotonic() - t0:.0f} s)', file=sys.stderr)
        for kind, variant in pairs:
            if kind in ('memory', 'tasks'):     # no persistence to measure
                continue
            n = (args.rss_clones_stock if variant == 'stock'
                 else args.rss_clones)
            got = _run_child('rss', dbs.urls[kind], variant, n,
                             tree.get(variant))
            results[(kind, variant)]['rss'] = got
            print(f'rss {kind} {variant}: {got}', file=sys.stderr)
        opened = {kind: {v: _run_child('open', dbs.urls[kind], v, 1)
                         for v in ('stock', 'cached')} for kind in backends}
    finally:
        dbs.drop()

    rows = []
    for kind, variant in pairs:
        res = results[(kind, variant)]
        rss = res.get('rss') or {'clones': None, 'rss_before_kib': None,
                                 'rss_after_kib': None}
        growth = growth_2nd = None
        if rss['clones']:
            growth = ((rss['rss_after_kib'] - rss['rss_before_kib'])
                      / rss['clones'])
            growth_2nd = ((rss['rss_after_kib'] - rss['rss_half_kib'])
                          / (rss['clones'] - rss['clones'] // 2))
        rows.append({
            'backend': kind, 'variant': variant,
            'cpu_ms': statistics.median(res['cpu']),
            'cpu_ms_all': res['cpu'],
            'wall_ms': statistics.median(res['wall']),
            'storage_calls': statistics.median(res['calls']),
            'commits': statistics.median(res['commits']),
            'rss_clones': rss['clones'],
            'rss_before_mib': rss['rss_before_kib'] and
            rss['rss_before_kib'] / 1024,
            'rss_after_mib': rss['rss_after_kib'] and
            rss['rss_after_kib'] / 1024,
            'rss_kib_per_clone': growth,
            'rss_kib_per_clone_2nd_half': growth_2nd,
        })
    if args.json:
        print(json.dumps({'rows': rows, 'open': opened,
                          'rounds': args.rounds, 'clones': args.clones},
                         indent=2))
        return

    print(f'\nPer clone of a 1 KiB image, fake regions (TaskFlow, its '
          f"persistence and the tasks' own work against the fakes); "
          f'medians of {args.rounds} interleaved rounds x {args.clones} '
          f'clones; {os.cpu_count()} cores.\n')
    print('| backend | variant | CPU ms/clone | wall ms/clone | storage calls '
          '/clone | commits/clone | RSS before -> after (MiB) | RSS growth '
          'KiB/clone (2nd half) |')
    print('|---|---|---:|---:|---:|---:|---|---:|')
    for row in rows:
        rss = (f"{_fmt(row['rss_before_mib'])} -> "
               f"{_fmt(row['rss_after_mib'])} ({row['rss_clones']} clones)"
               if row['rss_clones'] else '-')
        print(f"| {LABELS[row['backend']]} | {row['variant']} | "
              f"{_fmt(row['cpu_ms'])} | {_fmt(row['wall_ms'])} | "
              f"{_fmt(row['storage_calls'], 0)} | "
              f"{_fmt(row['commits'], 0)} | {rss} | "
              f"{_fmt(row['rss_kib_per_clone'])} "
              f"({_fmt(row['rss_kib_per_clone_2nd_half'])}) |")
    by = {(r['backend'], r['variant']): r for r in rows}
    work = by[('tasks', 'tasks')]['cpu_ms']
    print()
    print(f"The tasks' own work (their execute() against the fakes, no "
          f"TaskFlow): {work:.1f} ms CPU per clone; orchestration overhead = "
          f"CPU per clone - that.")
    for kind in backends:
        s, new = by[(kind, 'stock')], by[(kind, 'cached')]
        overhead = new['cpu_ms'] - work
        print(f'{LABELS[kind]}: stock/cached CPU '
              f'{s["cpu_ms"] / new["cpu_ms"]:.1f}x, '
              f'wall {s["wall_ms"] / new["wall_ms"]:.1f}x; cached '
              f'{new["cpu_ms"]:.1f} ms CPU per clone, orchestration '
              f'overhead {overhead:.1f} ms vs target {TARGET_CPU_MS} ms '
              f'({"met" if overhead <= TARGET_CPU_MS else "missed"}); '
              f'get_backend() on an up-to-date schema: stock '
              f'{opened[kind]["stock"]["cpu_ms"]:.0f} ms CPU / '
              f'{opened[kind]["stock"]["wall_ms"]:.0f} ms wall, cached '
              f'{opened[kind]["cached"]["cpu_ms"]:.0f} / '
              f'{opened[kind]["cached"]["wall_ms"]:.0f} ms')
        if args.compare:
            old = by[(kind, 'before')]
            rounds = [o / n for o, n in zip(old['cpu_ms_all'],
                                            new['cpu_ms_all'])]
            print(f'{LABELS[kind]}: {args.compare} (before) '
                  f'{old["cpu_ms"]:.1f}'
                  f' ms CPU per clone, this code (cached) '
                  f'{new["cpu_ms"]:.1f} ms: '
                  f'{new["cpu_ms"] - old["cpu_ms"]:+.1f}'
                  f' ms; before/after per round '
                  f'{", ".join(f"{r:.2f}" for r in rounds)}')
    floor = by[('memory', 'memory')]
    print(f'TaskFlow\'s engine alone (in-memory backend): '
          f'{floor["cpu_ms"]:.1f} ms CPU per clone, '
          f'{floor["cpu_ms"] - work:.1f} ms of it orchestration.')


if __name__ == '__main__':
    main()

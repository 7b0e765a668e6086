"""Benchmark: clone-manage's flow inspection with many stored clones, and
the purge keeping the persistence bounded.

    .venv/bin/python bench/manage.py [--clones 10000] [--purge 1000]
        [--rounds 5] [--dir DIR] [--show-only | --recorder-only]

One story, top to bottom.  A sqlite persistence (the embedded default) is
filled with ``--clones`` finished clones, each the flow detail a conductor
leaves (every step of the clone graph SUCCESS, ~25 recorded transitions),
plus one clone still running (its copy RUNNING, with progress).  Then:

1. ``flow show`` on the running clone, ``--rounds`` times, side by side
   with the same read through TaskFlow's persistence API (what the command
   did before it read the tables itself, :mod:`conductor.flowtables`):
   in-process (open the persistence, load the clone, build the rows), and
   as a cold process (interpreter start and imports included):
   ``clone-manage flow show`` against a process that imports clone-manage
   and loads the clone through ``runner.load_flow``.  Medians.
   (``--show-only`` runs just this part.)
2. Bounded: the file's size and rows; ``flow purge`` of everything
   finished (``--purge`` clones at a time, as a periodic purge would find
   them); ``--purge`` new finished clones stored and purged again, three
   times: the file stops growing (sqlite reuses the freed pages) and the
   rows go back to the running clone's.
3. What recording the history costs a conductor: clones of a 1 KiB image
   run in-process against the fake Glance regions of tests/unit/fakes.py
   on a sqlite file (the default lean saves), with and without
   ``HistoryRecorder`` on the engine, interleaved, ``--rounds`` times:
   CPU and wall per clone, database transactions per clone.
   (``--recorder-only`` runs just this part.)
"""
import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import sqlalchemy as sa  # noqa: E402
from taskflow.persistence import models  # noqa: E402

from conductor import flowstate  # noqa: E402
from conductor import flowtables  # noqa: E402
from conductor import opts  # noqa: E402
from conductor import persistence  # noqa: E402
from conductor import purge  # noqa: E402
from conductor import runner  # noqa: E402


def conf_for(path):
    conf_file = os.path.join(os.path.dirname(path), 'bench.conf')
    with open(conf_file, 'w') as f:
        f.write(f'[persistence]\nconnection = sqlite:///{path}\n')
    return conf_file, opts.new_conf(['--config-file', conf_file],
                                    default_config_files=[], log=False)


def store_clones(conf, backend, n, state='SUCCESS'):
    """``n`` clones as a conductor leaves them; returns their ids."""
    ids = []
    now = time.time()
    for i in range(n):
        store = runner.build_store(conf, 'trust-bench', {
            'source_region': 'RegionOne', 'source_image_id': str(uuid.uuid4()),
            'target_region': 'RegionTwo'})
        book, fd, flow = runner.save_new_flow(conf, backend, store)
        history = [[now, 'flow', 'clone', 'RUNNING', 'bench-conductor']]
        for ad in fd:
            if ad.name.startswith('_'):
                continue
            running = state == 'RUNNING' and ad.name == 'clone-copy-data'
            ad.state = 'RUNNING' if running else (
                'PENDING' if state == 'RUNNING' and ad.name in (
                    'clone-verify', 'clone-activate', 'clone-release-trust')
                else 'SUCCESS')
            if running:
                ad.meta['progress_details'] = {'progress': 0.4, 'details': {
                    'bytes_done': 400 << 20, 'bytes_total': 1 << 30,
                    'percent': 39.1, 'rate_bytes_per_s': 90 << 20,
                    'strategy': 'http'}}
            if not isinstance(ad, models.RetryDetail):
                ad.results = {'id': str(uuid.uuid4()), 'status': 'ok'} \
                    if ad.state == 'SUCCESS' else None
            history += [[now, 'task', ad.name, 'RUNNING', 'bench-conductor'],
                        [now + 0.1, 'task', ad.name, ad.state,
                         'bench-conductor']]
        fd.state = state
        fd.meta['history'] = history
        with contextlib.closing(backend.get_connection()) as conn:
            conn.update_flow_details(fd)
        ids.append(fd.uuid)
    return ids


def rows(backend):
    with backend.engine.connect() as c:
        return {t: c.execute(sa.select(sa.func.count()).select_from(
            getattr(backend.tables, t))).scalar_one()
            for t in ('logbooks', 'flowdetails', 'atomdetails')}


def show_in_process(conf, clone_id):
    """Seconds to open the persistence, read the clone, build the rows."""
    t0 = time.perf_counter()
    db = flowtables.engine(conf.persistence.connection)
    fd = flowtables.load(db, clone_id)
    flowstate.atom_rows(fd, flowstate.order(fd))
    elapsed = time.perf_counter() - t0
    db.dispose()
    return elapsed


def load_in_process_via_taskflow(conf, clone_id):
    """Seconds to open TaskFlow's backend and load the clone through its
    API (the rows aside).
    """
    t0 = time.perf_counter()
    backend = persistence.get_backend(conf)
    runner.load_flow(backend, clone_id)
    elapsed = time.perf_counter() - t0
    backend.close()
    return elapsed


def _child(cmd):
    """(wall, CPU) seconds of a process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime +
                  after.ru_stime - before.ru_stime)


def show_process(conf_file, clone_id):
    """(wall, CPU) seconds of a ``clone-manage flow show`` process."""
    return _child([os.path.join(os.path.dirname(sys.executable),
                                'clone-manage'), '--config-file', conf_file,
                   'flow', 'show', clone_id, '-f', 'json'])


def taskflow_process(conf_file, clone_id):
    """(wall, CPU) seconds of a process that imports clone-manage and
    loads the clone through TaskFlow's persistence API.
    """
    return _child([sys.executable, '-c', (
        'from conductor.cmd import manage\n'
        'from conductor import opts, persistence, runner\n'
        f'conf = opts.new_conf(["--config-file", "{conf_file}"], '
        'default_config_files=[], log=False)\n'
        f'runner.load_flow(persistence.get_backend(conf), "{clone_id}")\n')])


def recorder_cost(d, rounds, clones=20):
    """Median (cpu ms, wall ms, commits) per clone, without and with the
    history recorder.
    """
    import gc

    from clone_flows import constants as c
    from conductor.worker import history
    from tests.unit import fakes
    _, conf = conf_for(os.path.join(d, 'recorder.sqlite'))
    conf.set_override('copy_retry_delay', 0, group='clone')
    backend = persistence.get_backend(conf)
    commits = [0]
    sa.event.listen(backend.engine, 'commit',
                    lambda *a: commits.__setitem__(0, commits[0] + 1))
    auto = getattr(backend, '_autocommit', None)
    if auto is not None:
        sa.event.listen(auto, 'before_cursor_execute',
                        lambda *a: commits.__setitem__(0, commits[0] + 1))
    cloud = {'R1': fakes.FakeGlanceRegion('R1'),
             'R2': fakes.FakeGlanceRegion('R2')}
    src = cloud['R1'].add_image(os.urandom(1024))
    services = fakes.FakeServices(conf, cloud)

    def clone(record):
        store = {c.CLONE_ID: str(uuid.uuid4()), c.SOURCE_REGION: 'R1',
                 c.SOURCE_IMAGE_ID: src['id'], c.TARGET_REGION: 'R2',
                 c.TRUST_ID: 'trust-bench', c.OVERRIDES: {},
                 c.STRATEGY_NAME: 'auto'}
        book, fd, flow = runner.save_new_flow(conf, backend, store)
        engine = runner.prepare_engine(conf, backend, book, fd, flow=flow,
                                       services=services)
        if record:
            with history.HistoryRecorder(engine, 'bench'):
                out = runner.run(engine, backend, store[c.CLONE_ID])
        else:
            out = runner.run(engine, backend, store[c.CLONE_ID])
        assert out.succeeded, out.message
        for region in cloud.values():
            region.calls.clear()
        cloud['R2'].images.clear()
        cloud['R2'].data.clear()

    for _ in range(5):
        clone(False)
        clone(True)
    got = {False: [], True: []}
    for r in range(rounds):
        for record in ((False, True) if r % 2 == 0 else (True, False)):
            gc.collect()
            commits[0] = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(clones):
                clone(record)
            got[record].append(((time.process_time() - cpu0) * 1000 / clones,
                                (time.perf_counter() - wall0) * 1000 / clones,
                                commits[0] / clones))
    backend.close()
    print(f'\n| {clones} clones x {rounds} rounds, sqlite | CPU/clone | '
          f'wall/clone | transactions/clone |\n|---|---|---|---|')
    for record in (False, True):
        xs = got[record]
        print(f"| {'with' if record else 'without'} the history recorder | "
              f"{statistics.median(x[0] for x in xs):.1f} ms | "
              f"{statistics.median(x[1] for x in xs):.1f} ms | "
              f"{statistics.median(x[2] for x in xs):.1f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--clones', type=int, default=10000)
    p.add_argument('--purge', type=int, default=1000)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--dir')
    p.add_argument('--recorder-only', action='store_true')
    p.add_argument('--show-only', action='store_true')
    a = p.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix='bench-manage-')
    if a.recorder_only:
        return recorder_cost(d, a.rounds)
    path = os.path.join(d, 'flows.sqlite')
    conf_file, conf = conf_for(path)
    backend = persistence.get_backend(conf)
    t0 = time.perf_counter()
    store_clones(conf, backend, a.clones)
    [running] = store_clones(conf, backend, 1, state='RUNNING')
    print(f'stored {a.clones} finished clones + 1 running in '
          f'{time.perf_counter() - t0:.0f} s ({path})')
    got = {k: [] for k in ('inproc', 'inproc_tf', 'proc', 'proc_tf')}
    for r in range(a.rounds):        # interleaved, the order alternating
        pairs = [('proc', lambda: show_process(conf_file, running)),
                 ('proc_tf', lambda: taskflow_process(conf_file, running))]
        for key, run in (pairs if r % 2 == 0 else pairs[::-1]):
            got[key].append(run())
        got['inproc'].append(show_in_process(conf, running))
        got['inproc_tf'].append(load_in_process_via_taskflow(conf, running))
    print(f'\n| flow show, running clone, {a.clones} stored | median | '
          f'min | max |\n|---|---|---|---|')
    for name, xs in (
            ('in-process: read the clone (flowtables) and build the rows',
             got['inproc']),
            ('in-process: load the clone through TaskFlow\'s API',
             got['inproc_tf']),
            ('clone-manage flow show process, wall',
             [w for w, _ in got['proc']]),
            ('clone-manage flow show process, CPU',
             [c for _, c in got['proc']]),
            ('process loading it through TaskFlow\'s API, wall',
             [w for w, _ in got['proc_tf']]),
            ('process loading it through TaskFlow\'s API, CPU',
             [c for _, c in got['proc_tf']])):
        print(f'| {name} | {statistics.median(xs) * 1000:.0f} ms | '
              f'{min(xs) * 1000:.0f} ms | {max(xs) * 1000:.0f} ms |')
    if a.show_only:
        backend.close()
        return
    print('\n| step | flow/atom/logbook rows | file size |\n|---|---|---|')

    def line(what):
        r = rows(backend)
        print(f"| {what} | {r['flowdetails']}/{r['atomdetails']}/"
              f"{r['logbooks']} | {os.path.getsize(path) / 2**20:.1f} MiB |")
    line(f'{a.clones} finished + 1 running')
    t0 = time.perf_counter()
    purged = purge.purge(backend, 0)
    print(f'| purge of {len(purged)} finished clones '
          f'({time.perf_counter() - t0:.1f} s) | | |')
    line('after the purge')
    for i in range(3):
        store_clones(conf, backend, a.purge)
        line(f'{a.purge} more finished (round {i + 1})')
        t0 = time.perf_counter()
        n = len(purge.purge(backend, 0))
        line(f'purged {n} ({time.perf_counter() - t0:.2f} s)')
    backend.close()
    recorder_cost(d, a.rounds)


if __name__ == '__main__':
    main()

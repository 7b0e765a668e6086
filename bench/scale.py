"""Scale of fair scheduling: thousands of pending clones on the real
ZooKeeper, several conductor processes.

**No image data, no Glance, no persistence.**  Each conductor is a real
TaskFlow ``NonBlockingConductor`` loop over glance-clone's own
:class:`conductor.jobboard.FairJobBoard` (the board clone-conductor uses,
with its BoardWatch pause), whose ``_dispatch_job`` only sleeps
``--run-ms`` instead of running a clone graph: what is measured is the cost
of *finding and starting* work, which is what grows with a backlog.
Pending clones are queue entries made with :func:`conductor.pending.enqueue`
exactly as clone-api makes them.

For each backlog size (``--pending``, spread over ``--projects``):

* **reads/start**: ZooKeeper reads (get, get_children, exists, sync and
  their async forms; a KazooClient subclass counts each look-up of those
  public methods, one per call, kazoo's own retries included) of all
  conductors divided by the clones started in the window, and the znode
  names get_children returned per start;
* **CPU ms/start**: user+system CPU of all conductor processes in the
  window, per clone started;
* **new project, post -> start**: a project with nothing running posts one
  clone while every conductor is busy with the backlog; time until a
  conductor has started it (median and worst of ``--probes``);
* **first-look reads**: reads a conductor's board makes when it starts,
  until it knows the whole backlog.

``--stock`` runs the same on TaskFlow's own ZooKeeper board and conductor
(every pending clone a job on the board, walked in posting order: what
glance-clone did before fair scheduling), for the "before" column.

Usage (local cloud up)::

    .venv/bin/python bench/scale.py --pending 100,10000 [--stock]
"""
import argparse
import json
import multiprocessing
import os
import pathlib
import resource
import statistics
import sys
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kazoo import client as kazoo_client  # noqa: E402

READS = ('get', 'get_children', 'exists', 'sync', 'get_async',
         'get_children_async', 'exists_async', 'sync_async')


class CountingClient(kazoo_client.KazooClient):
    """A kazoo client that counts its reads (public methods only)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.names = 0

    def __getattribute__(self, name):
        if name in READS:
            object.__setattr__(self, 'reads',
                               object.__getattribute__(self, 'reads') + 1)
        if name == 'get_children':
            real = object.__getattribute__(self, name)

            def get_children(*a, **kw):
                out = real(*a, **kw)
                children = out[0] if isinstance(out, tuple) else out
                object.__setattr__(
                    self, 'names',
                    object.__getattribute__(self, 'names') + len(children))
                return out
            return get_children
        return object.__getattribute__(self, name)


def _cloud():
    state = os.environ.get('LOCALCLOUD_DIR', str(ROOT / '.localcloud'))
    return json.loads((pathlib.Path(state) / 'cloud.json').read_text())


def make_client(cloud):
    auth = cloud['zookeeper_auth']
    from kazoo import security
    acl = [security.make_digest_acl(auth['username'], auth['password'],
                                    all=True)]
    client = CountingClient(
        hosts=cloud['zookeeper'], timeout=10.0, default_acl=acl,
        auth_data=[('digest', f"{auth['username']}:{auth['password']}")])
    client.start(timeout=20)
    return client


# -- a conductor process -----------------------------------------------------

def conductor_main(name, path, stock, limit, slots, run_s, commands, replies):
    import logging
    logging.basicConfig(level=logging.WARNING)
    from taskflow.conductors.backends import impl_nonblocking
    from taskflow.jobs import backends as job_backends

    from conductor import jobboard
    from conductor.worker import guards

    cloud = _cloud()
    client = make_client(cloud)
    if stock:
        board = job_backends.fetch(name, {'board': 'zookeeper', 'path': path},
                                   client=client)
    else:
        board = jobboard.FairJobBoard(name, {'path': path}, client=client,
                                      persistence=None, max_running=limit)
    board.connect()
    started = []

    class BenchConductor(impl_nonblocking.NonBlockingConductor):
        def _dispatch_job(self, job):
            started.append((job.details.get('flow_uuid'), time.time()))
            time.sleep(run_s)
            return True

    cond = BenchConductor(name, board, max_simultaneous_jobs=slots,
                          wait_timeout=guards.BoardWatch(client, path, 0.5))
    runner = threading.Thread(target=cond.run, daemon=True)
    t0 = time.monotonic()
    runner.start()
    while True:
        cmd = commands.get()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        replies.put({'name': name, 'started': list(started),
                     'reads': client.reads, 'names': client.names,
                     'cpu': usage.ru_utime + usage.ru_stime,
                     'up': time.monotonic() - t0})
        if cmd == 'stop':
            cond.stop()
            runner.join(10)
            board.close()
            client.stop()
            return


# -- the bench ---------------------------------------------------------------

def enqueue_many(client, path, stock, projects, per_project):
    """Pending clones, oldest first in round-robin across ``projects``."""
    from conductor import pending
    from taskflow.jobs import base
    created = []
    for i in range(per_project):
        batch = []
        for p in projects:
            clone_id = str(uuid.uuid4())
            if stock:
                posting = base.format_posting(
                    clone_id, f'clone-{clone_id}',
                    details={'flow_uuid': clone_id, 'project_id': p})
                batch.append(client.create_async(
                    f'{path}/job', json.dumps(posting).encode(),
                    sequence=True, makepath=True))
            else:
                stamp = int(time.time() * 1000)
                batch.append(client.create_async(
                    f'{pending.pending_root(path)}/{pending.project_node(p)}/'
                    f'p{stamp:013d}-{clone_id}-',
                    json.dumps({'clone_id': clone_id,
                                'project_id': p}).encode(),
                    sequence=True, makepath=True))
            created.append(clone_id)
        for r in batch:
            r.get(timeout=60)
    return created


def first_look_reads(path, stock, n_projects, per):
    """Reads a conductor's board makes before it knows the whole backlog."""
    from taskflow.jobs import backends as job_backends

    from conductor import jobboard
    client = make_client(_cloud())
    try:
        if stock:
            board = job_backends.fetch('look', {'board': 'zookeeper',
                                                'path': path}, client=client)
            board.connect()
            known = lambda: board.job_count >= n_projects * per  # noqa
        else:
            board = jobboard.FairJobBoard('look', {'path': path},
                                          client=client, persistence=None)
            board.connect()
            board.iterjobs()
            known = lambda: sum(  # noqa
                len(board.index.order(0, skip=())) for _ in (0,)) >= \
                n_projects
        deadline = time.monotonic() + 300
        while not known() and time.monotonic() < deadline:
            time.sleep(0.05)
        reads = client.reads
        board.close()
        return reads
    finally:
        client.stop()
        client.close()


class Fleet:
    def __init__(self, args, path, stock):
        # spawned, not forked: this process's kazoo threads may hold locks
        ctx = multiprocessing.get_context('spawn')
        self.procs, self.commands, self.replies = [], [], ctx.Queue()
        for i in range(args.conductors):
            q = ctx.Queue()
            p = ctx.Process(
                target=conductor_main,
                args=(f'bench-{i}', path, stock, args.limit, args.slots,
                      args.run_ms / 1000.0, q, self.replies))
            p.start()
            self.procs.append(p)
            self.commands.append(q)

    def look(self, cmd='look'):
        for q in self.commands:
            q.put(cmd)
        return [self.replies.get(timeout=60) for _ in self.commands]

    def stop(self):
        out = self.look('stop')
        for p in self.procs:
            p.join(20)
        return out


def _sum(looks, key):
    return sum(x[key] for x in looks)


def _started(looks):
    return {cid: t for x in looks for cid, t in x['started']}


def run_case(args, client, pending_n, stock):
    path = f'/glance-clone-bench/scale-{uuid.uuid4().hex[:8]}/jobs'
    projects = [f'project-{i:03d}' for i in range(args.projects)]
    per = max(1, pending_n // len(projects))
    t = time.monotonic()
    enqueue_many(client, path, stock, projects, per)
    post_s = time.monotonic() - t
    first_look = first_look_reads(path, stock, len(projects), per)
    fleet = Fleet(args, path, stock)
    try:
        # the conductors' first look, then a window of steady starting
        time.sleep(2.0)
        first = fleet.look()
        window = min(args.window, pending_n // 2)
        deadline = time.monotonic() + args.timeout
        while len(_started(fleet.look())) < len(_started(first)) + window \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        second = fleet.look()
        n = len(_started(second)) - len(_started(first))
        reads = (_sum(second, 'reads') - _sum(first, 'reads')) / max(n, 1)
        names = (_sum(second, 'names') - _sum(first, 'names')) / max(n, 1)
        cpu = (_sum(second, 'cpu') - _sum(first, 'cpu')) / max(n, 1) * 1000
        waits = []
        for k in range(args.probes):
            project = f'newcomer-{uuid.uuid4().hex[:6]}'
            [clone] = enqueue_many(client, path, stock, [project], 1)
            posted = time.time()
            limit_at = time.monotonic() + args.probe_timeout
            when = None
            while time.monotonic() < limit_at:
                when = _started(fleet.look()).get(clone)
                if when:
                    break
                time.sleep(0.05)
            waits.append(when - posted if when else None)
    finally:
        fleet.stop()
        client.delete(path.rsplit('/', 1)[0], recursive=True)
    done = [w for w in waits if w is not None]
    return {'board': 'stock' if stock else 'fair', 'pending': per *
            len(projects), 'started': n, 'reads_per_start': round(reads, 1),
            'names_per_start': round(names, 1), 'cpu_ms_per_start':
            round(cpu, 2),
            'newcomer_median_s': round(statistics.median(done), 2)
            if done else None,
            'newcomer_worst_s': round(max(done), 2) if len(done) == len(waits)
            else f'>{args.probe_timeout:g}', 'first_look_reads': first_look,
            'post_s': round(post_s, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--pending', default='100,10000',
                   help='backlog sizes (comma-separated)')
    p.add_argument('--projects', type=int, default=100)
    p.add_argument('--conductors', type=int, default=4)
    p.add_argument('--slots', type=int, default=8,
                   help='clones one conductor runs at a time')
    p.add_argument('--limit', type=int, default=4,
                   help='max_running_clones_per_project (fair board)')
    p.add_argument('--run-ms', type=int, default=500,
                   help='how long a stub clone "runs"')
    p.add_argument('--window', type=int, default=300,
                   help='clones started in the measured window')
    p.add_argument('--probes', type=int, default=5)
    p.add_argument('--probe-timeout', type=float, default=30.0)
    p.add_argument('--timeout', type=float, default=300.0)
    p.add_argument('--stock', action='store_true',
                   help='also run TaskFlow\'s stock board (before)')
    p.add_argument('--stock-only', action='store_true',
                   help='run TaskFlow\'s stock board only')
    args = p.parse_args(argv)
    client = make_client(_cloud())
    rows = []
    try:
        for stock in ([True] if args.stock_only else
                      [False, True] if args.stock else [False]):
            for n in (int(x) for x in args.pending.split(',')):
                row = run_case(args, client, n, stock)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        client.stop()
    keys = list(rows[0])
    print('\n| ' + ' | '.join(keys) + ' |')
    print('|' + '---|' * len(keys))
    for r in rows:
        print('| ' + ' | '.join(str(r[k]) for k in keys) + ' |')


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""clone-api latency: POST /v2/tasks and GET /v2/tasks/{id}, 20 clients.

    .venv/bin/python bench/api_latency.py [--requests 400] [--concurrency 20]
                                          [--workers 2] [--threads 8]

Starts clone-api (gunicorn, gthread) on a free loopback port against the
local cloud (``tools/localcloud up`` first), with real Keystone tokens, and
its own jobboard path with no conductor (so the clones only queue). Each
client thread holds one HTTP connection and one ``demo`` token. A POST
creates a real Keystone trust, a task record and a jobboard job; a GET
reads a task back. Prints median, p90, p99 and max in milliseconds, and the
throughput; ``--json`` for a machine-readable line.
"""
import argparse
import concurrent.futures
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.functional.conftest import user_session  # noqa: E402
from tests.functional import test_api as helpers  # noqa: E402

IMAGE = '6f1d2a3b-1111-4c4c-8d8d-0123456789ab'


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(name, samples, wall):
    ms = [s * 1000 for s in samples]
    return {'call': name, 'n': len(ms),
            'median_ms': round(statistics.median(ms), 1),
            'p90_ms': round(percentile(ms, 90), 1),
            'p99_ms': round(percentile(ms, 99), 1),
            'max_ms': round(max(ms), 1),
            'per_s': round(len(ms) / wall, 1)}


def run(url, tokens, n, concurrency, make_request):
    local = threading.local()

    def one(i):
        if not hasattr(local, 'session'):
            local.session = requests.Session()
            local.token = tokens[i % len(tokens)]
        t0 = time.perf_counter()
        r = make_request(local.session, local.token, i)
        elapsed = time.perf_counter() - t0
        return elapsed, r
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(n)))
    return results, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--requests', type=int, default=400)
    p.add_argument('--concurrency', type=int, default=20)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--threads', type=int, default=8)
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)

    cloud = json.loads(subprocess.run(
        [sys.executable, str(ROOT / 'tools/localcloud'), 'env', '--json'],
        check=True, capture_output=True, text=True).stdout)
    out = pathlib.Path(tempfile.mkdtemp(prefix='api-latency-'))
    board = f'/glance-clone-bench/{uuid.uuid4()}'
    files = helpers.write_api_conf(cloud, out, board)
    port = helpers.free_port()
    url = f'http://127.0.0.1:{port}'
    proc = subprocess.Popen(
        [str(ROOT / '.venv/bin/clone-api'), '--config-file',
         str(files['clone-api']), '--bind', f'127.0.0.1:{port}',
         '--workers', str(args.workers), '--threads', str(args.threads)],
        stdout=open(out / 'clone-api.stdout', 'w'), stderr=subprocess.STDOUT)
    try:
        helpers.wait_http(url + '/versions', proc=proc)
        tokens = [user_session(cloud, 'demo').get_token()
                  for _ in range(args.concurrency)]
        body = json.dumps({'type': 'clone', 'input': {
            'source_region': 'RegionOne', 'source_image_id': IMAGE}})

        def post(session, token, i):
            r = session.post(url + '/v2/tasks', data=body, headers={
                'X-Auth-Token': token, 'Content-Type': 'application/json'})
            assert r.status_code == 201, r.text
            return r.json()['id']

        # Warm-up: every worker validates each token once (auth_token cache).
        run(url, tokens, args.concurrency * 2, args.concurrency,
            lambda s, t, i: s.get(url + '/v2/tasks?limit=1',
                                  headers={'X-Auth-Token': t}))
        posts, post_wall = run(url, tokens, args.requests, args.concurrency,
                               post)
        ids = [task_id for _, task_id in posts]

        def get(session, token, i):
            r = session.get(f'{url}/v2/tasks/{ids[i % len(ids)]}',
                            headers={'X-Auth-Token': token})
            assert r.status_code == 200, r.text
            return None
        gets, get_wall = run(url, tokens, args.requests, args.concurrency,
                             get)
        rows = [summary('POST /v2/tasks', [e for e, _ in posts], post_wall),
                summary('GET /v2/tasks/{id}', [e for e, _ in gets], get_wall)]
    finally:
        helpers.stop(proc)
        _drop_board(cloud, board)
    if args.json:
        print(json.dumps({'concurrency': args.concurrency,
                          'workers': args.workers, 'threads': args.threads,
                          'results': rows}))
    else:
        print(f'clone-api, {args.workers} gunicorn workers x {args.threads} '
              f'threads, {args.concurrency} concurrent clients, '
              f'{args.requests} requests each:')
        for r in rows:
            print(f"  {r['call']:<20} median {r['median_ms']:7.1f} ms   "
                  f"p90 {r['p90_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   "
                  f"max {r['max_ms']:7.1f} ms   {r['per_s']:6.1f}/s")
    return 0


def _drop_board(cloud, board):
    """Remove the queued (never run) benchmark jobs from ZooKeeper."""
    try:
        from kazoo.client import KazooClient
        auth = cloud['zookeeper_auth']      # the board is its user's alone
        zk = KazooClient(hosts=cloud['zookeeper'], auth_data=[
            ('digest', f"{auth['username']}:{auth['password']}")])
        zk.start(timeout=5)
        zk.delete(board, recursive=True)
        zk.stop()
        zk.close()
    except Exception as e:  # noqa: BLE001 - cleanup is best effort
        print(f'(could not remove {board}: {e})', file=sys.stderr)


if __name__ == '__main__':
    sys.exit(main())

"""Fairness, before and after: project A posts 30 clones, then project B
posts one; where does B's clone start?

Real clone-api and clone-conductor processes on the local cloud (small
images, 256 KiB: what is measured is the order, not the copy).  Prints, for
``--conductors`` 1 and 2 (2 slots each): how many of A's clones started
after B's was queued and before it, how many of A's were still waiting when
B's started, and B's wait from its post to its start.

``--code DIR`` runs clone-api and the conductors from another checkout (for
example ``git worktree add /tmp/before <commit>``) with this tree's test
harness: the "before" column.

Usage (local cloud up)::

    .venv/bin/python bench/fairness.py [--code /tmp/before]
"""
import argparse
import datetime
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(cloud, n_conductors, workdir):
    from tests.functional.conftest import user_session
    from tests.functional.test_api import delete_trusts_and_jobs
    from tests.functional.test_api import running_api
    from tests.functional.test_api import stop
    from tests.functional.test_fair_scheduling import _events
    from tests.functional.test_fair_scheduling import _post
    from tests.functional.test_fair_scheduling import _remove
    from tests.functional.test_fair_scheduling import _sources
    from tests.functional.test_fair_scheduling import _statuses
    from tests.functional.test_task_record_fencing import _conductor
    from tests.functional.test_task_record_fencing import _until
    sources = _sources(cloud, ('demo', 'alt_demo'))
    tokens = {u: user_session(cloud, u).get_token() for u in sources}
    extra = ('\n[conductor]\nmax_running_clones_per_project = 0\n'
             'max_concurrent_clones = 2\n')
    names = [f'c{i}' for i in range(n_conductors)]
    try:
        with running_api(cloud, workdir, conductor=False,
                         extra_conf=extra) as api:
            procs = [_conductor(api, name) for name in names]
            try:
                a = [_post(api, tokens['demo'], sources['demo'].id)
                     for _ in range(30)]
                b = _post(api, tokens['alt_demo'], sources['alt_demo'].id)
                queued = datetime.datetime.now()
                _until(lambda: all(
                    s in ('success', 'failure') for s in
                    [*_statuses(api, tokens['demo']).values(),
                     *_statuses(api, tokens['alt_demo']).values()]),
                    'the 31 clones to end', timeout=1800)
            finally:
                for proc in procs:
                    stop(proc)
            events = _events(api, names)
            delete_trusts_and_jobs(cloud, api)
    finally:
        _remove(cloud, sources)
    starts = [(when, clone) for when, clone, kind, attempt in events
              if kind == 'start' and attempt == 1]
    order = [clone for _, clone in starts]
    at = order.index(b)
    return {'conductors': n_conductors,
            'A started after B was queued, before B':
                sum(1 for when, c in starts[:at] if when >= queued),
            'A still waiting when B started': sum(
                1 for c in order[at + 1:] if c in a),
            'B wait s': round((starts[at][0] - queued).total_seconds(), 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--code', help='checkout that clone-api and the '
                                  'conductors run from')
    p.add_argument('--conductors', default='1,2')
    args = p.parse_args(argv)
    import json
    state = os.environ.get('LOCALCLOUD_DIR', str(ROOT / '.localcloud'))
    cloud = json.loads((pathlib.Path(state) / 'cloud.json').read_text())
    if args.code:
        os.environ['PYTHONPATH'] = str(pathlib.Path(args.code).resolve())
    for n in (int(x) for x in args.conductors.split(',')):
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(run(cloud, n, pathlib.Path(d))), flush=True)


if __name__ == '__main__':
    main()

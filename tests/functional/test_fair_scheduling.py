"""Fair scheduling across projects, on the real ZooKeeper and local cloud:
clone-api takes the clones (real trusts, records, queue entries), real
clone-conductor processes start them.

Which clone started when is read from the conductors' logs ("Clone X:
attempt N on conductor C" when its engine is built, "Clone X ended" when
its outcome is recorded): one clock, this host's.
"""
import datetime
import os
import re

import pytest
import requests

from conductor import pending
from tests.functional.conftest import user_session
from tests.functional.test_api import delete_trusts_and_jobs
from tests.functional.test_api import running_api
from tests.functional.test_api import stop
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import upload
from tests.functional.test_task_record_fencing import _conductor
from tests.functional.test_task_record_fencing import _log
from tests.functional.test_task_record_fencing import _until

LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*?'
                  r'Clone ([0-9a-f-]{36})'
                  r'(: attempt (\d+) on conductor | ended)', re.M)


def _post(api, token, image_id):
    r = requests.post(f"{api['url']}/v2/tasks", timeout=60,
                      headers={'X-Auth-Token': token},
                      json={'type': 'clone', 'input': {
                          'source_region': 'RegionOne',
                          'source_image_id': image_id}})
    assert r.status_code == 201, r.text
    return r.json()['id']


def _statuses(api, token):
    r = requests.get(f"{api['url']}/v2/tasks?limit=1000", timeout=60,
                     headers={'X-Auth-Token': token})
    assert r.status_code == 200, r.text
    return {t['id']: t['status'] for t in r.json()['tasks']}


def _events(api, names):
    """``[(time, clone id, 'start' | 'end', attempt)]`` from the
    conductors' logs, in time order.
    """
    events = []
    for name in names:
        for m in LINE.finditer(_log(api, name)):
            when = datetime.datetime.strptime(m.group(1),
                                              '%Y-%m-%d %H:%M:%S.%f')
            kind = 'end' if m.group(3) == ' ended' else 'start'
            events.append((when, m.group(2), kind,
                           int(m.group(4)) if m.group(4) else None))
    return sorted(events)


def _sources(cloud, users):
    """One small private image per user, in its own project."""
    return {user: upload(cloud, os.urandom(256 * 1024), user=user,
                         name=f'fair-{user}') for user in users}


def _remove(cloud, sources):
    from tests.functional.conftest import glance_client
    for user, src in sources.items():
        for region in ('RegionTwo', 'RegionOne'):
            gc = glance_client(cloud, user, region)
            ids = [i.id for i in copies_of(cloud, src.id)] \
                if region == 'RegionTwo' else [src.id]
            for image_id in ids:
                try:
                    gc.images.delete(image_id)
                except Exception:
                    pass


@pytest.mark.parametrize('n_conductors', [1, 2])
# (E501: the test's name is its description and its id)
def test_a_new_projects_clone_starts_before_another_projects_backlog_is_through(  # noqa: E501
        cloud, tmp_path, n_conductors):
    """demo posts 30 clones, then alt_demo posts 1: alt_demo's clone is
    among the next clones started (only what conductor slots were already
    starting when it was queued may go first), while demo's backlog still
    waits.  (Before: conductors walked the board in posting order, so it
    started after all 30.)
    """
    sources = _sources(cloud, ('demo', 'alt_demo'))
    tokens = {u: user_session(cloud, u).get_token() for u in sources}
    slots = 2
    extra = (f'\n[conductor]\nmax_running_clones_per_project = 0\n'
             f'max_concurrent_clones = {slots}\n')
    names = [f'c{i}' for i in range(n_conductors)]
    try:
        with running_api(cloud, tmp_path, conductor=False,
                         extra_conf=extra) as api:
            procs = [_conductor(api, name) for name in names]
            try:
                a = [_post(api, tokens['demo'], sources['demo'].id)
                     for _ in range(30)]
                waiting = sum(s == 'pending' for s in
                              _statuses(api, tokens['demo']).values())
                b = _post(api, tokens['alt_demo'], sources['alt_demo'].id)
                b_posted = datetime.datetime.now()      # queued by now
                _until(lambda: all(
                    s in ('success', 'failure') for s in
                    [*_statuses(api, tokens['demo']).values(),
                     *_statuses(api, tokens['alt_demo']).values()]),
                    'the 31 clones to end', timeout=900)
                ended = {**_statuses(api, tokens['demo']),
                         **_statuses(api, tokens['alt_demo'])}
            finally:
                for proc in procs:
                    stop(proc)
            events = _events(api, names)
            delete_trusts_and_jobs(cloud, api)
    finally:
        _remove(cloud, sources)
    assert sorted(ended) == sorted(a + [b])
    assert set(ended.values()) == {'success'}, ended
    assert waiting > 2 * n_conductors * slots, \
        f'demo\'s backlog had drained ({waiting} waiting) before alt_demo ' \
        f'posted: nothing to overtake'
    starts = [(when, clone) for when, clone, kind, _ in events
              if kind == 'start']
    order = [clone for _, clone in starts]
    assert sorted(order) == sorted(a + [b])       # each started once
    b_at = order.index(b)
    # demo clones started after alt_demo's was queued and before it: only
    # those a conductor slot was already starting
    overtaking = [clone for when, clone in starts[:b_at] if when >= b_posted]
    assert len(overtaking) <= n_conductors * slots, (overtaking, b_at)
    # and demo's backlog was not through when alt_demo's clone started
    assert b_at < len(order) - 1, (b_at, waiting)


def test_per_project_limit_holds_across_conductors_without_abandoned_claims(
        cloud, tmp_path):
    """max_running_clones_per_project = 2, two conductors with 4 slots
    each, three projects posting 10 clones each: no project ever runs more
    than 2 at once (though the conductors have room), every clone ends
    success, and each was started exactly once (no claim taken and then
    let go because of the limit).
    """
    users = ('demo', 'alt_demo', 'admin')
    sources = _sources(cloud, users)
    tokens = {u: user_session(cloud, u).get_token() for u in users}
    extra = ('\n[conductor]\nmax_running_clones_per_project = 2\n'
             'max_concurrent_clones = 4\n')
    names = ('c0', 'c1')
    posted = {}
    try:
        with running_api(cloud, tmp_path, conductor=False,
                         extra_conf=extra) as api:
            procs = [_conductor(api, name) for name in names]
            try:
                for _ in range(10):
                    for user in users:
                        posted[_post(api, tokens[user],
                                     sources[user].id)] = user
                _until(lambda: all(
                    _statuses(api, tokens[u]).get(c) in ('success', 'failure')
                    for c, u in posted.items()), 'the 30 clones to end',
                    timeout=900)
                ended = {c: _statuses(api, tokens[u])[c]
                         for c, u in posted.items()}
            finally:
                for proc in procs:
                    stop(proc)
            events = _events(api, names)
            logs = ''.join(_log(api, name) for name in names)
            delete_trusts_and_jobs(cloud, api)
    finally:
        _remove(cloud, sources)
    assert set(ended.values()) == {'success'}, ended
    running = {u: 0 for u in users}
    most = {u: 0 for u in users}
    for _when, clone, kind, attempt in events:
        user = posted[clone]
        if kind == 'start':
            assert attempt == 1, f'clone {clone} started again'
            running[user] += 1
            most[user] = max(most[user], running[user])
        else:
            running[user] -= 1
    assert all(n <= 2 for n in most.values()), most
    assert max(most.values()) == 2, most      # the limit was reached
    starts = [clone for _, clone, kind, _ in events if kind == 'start']
    assert sorted(starts) == sorted(posted)
    assert 'claim released' not in logs


def test_over_the_pending_cap_no_trust_and_no_queue_entry_is_made(
        cloud, tmp_path):
    """[api] max_pending_clones_per_project = 3, no conductor: the 4th
    clone of demo is refused (429, a sentence), Keystone holds no new
    trust of demo's and ZooKeeper no new entry; alt_demo may still post.
    """
    src = upload(cloud, os.urandom(1024), name='pending-cap')
    demo = user_session(cloud, 'demo')
    demo_id = demo.get_user_id()
    project = cloud['users']['demo']['project_id']

    def trusts():
        r = demo.get(f"{cloud['auth_url']}/OS-TRUST/trusts"
                     f"?trustor_user_id={demo_id}")
        return {t['id'] for t in r.json()['trusts']}
    extra = '\n[api]\nmax_pending_clones_per_project = 3\n'
    try:
        with running_api(cloud, tmp_path, conductor=False,
                         extra_conf=extra) as api:
            token = demo.get_token()
            try:
                for _ in range(3):
                    _post(api, token, src.id)
                before = trusts()
                r = requests.post(f"{api['url']}/v2/tasks", timeout=60,
                                  headers={'X-Auth-Token': token},
                                  json={'type': 'clone', 'input': {
                                      'source_region': 'RegionOne',
                                      'source_image_id': src.id}})
                after = trusts()
                entries = _queue(cloud, api, project)
                listed = _statuses(api, token)
            finally:
                delete_trusts_and_jobs(cloud, api)
    finally:
        _remove(cloud, {'demo': src})
    assert r.status_code == 429
    assert r.json()['error']['message'] == (
        f'project {project} already has 3 clones waiting; try again when '
        f'some finish')
    assert after == before
    assert len(entries) == 3 and len(listed) == 3


def _queue(cloud, api, project):
    """demo's queue entries under the API's board."""
    from kazoo.client import KazooClient
    auth = cloud['zookeeper_auth']
    zk = KazooClient(hosts=cloud['zookeeper'], auth_data=[
        ('digest', f"{auth['username']}:{auth['password']}")])
    zk.start(timeout=10)
    try:
        return zk.get_children(f"{pending.pending_root(api['board_path'])}/"
                               f"{pending.project_node(project)}")
    finally:
        zk.stop()
        zk.close()

"""clone-manage against the real local cloud: ZooKeeper, the databases,
Keystone, two Glance regions, clone-api and real conductors.

One site is set up once: a conductor ``p`` that freezes halfway through a
copy (the running clone), a clone trashed by the operator while it waited
(then retried), a cancelled clone, a clone that succeeded, one that failed
and reverted; then ``p`` is killed and conductor ``a`` resumes its clone.
Each command's output (JSON, parsed) is checked on them.
"""
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import types
import uuid

import pytest
from taskflow.utils import misc as tf_misc

from clone_flows import metadata
from conductor import flowgraph
from tests.functional.conftest import glance_client
from tests.functional.conftest import ROOT
from tests.functional.conftest import user_env
from tests.functional.conftest import user_session
from tests.functional.test_api import BIN
from tests.functional.test_api import running_api
from tests.functional.test_clone_http import MiB
from tests.functional.test_clone_http import upload
from tests.functional.test_task_record_fencing import _task
from tests.functional.test_task_record_fencing import post_clone
from tests.unit.test_manage_cli import svg_fills

FAKE_IMAGE = '6f1d2a3b-3333-4c4c-8d8d-0123456789ab'
#: The periodic sweep would remove the trashed clone's trust before the
#: operator retries it (a retry is then refused: tested too).
NO_SWEEP = '\n[conductor]\nsweep_interval = 0\n'
REASON = 'the source image is being replaced, see ticket 42'


def until(predicate, what, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f'timed out waiting for {what}')


class Site:
    def __init__(self, cloud, api, token):
        self.cloud, self.api, self.token = cloud, api, token
        self.dir = api['dir']
        self.procs = {}
        base = api['conf'].with_name('clone-conductor.conf').read_text()
        self.base = base
        self.manage_conf = self.dir / 'manage.conf'
        self.manage_conf.write_text(base.replace('clone-conductor.log',
                                                 'manage.log'))
        self.clones = {}

    def start(self, name, pause_at=None, extra=''):
        conf = self.dir / f'{name}.conf'
        conf.write_text(self.base.replace('clone-conductor.log',
                                          f'{name}.log') + extra)
        cmd = [str(BIN / 'clone-conductor'), '--config-file', str(conf)]
        if pause_at:
            cmd = [sys.executable, '-m', 'tests.functional.pausing_conductor',
                   pause_at, str(self.dir / f'{name}.paused'), '--'] + cmd[1:]
        self.procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, stdout=open(self.dir / f'{name}.out', 'w'),
            stderr=subprocess.STDOUT)
        return self.dir / f'{name}.paused'

    def name_of(self, proc_name):
        return f"{os.uname().nodename}-{self.procs[proc_name].pid}"

    def manage(self, *args, user=None, check=True):
        env = user_env(self.cloud, user) if user else None
        r = subprocess.run([str(BIN / 'clone-manage'), '--config-file',
                            str(self.manage_conf), *args],
                           capture_output=True, text=True, timeout=300,
                           env=env)
        if check:
            assert r.returncode == 0, (args, r.stderr)
        return r

    def json(self, *args, **kwargs):
        return json.loads(self.manage(*args, '-f', 'json', **kwargs).stdout)

    def task(self, clone_id):
        return _task(self.api, self.token, clone_id)

    def wait_ended(self, clone_id, timeout=240):
        return until(lambda: (lambda t: t if t['status'] in (
            'success', 'failure') else None)(self.task(clone_id)),
            f'clone {clone_id} to end', timeout)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope='module')
def site(cloud, tmp_path_factory):
    out = tmp_path_factory.mktemp('manage')
    token = user_session(cloud, 'demo').get_token()
    with running_api(cloud, out, conductor=False) as api:
        s = Site(cloud, api, token)
        try:
            # p runs one clone at a time and freezes halfway through a copy
            marker = s.start('p', pause_at='clone-copy-data@0.5',
                             extra=NO_SWEEP + 'max_concurrent_clones = 1\n')
            big = upload(cloud, os.urandom(16 * MiB), name='manage-running')
            small = upload(cloud, os.urandom(MiB), name='manage-small')
            s.clones['running'] = post_clone(api, token, big)
            until(marker.exists, 'conductor p to freeze in the copy')
            # these two wait in the project's queue while p is busy
            s.clones['trashed'] = post_clone(api, token, small)
            s.clones['cancelled'] = post_clone(api, token, small)
            s.small = small
            yield s
        finally:
            s.stop()


def test_conductor_list_shows_the_live_conductor_and_the_clone_it_holds(
        site):
    rows = site.json('conductor', 'list')
    [p] = [r for r in rows if r['PID'] == site.procs['p'].pid]
    assert p['Name'] == site.name_of('p')
    assert p['Host'] == tf_misc.get_hostname()     # as TaskFlow registers it
    assert p['Clones held'] == 1 and p['Clones'] == site.clones['running']
    since = datetime.datetime.strptime(p['Since'], '%Y-%m-%dT%H:%M:%SZ')
    since = since.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert time.time() - 600 < since <= time.time() + 1


def test_job_list_shows_the_started_clone_and_queue_list_the_waiting(site):
    """Only started clones are jobs on the board (fair scheduling): the
    running one, claimed; the two waiting ones are in their project's
    queue.
    """
    project = user_session(site.cloud, 'demo').get_project_id()
    jobs = {r['Clone']: r for r in site.json('job', 'list')}
    assert set(jobs) == {site.clones['running']}
    running = jobs[site.clones['running']]
    assert running['State'] == 'claimed'
    assert running['Owner'] == site.name_of('p') and running['Owner alive']
    assert running['Attempts'] == 1 and running['Project'] == project
    assert site.json('job', 'list', '--state', 'unclaimed') == []
    queues = {r['Project']: r for r in site.json('queue', 'list')}
    assert queues[project]['Pending'] == 2
    assert queues[project]['Running'] == 1
    waiting = {r['ID'] for r in site.json('clone', 'list', '--status',
                                          'pending')}
    assert {site.clones['trashed'], site.clones['cancelled']} <= waiting
    shown = site.json('job', 'show', site.clones['running'])
    assert shown['Job'] == running['Job'] and shown['Owner alive'] is True
    r = site.manage('job', 'show', str(uuid.uuid4()), check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1


def test_job_release_refuses_while_the_owner_is_alive(site):
    r = site.manage('job', 'release', site.clones['running'], check=False)
    assert r.returncode == 1
    assert 'which is alive' in r.stderr and '--force' in r.stderr
    [job] = [j for j in site.json('job', 'list')
             if j['Clone'] == site.clones['running']]
    assert job['Owner'] == site.name_of('p')          # still held


def test_flow_show_of_a_running_clone(site):
    rows = {r['Step']: r for r in site.json('flow', 'show',
                                            site.clones['running'])}
    assert rows['clone-copy-data']['State'] == 'RUNNING'
    assert rows['clone-reserve-image']['State'] == 'SUCCESS'
    assert rows['clone-reserve-image']['Start'] and \
        rows['clone-reserve-image']['End']
    assert rows['clone-activate']['State'] == 'PENDING'


def test_trash_cancel_then_the_other_states(site):
    """Trash a waiting job with a reason the user reads; cancel another;
    then a conductor runs the rest, a success and a failure are added, and
    the trashed clone is retried.
    """
    trashed, cancelled = site.clones['trashed'], site.clones['cancelled']
    r = site.manage('job', 'trash', trashed, '--reason', REASON)
    assert "taken from its project's queue" in r.stdout
    task = site.task(trashed)
    assert task['status'] == 'failure'
    assert task['message'] == f'an operator stopped the clone: {REASON}'
    assert trashed not in {j['Clone'] for j in site.json('job', 'list')}
    site.manage('clone', 'cancel', cancelled)
    r = site.manage('clone', 'cancel', trashed, check=False)
    assert r.returncode == 1 and 'already ended (failure)' in r.stderr

    site.start('a', extra=NO_SWEEP)
    site.clones['succeeded'] = post_clone(site.api, site.token, site.small)
    site.clones['failed'] = post_clone(site.api, site.token,
                                       types.SimpleNamespace(id=FAKE_IMAGE))
    assert site.wait_ended(site.clones['succeeded'])['status'] == 'success'
    failed = site.wait_ended(site.clones['failed'])
    assert failed['status'] == 'failure'
    assert site.wait_ended(cancelled)['status'] == 'failure'

    r = site.manage('clone', 'retry', trashed)
    assert 're-posted' in r.stdout
    assert site.wait_ended(trashed)['status'] == 'success'
    r = site.manage('clone', 'retry', site.clones['failed'], check=False)
    assert r.returncode == 1 and 'trust' in r.stderr


def test_clone_list_filters(site):
    rows = {r['ID']: r for r in site.json('clone', 'list')}
    c = site.clones
    assert rows[c['running']]['Status'] == 'processing'
    assert rows[c['succeeded']]['Status'] == 'success'
    assert rows[c['failed']]['Status'] == 'failure'
    failures = {r['ID'] for r in site.json('clone', 'list', '--status',
                                           'failure')}
    assert {c['failed'], c['cancelled']} <= failures
    assert c['succeeded'] not in failures
    assert site.json('clone', 'list', '--project', 'nobody') == []
    assert {r['ID'] for r in site.json('clone', 'list', '--region',
                                       'RegionTwo')} >= set(c.values())
    assert site.json('clone', 'list', '--region', 'RegionNone') == []
    old = {r['ID'] for r in site.json('clone', 'list', '--older-than', '1d')}
    new = {r['ID'] for r in site.json('clone', 'list', '--newer-than', '1d')}
    assert not old & set(c.values()) and set(c.values()) <= new


def test_flow_show_and_history_of_ended_clones(site):
    done = {r['Step']: r for r in site.json(
        'flow', 'show', site.clones['succeeded'])}
    assert {r['State'] for r in done.values()} <= {'SUCCESS', 'IGNORE'}
    assert done['clone-activate']['Result'].startswith('image_id=') or \
        'image_id=' in done['clone-activate']['Result']
    failed = site.json('flow', 'show', site.clones['failed'], '--traceback')
    # the step that failed was reverted too; its failure stays with it
    failing = [r for r in failed if r['Failure']]
    assert [r['Step'] for r in failing] == ['clone-authorize']
    assert 'not visible' in failing[0]['Failure']
    assert 'Traceback' in failing[0]['Traceback']
    assert {r['State'] for r in failed} == {'REVERTED', 'PENDING'}
    history = site.json('flow', 'history', site.clones['succeeded'])
    assert {h['Conductor'] for h in history} == {site.name_of('a')}
    assert history[0]['Kind'] == 'flow' and history[0]['State'] == 'RUNNING'
    assert history[-1]['State'] == 'SUCCESS'


def test_flow_graph_of_the_failed_clone(site, tmp_path):
    states = {r['Step']: r['State'] for r in
              site.json('flow', 'show', site.clones['failed'])}
    for ext in ('svg', 'png'):
        out = tmp_path / f'failed.{ext}'
        site.manage('flow', 'graph', site.clones['failed'], '-o', str(out))
        assert out.stat().st_size > 1000
    fills = svg_fills((tmp_path / 'failed.svg').read_text())
    assert fills == {name: flowgraph.COLOURS[state]
                     for name, state in states.items()}


def test_purge_dry_run_leaves_the_running_clone(site):
    ids = {r['Clone'] for r in site.json('flow', 'purge', '--older-than',
                                         '0', '--dry-run')}
    c = site.clones
    assert {c['succeeded'], c['failed'], c['cancelled'], c['trashed']} <= ids
    assert c['running'] not in ids


def test_job_release_force_hands_a_hung_conductors_clone_to_another(site):
    """p is alive but stuck (frozen in the copy): --force takes its claim
    away and conductor a resumes the clone from its last saved step.
    """
    running = site.clones['running']
    r = site.manage('job', 'release', running, '--force')
    assert f'released from {site.name_of("p")}' in r.stdout
    assert site.wait_ended(running)['status'] == 'success'
    history = site.json('flow', 'history', running)
    assert history[0]['Conductor'] == site.name_of('p')
    assert history[-1]['Conductor'] == site.name_of('a')
    copies = [h['Conductor'] for h in history
              if h['Name'] == 'clone-copy-data' and h['State'] == 'RUNNING']
    # p's copy, then a's (a may try more than once: Glance refuses a
    # second upload while p's is still open)
    assert copies[0] == site.name_of('p')
    assert set(copies[1:]) == {site.name_of('a')}
    steps = {r['Step']: r for r in site.json('flow', 'show', running)}
    assert steps['clone-copy-data']['Attempts'] == len(copies)
    for kept in ('clone-hold-trust', 'clone-authorize', 'clone-plan-copy'):
        assert steps[kept]['Attempts'] == 1, kept     # kept, not redone


def test_a_crashed_clone_resumes_and_flow_show_watch_follows_it(site):
    """q is killed with SIGKILL mid-copy; its claim goes with its session
    and conductor b resumes the clone; ``flow show --watch`` follows it to
    the end with the copy's progress bar.
    """
    site.procs['p'].kill()                  # (frozen: it would not stop)
    site.procs['a'].send_signal(signal.SIGTERM)   # nobody else may claim it
    site.procs['p'].wait(60)
    site.procs['a'].wait(60)
    marker = site.start('q', pause_at='clone-copy-data@0.5',
                        extra=NO_SWEEP + 'max_concurrent_clones = 1\n')
    src = upload(site.cloud, os.urandom(16 * MiB), name='manage-crashed')
    crashed = site.clones['crashed'] = post_clone(site.api, site.token, src)
    until(marker.exists, 'conductor q to freeze in the copy')
    watch = subprocess.Popen(
        [str(BIN / 'clone-manage'), '--config-file', str(site.manage_conf),
         'flow', 'show', crashed, '--watch', '--interval', '0.5',
         '-f', 'json'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    site.procs['q'].send_signal(signal.SIGKILL)
    site.procs['q'].wait()
    site.start('b', extra=NO_SWEEP)
    assert site.wait_ended(crashed)['status'] == 'success'
    out, err = watch.communicate(timeout=120)
    assert watch.returncode == 0, err
    assert 'copy [' in out                          # the progress bar
    final = json.loads(out[out.rindex('\n[') + 1:])
    assert {r['State'] for r in final} <= {'SUCCESS', 'IGNORE'}
    conductors = [h['Conductor'] for h in site.json('flow', 'history',
                                                    crashed)]
    assert conductors[0] == site.name_of('q')
    assert conductors[-1] == site.name_of('b')
    live = {r['Name'] for r in site.json('conductor', 'list')}
    assert site.name_of('q') not in live and site.name_of('b') in live


def test_clone_sweep_removes_injected_debris_and_nothing_else(site):
    admin = glance_client(site.cloud, 'admin', 'RegionTwo')
    demo = glance_client(site.cloud, 'demo', 'RegionTwo')
    debris = demo.images.create(
        name='manage-debris', disk_format='raw', container_format='bare',
        os_hidden=True, **{metadata.PROVENANCE_CLONE: str(uuid.uuid4()),
                           metadata.PROVENANCE_REGION: 'RegionOne',
                           metadata.PROVENANCE_IMAGE: site.small.id})
    users = demo.images.create(name='manage-debris', disk_format='raw',
                               container_format='bare')

    def dependency_copy(clone_id):
        # a kernel copy as --include-dependencies makes it, mid-copy
        return demo.images.create(
            name='manage-debris', disk_format='aki', container_format='aki',
            os_hidden=True, **{
                metadata.PROVENANCE_CLONE: f'{clone_id}-kernel',
                metadata.PROVENANCE_REGION: 'RegionOne',
                metadata.PROVENANCE_IMAGE: site.small.id})
    running_dep = dependency_copy(site.clones['running'])
    dead_dep = dependency_copy(uuid.uuid4())
    try:
        dry = site.json('clone', 'sweep', '--region', 'RegionTwo',
                        user='admin')
        assert sorted(r['Image'] for r in dry
                      if r['Action'] == 'would delete' and
                      r['Image'] in (debris.id, dead_dep.id, running_dep.id,
                                     users.id)) == \
            sorted([debris.id, dead_dep.id])
        assert admin.images.get(debris.id).status == 'queued'
        done = site.json('clone', 'sweep', '--region', 'RegionTwo',
                         '--apply', user='admin')
        assert sorted(r['Image'] for r in done if r['Action'] == 'deleted'
                      and r['Image'] in (debris.id, dead_dep.id,
                                         running_dep.id, users.id)) == \
            sorted([debris.id, dead_dep.id])
        ids = {i.id for i in admin.images.list(filters={'name':
                                                        'manage-debris'})}
        hidden = {i.id for i in admin.images.list(filters={
            'name': 'manage-debris', 'os_hidden': True})}
        assert debris.id not in ids | hidden
        assert dead_dep.id not in ids | hidden
        # the running clone's dependency copy and the user's image stay
        assert users.id in ids and running_dep.id in hidden
    finally:
        admin.images.delete(users.id)
        admin.images.delete(running_dep.id)


def test_flow_purge_removes_finished_clones(site):
    c = site.clones
    purged = {r['Clone'] for r in site.json('flow', 'purge', '--older-than',
                                            '0')}
    assert set(c.values()) <= purged
    r = site.manage('flow', 'show', c['succeeded'], check=False)
    assert r.returncode == 1 and 'no clone' in r.stderr


def test_flow_show_of_an_image_a_user_named_with_escapes_is_safe_to_print(
        site):
    """Glance takes any name; the operator's terminal gets it escaped."""
    from tests.unit.test_manage_cli import EVIL_NAME
    src = upload(site.cloud, os.urandom(64 * 1024), name=EVIL_NAME)
    assert glance_client(site.cloud, 'demo', 'RegionOne').images.get(
        src.id).name == EVIL_NAME
    r = site.manage('clone', '--source-region', 'RegionOne', '--image',
                    src.id, '--target-region', 'RegionTwo', '--json',
                    '--no-progress', user='demo')
    out = json.loads(r.stdout)
    shown = site.manage('flow', 'show', out['clone_id']).stdout
    assert 'name=evil\\x1b[2J' in shown
    assert not set('\x1b\x07\u202e') & set(shown)
    rows = site.json('flow', 'show', out['clone_id'])
    # JSON keeps the name as it is (escaped by JSON itself)
    assert any('name=evil\x1b[2J' in (row['Result'] or '') for row in rows)
    glance_client(site.cloud, 'demo', 'RegionTwo').images.delete(
        out['result']['image_id'])

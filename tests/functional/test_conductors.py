"""Conductors on a real ZooKeeper jobboard, against the real local cloud.

Clones survive kill -9, pauses past the session timeout, ZooKeeper
restarts and leader failover; poison jobs end; nothing runs twice.
"""
import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest

from clone_flows import constants as c
from conductor import opts
from conductor import persistence
from conductor import runner
from tests.functional.conftest import ROOT, localcloud, user_env
from tests.functional.test_clone_http import MiB, copies_of, upload

BIN = pathlib.Path(sys.executable).parent
SESSION_TIMEOUT = 4


class Conductors:
    """Conductor processes sharing one persistence and one jobboard path."""

    def __init__(self, cloud, tmp_path, board=None, zookeeper=None,
                 persistence_url=None, max_attempts=None):
        self.cloud = cloud
        self.dir = tmp_path
        self.board = board or f'/glance-clone-test/{uuid.uuid4().hex[:8]}/jobs'
        self.persistence_url = persistence_url or \
            f'sqlite:///{tmp_path}/shared-flows.sqlite'
        self.zookeeper = zookeeper
        self.max_attempts = max_attempts
        self.procs = {}
        self.poster_conf = self._conf('poster')

    def _conf(self, name):
        d = self.dir / name
        env = dict(os.environ, CLONE_PERSISTENCE=self.persistence_url,
                   CLONE_SESSION_TIMEOUT=str(SESSION_TIMEOUT),
                   CLONE_BOARD_PATH=self.board)
        path = subprocess.run(
            [sys.executable, str(ROOT / 'tools/write-clone-conf'), str(d)],
            check=True, capture_output=True, text=True, env=env).stdout.strip()
        extra = '\n[http_stream]\nbusy_upload_timeout = 4\n'
        if self.zookeeper:
            extra += f'\n[jobboard]\nzookeeper_hosts = {self.zookeeper}\n'
        if self.max_attempts:
            extra += f'\n[jobboard]\nmax_attempts = {self.max_attempts}\n'
        text = pathlib.Path(path).read_text()
        # later sections win in oslo.config only per key: rewrite in place
        for line in extra.strip().splitlines():
            if '=' in line:
                key = line.split('=')[0].strip()
                text = '\n'.join(l for l in text.splitlines()
                                 if not l.startswith(key + ' ='))
        pathlib.Path(path).write_text(text + '\n' + extra)
        return path

    def start(self, name, pause_at=None):
        conf = self._conf(name)
        marker = self.dir / f'{name}.paused'
        if pause_at:
            cmd = [sys.executable, '-m', 'tests.functional.pausing_conductor',
                   pause_at, str(marker), '--', '--config-file', conf]
        else:
            cmd = [str(BIN / 'clone-conductor'), '--config-file', conf]
        out = open(self.dir / f'{name}.out', 'ab')
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT)
        return marker

    def log(self, name):
        path = self.dir / name / 'glance-clone.log'
        return path.read_text() if path.exists() else ''

    def signal(self, name, sig):
        self.procs[name].send_signal(sig)

    def kill9(self, name):
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop_all(self):
        for name, proc in list(self.procs.items()):
            with contextlib.suppress(Exception):
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(10)
        self.procs.clear()

    def post(self, image_id, user='demo'):
        r = subprocess.run(
            [str(BIN / 'clone-manage'), '--config-file', self.poster_conf,
             'clone', '--conductor', '--no-wait', '--source-region',
             'RegionOne', '--image', image_id, '--target-region', 'RegionTwo'],
            env=user_env(self.cloud, user), capture_output=True, text=True,
            timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    def backend(self):
        conf = opts.new_conf(['--config-file', self.poster_conf],
                             default_config_files=[], log=False)
        return persistence.get_backend(conf)

    def wait(self, clone_id, timeout=240):
        from conductor import outcome
        backend = self.backend()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, fd = runner.load_flow(backend, clone_id)
            if runner.is_finished(fd):
                return outcome.from_flow_detail(fd)
            time.sleep(0.5)
        raise AssertionError(f'clone {clone_id} did not finish in {timeout}s')


def wait_for(predicate, timeout=120, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}')


def wait_for_copy(cloud, src):
    """Until the copy of ``src`` is receiving data in RegionTwo."""
    wait_for(lambda: any(i.status == 'saving' for i in copies_of(cloud, src.id)),
             what='the copy to start')


@pytest.fixture
def conductors(cloud, tmp_path):
    cs = Conductors(cloud, tmp_path)
    yield cs
    cs.stop_all()


def steps_run(log, clone_id, step):
    return log.count(f'Clone {clone_id}: step {step} RUNNING')


def assert_one_verified_copy(cloud, src, out):
    assert out.succeeded, out.message
    copies = copies_of(cloud, src.id)
    assert [i.id for i in copies] == [out.result['image_id']]
    assert copies[0].status == 'active'
    assert out.result['os_hash_value'] == src.os_hash_value


ORDER = [c.AUTHORIZE, c.PLAN_COPY, c.RESERVE_IMAGE, c.COPY_DATA, c.VERIFY,
         c.SYNC_PROPERTIES, c.ACTIVATE]


@pytest.mark.parametrize('step', [c.AUTHORIZE, c.RESERVE_IMAGE,
                                  c.COPY_DATA + '@0.5', c.VERIFY,
                                  c.SYNC_PROPERTIES, c.ACTIVATE])
def test_kill_9_during_a_step_resumes_on_another_conductor(cloud, conductors,
                                                           step):
    src = upload(cloud, os.urandom(24 * MiB), name=f'kill-at-{step}')
    marker = conductors.start('a', pause_at=step)
    clone_id = conductors.post(src.id)
    wait_for(marker.exists, what=f'conductor a to reach {step}')
    conductors.kill9('a')
    conductors.start('b')
    out = conductors.wait(clone_id)
    assert_one_verified_copy(cloud, src, out)
    log_a, log_b = conductors.log('a'), conductors.log('b')
    killed = step.split('@')[0]
    for done in ORDER[:ORDER.index(killed)]:
        assert steps_run(log_a, clone_id, done) == 1, done
        assert steps_run(log_b, clone_id, done) == 0, f'{done} was redone'
    assert log_b.count(f'Clone {clone_id}: step {killed} SUCCESS') == 1
    resumed = [l for l in log_b.splitlines()
               if f'Clone {clone_id}: attempt 2' in l]
    assert resumed, 'conductor b never claimed the clone'


def test_sigstop_past_the_session_timeout_then_sigcont(cloud, conductors):
    data = os.urandom(160 * MiB)
    src = upload(cloud, data, name='paused-conductor')
    conductors.start('a')
    clone_id = conductors.post(src.id)
    wait_for_copy(cloud, src)
    conductors.signal('a', signal.SIGSTOP)
    time.sleep(SESSION_TIMEOUT + 2)
    conductors.start('b')
    wait_for(lambda: f'Clone {clone_id}: attempt 2' in conductors.log('b'),
             what='conductor b to claim the clone')
    time.sleep(3)
    conductors.signal('a', signal.SIGCONT)
    out = conductors.wait(clone_id)
    assert_one_verified_copy(cloud, src, out)
    time.sleep(2)
    log_a = conductors.log('a')
    assert f'Clone {clone_id} interrupted' in log_a
    assert f'Clone {clone_id}: step' in log_a
    assert 'REVERTING' not in log_a and 'FAILURE' not in log_a
    assert [l for l in log_a.splitlines()
            if ' ERROR conductor' in l or ' ERROR clone_flows' in l] == []


def test_zookeeper_restarted_mid_flow(cloud, conductors):
    src = upload(cloud, os.urandom(160 * MiB), name='zk-restart')
    conductors.start('a')
    clone_id = conductors.post(src.id)
    wait_for_copy(cloud, src)
    localcloud('stop', 'zookeeper')
    time.sleep(2)
    localcloud('start', 'zookeeper')
    out = conductors.wait(clone_id)
    assert_one_verified_copy(cloud, src, out)


def test_ensemble_leader_killed_mid_flow(cloud, tmp_path):
    from tests.functional.zk_ensemble import Ensemble
    ensemble = Ensemble(tmp_path / 'ensemble')
    ensemble.start_all()
    cs = Conductors(cloud, tmp_path, zookeeper=ensemble.hosts)
    try:
        src = upload(cloud, os.urandom(160 * MiB), name='zk-leader-killed')
        cs.start('a')
        clone_id = cs.post(src.id)
        wait_for_copy(cloud, src)
        ensemble.kill(ensemble.leader())
        out = cs.wait(clone_id)
        assert_one_verified_copy(cloud, src, out)
    finally:
        cs.stop_all()
        ensemble.stop_all()


def test_sigterm_hands_the_clone_over_at_once(cloud, conductors):
    src = upload(cloud, os.urandom(160 * MiB), name='sigterm')
    conductors.start('a')
    clone_id = conductors.post(src.id)
    wait_for_copy(cloud, src)
    conductors.signal('a', signal.SIGTERM)
    conductors.procs['a'].wait(60)
    stopped = time.monotonic()
    conductors.start('b')
    wait_for(lambda: f'Clone {clone_id}: attempt 2' in conductors.log('b'),
             what='conductor b to claim the clone')
    # released claim: b needs no session timeout to take over
    assert time.monotonic() - stopped < SESSION_TIMEOUT + 4
    out = conductors.wait(clone_id)
    assert_one_verified_copy(cloud, src, out)
    assert 'stopped' in conductors.log('a')


def test_poison_job_is_trashed_after_max_attempts(cloud, tmp_path):
    cs = Conductors(cloud, tmp_path, max_attempts=2)
    try:
        src = upload(cloud, os.urandom(MiB), name='poison')
        clone_id = None
        for attempt in range(1, 3):
            marker = cs.start(f'p{attempt}', pause_at=c.RESERVE_IMAGE)
            if clone_id is None:
                clone_id = cs.post(src.id)
            wait_for(marker.exists, what=f'attempt {attempt}')
            cs.kill9(f'p{attempt}')
        cs.start('last')
        out = cs.wait(clone_id)
        assert not out.succeeded
        assert 'started 2 times and never finished' in out.message
        wait_for(lambda: copies_of(cloud, src.id) == [], timeout=30,
                 what='the sweep to remove the reserved image')
        from conductor import jobboard
        conf = opts.new_conf(['--config-file', cs.poster_conf],
                             default_config_files=[], log=False)
        client = jobboard.make_client(conf)
        client.start()
        try:
            board = jobboard.make_board(conf, client, cs.backend())
            wait_for(lambda: list(board.iterjobs(ensure_fresh=True)) == [],
                     timeout=30, what='the poison job to leave the board')
            board.close()
        finally:
            client.stop()
    finally:
        cs.stop_all()


def test_two_conductors_fifty_concurrent_small_clones(cloud, conductors):
    from conductor import jobboard
    from tests.functional.conftest import user_session
    sources = [upload(cloud, os.urandom(1024 + i), name=f'many-{i}')
               for i in range(50)]
    conductors.start('a')
    conductors.start('b')
    conf = opts.new_conf(['--config-file', conductors.poster_conf],
                         default_config_files=[], log=False)
    session = user_session(cloud, 'demo')
    poster = jobboard.Poster(conf)
    clone_ids = []
    try:
        for src in sources:
            store = runner.new_store(conf, session, {
                'source_region': 'RegionOne', 'source_image_id': src.id,
                'target_region': 'RegionTwo'})
            poster.post(store)
            clone_ids.append(store[c.CLONE_ID])
    finally:
        poster.close()
    outs = [conductors.wait(cid, timeout=600) for cid in clone_ids]
    assert [o.message for o in outs if not o.succeeded] == []
    for src, out in zip(sources, outs):
        copies = copies_of(cloud, src.id)
        assert [i.id for i in copies] == [out.result['image_id']]
        assert copies[0].checksum == src.checksum
    log_a, log_b = conductors.log('a'), conductors.log('b')
    ran_a = sum(f'Clone {cid} ended: success' in log_a for cid in clone_ids)
    ran_b = sum(f'Clone {cid} ended: success' in log_b for cid in clone_ids)
    assert ran_a + ran_b == 50
    assert ran_a > 0 and ran_b > 0

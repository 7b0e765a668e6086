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
from tests.functional.conftest import localcloud
from tests.functional.conftest import ROOT
from tests.functional.conftest import user_env
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import MiB
from tests.functional.test_clone_http import upload

BIN = pathlib.Path(sys.executable).parent
SESSION_TIMEOUT = 4


class Conductors:
    """Conductor processes sharing one persistence and one jobboard path."""

    def __init__(self, cloud, tmp_path, board=None, zookeeper=None,
                 persistence_url=None, max_attempts=None, extra_conf=''):
        self.cloud = cloud
        self.dir = tmp_path
        self.board = board or f'/glance-clone-test/{uuid.uuid4().hex[:8]}/jobs'
        self.persistence_url = persistence_url or \
            f'sqlite:///{tmp_path}/shared-flows.sqlite'
        self.zookeeper = zookeeper
        self.max_attempts = max_attempts
        self.extra_conf = extra_conf
        self.procs = {}
        self._backend = None
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
        if self.zookeeper:      # (a plain-text ensemble of the test's own)
            extra += (f'\n[jobboard]\nzookeeper_hosts = {self.zookeeper}\n'
                      f'use_tls = false\n')
        if self.max_attempts:
            extra += f'\n[jobboard]\nmax_attempts = {self.max_attempts}\n'
        extra += self.extra_conf
        text = pathlib.Path(path).read_text()
        # later sections win in oslo.config only per key: rewrite in place
        for line in extra.strip().splitlines():
            if '=' in line:
                key = line.split('=')[0].strip()
                text = '\n'.join(ln for ln in text.splitlines()
                                 if not ln.startswith(key + ' ='))
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
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def post(self, image_id, user='demo'):
        r = subprocess.run(
            [str(BIN / 'clone-manage'), '--config-file', self.poster_conf,
             'clone', '--conductor', '--no-wait', '--source-region',
             'RegionOne', '--image', image_id, '--target-region', 'RegionTwo'],
            env=user_env(self.cloud, user), capture_output=True, text=True,
            timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    def conf(self):
        return opts.new_conf(['--config-file', self.poster_conf],
                             default_config_files=[], log=False)

    def backend(self):
        """The test's own backend on the conductors' persistence (one: a
        database server's connections are not opened per look).
        """
        if self._backend is None:
            self._backend = persistence.get_backend(self.conf())
        return self._backend

    @contextlib.contextmanager
    def board_client(self):
        """(conf, started kazoo client) as the poster configures them."""
        from conductor import jobboard
        conf = self.conf()
        client = jobboard.make_client(conf)
        client.start(timeout=20)
        try:
            yield conf, client
        finally:
            client.stop()
            client.close()

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
    wait_for(lambda: any(i.status == 'saving'
                         for i in copies_of(cloud, src.id)),
             what='the copy to start')


@pytest.fixture
def conductors(cloud, tmp_path):
    cs = Conductors(cloud, tmp_path)
    yield cs
    cs.stop_all()


@contextlib.contextmanager
def conductors_on(kind, cloud, tmp_path):
    """Conductors whose persistence is a new database on ``kind`` (sqlite,
    mysql: MariaDB, postgresql), dropped afterwards.
    """
    from tests.functional.test_persistence_backends import Databases
    dbs = Databases(kind, tmp_path)
    try:
        cs = Conductors(cloud, tmp_path, persistence_url=dbs.new())
        try:
            yield cs
        finally:
            cs.stop_all()
    finally:
        dbs.close()


@pytest.fixture(params=['sqlite', 'mysql', 'postgresql'])
def conductors_on_each_database(request, cloud, tmp_path):
    with conductors_on(request.param, cloud, tmp_path) as cs:
        yield cs


@pytest.fixture(params=['mysql', 'postgresql'])
def conductors_on_a_database_server(request, cloud, tmp_path):
    with conductors_on(request.param, cloud, tmp_path) as cs:
        yield cs


def steps_run(log, clone_id, step):
    return log.count(f'Clone {clone_id}: step {step} RUNNING')


def assert_one_verified_copy(cloud, src, out):
    assert out.succeeded, out.message
    copies = copies_of(cloud, src.id)
    assert [i.id for i in copies] == [out.result['image_id']]
    assert copies[0].status == 'active'
    assert out.result['os_hash_value'] == src.os_hash_value


ORDER = [c.HOLD_TRUST, c.AUTHORIZE, c.CLONE_DEPENDENCIES, c.CHECK_METADATA,
         c.PLAN_COPY, c.RESERVE_IMAGE, c.SYNC_PROPERTIES, c.COPY_DATA,
         c.VERIFY, c.ACTIVATE, c.RELEASE_TRUST]
#: The copy's step frozen *after* its upload ended (the target image is
#: already active when the next conductor runs the step again).
COPY_DONE = c.COPY_DATA
KILL_STEPS = [
    c.HOLD_TRUST, c.AUTHORIZE, c.CHECK_METADATA, c.PLAN_COPY, c.RESERVE_IMAGE,
    c.SYNC_PROPERTIES, c.COPY_DATA + '@0.5',
    pytest.param(COPY_DONE, id=f'{c.COPY_DATA}-after-the-upload'),
    c.VERIFY, c.ACTIVATE, c.RELEASE_TRUST]


def kill_9_and_resume(cloud, conductors, step):
    """Conductor a freezes at ``step`` (after its work, before saying so),
    is killed with SIGKILL; conductor b finishes the clone.  Every step
    before ``step`` ran once, on a only; ``step`` ran again on b.
    """
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
    resumed = [ln for ln in log_b.splitlines()
               if f'Clone {clone_id}: attempt 2' in ln]
    assert resumed, 'conductor b never claimed the clone'
    return clone_id, log_b


@pytest.mark.parametrize('step', KILL_STEPS)
def test_kill_9_during_a_step_resumes_on_another_conductor(cloud, conductors,
                                                           step):
    clone_id, log_b = kill_9_and_resume(cloud, conductors, step)
    # The HTTP strategy's resume path: an upload that ended before the kill
    # is not sent again (Glance refuses a second upload into an active
    # image); a copy killed mid-way uploads again, the other kills do not
    # run the copy on b at all.
    found_active = [ln for ln in log_b.splitlines()
                    if f'Clone {clone_id}: target image' in ln and
                    'is already active, not uploading again' in ln]
    assert bool(found_active) == (step == COPY_DONE), found_active


def test_kill_9_during_the_copy_resumes_on_a_database_server(
        cloud, conductors_on_a_database_server):
    """The deployment the operator guide recommends: the flows in MariaDB or
    PostgreSQL, shared by the conductors (the whole matrix runs on sqlite).
    """
    kill_9_and_resume(cloud, conductors_on_a_database_server,
                      c.COPY_DATA + '@0.5')


def test_sigstop_past_the_session_timeout_then_sigcont(cloud, conductors):
    data = os.urandom(160 * MiB)
    src = upload(cloud, data, name='paused-conductor')
    # a stops itself (SIGSTOP) halfway through the copy
    marker = conductors.start('a', pause_at=c.COPY_DATA + '@0.5:sigstop')
    clone_id = conductors.post(src.id)
    wait_for(marker.exists, what='conductor a to copy')
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
    assert [ln for ln in log_a.splitlines()
            if ' ERROR conductor' in ln or ' ERROR clone_flows' in ln] == []


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


def serving_name(conductors, name):
    """The jobboard name of conductor ``name`` once it serves, else None."""
    for line in conductors.log(name).splitlines():
        if ' serving ' in line and 'Conductor ' in line:
            return line.split('Conductor ', 1)[1].split(' serving ')[0]
    return None


def test_sigterm_releases_the_claim_and_the_standby_takes_the_clone(
        cloud, conductors):
    """A released claim, not an expired one: the moment the conductor
    running the clone has exited, its claim is gone (an expired one would
    stay SESSION_TIMEOUT seconds longer, still its own), and the standby,
    serving before the clone was posted, resumes the clone.
    """
    from conductor import jobboard
    src = upload(cloud, os.urandom(256 * MiB), name='sigterm')
    names = {}
    for name in ('a', 'b'):
        conductors.start(name)
    for name in ('a', 'b'):
        wait_for(lambda: serving_name(conductors, name), what=f'{name} serves')
        names[serving_name(conductors, name)] = name
    clone_id = conductors.post(src.id)
    wait_for_copy(cloud, src)
    with conductors.board_client() as (conf, client):
        board = jobboard.make_board(conf, client, conductors.backend())
        [job] = list(board.iterjobs(ensure_fresh=True))
        owner = board.find_owner(job)
        running = names[owner]
        standby = 'b' if running == 'a' else 'a'
        conductors.signal(running, signal.SIGTERM)
        conductors.procs[running].wait(60)
        # no znode of the stopped conductor's session is left: released
        assert board.find_owner(job) != owner
        board.close()
    wait_for(lambda: f'Clone {clone_id}: attempt 2' in conductors.log(standby),
             what='the standby to claim the clone')
    out = conductors.wait(clone_id)
    assert_one_verified_copy(cloud, src, out)
    assert f'Conductor {owner} stopped' in conductors.log(running)
    assert steps_run(conductors.log(standby), clone_id, c.COPY_DATA) == 1


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


# (E501: the test's name is its description and its id)
def test_the_periodic_sweep_removes_a_poison_jobs_image_once_the_region_is_back(  # noqa: E501
        cloud, tmp_path):
    """A poison job's own sweep fails (RegionTwo does not answer); the
    conductor's periodic sweep removes the reserved image once RegionTwo
    is back, and deletes the clone's trust.
    """
    from tests.functional.conftest import user_session
    cs = Conductors(cloud, tmp_path, max_attempts=1, extra_conf=(
        '\n[conductor]\nsweep_interval = 2\n'
        '\n[clone]\nglance_retry_seconds = 1\n'))
    try:
        src = upload(cloud, os.urandom(MiB), name='poison-swept-later')
        marker = cs.start('p1', pause_at=c.RESERVE_IMAGE)
        clone_id = cs.post(src.id)
        wait_for(marker.exists, what='the image to be reserved')
        cs.kill9('p1')
        [reserved] = copies_of(cloud, src.id)
        trust_id = runner.load_flow(cs.backend(), clone_id)[1].meta[
            'store'][c.TRUST_ID]
        localcloud('stop', 'glance-RegionTwo')
        try:
            cs.start('last')
            out = cs.wait(clone_id)
            assert 'started 1 times and never finished' in out.message
            wait_for(lambda: f'Sweep of clone {clone_id} incomplete' in
                     cs.log('last'), what="the poison job's own sweep")
        finally:
            localcloud('start', 'glance-RegionTwo')
        # (the periodic sweep may already be at it: the image is there or
        # gone, never another; the image goes first, then the trust, then
        # the sweep says so)
        assert {i.id for i in copies_of(cloud, src.id)} <= {reserved.id}
        wait_for(lambda: 'Sweep: 1 clones cleaned, 0 left' in cs.log('last'),
                 timeout=60, what='the periodic sweep to clean the clone')
        assert copies_of(cloud, src.id) == []
        gone = user_session(cloud, 'admin').get(
            f'/OS-TRUST/trusts/{trust_id}', raise_exc=False,
            endpoint_filter={'service_type': 'identity',
                             'interface': 'public'})
        assert gone.status_code == 404, gone.text
    finally:
        cs.stop_all()


def test_a_failed_clone_deletes_its_trust(cloud, conductors):
    """The clone's trust worked (HoldTrust ran), then the clone failed
    (the image does not exist): the revert deleted the trust in Keystone.
    """
    from tests.functional.conftest import user_session
    conductors.start('a')
    clone_id = conductors.post(FAKE_IMAGE)
    out = conductors.wait(clone_id)
    assert not out.succeeded and 'not visible' in out.message, out.message
    log = conductors.log('a')
    assert f'Clone {clone_id}: step {c.HOLD_TRUST} SUCCESS' in log
    assert f'Clone {clone_id}: step {c.HOLD_TRUST} REVERTED' in log
    trust_id = runner.load_flow(conductors.backend(), clone_id)[1].meta[
        'store'][c.TRUST_ID]
    assert trust_id
    gone = user_session(cloud, 'admin').get(
        f'/OS-TRUST/trusts/{trust_id}', raise_exc=False,
        endpoint_filter={'service_type': 'identity', 'interface': 'public'})
    assert gone.status_code == 404, gone.text


def test_two_conductors_fifty_concurrent_small_clones(
        cloud, conductors_on_each_database):
    from conductor import jobboard
    conductors = conductors_on_each_database
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


# -- ZooKeeper: the board is glance-clone's alone -----------------------------

FAKE_IMAGE = '6f1d2a3b-3333-4c4c-8d8d-0123456789ab'


def zk_client(cloud, credential=None):
    from kazoo import client as kazoo_client
    kwargs = {'auth_data': [('digest', credential)]} if credential else {}
    client = kazoo_client.KazooClient(hosts=cloud['zookeeper'], **kwargs)
    client.start(timeout=20)
    return client


def znodes(client, path):
    """``path`` and every znode under it."""
    found = [path]
    for child in client.get_children(path):
        found += znodes(client, f'{path}/{child}')
    return found


@pytest.fixture
def claimed_job(cloud, conductors):
    """A clone claimed by conductor a, frozen after its first step: the
    board holds a job, its lock and a conductor's entry.
    """
    from conductor import jobboard
    marker = conductors.start('a', pause_at=c.HOLD_TRUST)
    conductors.post(FAKE_IMAGE)
    wait_for(marker.exists, what='conductor a to claim the clone')
    with conductors.board_client() as (conf, client):
        board = jobboard.make_board(conf, client, conductors.backend())
        [job] = list(board.iterjobs(ensure_fresh=True))
        yield {'conf': conf, 'client': client, 'job': job}
        board.close()


@pytest.mark.parametrize('credential', [None, 'glance-clone:wrong-password',
                                        'intruder:intruder'])
def test_zookeeper_refuses_jobs_to_clients_without_the_credential(
        cloud, conductors, claimed_job, credential):
    from kazoo import exceptions as kz_exc
    from kazoo import security
    job = claimed_job['job']
    other = zk_client(cloud, credential)
    try:
        for read in (other.get, other.get_children):
            for path in (job.path, job.lock_path, conductors.board):
                with pytest.raises(kz_exc.NoAuthError):
                    read(path)
        for path in (job.lock_path, job.path):
            with pytest.raises(kz_exc.NoAuthError):
                other.delete(path)
        with pytest.raises(kz_exc.NoAuthError):
            other.create(f'{conductors.board}/job9999999999', b'{}')
        with pytest.raises(kz_exc.NoAuthError):
            other.set_acls(job.path, security.OPEN_ACL_UNSAFE)
    finally:
        other.stop()
        other.close()
    assert claimed_job['client'].exists(job.path)
    assert claimed_job['client'].exists(job.lock_path)


def test_every_board_znode_is_for_the_digest_user_only(cloud, conductors,
                                                       claimed_job):
    from kazoo import security
    client, conf = claimed_job['client'], claimed_job['conf']
    ours = [security.make_digest_acl(conf.jobboard.username,
                                     conf.jobboard.password, all=True)]
    parent = conductors.board.rsplit('/', 1)[0]
    paths = znodes(client, parent)
    assert claimed_job['job'].lock_path in paths
    assert f'{parent}/.trash' in paths
    assert any(p.startswith(f'{parent}/.entities/') for p in paths), paths
    for path in paths:
        assert list(client.get_acls(path)[0]) == ours, path
    # the credential is nowhere in what ZooKeeper stores or the logs
    password = conf.jobboard.password.encode()
    assert all(password not in (client.get(p)[0] or b'') for p in paths)
    assert conf.jobboard.password not in conductors.log('a')
    cmdline = pathlib.Path(f"/proc/{conductors.procs['a'].pid}/cmdline")
    assert conf.jobboard.password.encode() not in cmdline.read_bytes()


def test_a_board_made_without_acls_gets_them_on_start(cloud, tmp_path):
    from kazoo import exceptions as kz_exc

    from conductor import jobboard
    # (a path of its own: the test boards' parent is already secured)
    conductors = Conductors(
        cloud, tmp_path,
        board=f'/glance-clone-upgrade-{uuid.uuid4().hex}/jobs')
    old = zk_client(cloud)                   # an older version: no ACLs
    board = conductors.board
    old.create(f'{board}/job0000000001', b'{"details": {}}', makepath=True)
    old.create(f'{board}/job0000000001.lock', b'{"owner": "x"}')
    trash = board.rsplit('/', 1)[0] + '/.trash'
    old.create(f'{trash}/job0000000000', b'{}', makepath=True)
    with conductors.board_client() as (conf, client):
        made = jobboard.make_board(conf, client, conductors.backend())
        for path in (board, f'{board}/job0000000001',
                     f'{board}/job0000000001.lock', trash,
                     f'{trash}/job0000000000'):
            with pytest.raises(kz_exc.NoAuthError):
                old.get(path)
        assert client.get(f'{board}/job0000000001')[0] == \
            b'{"details": {}}'
        # secured once: the next start changes nothing
        assert jobboard.secure_board(client, made, jobboard._acl(conf)) == 0
        made.close()
    old.stop()


def test_the_board_is_reached_over_tls_with_a_client_certificate(cloud,
                                                                 conductors):
    from kazoo import client as kazoo_client
    from kazoo import exceptions as kz_exc
    from kazoo.handlers import threading as kz_threading

    from conductor import jobboard
    with conductors.board_client() as (conf, client):
        assert conf.jobboard.use_tls
        assert conf.jobboard.zookeeper_hosts == [
            cloud['zookeeper_tls']['hosts']]
        # TaskFlow's version check ('envi') over TLS (kazoo#770)
        assert client.server_version()[:2] >= (3, 8)
        jobboard.make_board(conf, client, conductors.backend()).close()
    tls = cloud['zookeeper_tls']
    refused = [
        dict(),                                            # plain text
        dict(use_ssl=True, ca=tls['ca_file'], check_hostname=True),  # no cert
    ]
    for kwargs in refused:
        other = kazoo_client.KazooClient(
            hosts=tls['hosts'], connection_retry={'max_tries': 1}, **kwargs)
        with pytest.raises((kz_threading.KazooTimeoutError,
                            kz_exc.KazooException)):
            other.start(timeout=3)
        other.stop()

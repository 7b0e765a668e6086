"""What a clone's trust delegates, and Keystone calls that time out, against
the real Keystone of the local cloud (and clone-api under gunicorn).
"""
import contextlib
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import uuid

import pytest
import requests

from clone_flows import auth
from clone_flows import constants as c
from conductor import runner
from tests.functional.conftest import localcloud
from tests.functional.conftest import user_env
from tests.functional.conftest import user_session
from tests.functional.test_api import free_port
from tests.functional.test_api import stop
from tests.functional.test_api import token
from tests.functional.test_api import wait_http

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
FAKE_IMAGE = '6f1d2a3b-2222-4c4c-8d8d-0123456789ab'
KEYSTONE_TIMEOUT = 2
IDENTITY = {'service_type': 'identity', 'interface': 'public'}


def clone_request(image_id=FAKE_IMAGE):
    return {'source_region': 'RegionOne', 'source_image_id': image_id,
            'target_region': 'RegionTwo'}


def trusts_of(cloud, user):
    """The trusts ``user`` gave, as Keystone lists them to that user."""
    sess = user_session(cloud, user)
    uid = sess.get_user_id()
    return sess.get(f'/OS-TRUST/trusts?trustor_user_id={uid}',
                    endpoint_filter=IDENTITY).json()['trusts']


def test_an_admin_users_trust_delegates_member_not_admin(cloud, clone_conf):
    admin = user_session(cloud, 'admin')
    assert 'admin' in auth.user_access(admin).role_names
    store = runner.new_store(clone_conf, admin, clone_request())
    trust_id = store[c.TRUST_ID]
    try:
        trust = admin.get(f'/OS-TRUST/trusts/{trust_id}',
                          endpoint_filter=IDENTITY).json()['trust']
        assert [r['name'] for r in trust['roles']] == ['member']
        expires = datetime.datetime.fromisoformat(
            trust['expires_at'].replace('Z', '+00:00'))
        left = expires - datetime.datetime.now(datetime.timezone.utc)
        assert datetime.timedelta(hours=23) < left <= datetime.timedelta(
            hours=24)
        # what the clone service acts with: member and what it implies
        sess = auth.service_session(clone_conf, trust_id)
        roles = sess.auth.get_access(sess).role_names
        assert 'member' in roles and 'admin' not in roles
    finally:
        assert auth.delete_trust(clone_conf, trust_id)


def test_a_reader_is_refused_by_clone_manage_without_a_trust(cloud,
                                                             clone_conf_file):
    before = trusts_of(cloud, 'demo_reader')
    r = subprocess.run(
        [str(BIN / 'clone-manage'), '--config-file', str(clone_conf_file),
         'clone', '--conductor', '--no-wait', '--source-region', 'RegionOne',
         '--image', FAKE_IMAGE, '--target-region', 'RegionTwo'],
        env=user_env(cloud, 'demo_reader'), capture_output=True, text=True,
        timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "needs the role 'member' on project" in lines[0]
    assert 'Traceback' not in r.stderr and r.stdout == ''
    assert trusts_of(cloud, 'demo_reader') == before


@contextlib.contextmanager
def running_api(cloud, out):
    """clone-api (one gunicorn worker, so one auth_token cache) with
    ``[clone] keystone_timeout = KEYSTONE_TIMEOUT`` and a policy that lets
    readers ask for clones (so that the trust's roles are what refuses
    them); no conductor.
    """
    port = free_port()
    env = dict(os.environ, CLONE_BOARD_PATH=f'/glance-clone-trusts/'
                                            f'{uuid.uuid4().hex[:8]}/jobs',
               CLONE_API_PORT=str(port))
    conf = pathlib.Path(subprocess.run(
        [sys.executable, str(ROOT / 'tools/write-clone-conf'), '--api',
         str(out)], check=True, capture_output=True, text=True,
        env=env).stdout.strip())
    text = conf.read_text().replace('workers = 2', 'workers = 1')
    policy = out / 'policy.yaml'
    policy.write_text('"clone:task:create": "rule:project_reader or '
                      'rule:context_is_admin"\n')
    conf.write_text(text.replace(
        '[clone]\n', f'[clone]\nkeystone_timeout = {KEYSTONE_TIMEOUT}\n', 1)
        + f'\n[oslo_policy]\npolicy_file = {policy}\n')
    proc = subprocess.Popen(
        [str(BIN / 'clone-api'), '--config-file', str(conf), '--bind',
         f'127.0.0.1:{port}'], stdout=open(out / 'clone-api.stdout', 'w'),
        stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        wait_http(url + '/versions', proc=proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope='module')
def api(cloud, tmp_path_factory):
    with running_api(cloud, tmp_path_factory.mktemp('trusts-api')) as url:
        yield url


def post_clone(api, tok, timeout=60):
    return requests.post(f'{api}/v2/tasks', timeout=timeout,
                         headers={'X-Auth-Token': tok},
                         json={'type': 'clone', 'input': clone_request()})


def test_a_reader_is_refused_at_post_with_a_sentence(cloud, api):
    before = trusts_of(cloud, 'demo_reader')
    tok = token(cloud, 'demo_reader')
    r = post_clone(api, tok)
    assert r.status_code == 403, r.text
    message = r.json()['error']['message']
    assert "needs the role 'member' on project" in message
    assert 'http' not in message and 'Exception' not in message
    listed = requests.get(f'{api}/v2/tasks', headers={'X-Auth-Token': tok},
                          timeout=60).json()['tasks']
    assert listed == []
    assert trusts_of(cloud, 'demo_reader') == before


@contextlib.contextmanager
def keystone_stopped(cloud):
    """Keystone's gunicorn (master and workers) SIGSTOPped: it accepts
    connections and never answers.  Always resumed.
    """
    # the pid now: another test may have restarted Keystone meanwhile
    now = json.loads(localcloud('env', '--json').stdout)
    pid = now['services']['keystone']['pid']
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


def test_a_hung_keystone_is_a_503_sentence_and_the_api_resumes(cloud, api):
    tok = token(cloud, 'demo')
    # Validated and cached by auth_token, the service user's id known:
    # the next clone's only call to Keystone is the trust's creation.
    first = post_clone(api, tok)
    assert first.status_code == 201, first.text
    unseen = token(cloud, 'demo')          # auth_token has not validated it
    with keystone_stopped(cloud):
        # A hung API would time these requests out (an error, not a 503).
        r = post_clone(api, tok, timeout=KEYSTONE_TIMEOUT * 10)
        # auth_token's own call: [keystone_authtoken] http_connect_timeout
        # (10 s in write-clone-conf's file)
        r2 = post_clone(api, unseen, timeout=40)
    assert r.status_code == 503, r.text
    assert r.json()['error']['message'] == \
        'Keystone did not answer; try again later'
    assert r2.status_code == 503, r2.text
    assert r2.json()['error']['message'] == \
        'Keystone did not answer; try again later'
    again = post_clone(api, tok)
    assert again.status_code == 201, again.text

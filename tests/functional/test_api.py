"""clone-api under gunicorn, with the real Keystone, the real glance CLI and
a real conductor: the tasks API as python-glanceclient users meet it.
"""
import contextlib
import io
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.functional.conftest import glance_client
from tests.functional.conftest import user_env
from tests.functional.conftest import user_session

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
FAKE_IMAGE = '6f1d2a3b-1111-4c4c-8d8d-0123456789ab'


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def port_in_use(port):
    with contextlib.closing(socket.socket()) as s:
        return s.connect_ex(('127.0.0.1', port)) == 0


def write_api_conf(cloud, out_dir, board_path, public_endpoint, extra=''):
    """write-clone-conf's file plus what clone-api needs: auth_token's
    service credentials, the region it serves, the URL it is known by, its
    own log file (and ``extra`` configuration for both).
    """
    env = dict(os.environ, CLONE_BOARD_PATH=board_path)
    base = pathlib.Path(subprocess.run(
        [sys.executable, str(ROOT / 'tools/write-clone-conf'), str(out_dir)],
        check=True, capture_output=True, text=True, env=env).stdout.strip())
    svc = cloud['users']['glance-clone']
    text = base.read_text()
    authtoken = f"""
[api]
region_name = RegionTwo
workers = 2
public_endpoint = {public_endpoint}

[keystone_authtoken]
www_authenticate_uri = {cloud['auth_url']}
auth_url = {cloud['auth_url']}
auth_type = password
username = glance-clone
password = {svc['password']}
user_domain_name = Default
project_name = {svc['project']}
project_domain_name = Default
"""
    files = {}
    for name in ('clone-api', 'clone-conductor'):
        path = out_dir / f'{name}.conf'
        path.write_text(text.replace(f'{out_dir}/glance-clone.log',
                                     f'{out_dir}/{name}.log') + authtoken +
                        extra)
        path.chmod(0o600)
        files[name] = path
    return files


def wait_http(url, timeout=30, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f'{url}: server exited {proc.returncode}')
        try:
            requests.get(url, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):
            # (a worker still loading the app: accepted, not yet answered)
            time.sleep(0.2)
    raise RuntimeError(f'{url} did not answer in {timeout}s')


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_api(cloud, out, port=None, conductor=True, extra_conf=''):
    """clone-api (gunicorn, 2 workers) on ``port`` (a free one by default)
    and one clone-conductor, on their own jobboard path. Its
    ``public_endpoint`` names the host ``localhost``, the tests call it at
    127.0.0.1: a Location on ``localhost`` comes from the configuration.
    """
    port = port or free_port()
    url = f'http://127.0.0.1:{port}'
    board_path = f'/glance-clone-apitest/{uuid.uuid4()}'
    files = write_api_conf(cloud, out, board_path,
                           f'http://localhost:{port}', extra=extra_conf)
    api_proc = subprocess.Popen(
        [str(BIN / 'clone-api'), '--config-file', str(files['clone-api']),
         '--bind', f'127.0.0.1:{port}'],
        stdout=open(out / 'clone-api.stdout', 'w'), stderr=subprocess.STDOUT)
    procs = [api_proc]
    if conductor:
        procs.append(subprocess.Popen(
            [str(BIN / 'clone-conductor'), '--config-file',
             str(files['clone-conductor'])],
            stdout=open(out / 'clone-conductor.stdout', 'w'),
            stderr=subprocess.STDOUT))
    try:
        wait_http(url + '/versions', proc=api_proc)
        yield {'url': url, 'dir': out, 'conf': files['clone-api'],
               'proc': api_proc, 'board_path': board_path}
    finally:
        for proc in procs:
            stop(proc)


def delete_trusts_and_jobs(cloud, api):
    """What clones that no conductor ran leave: their trusts (deleted as
    their trustor, demo) and their jobs (the API's jobboard path, its
    pending queues and running counts).
    """
    from kazoo.client import KazooClient

    from conductor.api import wsgi
    from conductor.db import api as db_api
    conf = wsgi.load_conf([str(api['conf'])], log=False)
    demo = user_session(cloud, 'demo')
    for task in db_api.list_tasks(conf):
        if task['trust_id']:
            demo.delete(f"{cloud['auth_url']}/OS-TRUST/trusts/"
                        f"{task['trust_id']}", raise_exc=False)
    db_api.dispose(conf)
    auth = cloud['zookeeper_auth']
    zk = KazooClient(hosts=cloud['zookeeper'], auth_data=[
        ('digest', f"{auth['username']}:{auth['password']}")])
    zk.start(timeout=10)
    try:
        for path in (api['board_path'], api['board_path'] + '.pending',
                     api['board_path'] + '.running'):
            if zk.exists(path):
                zk.delete(path, recursive=True)
    finally:
        zk.stop()
        zk.close()


@pytest.fixture(scope='module')
def api(cloud, tmp_path_factory):
    with running_api(cloud, tmp_path_factory.mktemp('api')) as running:
        yield running


def glance(cloud, api, user, *args, check=True):
    env = user_env(cloud, user, region='RegionTwo')
    r = subprocess.run([str(BIN / 'glance'), '--os-image-url', api['url'],
                        *args], env=env, capture_output=True, text=True,
                       timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f'glance {args} failed: {r.stderr}')
    return r


def table(text):
    """glance's property table as a dict."""
    out, key = {}, None
    for line in text.splitlines():
        if not line.startswith('|'):
            continue
        parts = [p.strip() for p in line.strip().strip('|').split('|', 1)]
        if len(parts) != 2 or parts[0] == 'Property':
            continue
        if parts[0]:
            key = parts[0]
            out[key] = parts[1]
        elif key:                        # a wrapped value goes on
            out[key] += ' ' + parts[1]
    return out


def list_ids(text):
    ids = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip('|').split('|')]
        with contextlib.suppress(ValueError):
            uuid.UUID(parts[0])
            ids.append(parts[0])
    return ids


def task_create(cloud, api, user, **input_):
    input_.setdefault('source_region', 'RegionOne')
    input_.setdefault('source_image_id', FAKE_IMAGE)
    r = glance(cloud, api, user, 'task-create', '--type', 'clone', '--input',
               json.dumps(input_))
    return table(r.stdout)


def token(cloud, user):
    return user_session(cloud, user).get_token()


def wait_status(cloud, api, user, task_id, statuses, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        task = table(glance(cloud, api, user, 'task-show', task_id).stdout)
        if task['status'] in statuses or time.monotonic() > deadline:
            return task
        time.sleep(1)


# -- the glance CLI -----------------------------------------------------------

def test_glance_cli_creates_shows_and_lists_clone_tasks(cloud, api):
    made = [task_create(cloud, api, 'demo', name=f'copy-{i}')['id']
            for i in range(3)]
    shown = table(glance(cloud, api, 'demo', 'task-show', made[0]).stdout)
    assert shown['type'] == 'clone' and shown['id'] == made[0]
    assert shown['owner'] == cloud['users']['demo']['project_id']
    assert shown['status'] in ('pending', 'processing', 'success', 'failure')
    assert 'RegionTwo' in shown['input']          # the API's own region
    # --page-size 1: the client follows `next` through every page.
    listed = list_ids(glance(cloud, api, 'demo', 'task-list', '--page-size',
                             '1').stdout)
    assert set(made) <= set(listed)
    assert len(listed) == len(set(listed))
    # (the CLI sorts by status unless told otherwise)
    by_id = list_ids(glance(cloud, api, 'demo', 'task-list', '--type',
                            'clone', '--sort-key', 'id', '--sort-dir', 'asc',
                            '--page-size', '2').stdout)
    assert [i for i in by_id if i in made] == sorted(made)
    assert by_id == sorted(by_id)
    assert list_ids(glance(cloud, api, 'demo', 'task-list', '--type',
                           'import').stdout) == []


def test_status_filter_through_the_cli(cloud, api):
    task = task_create(cloud, api, 'demo')   # a fake image: fails quickly
    done = wait_status(cloud, api, 'demo', task['id'], ('failure',))
    assert done['status'] == 'failure', done
    assert 'not visible' in done['message']
    failed = list_ids(glance(cloud, api, 'demo', 'task-list', '--status',
                             'failure').stdout)
    pending = list_ids(glance(cloud, api, 'demo', 'task-list', '--status',
                              'pending').stdout)
    assert task['id'] in failed and task['id'] not in pending


def test_alt_demo_gets_404_and_cannot_list_demos_task(cloud, api):
    demo_task = task_create(cloud, api, 'demo')['id']
    alt_task = task_create(cloud, api, 'alt_demo')['id']
    r = glance(cloud, api, 'alt_demo', 'task-show', demo_task, check=False)
    assert r.returncode != 0 and 'No task found' in r.stderr
    r = requests.get(f"{api['url']}/v2/tasks/{demo_task}",
                     headers={'X-Auth-Token': token(cloud, 'alt_demo')})
    assert r.status_code == 404
    alt_list = list_ids(glance(cloud, api, 'alt_demo', 'task-list').stdout)
    assert alt_task in alt_list and demo_task not in alt_list
    admin_list = list_ids(glance(cloud, api, 'admin', 'task-list',
                                 '--page-size', '5').stdout)
    assert {demo_task, alt_task} <= set(admin_list)
    assert table(glance(cloud, api, 'demo_reader', 'task-show',
                        demo_task).stdout)['id'] == demo_task


def test_reader_cannot_create_and_alt_cannot_cancel(cloud, api):
    r = glance(cloud, api, 'demo_reader', 'task-create', '--type', 'clone',
               '--input', json.dumps({'source_region': 'RegionOne',
                                      'source_image_id': FAKE_IMAGE}),
               check=False)
    assert r.returncode != 0 and 'not authorized' in r.stderr
    demo_task = task_create(cloud, api, 'demo')['id']
    r = requests.delete(f"{api['url']}/v2/tasks/{demo_task}",
                        headers={'X-Auth-Token': token(cloud, 'alt_demo')})
    assert r.status_code == 404


def test_client_token_returns_the_same_task(cloud, api):
    tok = f'ct-{uuid.uuid4()}'
    a = task_create(cloud, api, 'demo', client_token=tok)
    b = task_create(cloud, api, 'demo', client_token=tok)
    c = task_create(cloud, api, 'alt_demo', client_token=tok)
    assert a['id'] == b['id'] != c['id']


def test_client_token_reused_with_another_input_is_409(cloud, api):
    tok = f'ct-{uuid.uuid4()}'
    first = task_create(cloud, api, 'demo', client_token=tok, name='one')
    r = glance(cloud, api, 'demo', 'task-create', '--type', 'clone',
               '--input', json.dumps({'source_region': 'RegionOne',
                                      'source_image_id': FAKE_IMAGE,
                                      'client_token': tok, 'name': 'two'}),
               check=False)
    assert r.returncode != 0
    assert (f"client_token already names task {first['id']}, created with "
            f"another input") in r.stderr
    r = _post(api, token(cloud, 'demo'), _clone_body(client_token=tok,
                                                     name='two'))
    assert r.status_code == 409
    assert r.json()['error']['message'] == (
        f"client_token already names task {first['id']}, created with "
        f"another input; use a new client_token for a new clone")
    again = task_create(cloud, api, 'demo', client_token=tok, name='one')
    assert again['id'] == first['id']


def test_strategy_enum_is_served_and_enforced_from_the_installed_ones(
        cloud, api):
    from importlib import metadata
    installed = sorted(ep.name for ep in metadata.entry_points(
        group='glance_clone.stores'))
    headers = {'X-Auth-Token': token(cloud, 'demo')}
    schema = requests.get(f"{api['url']}/v2/schemas/task",
                          headers=headers).json()
    served = schema['properties']['input']['properties']['strategy']['enum']
    assert served == ['auto'] + installed and 'cinder' not in served
    # python-glanceclient validates against the served schema: refused
    # before it is sent
    r = glance(cloud, api, 'demo', 'task-create', '--type', 'clone',
               '--input', json.dumps({'source_region': 'RegionOne',
                                      'source_image_id': FAKE_IMAGE,
                                      'strategy': 'cinder'}), check=False)
    assert r.returncode != 0 and 'cinder' in r.stderr
    for name in installed:
        assert task_create(cloud, api, 'demo', strategy=name)['status'] in (
            'pending', 'processing', 'failure')


def test_location_is_built_on_public_endpoint_not_the_host_header(cloud,
                                                                  api):
    headers = {'X-Auth-Token': token(cloud, 'demo'),
               'Content-Type': 'application/json',
               'Host': 'evil.example:666'}
    r = requests.post(f"{api['url']}/v2/tasks", data=_clone_body(),
                      headers=headers, timeout=30)
    assert r.status_code == 201
    port = api['url'].rsplit(':', 1)[1]
    assert r.headers['Location'] == \
        f"http://localhost:{port}/v2/tasks/{r.json()['id']}"


def test_openapi_document_is_served(cloud, api):
    r = requests.get(f"{api['url']}/v2/openapi.json",
                     headers={'X-Auth-Token': token(cloud, 'demo')})
    assert r.status_code == 200 and r.json()['openapi'] == '3.1.0'
    assert set(r.json()['paths']['/v2/tasks']) == {'get', 'post'}


# -- bad input: a clear 4xx each, and the service stays up --------------------

def _post(api, tok, data, content_type='application/json'):
    headers = {'Content-Type': content_type}
    if tok:
        headers['X-Auth-Token'] = tok
    return requests.post(f"{api['url']}/v2/tasks", data=data, headers=headers,
                         timeout=30)


def _clone_body(**input_):
    base = {'source_region': 'RegionOne', 'source_image_id': FAKE_IMAGE}
    base.update(input_)
    return json.dumps({'type': 'clone', 'input': base})


@pytest.fixture(scope='module')
def revoked_token(cloud):
    """A token Keystone has revoked before auth_token ever saw it (the same
    401 path as an expired one).
    """
    sess = user_session(cloud, 'demo')
    tok = sess.get_token()
    admin = user_session(cloud, 'admin')
    admin.delete(cloud['auth_url'] + '/auth/tokens',
                 headers={'X-Subject-Token': tok})
    return tok


@pytest.fixture(scope='module')
def expired_token(cloud):
    """A real token past its expiry: issued for an application credential
    that expires 3 s later (Keystone caps the token's expiry to it).
    """
    import datetime

    from keystoneauth1.identity import v3
    from keystoneauth1 import session as ks_session
    demo = user_session(cloud, 'demo')
    expires = (datetime.datetime.now(datetime.timezone.utc) +
               datetime.timedelta(seconds=3)).strftime('%Y-%m-%dT%H:%M:%S')
    user_id = cloud['users']['demo']['user_id']
    r = demo.post(f"{cloud['auth_url']}/users/{user_id}/"
                  f"application_credentials",
                  json={'application_credential': {
                      'name': f'expiring-{uuid.uuid4()}',
                      'expires_at': expires}})
    cred = r.json()['application_credential']
    tok = ks_session.Session(auth=v3.ApplicationCredential(
        auth_url=cloud['auth_url'], application_credential_id=cred['id'],
        application_credential_secret=cred['secret'])).get_token()
    admin = user_session(cloud, 'admin')

    def valid():
        return admin.get(f"{cloud['auth_url']}/auth/tokens",
                         headers={'X-Subject-Token': tok},
                         raise_exc=False).status_code == 200
    assert valid()                      # a good token, until it expires
    time.sleep(5)
    assert not valid()
    return tok


BAD = [
    ('malformed json', lambda: '{"type": "clone", "input": {', None, 400,
     'Malformed JSON'),
    ('wrong content type', lambda: 'type=clone', 'text/plain', 415,
     'application/json'),
    ('over the size limit', lambda: _clone_body(name='x' * 200_000), None,
     413, 'The request body is larger than this service accepts.'),
    ('input not an object', lambda: json.dumps({'type': 'clone',
                                                'input': [1]}), None, 400,
     "'input' must be a JSON object"),
    ('unknown type', lambda: json.dumps({'type': 'teleport', 'input': {}}),
     None, 400, 'Invalid type'),
    ('invalid uuid', lambda: _clone_body(source_image_id='42'), None, 400,
     'input.source_image_id is not a valid UUID'),
    ('empty region', lambda: _clone_body(source_region=''), None, 400,
     'input.source_region must not be empty'),
    ('1 MB region', lambda: _clone_body(source_region='R' * 2 ** 20), None,
     413, 'The request body is larger than this service accepts.'),
    ('unknown keys', lambda: _clone_body(colour='blue'), None, 400,
     "unknown key(s) 'colour'"),
    ('control characters', lambda: _clone_body(source_region='Region\x01One'),
     None, 400, 'must not contain control characters'),
    ('unicode region', lambda: _clone_body(source_region='Régiön☃'), None,
     400, 'has no image endpoint'),
    ('lone surrogate', lambda: _clone_body(name='\ud800'), None, 400,
     'invalid unicode'),
    ('strategy not installed', lambda: _clone_body(strategy='cinder'), None,
     400, 'input.strategy must be one of: auto, '),
    ('preserve_id', lambda: _clone_body(preserve_id=True), None, 400,
     'input.preserve_id is not offered: a copy always gets a new image id'),
    ('dry_run not a boolean', lambda: _clone_body(dry_run='yes'), None, 400,
     'input.dry_run must be of type boolean'),
    ('unknown if_exists', lambda: _clone_body(if_exists='replace'), None,
     400, 'input.if_exists must be one of: copy, reuse, fail'),
    ('bidi override in a name',
     lambda: _clone_body(name='invoice\u202egnp.exe'), None, 400,
     'input.name must not contain control characters (nor bidirectional or '
     'zero-width ones)'),
    ('zero-width space in a tag', lambda: _clone_body(tags=['a\u200bb']),
     None, 400, 'input.tags.0 must not contain control characters'),
    ('bidi isolate in a property value',
     lambda: _clone_body(properties={'k': 'a\u2066b'}), None, 400,
     'input.properties.k must not contain control characters'),
    ('5000-deep JSON', lambda: '{"type": "clone", "input": ' + '[' * 5000
     + ']' * 5000 + '}', None, 400, 'nested deeper than 32 levels'),
    ('40-deep JSON', lambda: '{"type": "clone", "input": {"name": '
     + '{"a": ' * 40 + '1' + '}' * 40 + '}}', None, 400,
     'nested deeper than 32 levels'),
]


@pytest.mark.parametrize('case', BAD, ids=[c[0] for c in BAD])
def test_bad_input_gets_a_clear_4xx_while_the_service_stays_up(cloud, api,
                                                               case):
    _, body, ctype, code, text = case
    tok = token(cloud, 'demo')
    r = _post(api, tok, body().encode('utf-8', 'surrogatepass'),
              ctype or 'application/json')
    assert r.status_code == code, r.text[:300]
    if text:
        assert text in r.json()['error']['message']
    assert api['proc'].poll() is None
    assert _post(api, tok, _clone_body()).status_code == 201


def test_a_chunked_body_over_the_limit_is_a_json_413(cloud, api):
    """No Content-Length: the size limiter cuts the read (it was a 500)."""
    def chunks():
        yield b'{"type": "clone", "input": {"name": "'
        for _ in range(200):
            yield b'x' * 1024
        yield b'"}}'
    r = requests.post(f"{api['url']}/v2/tasks", data=chunks(), timeout=30,
                      headers={'X-Auth-Token': token(cloud, 'demo'),
                               'Content-Type': 'application/json'})
    assert r.status_code == 413, r.text[:300]
    assert r.json()['error']['message'] == \
        'The request body is larger than this service accepts.'
    assert _post(api, token(cloud, 'demo'), _clone_body()).status_code == 201


def test_missing_expired_and_revoked_tokens_get_401(cloud, api,
                                                    revoked_token,
                                                    expired_token):
    assert _post(api, None, _clone_body()).status_code == 401
    assert _post(api, expired_token, _clone_body()).status_code == 401
    r = requests.get(f"{api['url']}/v2/tasks",
                     headers={'X-Auth-Token': expired_token})
    assert r.status_code == 401
    assert _post(api, 'gAAAAABnot-a-token', _clone_body()).status_code == 401
    assert _post(api, revoked_token, _clone_body()).status_code == 401
    r = requests.get(f"{api['url']}/v2/tasks",
                     headers={'X-Auth-Token': revoked_token})
    assert r.status_code == 401


# -- cancel -------------------------------------------------------------------

def test_cancel_of_a_finished_task_is_409(cloud, api):
    task = task_create(cloud, api, 'demo')
    assert wait_status(cloud, api, 'demo', task['id'],
                       ('failure',))['status'] == 'failure'
    r = requests.delete(f"{api['url']}/v2/tasks/{task['id']}",
                        headers={'X-Auth-Token': token(cloud, 'demo')})
    assert r.status_code == 409 and 'already ended' in r.text


# -- the main job, and no secret left behind ----------------------------------

def test_clone_through_the_glance_cli_succeeds_and_leaves_no_token(cloud, api):
    data = os.urandom(3 * 2 ** 20 + 7)
    gc1 = glance_client(cloud, 'demo', 'RegionOne')
    src = gc1.images.create(name='api-src', disk_format='raw',
                            container_format='bare', visibility='private')
    gc1.images.upload(src.id, io.BytesIO(data))
    src = gc1.images.get(src.id)
    task = task_create(cloud, api, 'demo', source_image_id=src.id,
                       name='api-copy')
    alt = task_create(cloud, api, 'alt_demo', source_image_id=src.id)
    done = wait_status(cloud, api, 'demo', task['id'], ('success', 'failure'))
    assert done['status'] == 'success', done
    result = requests.get(f"{api['url']}/v2/tasks/{task['id']}",
                          headers={'X-Auth-Token': token(cloud, 'demo')}
                          ).json()['result']        # (the CLI wraps it)
    assert result['region'] == 'RegionTwo'
    assert result['os_hash_value'] == src.os_hash_value
    copy = glance_client(cloud, 'demo', 'RegionTwo').images.get(
        result['image_id'])
    assert copy.name == 'api-copy' and copy.os_hash_value == src.os_hash_value
    alt_done = wait_status(cloud, api, 'alt_demo', alt['id'], ('success',
                                                               'failure'))
    assert alt_done['status'] == 'failure'
    assert 'not visible' in alt_done['message']
    # The tokens the CLI used (every glance call got a fresh one) are not
    # known here: the same clones again, created with tokens we hold, run
    # to their end (demo's copied, alt_demo's refused), then every place a
    # token could be left is searched for those tokens.
    ran = {}
    for user, name in (('demo', 'api-copy-2'), ('alt_demo', None)):
        tok = token(cloud, user)
        r = _post(api, tok, _clone_body(source_image_id=src.id,
                                        **({'name': name} if name else {})))
        assert r.status_code == 201, r.text
        ran[tok] = (user, r.json()['id'])
    ended = {user: wait_status(cloud, api, user, task_id,
                               ('success', 'failure'))
             for user, task_id in ran.values()}
    assert ended['demo']['status'] == 'success', ended['demo']
    assert ended['alt_demo']['status'] == 'failure', ended['alt_demo']
    tokens = list(ran)
    haystacks = {p.name: p.read_bytes() for p in api['dir'].iterdir()
                 if p.is_file() and (p.suffix in ('.log', '.sqlite',
                                                  '.stdout')
                                     or p.name.endswith('-wal'))}
    assert any(name.endswith('.sqlite') for name in haystacks), haystacks
    for name, blob in haystacks.items():
        for tok in tokens:
            assert tok.encode() not in blob, f'a token is in {name}'
    nodes = zookeeper_nodes(cloud)
    assert any(path.startswith(api['board_path']) for path, _ in nodes)
    for path, blob in nodes:
        for tok in tokens:
            assert tok.encode() not in blob, f'a token is in znode {path}'


def zookeeper_nodes(cloud):
    """(path, data) of every znode, seen as glance-clone's digest user (the
    jobboard's znodes are readable by it alone).  A znode that vanished
    between listing and reading is left out; any other error (a znode we
    may not read, a lost connection) fails the test.
    """
    from kazoo.client import KazooClient
    from kazoo import exceptions as kz_exc
    auth = cloud['zookeeper_auth']
    zk = KazooClient(hosts=cloud['zookeeper'], auth_data=[
        ('digest', f"{auth['username']}:{auth['password']}")])
    zk.start(timeout=10)
    try:
        stack, found = ['/'], []
        while stack:
            path = stack.pop()
            try:
                data, _ = zk.get(path)
                children = zk.get_children(path)
            except kz_exc.NoNodeError:      # vanished meanwhile
                continue
            found.append((path, data or b''))
            stack.extend(path.rstrip('/') + '/' + c for c in children)
        return found
    finally:
        zk.stop()
        zk.close()


def test_cancel_of_a_running_clone_reverts_and_leaves_nothing(cloud, api):
    from tests.functional.test_clone_http import copies_of
    gc1 = glance_client(cloud, 'demo', 'RegionOne')
    src = gc1.images.create(name='api-cancel-src', disk_format='raw',
                            container_format='bare')
    gc1.images.upload(src.id, io.BytesIO(os.urandom(192 * 2 ** 20)))
    task = task_create(cloud, api, 'demo', source_image_id=src.id)
    headers = {'X-Auth-Token': token(cloud, 'demo')}
    deadline = time.monotonic() + 120
    while True:
        shown = requests.get(f"{api['url']}/v2/tasks/{task['id']}",
                             headers=headers).json()
        if shown['status'] != 'pending' or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert shown['status'] == 'processing', shown
    r = requests.delete(f"{api['url']}/v2/tasks/{task['id']}",
                        headers=headers)
    assert r.status_code == 204
    done = wait_status(cloud, api, 'demo', task['id'], ('success', 'failure'))
    assert done['status'] == 'failure', done
    assert 'cancelled by user' in done['message']
    assert copies_of(cloud, src.id) == []

"""Clone tasks at RegionTwo's own Glance endpoint: the local cloud's
RegionTwo glance-api runs ``conductor.api.glance_filter`` in its pipeline
(``tools/localcloud up --glance-clone-filter``), pointing at a clone-api on
127.0.0.1:19393; the unchanged glance CLI uses the catalog's image endpoint.
"""
import contextlib
import http.client
import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

import pytest
import requests

from tests.functional.conftest import glance_client
from tests.functional.conftest import LOCALCLOUD
from tests.functional.conftest import user_env
from tests.functional.test_api import _clone_body
from tests.functional.test_api import BIN
from tests.functional.test_api import delete_trusts_and_jobs
from tests.functional.test_api import FAKE_IMAGE
from tests.functional.test_api import list_ids
from tests.functional.test_api import port_in_use
from tests.functional.test_api import running_api
from tests.functional.test_api import stop
from tests.functional.test_api import table
from tests.functional.test_api import token
from tests.functional.test_api import write_api_conf
from tests.unit.api.test_glance_filter import make_cert
from tests.unit.api.test_glance_filter import serving_garbage

PORT = 19393
TLS_PORT = 19394
CLONE_API = f'http://127.0.0.1:{PORT}'
PUBLIC_ENDPOINT = 'http://image.example.org:9293'
TOO_LARGE = 'The request body is larger than this service accepts.'


def localcloud_up(*args):
    r = subprocess.run([sys.executable, str(LOCALCLOUD), 'up', *args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


@contextlib.contextmanager
def region_two_filter(url, **options):
    """RegionTwo's glance-api with the filter sending clone tasks to
    ``url``; without it again afterwards (later tests meet plain Glance).
    """
    localcloud_up('--glance-clone-filter', url, *(
        f'--glance-clone-filter-option={k}={v}' for k, v in options.items()))
    try:
        yield
    finally:
        localcloud_up('--no-glance-clone-filter')


def free(port):
    if port_in_use(port):
        pytest.fail(f'127.0.0.1:{port} is taken: the Glance filter test '
                    f'starts its clone-api there')


@pytest.fixture(scope='module')
def filtered_region_two(cloud, tmp_path_factory):
    free(PORT)
    with region_two_filter(CLONE_API, public_endpoint=PUBLIC_ENDPOINT), \
            running_api(cloud, tmp_path_factory.mktemp('filter'),
                        port=PORT) as api:
        yield api


def glance_r2(cloud, user, *args, check=True):
    """The glance CLI against RegionTwo's catalog endpoint (Glance itself)."""
    r = subprocess.run([str(BIN / 'glance'), *args],
                       env=user_env(cloud, user, region='RegionTwo'),
                       capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f'glance {args}: {r.stderr}')
    return r


def test_clone_through_region_twos_glance_endpoint(cloud, filtered_region_two):
    glance_url = cloud['regions']['RegionTwo']['glance_url']
    data = os.urandom(2 * 2 ** 20 + 3)
    gc1 = glance_client(cloud, 'demo', 'RegionOne')
    src = gc1.images.create(name='filter-src', disk_format='raw',
                            container_format='bare')
    gc1.images.upload(src.id, io.BytesIO(data))
    src = gc1.images.get(src.id)

    created = table(glance_r2(cloud, 'demo', 'task-create', '--type', 'clone',
                              '--input', json.dumps({
                                  'source_region': 'RegionOne',
                                  'source_image_id': src.id,
                                  'name': 'via-glance'})).stdout)
    assert created['type'] == 'clone' and created['status'] == 'pending'
    task_id = created['id']
    headers = {'X-Auth-Token': token(cloud, 'demo')}
    # The same task, read at Glance's endpoint and at clone-api's.
    at_glance = requests.get(f'{glance_url}/v2/tasks/{task_id}',
                             headers=headers).json()
    assert at_glance['id'] == task_id
    assert requests.get(f'{CLONE_API}/v2/tasks/{task_id}',
                        headers=headers).json()['id'] == task_id
    assert task_id in list_ids(glance_r2(cloud, 'demo', 'task-list').stdout)

    import time
    deadline = time.monotonic() + 180
    while True:
        task = requests.get(f'{glance_url}/v2/tasks/{task_id}',
                            headers=headers).json()
        if task['status'] in ('success', 'failure') or \
                time.monotonic() > deadline:
            break
        time.sleep(1)
    assert task['status'] == 'success', task
    copy = glance_client(cloud, 'demo', 'RegionTwo').images.get(
        task['result']['image_id'])
    assert copy.name == 'via-glance'
    assert copy.os_hash_value == src.os_hash_value
    # Every other call still reaches Glance.
    hashes = glance_r2(cloud, 'demo', 'image-list', '--hash',
                       src.os_hash_value).stdout
    assert copy.id in hashes


def test_openstack_image_clone_uses_region_twos_image_endpoint(
        cloud, filtered_region_two):
    """With no clone service in the catalog and no --os-clone-endpoint,
    ``openstack image clone`` finds clone tasks at the target region's
    image endpoint, whose Glance forwards them.
    """
    from tests.functional.test_osc import OPENSTACK
    gc1 = glance_client(cloud, 'demo', 'RegionOne')
    name = f'filter-osc-{uuid.uuid4().hex[:8]}'
    src = gc1.images.create(name=name, disk_format='raw',
                            container_format='bare')
    gc1.images.upload(src.id, io.BytesIO(os.urandom(2 ** 20 + 9)))
    env = user_env(cloud, 'demo', region='RegionTwo')
    env.pop('OS_CLONE_ENDPOINT', None)
    r = subprocess.run([OPENSTACK, 'image', 'clone', 'create',
                        '--source-region', 'RegionOne', name, '--wait',
                        '-f', 'json'], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    task = json.loads(r.stdout)
    assert task['status'] == 'success' and task['source_image_id'] == src.id
    copy = glance_client(cloud, 'demo', 'RegionTwo').images.get(
        task['image_id'])
    assert copy.os_hash_value == gc1.images.get(src.id).os_hash_value


def test_glance_calls_are_untouched_by_the_filter(cloud, filtered_region_two):
    glance_url = cloud['regions']['RegionTwo']['glance_url']
    headers = {'X-Auth-Token': token(cloud, 'demo')}
    schema = requests.get(f'{glance_url}/v2/schemas/image', headers=headers)
    assert schema.status_code == 200 and schema.json()['name'] == 'image'
    r = requests.get(f'{glance_url}/v2/tasks/{FAKE_IMAGE}', headers=headers)
    # Glance's own answer (its task API is admin-only), not clone-api's 404.
    assert r.status_code in (403, 404) and 'No task found' not in r.text
    r = requests.post(f'{glance_url}/v2/tasks', headers=headers,
                      json={'type': 'import', 'input': {}})
    assert r.status_code in (400, 403)               # Glance refuses it
    assert 'clone' not in r.text
    r = requests.get(f'{glance_url}/v2/schemas/task', headers=headers)
    assert 'clone' in r.json()['properties']['type']['enum']


# -- what the filter reads before authentication, and how it fails ------------

def glance_host_port(cloud):
    url = urllib.parse.urlsplit(cloud['regions']['RegionTwo']['glance_url'])
    return url.hostname, url.port


def raw_post(cloud, headers, chunks):
    """POST /v2/tasks at RegionTwo's glance-api, sending ``chunks`` until
    the server answers (it may stop reading); (status, JSON body).
    """
    conn = http.client.HTTPConnection(*glance_host_port(cloud), timeout=60)
    try:
        conn.putrequest('POST', '/v2/tasks')
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in chunks:
                conn.send(chunk)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_a_200_mb_body_without_a_token_is_413_unread(cloud,
                                                     filtered_region_two):
    status, body = raw_post(cloud, {'Content-Type': 'application/json',
                                    'Content-Length': str(200 * 2 ** 20)},
                            [b'{"type": "import", "input": {"x": "'])
    assert status == 413 and body['error']['message'] == TOO_LARGE


def chunked(*parts):
    """``parts`` in HTTP/1.1 chunked transfer coding."""
    for part in parts:
        yield b'%x\r\n%s\r\n' % (len(part), part)
    yield b'0\r\n\r\n'


def test_a_chunked_body_over_the_limit_is_413(cloud, filtered_region_two):
    status, body = raw_post(
        cloud, {'Content-Type': 'application/json',
                'Transfer-Encoding': 'chunked'},
        chunked(b'{"type": "import", "input": {"x": "',
                *[b'x' * 1024] * 2048, b'"}}'))          # 2 MiB
    assert status == 413 and body['error']['message'] == TOO_LARGE


@pytest.mark.parametrize('raw,message', [
    (b'{"type": "clone", "input": ' + b'[' * 5000 + b']' * 5000 + b'}',
     'the request body is nested deeper than 32 levels'),
    (b'{"type": "clone", "input": {', 'Malformed JSON in request body.'),
], ids=['5000-deep', 'malformed'])
def test_deep_or_malformed_json_is_400_not_500(cloud, filtered_region_two,
                                               raw, message):
    glance_url = cloud['regions']['RegionTwo']['glance_url']
    r = requests.post(f'{glance_url}/v2/tasks', data=raw, timeout=30,
                      headers={'Content-Type': 'application/json'})
    assert r.status_code == 400, r.text[:300]
    assert r.json()['error']['message'] == message
    # Glance itself still answers
    r = requests.get(f'{glance_url}/v2/images', timeout=30,
                     headers={'X-Auth-Token': token(cloud, 'demo')})
    assert r.status_code == 200


def test_location_is_built_on_public_endpoint_not_the_host_header(
        cloud, filtered_region_two):
    glance_url = cloud['regions']['RegionTwo']['glance_url']
    r = requests.post(f'{glance_url}/v2/tasks', data=_clone_body(),
                      timeout=30, headers={
                          'X-Auth-Token': token(cloud, 'demo'),
                          'Content-Type': 'application/json',
                          'Host': 'evil.example:666'})
    assert r.status_code == 201, r.text[:300]
    assert r.headers['Location'] == \
        f"{PUBLIC_ENDPOINT}/v2/tasks/{r.json()['id']}"


@contextlib.contextmanager
def tls_clone_api(cloud, out, port):
    """clone-api served over TLS by gunicorn (no conductor): yields
    (api, CA file).
    """
    cert, key = make_cert(out)
    board_path = f'/glance-clone-apitest/{uuid.uuid4()}'
    files = write_api_conf(cloud, out, board_path, f'https://127.0.0.1:{port}')
    env = dict(os.environ, GLANCE_CLONE_CONFIG_FILES=str(files['clone-api']))
    proc = subprocess.Popen(
        [str(BIN / 'gunicorn'), '--worker-class', 'gthread', '--workers', '1',
         '--no-control-socket',
         '--certfile', str(cert), '--keyfile', str(key),
         '--bind', f'127.0.0.1:{port}', 'conductor.api.wsgi:application'],
        env=env, stdout=open(out / 'clone-api.stdout', 'w'),
        stderr=subprocess.STDOUT)
    api = {'url': f'https://127.0.0.1:{port}', 'conf': files['clone-api'],
           'board_path': board_path, 'proc': proc, 'dir': out}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(api['url'] + '/versions', verify=str(cert),
                             timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                # (a worker still loading the app: the TLS handshake waits)
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield api, cert
    finally:
        stop(proc)
        delete_trusts_and_jobs(cloud, api)


def test_clone_tasks_reach_an_https_clone_api_verified_with_ca_file(
        cloud, tmp_path):
    free(TLS_PORT)
    glance_url = cloud['regions']['RegionTwo']['glance_url']
    headers = {'X-Auth-Token': token(cloud, 'demo'),
               'Content-Type': 'application/json'}
    with tls_clone_api(cloud, tmp_path, TLS_PORT) as (api, cert):
        with region_two_filter(api['url'], ca_file=cert):
            r = requests.post(f'{glance_url}/v2/tasks', data=_clone_body(),
                              headers=headers, timeout=60)
            assert r.status_code == 201, r.text[:300]
            task_id = r.json()['id']
            shown = requests.get(f'{glance_url}/v2/tasks/{task_id}',
                                 headers=headers, timeout=60).json()
            assert shown['id'] == task_id and shown['type'] == 'clone'
        # Without the CA, the certificate is not trusted: a clear 503.
        with region_two_filter(api['url']):
            r = requests.post(f'{glance_url}/v2/tasks', data=_clone_body(),
                              headers=headers, timeout=60)
            assert r.status_code == 503
            assert r.json()['error']['message'] == (
                'The clone service did not answer; try again later.')


def test_a_broken_answer_from_clone_api_is_a_clear_502(cloud):
    """A clone-api URL where something answers that is not HTTP."""
    glance_url = cloud['regions']['RegionTwo']['glance_url']
    with serving_garbage() as url, region_two_filter(url):
        r = requests.post(f'{glance_url}/v2/tasks', data=_clone_body(),
                          timeout=60, headers={
                              'X-Auth-Token': token(cloud, 'demo'),
                              'Content-Type': 'application/json'})
        assert r.status_code == 502, r.text[:300]
        assert r.json()['error']['message'] == (
            'The clone service gave no valid answer; try again later.')

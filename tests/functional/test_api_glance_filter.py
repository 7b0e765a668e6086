"""Clone tasks at RegionTwo's own Glance endpoint: the local cloud's
RegionTwo glance-api runs ``conductor.api.glance_filter`` in its pipeline
(``tools/localcloud up --glance-clone-filter``), pointing at a clone-api on
127.0.0.1:19393; the unchanged glance CLI uses the catalog's image endpoint.
"""
import io
import json
import os
import subprocess
import sys

import pytest
import requests

from tests.functional.conftest import LOCALCLOUD, glance_client, user_env
from tests.functional.test_api import (BIN, FAKE_IMAGE, list_ids,
                                       port_in_use, running_api, table,
                                       token)

PORT = 19393
CLONE_API = f'http://127.0.0.1:{PORT}'


@pytest.fixture(scope='module')
def filtered_region_two(cloud, tmp_path_factory):
    r = subprocess.run([sys.executable, str(LOCALCLOUD), 'up',
                        '--glance-clone-filter', CLONE_API],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    if port_in_use(PORT):
        pytest.fail(f'127.0.0.1:{PORT} is taken: the Glance filter test '
                    f'starts its clone-api there')
    with running_api(cloud, tmp_path_factory.mktemp('filter'),
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

"""``openstack image clone ...``: the real ``openstack`` command (python-
openstackclient with glance-clone's plugin) against the local cloud, a real
clone-api and a real conductor, as a user in RegionTwo cloning from
RegionOne.
"""
import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.functional.conftest import glance_client
from tests.functional.conftest import user_env
from tests.functional.conftest import user_session
from tests.functional.test_api import BIN
from tests.functional.test_api import running_api
from tests.functional.test_api import stop

OPENSTACK = str(pathlib.Path(sys.executable).parent / 'openstack')


@pytest.fixture(scope='module')
def api(cloud, tmp_path_factory):
    """clone-api whose conductor starts on demand (``conductor``), so a
    clone can be cancelled while it waits.
    """
    with running_api(cloud, tmp_path_factory.mktemp('osc'),
                     conductor=False) as running:
        yield running


@pytest.fixture(scope='module')
def conductor(api):
    proc = subprocess.Popen(
        [str(BIN / 'clone-conductor'), '--config-file',
         str(api['dir'] / 'clone-conductor.conf')],
        stdout=open(api['dir'] / 'clone-conductor.stdout', 'w'),
        stderr=subprocess.STDOUT)
    yield proc
    stop(proc)


def openstack(cloud, api, user, *args, check=True, endpoint=True):
    env = user_env(cloud, user, region='RegionTwo')
    env.pop('OS_CLONE_ENDPOINT', None)
    if endpoint:
        env['OS_CLONE_ENDPOINT'] = api['url']
    r = subprocess.run([OPENSTACK, *args], env=env, capture_output=True,
                       text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f'openstack {args} failed: {r.stderr}')
    return r


def as_json(r):
    return json.loads(r.stdout)


def upload(cloud, name, size=2 ** 20 + 5, user='demo'):
    gc = glance_client(cloud, user, 'RegionOne')
    image = gc.images.create(name=name, disk_format='raw',
                             container_format='bare')
    gc.images.upload(image.id, io.BytesIO(os.urandom(size)))
    return gc.images.get(image.id)


def unique(prefix):
    return f'{prefix}-{uuid.uuid4().hex[:8]}'


def wait_ended(cloud, api, task_id, timeout=180):
    headers = {'X-Auth-Token': user_session(cloud, 'demo').get_token()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = requests.get(f"{api['url']}/v2/tasks/{task_id}",
                            headers=headers, timeout=30).json()
        if task['status'] in ('success', 'failure'):
            return task
        time.sleep(0.5)
    raise AssertionError(f'clone {task_id} did not end in {timeout}s')


def test_cancel_of_a_waiting_clone_ends_it_cancelled(cloud, api, request):
    src = upload(cloud, unique('osc-cancel'))
    made = as_json(openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                             '--source-region', 'RegionOne', src.id,
                             '-f', 'json'))
    assert made['status'] == 'pending'          # no conductor runs yet
    r = openstack(cloud, api, 'demo', 'image', 'clone', 'cancel', made['id'])
    assert r.stdout == '' and r.stderr == ''
    request.getfixturevalue('conductor')       # one takes it now
    wait_ended(cloud, api, made['id'])
    ended = as_json(openstack(cloud, api, 'demo', 'image', 'clone', 'show',
                              made['id'], '-f', 'json'))
    assert ended['status'] == 'failure'
    assert ended['message'] == 'cancelled by user'
    # Cancelling it again is refused with the API's sentence, exit 1.
    again = openstack(cloud, api, 'demo', 'image', 'clone', 'cancel',
                      made['id'], check=False)
    assert again.returncode == 1
    assert 'already ended (failure); nothing to cancel' in again.stderr
    assert '1 of 1 clones failed to cancel' in again.stderr


def test_create_by_name_waits_with_a_progress_bar_and_shows_the_copy(
        cloud, api, conductor):
    name = unique('osc-src')
    src = upload(cloud, name, size=3 * 2 ** 20 + 1)
    r = openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                  '--source-region', 'RegionOne', name,
                  '--name', 'osc-copy', '--property', 'build=42',
                  '--property', 'team=imaging', '--tag', 'gold',
                  '--wait', '-f', 'json')
    task = json.loads(r.stdout)
    assert task['status'] == 'success', task
    assert task['source_image_id'] == src.id          # the name, resolved
    assert task['target_region'] == 'RegionTwo'      # the cloud's region
    assert task['os_hash_value'] == src.os_hash_value
    assert task['input']['properties'] == {'build': '42', 'team': 'imaging'}
    assert task['input']['tags'] == ['gold']
    # The progress bar went to stderr, ending full.
    assert '[' + '#' * 30 + '] 100%' in r.stderr
    assert 'success' in r.stderr and task['id'] not in r.stderr
    copy = glance_client(cloud, 'demo', 'RegionTwo').images.get(
        task['image_id'])
    assert copy.name == 'osc-copy' and copy.os_hash_value == src.os_hash_value
    assert copy.build == '42' and 'gold' in copy.tags
    # -c picks columns, as everywhere in OSC.
    shown = as_json(openstack(cloud, api, 'demo', 'image', 'clone', 'show',
                              task['id'], '-f', 'json', '-c', 'status',
                              '-c', 'image_id'))
    assert shown == {'status': 'success', 'image_id': task['image_id']}
    listed = as_json(openstack(cloud, api, 'demo', 'image', 'clone', 'list',
                               '--status', 'success', '-f', 'json'))
    assert task['id'] in [t['ID'] for t in listed]
    assert {t['Status'] for t in listed} == {'success'}
    ids = openstack(cloud, api, 'demo', 'image', 'clone', 'list', '--limit',
                    '1', '--sort', 'created_at:asc', '-f', 'value',
                    '-c', 'ID').stdout.split()
    assert len(ids) == 1 and ids[0] != task['id']      # the oldest one
    # The copy is found among the source's copies.
    copies = as_json(openstack(cloud, api, 'demo', 'image', 'clone',
                               'copies', src.id, '--image-region',
                               'RegionOne', '-f', 'json'))
    assert [(c['Region'], c['ID'], c['Verified']) for c in copies] == [
        ('RegionTwo', task['image_id'], True)]


def test_dry_run_and_if_exists_reach_the_clone(cloud, api, conductor):
    src = upload(cloud, unique('osc-dry'))
    first = as_json(openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                              '--source-region', 'RegionOne', src.id,
                              '--wait', '-f', 'json'))
    assert first['status'] == 'success'
    dry = as_json(openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                            '--source-region', 'RegionOne', src.id,
                            '--dry-run', '--if-exists', 'reuse',
                            '--strategy', 'http', '--wait', '-f', 'json'))
    assert dry['status'] == 'success'
    assert dry['input']['dry_run'] is True
    assert dry['result']['existing_copy'] == first['image_id']
    reused = as_json(openstack(cloud, api, 'demo', 'image', 'clone',
                               'create', '--source-region', 'RegionOne',
                               src.id, '--if-exists', 'reuse', '--wait',
                               '-f', 'json'))
    assert reused['result']['reused'] is True
    assert reused['image_id'] == first['image_id']


def test_a_failed_clone_exits_1_with_its_sentence(cloud, api, conductor):
    src = upload(cloud, unique('osc-private'))        # demo's, private
    r = openstack(cloud, api, 'alt_demo', 'image', 'clone', 'create',
                  '--source-region', 'RegionOne', src.id, '--wait',
                  check=False)
    assert r.returncode == 1
    assert 'failed:' in r.stderr and 'not visible' in r.stderr


def test_image_names_are_resolved_in_the_source_region_or_refused(cloud,
                                                                  api):
    name = unique('osc-twice')
    upload(cloud, name)
    upload(cloud, name)
    r = openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                  '--source-region', 'RegionOne', name, check=False)
    assert r.returncode == 1
    assert f"more than one image named '{name}' is visible to you in " \
           f"region 'RegionOne'; give its id" in r.stderr
    r = openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                  '--source-region', 'RegionOne', 'osc-no-such-image',
                  check=False)
    assert r.returncode == 1
    assert "no image named 'osc-no-such-image' is visible to you in " \
           "region 'RegionOne'" in r.stderr
    # Input the API refuses comes back as its sentence.
    r = openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                  '--source-region', 'RegionOne', str(uuid.uuid4()),
                  '--strategy', 'carrier-pigeon', check=False)
    assert r.returncode == 1
    assert 'input.strategy must be one of: auto' in r.stderr
    r = openstack(cloud, api, 'demo', 'image', 'clone', 'show',
                  'not-an-id', check=False)
    assert r.returncode == 1
    assert "'not-an-id' is not a clone id" in r.stderr


@contextlib.contextmanager
def clone_service_in_catalog(cloud, url):
    """A ``clone`` service with RegionTwo's public endpoint at ``url`` in
    Keystone's catalog (removed afterwards).
    """
    from keystoneclient.v3 import client as ks_client
    ks = ks_client.Client(session=user_session(cloud, 'admin'),
                          interface='public')
    service = ks.services.create(name=unique('glance-clone-test'),
                                 type='clone', enabled=True)
    try:
        ks.endpoints.create(service=service, url=url, interface='public',
                            region='RegionTwo', enabled=True)
        yield
    finally:
        ks.services.delete(service)


def test_the_endpoint_comes_from_the_catalog_or_its_absence_is_explained(
        cloud, api):
    # RegionTwo's plain Glance does not run clone tasks: told, not a 400.
    r = openstack(cloud, api, 'demo', 'image', 'clone', 'list',
                  endpoint=False, check=False)
    assert r.returncode == 1
    assert "the image service of region 'RegionTwo' does not run clone " \
           "tasks" in r.stderr and '--os-clone-endpoint' in r.stderr
    made = as_json(openstack(cloud, api, 'demo', 'image', 'clone', 'create',
                             '--source-region', 'RegionOne',
                             str(uuid.uuid4()), '-f', 'json'))
    with clone_service_in_catalog(cloud, api['url'] + '/v2'):
        listed = as_json(openstack(cloud, api, 'demo', 'image', 'clone',
                                   'list', '-f', 'json', endpoint=False))
    assert made['id'] in [t['ID'] for t in listed]
    # --os-clone-endpoint wins over the catalog.
    r = openstack(cloud, api, 'demo', '--os-clone-endpoint',
                  'http://127.0.0.1:9', 'image', 'clone', 'list',
                  endpoint=False, check=False)
    assert r.returncode == 1 and '127.0.0.1:9 did not answer' in r.stderr

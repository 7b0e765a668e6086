"""Dry runs, if_exists and the copies of an image, on the real local cloud:
clone-manage (the graph in its own process) and clone-api with a real
conductor.
"""
import json
import os
import subprocess
import uuid

import pytest
import requests

from clone_flows import metadata
from tests.functional.conftest import glance_client
from tests.functional.conftest import user_env
from tests.functional.conftest import user_session
from tests.functional.test_api import running_api
from tests.functional.test_api import task_create
from tests.functional.test_api import token
from tests.functional.test_api import wait_status
from tests.functional.test_clone_http import BIN
from tests.functional.test_clone_http import clone
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import upload


def _my_trusts(cloud, user='demo'):
    from keystoneclient.v3 import client as ks_client
    sess = user_session(cloud, user)
    me = sess.get_user_id()
    return {t.id for t in ks_client.Client(session=sess).trusts.list(
        trustor_user=me) if t.trustor_user_id == me}


def _all_images_of(cloud, region, key, value):
    """Images of ``region`` whose ``key`` is ``value``, hidden ones too
    (as the admin sees them: every project).
    """
    admin = glance_client(cloud, 'admin', region)
    return list(admin.images.list(filters={key: value})) + \
        list(admin.images.list(filters={key: value, 'os_hidden': True}))


# -- dry run -----------------------------------------------------------------

def test_dry_run_changes_nothing_holds_no_trust_and_reports_the_plan(
        cloud, clone_conf_file):
    src = upload(cloud, os.urandom(300_000), name='dry-src',
                 os_distro='debian', hw_disk_bus='scsi')
    trusts = _my_trusts(cloud)
    before = {i.id for i in glance_client(cloud, 'admin',
                                          'RegionTwo').images.list()}
    rc, out, err = clone(cloud, clone_conf_file, src.id, '--dry-run',
                         '--visibility', 'public', '--property', 'extra=1')
    assert rc == 0, err
    assert copies_of(cloud, src.id) == []
    assert {i.id for i in glance_client(cloud, 'admin',
                                        'RegionTwo').images.list()} == before
    assert _my_trusts(cloud) == trusts
    plan = out['result']
    assert out['state'] == 'SUCCESS' and plan['dry_run'] is True
    assert plan['bytes_to_move'] == 300_000
    assert plan['strategy'] == 'http' and plan['strategy_reason']
    checks = {c['check']: c for c in plan['checks']}
    assert {'source visible', 'source downloadable', 'metadata',
            'target may create images', 'quota headroom'} <= set(checks)
    assert 'member role' in checks['target may create images']['detail']
    assert any('publicize_image' in n for n in plan['not_proven'])
    props = plan['properties']
    assert props['os_distro']['action'] == 'copied'
    assert props['owner']['action'] == 'dropped'
    assert props['extra'] == {'action': 'added', 'value': '1',
                              'reason': 'your input'}
    assert props['visibility']['value'] == 'public'
    assert props[metadata.PROVENANCE_IMAGE] == {
        'action': 'added', 'value': src.id,
        'reason': 'provenance of the copy'}


@pytest.mark.parametrize('kind', ['not visible', 'volume snapshot',
                                  'encrypted', 'reader'])
def test_dry_run_that_fails_a_check_gives_the_clones_sentence(
        cloud, clone_conf_file, kind):
    user = 'demo_reader' if kind == 'reader' else 'demo'
    if kind == 'reader':
        src = upload(cloud, b'readable', name='for-reader')
    elif kind == 'not visible':
        src = upload(cloud, b'alt', user='alt_demo', name='alt-private',
                     visibility='private')
    elif kind == 'volume snapshot':
        src = upload(cloud, b'', name='server-snapshot', bdm_v2='True',
                     block_device_mapping='[{"source_type": "snapshot"}]')
    else:
        src = upload(cloud, b'x' * 4096, name='encrypted',
                     cinder_encryption_key_id=str(uuid.uuid4()))
    trusts = _my_trusts(cloud, user)
    rc_dry, dry, err = clone(cloud, clone_conf_file, src.id, '--dry-run',
                             user=user)
    assert rc_dry == 1, err
    assert _my_trusts(cloud, user) == trusts
    assert copies_of(cloud, src.id) == []
    rc_real, real, err_real = clone(cloud, clone_conf_file, src.id,
                                    user=user)
    assert rc_real == 1, err_real
    if kind == 'reader':
        # refused before any trust, step or JSON outcome: the same line
        assert dry is None and real is None
        assert "needs the role 'member' on project" in err
        assert err.strip().splitlines()[-1] == \
            err_real.strip().splitlines()[-1]
        return
    assert dry['message'] == real['message']
    assert dry['failed_step'] == real['failed_step']


# -- if_exists ----------------------------------------------------------------

@pytest.fixture(scope='module')
def cloned_once(cloud, clone_conf_file):
    src = upload(cloud, os.urandom(200_000), name='if-exists-src')
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert rc == 0, err
    return src, out['result']['image_id']


def _clone_if_exists(cloud, conf_file, src, mode):
    return clone(cloud, conf_file, src.id, '--if-exists', mode)


def test_if_exists_reuse_ends_with_the_existing_copy_and_makes_none(
        cloud, clone_conf_file, cloned_once):
    src, copy_id = cloned_once
    trusts = _my_trusts(cloud)
    rc, out, err = _clone_if_exists(cloud, clone_conf_file, src, 'reuse')
    assert rc == 0, err
    assert out['result']['image_id'] == copy_id
    assert out['result']['reused'] is True
    assert out['result']['os_hash_value'] == src.os_hash_value
    assert [i.id for i in copies_of(cloud, src.id)] == [copy_id]
    assert _my_trusts(cloud) == trusts


def test_if_exists_fail_refuses_naming_the_copy(cloud, clone_conf_file,
                                                cloned_once):
    src, copy_id = cloned_once
    rc, out, err = _clone_if_exists(cloud, clone_conf_file, src, 'fail')
    assert rc == 1, err
    assert out['message'] == (
        f"image {src.id} of RegionOne already has a verified copy in your "
        f"project in RegionTwo: image {copy_id} (if_exists is 'fail')")
    assert [i.id for i in copies_of(cloud, src.id)] == [copy_id]


def test_if_exists_reuse_ignores_another_projects_copy(cloud,
                                                       clone_conf_file):
    src = upload(cloud, os.urandom(1000), name='community-src',
                 visibility='community')
    rc, theirs, err = clone(cloud, clone_conf_file, src.id, user='alt_demo')
    assert rc == 0, err
    rc, mine, err = _clone_if_exists(cloud, clone_conf_file, src, 'reuse')
    assert rc == 0, err
    assert 'reused' not in mine['result']
    assert mine['result']['image_id'] != theirs['result']['image_id']


def test_if_exists_copy_makes_another_copy(cloud, clone_conf_file,
                                           cloned_once):
    src, copy_id = cloned_once
    rc, out, err = _clone_if_exists(cloud, clone_conf_file, src, 'copy')
    assert rc == 0, err
    assert out['result']['image_id'] != copy_id
    assert {i.id for i in copies_of(cloud, src.id)} == {
        copy_id, out['result']['image_id']}


# -- the copies of an image, along a chain ------------------------------------

def _copies_cli(cloud, conf_file, region, image_id, user='demo'):
    r = subprocess.run(
        [str(BIN / 'clone-manage'), '--config-file', str(conf_file),
         'copies', '--region', region, '--image', image_id, '--json'],
        env=user_env(cloud, user), capture_output=True, text=True,
        timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_chain_with_the_middle_copy_deleted_still_lists_the_originals_copies(
        cloud, clone_conf_file):
    orig = upload(cloud, os.urandom(50_000), name='chain-orig')
    rc, first, err = clone(cloud, clone_conf_file, orig.id)
    assert rc == 0, err
    middle = first['result']['image_id']
    rc, second, err = clone(cloud, clone_conf_file, middle,
                            source='RegionTwo', target='RegionOne')
    assert rc == 0, err
    grandchild = second['result']['image_id']
    rc, third, err = clone(cloud, clone_conf_file, grandchild)
    assert rc == 0, err
    great = third['result']['image_id']
    r1 = glance_client(cloud, 'demo', 'RegionOne')
    assert r1.images.get(grandchild)[metadata.PROVENANCE_ORIGIN_IMAGE] == \
        orig.id
    glance_client(cloud, 'demo', 'RegionTwo').images.delete(middle)

    listing = _copies_cli(cloud, clone_conf_file, 'RegionOne', orig.id)
    found = {(e['region'], e['image_id']): e for e in listing['copies']}
    assert set(found) == {('RegionOne', grandchild), ('RegionTwo', great)}
    assert all(e['verified'] for e in found.values())
    assert found[('RegionOne', grandchild)]['source'] == {
        'region': 'RegionTwo', 'image_id': middle}
    assert found[('RegionTwo', great)]['origin'] == {
        'region': 'RegionOne', 'image_id': orig.id}
    # alt_demo sees none of demo's private copies
    assert _copies_cli(cloud, clone_conf_file, 'RegionOne', orig.id,
                       user='alt_demo')['copies'] == []


# -- the same through clone-api and a real conductor --------------------------

@pytest.fixture(scope='module')
def api(cloud, tmp_path_factory):
    with running_api(cloud, tmp_path_factory.mktemp('api-dry')) as running:
        yield running


def _task(cloud, api, task_id):
    return requests.get(f"{api['url']}/v2/tasks/{task_id}",
                        headers={'X-Auth-Token': token(cloud, 'demo')}).json()


def test_api_dry_run_ends_success_with_the_plan_and_leaves_nothing(cloud,
                                                                   api):
    src = upload(cloud, os.urandom(70_000), name='api-dry-src')
    trusts = _my_trusts(cloud)
    task = task_create(cloud, api, 'demo', source_image_id=src.id,
                       dry_run=True)
    done = wait_status(cloud, api, 'demo', task['id'], ('success',
                                                        'failure'))
    assert done['status'] == 'success', done
    result = _task(cloud, api, task['id'])['result']
    assert result['dry_run'] is True and result['bytes_to_move'] == 70_000
    assert result['properties'][metadata.PROVENANCE_IMAGE]['value'] == src.id
    assert _all_images_of(cloud, 'RegionTwo', metadata.PROVENANCE_CLONE,
                          task['id']) == []
    assert copies_of(cloud, src.id) == []
    assert _my_trusts(cloud) == trusts


def test_api_if_exists_reuse_and_fail_and_the_copies_route(cloud, api):
    src = upload(cloud, os.urandom(10_000), name='api-reuse-src')
    first = task_create(cloud, api, 'demo', source_image_id=src.id)
    assert wait_status(cloud, api, 'demo', first['id'], (
        'success', 'failure'))['status'] == 'success'
    copy_id = _task(cloud, api, first['id'])['result']['image_id']
    reuse = task_create(cloud, api, 'demo', source_image_id=src.id,
                        if_exists='reuse')
    fail = task_create(cloud, api, 'demo', source_image_id=src.id,
                       if_exists='fail')
    assert wait_status(cloud, api, 'demo', reuse['id'], (
        'success', 'failure'))['status'] == 'success'
    reused = _task(cloud, api, reuse['id'])['result']
    assert reused['image_id'] == copy_id and reused['reused'] is True
    failed = wait_status(cloud, api, 'demo', fail['id'], ('success',
                                                          'failure'))
    assert failed['status'] == 'failure'
    assert f'image {copy_id}' in _task(cloud, api, fail['id'])['message']
    assert [i.id for i in copies_of(cloud, src.id)] == [copy_id]

    r = requests.get(f"{api['url']}/v2/images/{src.id}/copies",
                     params={'region': 'RegionOne'},
                     headers={'X-Auth-Token': token(cloud, 'demo')})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body['image']['found'] and body['image']['image_id'] == src.id
    assert [(c['region'], c['image_id'], c['verified'])
            for c in body['copies']] == [('RegionTwo', copy_id, True)]
    r = requests.get(f"{api['url']}/v2/images/{src.id}/copies",
                     params={'region': 'Nowhere'},
                     headers={'X-Auth-Token': token(cloud, 'demo')})
    assert r.status_code == 400 and 'has no image endpoint' in r.text
    r = requests.get(f"{api['url']}/v2/images/{src.id}/copies")
    assert r.status_code == 401

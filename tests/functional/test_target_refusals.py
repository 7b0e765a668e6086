"""What the target region refuses is said at once, in a sentence, and
nothing is retried or left behind.

RegionTwo's real Glance gets a storage quota (``user_storage_quota``), or
Keystone's unified limits, through the optional ``glance-image-import.conf``
Glance reads before its own configuration; the file is removed and Glance
restarted afterwards.
"""
import json
import os
import pathlib
import re

import pytest

from tests.functional.conftest import glance_etc
from tests.functional.conftest import restart_glance
from tests.functional.conftest import user_session
from tests.functional.test_clone_http import assert_failed_cleanly
from tests.functional.test_clone_http import clone
from tests.functional.test_clone_http import upload


@pytest.fixture
def region_two_quota(cloud):
    extra = glance_etc(cloud, 'RegionTwo') / 'glance-image-import.conf'
    extra.write_text('[DEFAULT]\nuser_storage_quota = 1MB\n')
    try:
        restart_glance('RegionTwo')
        yield
    finally:
        extra.unlink()
        restart_glance('RegionTwo')


def _refused_uploads(cloud):
    log = open(cloud['regions']['RegionTwo']['log'], errors='replace').read()
    return len(re.findall(r'"PUT /v2/images/[0-9a-f-]+/file HTTP/1.1" 413',
                          log))


def test_quota_refusal_is_one_sentence_and_not_retried(
        cloud, clone_conf_file, region_two_quota):
    src = upload(cloud, os.urandom(2 * 1024 * 1024), name='over-quota')
    before = _refused_uploads(cloud)
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          'RegionTwo refused the image: project quota '
                          'exceeded (0 bytes of storage left)')
    assert out['message'].endswith('bytes of storage left)'), out
    assert _refused_uploads(cloud) - before == 1


def test_public_copy_asked_by_a_member_is_refused_before_any_byte_moves(
        cloud, clone_conf_file):
    src = upload(cloud, os.urandom(1024 * 1024), name='wants-public')
    rc, out, err = clone(cloud, clone_conf_file, src.id,
                         '--visibility', 'public')
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          "RegionTwo does not let you make images public "
                          "(Glance's publicize_image policy)")
    assert out['failed_step'] == 'clone-reserve-image'


def test_admin_publishes_only_where_the_operator_delegates_admin(
        cloud, clone_conf_file, tmp_path):
    src = upload(cloud, os.urandom(1024 * 1024), user='admin',
                 name='admin-public')
    # a clone's trust carries only [clone] trust_roles (member by default)
    rc, out, err = clone(cloud, clone_conf_file, src.id,
                         '--visibility', 'public', user='admin')
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          'RegionTwo does not let you make images public')
    conf = tmp_path / 'admin-delegated.conf'
    conf.write_text(clone_conf_file.read_text() +
                    '\n[clone]\ntrust_roles = member,admin\n')
    rc, out, err = clone(cloud, conf, src.id, '--visibility', 'public',
                         user='admin')
    assert rc == 0, err
    assert out['result']['visibility'] == 'public'


IDENTITY = {'service_type': 'identity', 'interface': 'public',
            'version': (3, 0)}
LIMITS = ('image_size_total', 'image_stage_total', 'image_count_total',
          'image_count_uploading')


@pytest.fixture
def region_two_unified_limits(cloud):
    """RegionTwo's Glance enforces Keystone's unified limits (and reports
    usage at /v2/info/usage): generous registered limits, and project demo
    limited to 1 MiB of images.  Everything is undone afterwards.
    """
    admin = user_session(cloud, 'admin')

    def ks(method, path, **kw):
        return admin.request(path, method, endpoint_filter=IDENTITY, **kw)
    image = ks('GET', '/services?type=image').json()['services'][0]['id']
    endpoint = ks('GET', f'/endpoints?service_id={image}&interface=public'
                  f'&region_id=RegionTwo').json()['endpoints'][0]['id']
    glance_user = ks('GET', '/users?name=glance').json()['users'][0]['id']
    reader = ks('GET', '/roles?name=reader').json()['roles'][0]['id']
    secrets = json.loads((pathlib.Path(cloud['state_dir']) /
                          'secrets.json').read_text())
    made = []
    extra = glance_etc(cloud, 'RegionTwo') / 'glance-image-import.conf'
    try:
        # Glance reads limits with a system-scoped token of its own user
        ks('PUT', f'/system/users/{glance_user}/roles/{reader}')
        for name in LIMITS:
            made.append(('/registered_limits', ks(
                'POST', '/registered_limits', json={'registered_limits': [{
                    'service_id': image, 'region_id': 'RegionTwo',
                    'resource_name': name, 'default_limit': 1000000}]}
            ).json()['registered_limits'][0]['id']))
        made.append(('/limits', ks('POST', '/limits', json={'limits': [{
            'service_id': image, 'region_id': 'RegionTwo',
            'project_id': cloud['users']['demo']['project_id'],
            'resource_name': 'image_size_total', 'resource_limit': 1}]}
        ).json()['limits'][0]['id']))
        extra.write_text(f"""[DEFAULT]
use_keystone_limits = true

[oslo_limit]
auth_url = {cloud['auth_url']}
auth_type = password
username = glance
password = {secrets['glance']}
user_domain_name = Default
system_scope = all
endpoint_id = {endpoint}
""")
        extra.chmod(0o600)
        restart_glance('RegionTwo')
        yield
    finally:
        if extra.exists():
            extra.unlink()
        restart_glance('RegionTwo')
        for kind, limit_id in reversed(made):
            ks('DELETE', f'{kind}/{limit_id}', raise_exc=False)
        ks('DELETE', f'/system/users/{glance_user}/roles/{reader}',
           raise_exc=False)


def test_quota_headroom_is_checked_before_anything_is_reserved(
        cloud, clone_conf_file, region_two_unified_limits):
    src = upload(cloud, os.urandom(2 * 1024 * 1024), name='no-headroom')
    before = _refused_uploads(cloud)
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          'RegionTwo refused the image: project quota '
                          'exceeded (image_size_total: limit 1 MiB, in use ')
    assert out['message'].endswith('the copy needs 2 MiB)'), out
    assert out['failed_step'] == 'clone-plan-copy'
    assert _refused_uploads(cloud) == before          # no upload tried

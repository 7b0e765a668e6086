"""What the target region refuses is said at once, in a sentence, and
nothing is retried or left behind.

RegionTwo's real Glance gets a storage quota (``user_storage_quota``, in
the optional ``glance-image-import.conf`` Glance reads before its own
configuration); the file is removed and Glance restarted afterwards.
"""
import os
import re

import pytest

from tests.functional.conftest import glance_etc, restart_glance
from tests.functional.test_clone_http import (assert_failed_cleanly, clone,
                                              upload)


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


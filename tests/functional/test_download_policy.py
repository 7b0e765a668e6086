"""Glance's download policy decides for a clone as it would for the user.

RegionOne's real Glance is given ``download_image: role:admin`` (a licensed
image catalogue: members may see images but not download them).  A clone
must then be refused at its Authorize step, with a sentence, before any
image is reserved in RegionTwo; store-native strategies never read through
Glance, so the check has to be Glance's own answer to the user's delegation.
The policy file is restored and RegionOne's Glance restarted afterwards.
"""
import contextlib
import time

import pytest

from tests.functional.conftest import glance_etc
from tests.functional.conftest import restart_glance
from tests.functional.conftest import user_session
from tests.functional.test_clone_http import clone
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import upload


def _download_status(cloud, user, image_id):
    resp = user_session(cloud, user).get(
        f'/v2/images/{image_id}/file', headers={'Range': 'bytes=0-0'},
        raise_exc=False, endpoint_filter={
            'service_type': 'image', 'region_name': 'RegionOne',
            'interface': 'public'})
    return resp.status_code


def _wait_for_status(cloud, image_id, wanted, seconds=20):
    deadline = time.monotonic() + seconds
    while True:
        status = _download_status(cloud, 'demo', image_id)
        if status in wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


@contextlib.contextmanager
def download_admin_only(cloud, image_id):
    """RegionOne's Glance lets only admins download, until the block ends
    (then its policy file is restored and it is restarted).
    """
    policy = glance_etc(cloud, 'RegionOne') / 'policy.yaml'
    original = policy.read_text()
    try:
        policy.write_text(original.replace(
            '\n{}\n', '\n') + '"download_image": "role:admin"\n')
        assert _wait_for_status(cloud, image_id, (403,)) == 403
        yield
    finally:
        policy.write_text(original)
        # oslo.policy keeps an overridden rule when the file goes back to
        # {}: a restart gives Glance its defaults again
        restart_glance('RegionOne')
        assert _wait_for_status(cloud, image_id, (200, 206, 400)) != 403


@pytest.fixture
def licensed_image(cloud):
    """An image demo may see but, by RegionOne's policy, not download."""
    src = upload(cloud, b'licensed bits ' * 100, name='licensed')
    with download_admin_only(cloud, src.id):
        yield src


def test_image_the_user_may_not_download_is_refused_before_anything_is_made(
        cloud, clone_conf_file, licensed_image):
    rc, out, err = clone(cloud, clone_conf_file, licensed_image.id)
    assert rc == 1, err
    assert out['message'] == (
        f'you may not download image {licensed_image.id} in RegionOne (the '
        f"image service's download policy refuses it), so it cannot be "
        f'cloned'), out
    assert out['failed_step'] == 'clone-authorize', out
    assert copies_of(cloud, licensed_image.id) == []


def test_explicit_http_strategy_gets_the_same_sentence(
        cloud, clone_conf_file, licensed_image):
    rc, out, err = clone(cloud, clone_conf_file, licensed_image.id,
                         '--strategy', 'http')
    assert rc == 1, err
    assert out['message'].startswith(
        f'you may not download image {licensed_image.id} in RegionOne'), out
    assert copies_of(cloud, licensed_image.id) == []

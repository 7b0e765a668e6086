"""Clones over HTTP stream between the two real regions, with clone-manage.

Every failure must end with a sentence the user understands and nothing
left in RegionTwo that carries the clone's provenance.
"""
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid

import pytest

from clone_flows import metadata
from tests.functional.conftest import glance_client
from tests.functional.conftest import localcloud
from tests.functional.conftest import user_env

BIN = pathlib.Path(sys.executable).parent
MiB = 1024 * 1024


def upload(cloud, data, user='demo', region='RegionOne', **fields):
    gc = glance_client(cloud, user, region)
    fields.setdefault('disk_format', 'raw')
    fields.setdefault('container_format', 'bare')
    image = gc.images.create(**fields)
    gc.images.upload(image.id, io.BytesIO(data))
    return gc.images.get(image.id)


def clone_cmd(conf_file, image_id, *extra, source='RegionOne',
              target='RegionTwo'):
    return [str(BIN / 'clone-manage'), '--config-file', str(conf_file),
            'clone',
            '--source-region', source, '--image', image_id, '--target-region',
            target, '--json', *extra]


def clone(cloud, conf_file, image_id, *extra, user='demo', **kw):
    r = subprocess.run(clone_cmd(conf_file, image_id, *extra, **kw),
                       env=user_env(cloud, user), capture_output=True,
                       text=True, timeout=600)
    out = json.loads(r.stdout) if r.stdout.strip().startswith('{') else None
    return r.returncode, out, r.stderr


def copies_of(cloud, source_id):
    """Every image in RegionTwo made from ``source_id``, hidden or not."""
    admin = glance_client(cloud, 'admin', 'RegionTwo')
    key = metadata.PROVENANCE_IMAGE
    return list(admin.images.list(filters={key: source_id})) + \
        list(admin.images.list(filters={key: source_id, 'os_hidden': True}))


def assert_failed_cleanly(cloud, rc, out, err, source_id, expected):
    assert rc == 1, err
    assert expected in out['message'], out['message']
    assert copies_of(cloud, source_id) == []


@pytest.fixture
def demo_r2(cloud):
    return glance_client(cloud, 'demo', 'RegionTwo')


@pytest.mark.parametrize('size', [0, 1, MiB + 1, 64 * MiB],
                         ids=['0B', '1B', '1MiB+1B', '64MiB'])
def test_clone_is_bit_identical_and_found_by_hash(cloud, clone_conf_file,
                                                  demo_r2, size):
    data = os.urandom(size)
    src = upload(cloud, data, name=f'src-{size}')
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert rc == 0, err
    result = out['result']
    assert result['image_id'] != src.id
    assert result['os_hash_value'] == src.os_hash_value == \
        hashlib.sha512(data).hexdigest()
    assert result['checksum'] == src.checksum and result['size'] == size
    by_hash = list(demo_r2.images.list(
        filters={'os_hash_value': src.os_hash_value}))
    by_md5 = list(demo_r2.images.list(filters={'checksum': src.checksum}))
    assert result['image_id'] in {i.id for i in by_hash}
    assert result['image_id'] in {i.id for i in by_md5}
    copy = demo_r2.images.get(result['image_id'])
    assert copy.status == 'active' and copy.visibility == 'private'
    got = b''.join(demo_r2.images.data(copy.id))
    assert got == data


def test_metadata_is_copied_by_the_policy(cloud, clone_conf_file, demo_r2):
    props = {'architecture': 'x86_64', 'os_distro': 'debian',
             'os_version': '12', 'hw_disk_bus': 'scsi', 'hw_scsi_model':
             'virtio-scsi', 'trait:CUSTOM_FAST': 'required', 'my_note': 'hi',
             'img_signature': 'c2ln', 'img_signature_hash_method': 'SHA-256'}
    src = upload(cloud, b'metadata test', name='meta-src', min_disk=3,
                 min_ram=256, disk_format='qcow2', container_format='ovf',
                 tags=['golden', 'v1'], **props)
    rc, out, err = clone(cloud, clone_conf_file, src.id, '--visibility',
                         'shared')
    assert rc == 0, err
    copy = demo_r2.images.get(out['result']['image_id'])
    for key in ('architecture', 'os_distro', 'os_version', 'hw_disk_bus',
                'hw_scsi_model', 'trait:CUSTOM_FAST', 'my_note'):
        assert copy[key] == props[key], key
    assert (copy.disk_format, copy.container_format) == ('qcow2', 'ovf')
    assert (copy.min_disk, copy.min_ram) == (3, 256)
    assert sorted(copy.tags) == ['golden', 'v1']
    assert copy.name == 'meta-src' and copy.visibility == 'shared'
    assert copy.os_hidden is False
    # not copied: signatures the target cannot verify, Glance's own keys
    assert ('img_signature' not in copy
            and 'img_signature_hash_method' not in copy)
    assert [k for k in copy if k.startswith('os_glance_')] == []
    assert copy[metadata.PROVENANCE_REGION] == 'RegionOne'
    assert copy[metadata.PROVENANCE_IMAGE] == src.id


def test_nonexistent_image_is_not_visible(cloud, clone_conf_file):
    missing = str(uuid.uuid4())
    rc, out, err = clone(cloud, clone_conf_file, missing)
    assert_failed_cleanly(cloud, rc, out, err, missing,
                          f'image {missing} is not visible to you in '
                          f'RegionOne')


def test_malformed_id_is_refused(cloud, clone_conf_file):
    rc, out, err = clone(cloud, clone_conf_file, 'not-a-uuid')
    assert_failed_cleanly(cloud, rc, out, err, 'not-a-uuid',
                          "'not-a-uuid' is not a valid image id")


def test_unknown_source_region_is_named(cloud, clone_conf_file):
    src = upload(cloud, b'x', name='region-test')
    rc, out, err = clone(cloud, clone_conf_file, src.id, source='RegionNine')
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          "region 'RegionNine' has no image endpoint")


def test_another_projects_private_image_is_not_visible(cloud, clone_conf_file):
    src = upload(cloud, b'alt secret', user='alt_demo', name='alt-private',
                 visibility='private')
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          f'image {src.id} is not visible to you in RegionOne')


def test_queued_source_is_refused(cloud, clone_conf_file):
    gc = glance_client(cloud, 'demo', 'RegionOne')
    src = gc.images.create(name='queued', disk_format='raw',
                           container_format='bare')
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id, "is 'queued'")


def test_deactivated_source_is_refused(cloud, clone_conf_file):
    src = upload(cloud, b'soon deactivated', name='deactivated')
    admin = glance_client(cloud, 'admin', 'RegionOne')
    admin.images.deactivate(src.id)
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id, "is 'deactivated'")


def test_reader_cannot_clone_into_their_project(cloud, clone_conf_file):
    src = upload(cloud, b'readable', name='for-reader')
    rc, out, err = clone(cloud, clone_conf_file, src.id, user='demo_reader')
    # refused before any trust or step: a clone's trust delegates 'member'
    assert rc == 1 and out is None, err
    assert "needs the role 'member' on project" in err
    assert copies_of(cloud, src.id) == []


def test_corrupted_source_data_fails_verification(cloud, clone_conf_file):
    data = os.urandom(MiB)
    src = upload(cloud, data, name='bit-rot')
    path = pathlib.Path(cloud['regions']['RegionOne']['data_dir']) / src.id
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0xFF
    path.write_bytes(bytes(raw))
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          'the copy does not match the source')


def _start_clone_and_wait_for_saving(cloud, conf_file, src_id):
    proc = subprocess.Popen(clone_cmd(conf_file, src_id, '--no-progress'),
                            env=user_env(cloud, 'demo'), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(i.status == 'saving' for i in copies_of(cloud, src_id)):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    pytest.fail('the copy never reached saving: ' + proc.stderr.read())


def _finish(proc):
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, json.loads(stdout), stderr


@pytest.fixture(scope='module')
def big_image(cloud):
    data = os.urandom(384 * MiB)
    return data


def test_target_glance_restarted_mid_copy_copies_again(cloud, clone_conf_file,
                                                       big_image):
    src = upload(cloud, big_image, name='target-restarts')
    proc = _start_clone_and_wait_for_saving(cloud, clone_conf_file, src.id)
    localcloud('stop', 'glance-RegionTwo')
    try:
        time.sleep(8)   # the next attempt waits for the region to answer
    finally:
        localcloud('start', 'glance-RegionTwo')
    rc, out, err = _finish(proc)
    assert rc == 0, err
    assert out['result']['os_hash_value'] == src.os_hash_value
    assert len(copies_of(cloud, src.id)) == 1


def test_target_glance_stopped_for_good_fails_cleanly(cloud, clone_conf_file,
                                                      big_image, tmp_path):
    conf = tmp_path / 'short-retries.conf'
    conf.write_text(clone_conf_file.read_text() +
                    '\n[clone]\nglance_retry_seconds = 2\n')
    src = upload(cloud, big_image, name='target-stops')
    proc = _start_clone_and_wait_for_saving(cloud, conf, src.id)
    localcloud('stop', 'glance-RegionTwo')
    try:
        time.sleep(10)  # longer than every retry: the clone must fail
    finally:
        localcloud('start', 'glance-RegionTwo')
    rc, out, err = _finish(proc)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          'of RegionTwo stopped answering')


def test_source_deleted_mid_copy(cloud, clone_conf_file, big_image):
    src = upload(cloud, big_image, name='source-vanishes')
    proc = _start_clone_and_wait_for_saving(cloud, clone_conf_file, src.id)
    glance_client(cloud, 'demo', 'RegionOne').images.delete(src.id)
    rc, out, err = _finish(proc)
    assert rc == 1, err
    assert f'image {src.id} was deleted in RegionOne during the copy' in \
        out['message'] or 'image data stream' in out['message'], out['message']
    assert copies_of(cloud, src.id) == []


def test_trust_is_deleted_after_the_clone(cloud, clone_conf_file):
    from keystoneclient.v3 import client as ks_client
    from tests.functional.conftest import user_session
    sess = user_session(cloud, 'demo')
    ks = ks_client.Client(session=sess)
    me = sess.get_user_id()

    def my_trusts():
        return {t.id for t in ks.trusts.list(trustor_user=me)
                if t.trustor_user_id == me}
    before = my_trusts()
    src = upload(cloud, b'trust', name='trust-test')
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert rc == 0, err
    assert my_trusts() == before


def test_revert_that_cannot_finish_is_left_to_the_sweep(cloud, clone_conf_file,
                                                        big_image, tmp_path):
    conf = tmp_path / 'impatient.conf'
    conf.write_text(clone_conf_file.read_text().replace(
        'revert_timeout = 60', 'revert_timeout = 2').replace(
        'copy_retry_delay = 1', 'copy_retry_delay = 0') +
        '\n[clone]\ncopy_attempts = 1\nglance_retry_seconds = 1\n')
    src = upload(cloud, big_image, name='revert-fails')
    proc = _start_clone_and_wait_for_saving(cloud, conf, src.id)
    localcloud('stop', 'glance-RegionTwo', '--kill')
    try:
        rc, out, err = _finish(proc)
    finally:
        localcloud('start', 'glance-RegionTwo')
    assert rc == 1
    assert 'stopped answering' in out['message']
    assert 'left to the operator\'s sweep' in out['message']
    assert len(copies_of(cloud, src.id)) == 1       # debris, for now
    r = subprocess.run([str(BIN / 'clone-manage'), '--config-file', str(conf),
                        'sweep'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert copies_of(cloud, src.id) == []

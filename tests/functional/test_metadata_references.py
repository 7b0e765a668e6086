"""Metadata that points into the source region, against the real Glances.

``kernel_id``/``ramdisk_id`` name images of RegionOne: a copy must name
their verified copies in RegionTwo (cloned in the same clone with
``include_dependencies``), or the clone is refused before any data moves.  \
Encrypted images (their key is in RegionOne's key manager) and
snapshots of volume-backed servers (Cinder snapshots of RegionOne) are
refused with a sentence.
"""
import os
import uuid

from tests.functional.conftest import glance_client
from tests.functional.test_clone_http import assert_failed_cleanly
from tests.functional.test_clone_http import clone
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import upload


def test_kernel_and_ramdisk_of_the_copy_resolve_in_the_target_region(
        cloud, clone_conf_file):
    kernel = upload(cloud, os.urandom(4096), name='kernel',
                    disk_format='aki', container_format='aki')
    ramdisk = upload(cloud, os.urandom(4096), name='ramdisk',
                     disk_format='ari', container_format='ari')
    disk = upload(cloud, os.urandom(8192), name='ami', disk_format='ami',
                  container_format='ami', kernel_id=kernel.id,
                  ramdisk_id=ramdisk.id)

    rc, out, err = clone(cloud, clone_conf_file, disk.id)
    assert_failed_cleanly(cloud, rc, out, err, disk.id,
                          f'refers to kernel_id {kernel.id} and ramdisk_id '
                          f'{ramdisk.id} in RegionOne, which have no '
                          f'verified copy in your project in RegionTwo')
    assert out['failed_step'] == 'clone-check-metadata'

    copy_of = {}
    for ref in (kernel, ramdisk):
        rc, out, err = clone(cloud, clone_conf_file, ref.id)
        assert rc == 0, err
        copy_of[ref.id] = out['result']['image_id']
    rc, out, err = clone(cloud, clone_conf_file, disk.id)
    assert rc == 0, err

    r2 = glance_client(cloud, 'demo', 'RegionTwo')
    copy = r2.images.get(out['result']['image_id'])
    assert copy.kernel_id == copy_of[kernel.id] != kernel.id
    assert copy.ramdisk_id == copy_of[ramdisk.id] != ramdisk.id
    # each reference resolves in RegionTwo to the same bits as in RegionOne
    assert r2.images.get(copy.kernel_id).os_hash_value == kernel.os_hash_value
    assert r2.images.get(copy.ramdisk_id).os_hash_value == \
        ramdisk.os_hash_value


def test_encrypted_image_is_refused_before_anything_is_made(
        cloud, clone_conf_file):
    src = upload(cloud, os.urandom(4096), name='encrypted',
                 cinder_encryption_key_id=str(uuid.uuid4()),
                 cinder_encryption_key_deletion_policy='do_not_delete')
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          f'image {src.id} in RegionOne is encrypted')
    assert out['failed_step'] == 'clone-check-metadata'


def test_volume_backed_snapshot_is_refused_before_anything_is_made(
        cloud, clone_conf_file):
    src = upload(cloud, b'', name='server-snapshot', bdm_v2='True',
                 root_device_name='/dev/vda', block_device_mapping=(
                     '[{"source_type": "snapshot", "snapshot_id": "%s", '
                     '"boot_index": 0}]' % uuid.uuid4()))
    rc, out, err = clone(cloud, clone_conf_file, src.id)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          'is a snapshot of a volume-backed server')
    assert copies_of(cloud, src.id) == []


def test_include_dependencies_clones_kernel_and_ramdisk_in_the_same_clone(
        cloud, clone_conf_file):
    kernel = upload(cloud, os.urandom(4096), name='dep-kernel',
                    disk_format='aki', container_format='aki')
    ramdisk = upload(cloud, os.urandom(4096), name='dep-ramdisk',
                     disk_format='ari', container_format='ari')
    disk = upload(cloud, os.urandom(8192), name='dep-ami', disk_format='ami',
                  container_format='ami', kernel_id=kernel.id,
                  ramdisk_id=ramdisk.id)
    rc, out, err = clone(cloud, clone_conf_file, disk.id,
                         '--include-dependencies')
    assert rc == 0, err
    r2 = glance_client(cloud, 'demo', 'RegionTwo')
    copy = r2.images.get(out['result']['image_id'])
    for ref, copied in ((kernel, copy.kernel_id), (ramdisk, copy.ramdisk_id)):
        dep = r2.images.get(copied)
        assert dep.id != ref.id and dep.status == 'active'
        assert (dep.os_hash_value, dep.disk_format) == \
            (ref.os_hash_value, ref.disk_format)
        assert [i.id for i in copies_of(cloud, ref.id)] == [dep.id]


def test_a_failed_clone_leaves_no_dependency_copy(cloud, clone_conf_file):
    kernel = upload(cloud, os.urandom(4096), name='dep-kernel-2',
                    disk_format='aki', container_format='aki')
    disk = upload(cloud, os.urandom(8192), name='dep-encrypted',
                  disk_format='ami', container_format='ami',
                  kernel_id=kernel.id,
                  cinder_encryption_key_id=str(uuid.uuid4()),
                  cinder_encryption_key_deletion_policy='do_not_delete')
    rc, out, err = clone(cloud, clone_conf_file, disk.id,
                         '--include-dependencies')
    assert_failed_cleanly(cloud, rc, out, err, disk.id, 'is encrypted')
    assert copies_of(cloud, kernel.id) == []

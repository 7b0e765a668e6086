"""The Ceph RBD strategy against two real Ceph clusters and real Glances.

The module starts the local cloud with Ceph once (``LOCALCLOUD_CEPH=
per-region``: RegionOne's Glance stores in cluster a, RegionTwo's in b,
thin-provisioned RBD images) with ``tools/localcloud up``, uploads one
sparse 1 GiB raw image holding 300 MiB of data, and puts the cloud back to
the file store at the end.  The other topologies come last: mixed stores
(RegionTwo back on its file store), then one cluster shared by both regions
(``LOCALCLOUD_CEPH=shared``).
"""
import contextlib
import json
import os
import random
import subprocess
import sys
import time

import pytest

from clone_flows import constants as c
from clone_flows.stores import rbd as rbd_store
from conductor import runner
from tests.functional.conftest import glance_client
from tests.functional.conftest import localcloud
from tests.functional.conftest import LOCALCLOUD
from tests.functional.conftest import ROOT
from tests.functional.conftest import user_session
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import upload
from tests.functional import test_conductors as tc
from tests.functional.test_swift_clone import copy_result
from tests.functional.test_swift_clone import run_clone

MiB = 1024 * 1024
GiB = 1024 * MiB
POOL = 'images'


def cloud_up(**env):
    """``tools/localcloud up`` with Ceph as ``env`` says; cloud.json."""
    full = dict(os.environ)
    for k in ('LOCALCLOUD_CEPH', 'LOCALCLOUD_CEPH_REGIONS',
              'LOCALCLOUD_SWIFT'):
        full.pop(k, None)
    full.update(env)
    t = time.monotonic()
    r = subprocess.run([sys.executable, str(LOCALCLOUD), 'up'], env=full,
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail(f'localcloud up {env} failed:\n{r.stdout[-3000:]}\n'
                    f'{r.stderr[-3000:]}')
    print(f'localcloud up {env}: {time.monotonic() - t:.1f}s')
    return json.loads(localcloud('env', '--json').stdout)


@pytest.fixture(scope='module')
def ceph(cloud):
    info = cloud_up(LOCALCLOUD_CEPH='per-region')
    assert info['ceph']['regions']['RegionTwo']['cluster'] == 'b'
    yield info
    cloud_up(LOCALCLOUD_CEPH='off')


def sparse_file(path, size, data, block=8 * MiB, seed=15):
    """A sparse file of ``size`` bytes holding ``data`` random bytes in
    8 MiB blocks (Glance's RBD chunk: a thin-provisioned store skips the
    others) at random places.
    """
    rnd = random.Random(seed)
    count = -(-data // block)
    slots = sorted(rnd.sample(range(size // block), count))
    with open(path, 'wb') as f:
        f.truncate(size)
        for i, slot in enumerate(slots):
            f.seek(slot * block)
            f.write(os.urandom(min(block, data - i * block)))
    return path


@pytest.fixture(scope='module')
def sparse_image(ceph, tmp_path_factory):
    """A 1 GiB raw image with 300 MiB of data, in RegionOne's RBD pool."""
    path = sparse_file(tmp_path_factory.mktemp('rbd') / 'sparse.raw', GiB,
                       300 * MiB)
    gc = glance_client(ceph, 'demo', 'RegionOne')
    image = gc.images.create(name='rbd-sparse-1g', disk_format='raw',
                             container_format='bare')
    with open(path, 'rb') as f:
        gc.images.upload(image.id, f)
    os.unlink(path)
    image = gc.images.get(image.id)
    assert image.stores == 'ceph' and image.size == GiB
    yield image
    gc.images.delete(image.id)


# -- Ceph, as its administrator sees it -------------------------------------

@contextlib.contextmanager
def admin(info, cluster):
    import rados
    conf = info['ceph']['clusters'][cluster]['admin_conf']
    client = rados.Rados(conffile=conf, rados_id='admin',
                         conf={'rados_osd_op_timeout': '30',
                               'rados_mon_op_timeout': '30'})
    client.connect(timeout=15)
    try:
        with client.open_ioctx(POOL) as ioctx:
            yield ioctx
    finally:
        client.shutdown()


def rbd_images(info, cluster):
    """{image name: [snapshot names]} of the pool."""
    import rbd
    with admin(info, cluster) as ioctx:
        out = {}
        for name in rbd.RBD().list(ioctx):
            with rbd.Image(ioctx, name, read_only=True) as img:
                out[name] = sorted(s['name'] for s in img.list_snaps())
        return out


def allocated_extents(info, cluster, name):
    import rbd
    with admin(info, cluster) as ioctx:
        with rbd.Image(ioctx, name, snapshot='snap', read_only=True) as img:
            found = []
            img.diff_iterate(0, img.size(), None,
                             lambda o, n, e: e and found.append((o, n)))
            return rbd_store.merge(found), img.size()


def osd_written(info, cluster):
    """Bytes the cluster's OSD has taken in client writes so far."""
    asok = os.path.join(os.path.dirname(
        info['ceph']['clusters'][cluster]['admin_conf']), 'run',
        'ceph-osd.0.asok')
    out = subprocess.run(['ceph', '--admin-daemon', asok, 'perf', 'dump'],
                         check=True, capture_output=True, text=True,
                         timeout=30).stdout
    return json.loads(out)['osd']['op_w_in_bytes']


def ceph_secrets(info):
    """Every cephx key of both clusters."""
    found = set()
    for cl in info['ceph']['clusters'].values():
        keys = os.path.join(os.path.dirname(cl['admin_conf']), 'keys')
        for name in os.listdir(keys):
            with open(os.path.join(keys, name)) as f:
                found |= {line.split('=', 1)[1].strip() for line in f
                          if line.strip().startswith('key')}
    return found


def clone_conf(tmp_path, extra=''):
    path = subprocess.run(
        [sys.executable, str(ROOT / 'tools/write-clone-conf'),
         str(tmp_path / 'conf')], check=True, capture_output=True,
        text=True).stdout.strip()
    if extra:
        with open(path, 'a') as f:
            f.write(extra)
    return path


def glance_owned(info, region='RegionTwo'):
    """Ids of the region's images stored in RBD (admin's view)."""
    gc = glance_client(info, 'admin', region)
    return {i.id for i in list(gc.images.list()) +
            list(gc.images.list(filters={'os_hidden': True}))
            if getattr(i, 'stores', '') == 'ceph'}


def assert_no_stray_rbd(info, before):
    """Every RBD image RegionTwo's pool gained since ``before`` (its
    :func:`rbd_images`) is a Glance image's, with just Glance's snapshot.
    """
    new = {k: v for k, v in rbd_images(info, 'b').items() if k not in before}
    assert set(new) <= glance_owned(info), new
    assert all(snaps == ['snap'] for snaps in new.values()), new


# -- the copy ---------------------------------------------------------------

def test_sparse_1gib_clone_moves_only_the_allocated_bytes_verified(
        ceph, sparse_image, tmp_path):
    conf = clone_conf(tmp_path)
    extents, size = allocated_extents(ceph, 'a', sparse_image.id)
    allocated = sum(n for _, n in extents)
    assert 300 * MiB <= allocated <= 304 * MiB and size == GiB
    before = osd_written(ceph, 'b')
    rc, out = run_clone(ceph, conf, sparse_image.id)
    written = osd_written(ceph, 'b') - before
    assert rc == 0, out
    result = out['result']
    assert result['copy']['strategy'] == 'rbd', result['copy']
    # Glance read the attached RBD image back to hash it (do_secure_hash):
    # its md5 checksum is its own, Verify compared both with the source's
    assert result['os_hash_value'] == sparse_image.os_hash_value
    assert result['checksum'] == sparse_image.checksum
    assert result['size'] == GiB
    new = result['image_id']
    copy = glance_client(ceph, 'demo', 'RegionTwo').images.get(new)
    assert copy.status == 'active' and copy.stores == 'ceph'
    details = copy_result(conf, out['clone_id'])
    print(f'1 GiB, {allocated} B allocated: {details}; target OSD took '
          f'{written} B of writes')
    assert details['bytes_copied'] == allocated
    assert details['details']['allocated_bytes'] == allocated
    # only the allocated extents reached the target cluster (plus RBD's
    # own headers, object map and snapshot records)
    assert allocated <= written <= allocated + 4 * MiB
    assert allocated_extents(ceph, 'b', new) == (extents, size)
    assert rbd_images(ceph, 'b')[new] == ['snap']
    # the location names the copy, and no credential
    reader = user_session(ceph, 'demo_reader')
    glance = reader.get_endpoint(service_type='image', region_name='RegionTwo',
                                 interface='public').rstrip('/')
    tasks = reader.get(f'{glance}/v2/images/{new}/tasks').json()
    (task,) = [t for t in tasks['tasks'] if t['type'] == 'location_import']
    fsid = ceph['ceph']['clusters']['b']['fsid']
    assert task['input']['loc_url'] == f'rbd://{fsid}/{POOL}/{new}/snap'
    seen = json.dumps(tasks) + json.dumps(dict(copy))
    log = (tmp_path / 'conf' / 'glance-clone.log').read_text()
    for secret in ceph_secrets(ceph):
        assert secret not in seen and secret not in log
    glance_client(ceph, 'demo', 'RegionTwo').images.delete(new)


def test_kill_9_mid_copy_resumes_with_only_the_missing_ranges(
        ceph, sparse_image, tmp_path):
    extents, size = allocated_extents(ceph, 'a', sparse_image.id)
    ranges = rbd_store.split_ranges(extents, size, 64 * MiB)
    before = rbd_images(ceph, 'b')
    conductors = tc.Conductors(ceph, tmp_path)
    try:
        marker = conductors.start('a', pause_at=c.COPY_DATA + '@0.3')
        clone_id = conductors.post(sparse_image.id)
        tc.wait_for(marker.exists, what='conductor a to copy 30%')
        time.sleep(2)                 # the ranges in flight land (or not)
        conductors.kill9('a')
        _, fd = runner.load_flow(conductors.backend(), clone_id)
        ad = next(a for a in fd if a.name == c.COPY_DATA)
        checkpoint = ad.meta['progress_details']['details']['checkpoint']
        done = set(checkpoint['done'])
        assert 1 <= len(done) < len(ranges), checkpoint
        (target,) = copies_of(ceph, sparse_image.id)
        written = osd_written(ceph, 'b')
        conductors.start('b')
        out = conductors.wait(clone_id)
        written = osd_written(ceph, 'b') - written
    finally:
        conductors.stop_all()
    tc.assert_one_verified_copy(ceph, sparse_image, out)
    assert out.result['copy']['strategy'] == 'rbd'
    details = copy_result(conductors.poster_conf, clone_id)['details']
    missing = set(range(len(ranges))) - done
    resent = sum(sum(n for _, n in ranges[i][2]) for i in missing)
    print(f'ranges done when conductor a died: {sorted(done)}; re-sent '
          f'after the resume: {details["copied"]} ({resent} B); target OSD '
          f'took {written} B')
    assert (details['copied'], details['rechecked'], details['skipped']) == \
        (len(missing), len(done), len(done))
    assert resent <= written <= resent + 4 * MiB
    assert allocated_extents(ceph, 'b', target.id) == (extents, size)
    assert_no_stray_rbd(ceph, before)
    glance_client(ceph, 'demo', 'RegionTwo').images.delete(target.id)


# -- refusals: a sentence, nothing left behind --------------------------------

def test_a_source_without_its_snapshot_is_refused(ceph, tmp_path):
    import rbd
    conf = clone_conf(tmp_path)
    src = upload(ceph, os.urandom(3 * MiB), name='rbd-no-snap')
    with admin(ceph, 'a') as ioctx, rbd.Image(ioctx, src.id) as img:
        img.unprotect_snap('snap')
        img.remove_snap('snap')
    before = rbd_images(ceph, 'b')
    rc, out = run_clone(ceph, conf, src.id, '--strategy', 'rbd')
    assert rc == 1, out
    assert out['message'].startswith(
        f"store strategy 'rbd' cannot copy this image: the source image has "
        f"no RBD snapshot {POOL}/{src.id}@snap in RegionOne's Ceph"), out
    assert copies_of(ceph, src.id) == []
    assert rbd_images(ceph, 'b') == before


def _paused_before_copy(info, tmp_path, src):
    """A clone whose conductor froze right after reserving the target
    image: (conductors, clone id, reserved image id).
    """
    conductors = tc.Conductors(info, tmp_path)
    marker = conductors.start('a', pause_at=c.RESERVE_IMAGE)
    clone_id = conductors.post(src.id)
    tc.wait_for(marker.exists, what='conductor a to reserve the image')
    (target,) = copies_of(info, src.id)
    return conductors, clone_id, target.id


def test_an_existing_destination_is_refused_and_left_untouched(
        ceph, tmp_path):
    import rbd
    src = upload(ceph, os.urandom(3 * MiB), name='rbd-dest-exists')
    before = rbd_images(ceph, 'b')
    conductors, clone_id, target_id = _paused_before_copy(ceph, tmp_path, src)
    try:
        with admin(ceph, 'b') as ioctx:    # someone else's image, same name
            rbd.RBD().create(ioctx, target_id, 3 * MiB, old_format=False)
        conductors.kill9('a')
        conductors.start('b')
        out = conductors.wait(clone_id)
    finally:
        conductors.stop_all()
    assert not out.succeeded
    assert out.message.startswith(
        f"the RBD image {POOL}/{target_id} already exists in RegionTwo's "
        f"Ceph and is not this clone's copy"), out.message
    assert copies_of(ceph, src.id) == []
    assert rbd_images(ceph, 'b')[target_id] == []     # still there, as it was
    with admin(ceph, 'b') as ioctx:
        rbd.RBD().remove(ioctx, target_id)
    assert_no_stray_rbd(ceph, before)


def test_a_locked_destination_is_refused_and_removed(ceph, tmp_path):
    import rbd
    src = upload(ceph, os.urandom(3 * MiB), name='rbd-dest-locked')
    before = rbd_images(ceph, 'b')
    conductors, clone_id, target_id = _paused_before_copy(ceph, tmp_path, src)
    try:
        with admin(ceph, 'b') as ioctx:
            # this clone's (its mark), but someone holds an advisory lock
            # (librbd refuses those on an image with exclusive-lock)
            rbd.RBD().create(ioctx, target_id, 3 * MiB, old_format=False,
                             features=rbd.RBD_FEATURE_LAYERING)
            with rbd.Image(ioctx, target_id) as img:
                img.metadata_set(rbd_store.MARK, clone_id)
                img.lock_shared('someone-else', 'tag')
        conductors.kill9('a')
        conductors.start('b')
        out = conductors.wait(clone_id)
    finally:
        conductors.stop_all()
    assert not out.succeeded
    assert out.message.startswith(
        f"the RBD image {POOL}/{target_id} in RegionTwo's Ceph is locked"), \
        out.message
    assert copies_of(ceph, src.id) == []
    assert target_id not in rbd_images(ceph, 'b')
    assert_no_stray_rbd(ceph, before)


def test_a_stopped_target_cluster_is_a_clear_refusal(ceph, tmp_path):
    conf = clone_conf(tmp_path, '\n[rbd_store]\nconnect_timeout = 3\n')
    src = upload(ceph, os.urandom(2 * MiB), name='rbd-target-down')
    before = rbd_images(ceph, 'b')
    localcloud('stop', 'ceph-b-osd')
    localcloud('stop', 'ceph-b-mon')
    try:
        rc, out = run_clone(ceph, conf, src.id, '--strategy', 'rbd')
    finally:
        localcloud('start', 'ceph-b-mon')
        localcloud('start', 'ceph-b-osd')
    assert rc == 1, out
    assert out['message'].startswith(
        "store strategy 'rbd' cannot copy this image: the Ceph cluster of "
        "RegionTwo did not answer"), out
    assert copies_of(ceph, src.id) == []
    assert rbd_images(ceph, 'b') == before


def test_rbd_clone_asks_glance_whether_the_user_may_download(ceph, tmp_path):
    """RBD copies never read through Glance: its download policy is asked
    with the user's delegation first.
    """
    from tests.functional.test_download_policy import download_admin_only
    conf = clone_conf(tmp_path)
    src = upload(ceph, os.urandom(2 * MiB), name='rbd-licensed')
    before = rbd_images(ceph, 'b')
    with download_admin_only(ceph, src.id):
        rc, out = run_clone(ceph, conf, src.id, '--strategy', 'rbd')
    assert rc == 1, out
    assert out['message'].startswith(
        f'you may not download image {src.id} in RegionOne'), out
    assert out['failed_step'] == 'clone-authorize'
    assert copies_of(ceph, src.id) == []
    assert rbd_images(ceph, 'b') == before


# -- mixed stores (the last topology of the module) ---------------------------

def test_mixed_stores_fall_back_to_http_and_say_why(ceph, tmp_path):
    info = cloud_up(LOCALCLOUD_CEPH='per-region',
                    LOCALCLOUD_CEPH_REGIONS='RegionOne')
    assert info['ceph']['regions']['RegionTwo'] is None
    # the operator still declares RegionTwo an RBD region: Glance, asked at
    # plan time, says otherwise
    conf = clone_conf(tmp_path, '\n[rbd_store]\nregions = RegionOne:images,'
                      'RegionTwo:images\n')
    data = os.urandom(3 * MiB)
    src = upload(info, data, name='rbd-to-file')
    assert src.stores == 'ceph'
    rc, out = run_clone(info, conf, src.id)
    assert rc == 0, out
    result = out['result']
    assert result['copy']['strategy'] == 'http'
    assert "rbd: RegionTwo stores new images in 'local', not in RBD" in \
        result['copy']['reason'], result['copy']
    assert result['os_hash_value'] == src.os_hash_value
    r2 = glance_client(info, 'demo', 'RegionTwo')
    assert b''.join(r2.images.data(result['image_id'])) == data


# -- one cluster for both regions (LOCALCLOUD_CEPH=shared) --------------------

def test_one_cluster_shared_by_both_regions_clones_within_it(ceph, tmp_path):
    info = cloud_up(LOCALCLOUD_CEPH='shared')
    regions = info['ceph']['regions']
    assert regions['RegionOne']['cluster'] == \
        regions['RegionTwo']['cluster'] == 'a'
    conf = clone_conf(tmp_path)
    data = os.urandom(3 * MiB)
    src = upload(info, data, name='rbd-shared-cluster')
    assert src.stores == 'ceph'
    rc, out = run_clone(info, conf, src.id)
    assert rc == 0, out
    result = out['result']
    assert result['copy']['strategy'] == 'rbd', result['copy']
    assert result['os_hash_value'] == src.os_hash_value
    new = result['image_id']
    # two RBD images in the one pool, each with Glance's snapshot
    images = rbd_images(info, 'a')
    assert images[new] == images[src.id] == ['snap']
    r2 = glance_client(info, 'demo', 'RegionTwo')
    assert r2.images.get(new).stores == 'ceph'
    assert b''.join(r2.images.data(new)) == data
    r2.images.delete(new)
    glance_client(info, 'demo', 'RegionOne').images.delete(src.id)
    assert new not in rbd_images(info, 'a')

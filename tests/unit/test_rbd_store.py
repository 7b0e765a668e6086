"""The RBD strategy's range logic, on in-memory Ceph clusters.

The fake keeps what the strategy relies on: sparse images whose written
extents ``diff_iterate`` reports, discards that turn a range back into a
hole, snapshots (protected or not), image metadata, watchers and advisory
locks, and one cluster per Ceph configuration file.
"""
import types

import pytest

from clone_flows import exceptions
from clone_flows.stores import base
from clone_flows.stores import rbd as rbd_store
from tests.unit import fakes

MiB = 1024 * 1024
BLOCK = 64 * 1024


class FakeError(Exception):
    pass


class ImageNotFound(FakeError):
    pass


class ObjectNotFound(FakeError):
    pass


class ImageData:
    def __init__(self, size, order=22):
        self.size, self.order = size, order
        self.blocks = {}            # block index -> bytes (BLOCK long)
        self.snaps = {}             # name -> (blocks copy, protected)
        self.meta = {}
        self.watchers = []
        self.lockers = {}
        self.written = 0


CLUSTERS = {}      # conffile -> {'fsid':..., 'pools': {pool: {name: data}}}


def _image(ioctx, name):
    try:
        return ioctx.pool[name]
    except KeyError:
        raise ImageNotFound(name)


class FakeImage:
    def __init__(self, ioctx, name, snapshot=None, read_only=False):
        self.d = _image(ioctx, name)
        self.snapshot = snapshot
        if snapshot is not None and snapshot not in self.d.snaps:
            raise ImageNotFound(f'{name}@{snapshot}')
        self.ioctx = ioctx

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        pass

    def _blocks(self):
        return self.d.snaps[self.snapshot][0] if self.snapshot else \
            self.d.blocks

    def stat(self):
        return {'size': self.d.size, 'order': self.d.order}

    def size(self):
        return self.d.size

    def diff_iterate(self, offset, length, from_snap, cb, **kw):
        for b in sorted(self._blocks()):
            if offset <= b * BLOCK < offset + length:
                cb(b * BLOCK, BLOCK, True)

    def read(self, off, n):
        out = bytearray()
        blocks = self._blocks()
        while n:
            b, within = divmod(off, BLOCK)
            take = min(n, BLOCK - within)
            out += blocks.get(b, bytes(BLOCK))[within:within + take]
            off, n = off + take, n - take
        return bytes(out)

    def write(self, data, off):
        assert self.snapshot is None
        self.d.written += len(data)
        pos = 0
        while pos < len(data):
            b, within = divmod(off + pos, BLOCK)
            take = min(len(data) - pos, BLOCK - within)
            blk = bytearray(self.d.blocks.get(b, bytes(BLOCK)))
            blk[within:within + take] = data[pos:pos + take]
            self.d.blocks[b] = bytes(blk)
            pos += take
        return len(data)

    def discard(self, off, n):
        for b in list(self.d.blocks):
            if off <= b * BLOCK < off + n:
                del self.d.blocks[b]

    def flush(self):
        pass

    def create_snap(self, name):
        self.d.snaps[name] = (dict(self.d.blocks), False)

    def list_snaps(self):
        return [{'name': n} for n in self.d.snaps]

    def is_protected_snap(self, name):
        return self.d.snaps[name][1]

    def protect_snap(self, name):
        self.d.snaps[name] = (self.d.snaps[name][0], True)

    def unprotect_snap(self, name):
        self.d.snaps[name] = (self.d.snaps[name][0], False)

    def remove_snap(self, name):
        assert not self.d.snaps[name][1], 'protected'
        del self.d.snaps[name]

    def metadata_get(self, key):
        try:
            return self.d.meta[key]
        except KeyError:
            raise KeyError(key)

    def metadata_set(self, key, value):
        self.d.meta[key] = value

    def watchers_list(self):
        return [{'id': self.ioctx.client_id}] + list(self.d.watchers)

    def list_lockers(self):
        return self.d.lockers


class FakeRBD:
    def create(self, ioctx, name, size, order=22, old_format=False,
               features=0):
        assert name not in ioctx.pool
        ioctx.pool[name] = ImageData(size, order)

    def remove(self, ioctx, name):
        d = _image(ioctx, name)
        assert not d.snaps
        del ioctx.pool[name]


class FakeIoctx:
    def __init__(self, pool, client_id):
        self.pool, self.client_id = pool, client_id

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


class FakeRados:
    down = set()

    def __init__(self, conffile, rados_id, conf):
        self.cluster = CLUSTERS[conffile]
        self.conffile, self.user, self.conf = conffile, rados_id, conf

    def connect(self, timeout):
        if self.conffile in self.down:
            raise FakeError('timed out')

    def get_fsid(self):
        return self.cluster['fsid']

    def get_instance_id(self):
        return 4242

    def conf_get(self, key):
        return '61'

    def open_ioctx(self, pool):
        if pool not in self.cluster['pools']:
            raise ObjectNotFound(pool)
        return FakeIoctx(self.cluster['pools'][pool], 4242)

    def shutdown(self):
        pass


fake_rados = types.SimpleNamespace(Rados=FakeRados, Error=FakeError,
                                   ObjectNotFound=ObjectNotFound)
fake_rbd = types.SimpleNamespace(Image=FakeImage, RBD=FakeRBD,
                                 Error=FakeError, ImageNotFound=ImageNotFound,
                                 RBD_FEATURE_LAYERING=1)


class FakeTarget(fakes.FakeGlanceRegion):
    """Glance with the location API: an attached location makes the image
    active with the hash of the RBD snapshot's bytes.
    """

    def __init__(self, region, cluster_conf):
        super().__init__(region)
        self.cluster_conf = cluster_conf
        self.locations = []

    def default_store(self):
        return 'rbd'

    def add_location(self, image_id, url, validation, headers=None):
        self.locations.append((image_id, url, validation, headers))
        fsid, pool, name, snap = url[len('rbd://'):].split('/')
        d = CLUSTERS[self.cluster_conf]['pools'][pool][name]
        img = FakeImage(FakeIoctx({name: d}, 0), name, snapshot=snap)
        data = img.read(0, d.size)
        self.images[image_id].update(fakes._hashes(data), status='active')
        self.data[image_id] = data


@pytest.fixture
def world(conf, monkeypatch):
    CLUSTERS.clear()
    FakeRados.down = set()
    CLUSTERS['/a.conf'] = {'fsid': 'fsid-a', 'pools': {'images': {}}}
    CLUSTERS['/b.conf'] = {'fsid': 'fsid-b', 'pools': {'images': {}}}
    monkeypatch.setattr(rbd_store, '_modules', lambda: (fake_rados, fake_rbd))
    conf.set_override('regions', {'R1': 'images', 'R2': 'images'},
                      group='rbd_store')
    conf.set_override('ceph_confs', {'R1': '/a.conf', 'R2': '/b.conf'},
                      group='rbd_store')
    conf.set_override('range_mb', 1, group='rbd_store')
    conf.set_override('io_mb', 1, group='rbd_store')
    conf.set_override('workers', 2, group='rbd_store')
    conf.set_override('watch_grace', 0, group='rbd_store')
    strategy = rbd_store.RbdStrategy(conf)
    monkeypatch.setattr(strategy, '_service_token', lambda: 'svc-token')
    return types.SimpleNamespace(conf=conf, strategy=strategy)


def source_image(blocks, size=8 * MiB, seed=1):
    """A source image in cluster a with data in ``blocks`` (64 KiB each),
    its Glance record in R1, and a reserved target in R2: a CopyJob.
    """
    import random
    rnd = random.Random(seed)
    src = fakes.FakeGlanceRegion('R1')
    dst = FakeTarget('R2', '/b.conf')
    record = src.add_image(size=size)
    d = ImageData(size)
    for b in blocks:
        d.blocks[b] = bytes(rnd.getrandbits(8) for _ in range(16)) * (
            BLOCK // 16)
    d.snaps['snap'] = (dict(d.blocks), True)
    CLUSTERS['/a.conf']['pools']['images'][record['id']] = d
    data = FakeImage(FakeIoctx({record['id']: d}, 0), record['id'],
                     snapshot='snap').read(0, size)
    record.update(fakes._hashes(data), size=size, stores='rbd')
    target = dst.create_image(name='copy')
    return base.CopyJob(source=src, target=dst, source_image=dict(record),
                        target_image_id=target['id'], clone_id='clone-1'), d


def dest(job):
    return CLUSTERS['/b.conf']['pools']['images'].get(job.target_image_id)


class Progress:
    def __init__(self, stop_after=None):
        self.calls, self.checkpoint = [], None
        self.stop_after = stop_after

    def __call__(self, done, total, checkpoint=None):
        self.calls.append((done, total))
        if checkpoint is not None:
            self.checkpoint = checkpoint
            if self.stop_after is not None and \
                    len(checkpoint['done']) >= self.stop_after:
                raise exceptions.Interrupted('killed')


# -- pure helpers -------------------------------------------------------------

def test_extents_are_cut_at_range_boundaries():
    ranges = rbd_store.split_ranges([(0, 10), (90, 30)], 250, 100)
    assert ranges == [(0, 100, [(0, 10), (90, 10)]), (100, 100, [(100, 20)]),
                      (200, 50, [])]


def test_adjacent_extents_merge_and_pieces_are_bounded():
    assert rbd_store.merge([(10, 5), (0, 10), (30, 1)]) == [(0, 15), (30, 1)]
    assert list(rbd_store.pieces([(0, 10)], 4)) == [(0, 4), (4, 4), (8, 2)]


def test_location_is_glances_rbd_url_without_credential():
    assert rbd_store.location_url('f/s', 'images', 'abc') == \
        'rbd://f%2Fs/images/abc/snap'


# -- the copy ---------------------------------------------------------------

def test_only_allocated_extents_move_and_the_copy_is_attached(world):
    job, src = source_image([0, 1, 40, 100])
    outcome = world.strategy.copy(job, Progress())
    assert outcome.bytes_copied == 4 * BLOCK == dest(job).written
    assert dest(job).snaps['snap'][0] == src.blocks
    assert dest(job).snaps['snap'][1] is True               # protected
    assert dest(job).meta[rbd_store.MARK] == 'clone-1'
    (image_id, url, validation, headers), = job.target.locations
    assert url == f'rbd://fsid-b/images/{job.target_image_id}/snap'
    assert validation['os_hash_value'] == job.source_image['os_hash_value']
    assert headers == {'X-Service-Token': 'svc-token'}
    assert job.target.images[image_id]['os_hash_value'] == \
        job.source_image['os_hash_value']
    assert outcome.details['ranges'] == 8 and outcome.details['copied'] == 8


def test_a_resumed_copy_sends_only_ranges_not_checkpointed(world):
    job, src = source_image([0, 20, 40, 60, 80, 100])    # ranges 0,1,2,3,4,6
    progress = Progress(stop_after=3)
    with pytest.raises(exceptions.Interrupted):
        world.strategy.copy(job, progress)
    done = set(progress.checkpoint['done'])
    assert len(done) >= 3
    before = dest(job).written
    outcome = world.strategy.copy(job, Progress(), dict(progress.checkpoint))
    d = outcome.details
    assert (d['rechecked'], d['skipped'], d['copied']) == \
        (len(done), len(done), 8 - len(done))
    resent = sum(BLOCK for b in src.blocks if b * BLOCK // MiB not in done)
    assert dest(job).written - before == resent == outcome.bytes_copied
    assert dest(job).snaps['snap'][0] == src.blocks


def test_a_checkpointed_range_that_does_not_match_is_sent_again(world):
    job, src = source_image([0, 20, 40])
    progress = Progress(stop_after=1)
    with pytest.raises(exceptions.Interrupted):
        world.strategy.copy(job, progress)
    (first, *_) = progress.checkpoint['done']
    bad = next(b for b in src.blocks if b * BLOCK // MiB == first)
    dest(job).blocks[bad] = bytes(BLOCK)           # the claim is false
    outcome = world.strategy.copy(job, Progress(), dict(progress.checkpoint))
    assert outcome.details['rechecked'] == len(progress.checkpoint['done']) - 1
    assert dest(job).snaps['snap'][0] == src.blocks


def test_a_range_written_again_keeps_no_bytes_of_an_earlier_attempt(world):
    job, src = source_image([0])
    # an earlier attempt left bytes in what is a hole of the source
    fake_rbd.RBD().create(FakeIoctx(CLUSTERS['/b.conf']['pools']['images'],
                                    0), job.target_image_id, 8 * MiB)
    dest(job).meta[rbd_store.MARK] = 'clone-1'
    dest(job).blocks[3] = b'x' * BLOCK
    world.strategy.copy(job, Progress())
    assert dest(job).snaps['snap'][0] == src.blocks


def test_a_destination_that_is_not_this_clones_is_refused_and_kept(world):
    job, _ = source_image([0])
    fake_rbd.RBD().create(FakeIoctx(CLUSTERS['/b.conf']['pools']['images'],
                                    0), job.target_image_id, 8 * MiB)
    with pytest.raises(rbd_store.DestinationRefused,
                       match="already exists in R2's Ceph and is not this "
                             "clone's copy"):
        world.strategy.copy(job, Progress())
    assert world.strategy.cleanup(job) == 0
    assert dest(job) is not None and not dest(job).blocks


@pytest.mark.parametrize('what,match', [
    ('watchers', 'is open by another client'),
    ('lockers', 'is locked'),
])
def test_a_destination_in_use_is_refused(world, what, match):
    job, _ = source_image([0])
    fake_rbd.RBD().create(FakeIoctx(CLUSTERS['/b.conf']['pools']['images'],
                                    0), job.target_image_id, 8 * MiB)
    dest(job).meta[rbd_store.MARK] = 'clone-1'
    if what == 'watchers':
        dest(job).watchers.append({'id': 7})
    else:
        dest(job).lockers = {'tag': '', 'exclusive': False,
                             'lockers': [('client.7', 'c', 'addr')]}
    with pytest.raises(rbd_store.DestinationRefused, match=match):
        world.strategy.copy(job, Progress())
    assert not dest(job).blocks


def test_cleanup_removes_this_clones_image_and_protected_snapshot(world):
    job, _ = source_image([0, 20])
    world.strategy.copy(job, Progress())
    assert dest(job).snaps['snap'][1]
    assert world.strategy.cleanup(job) == 2
    assert dest(job) is None
    assert world.strategy.cleanup(job) == 0                  # idempotent


def test_cleanup_removes_an_unmarked_image_its_checkpoint_created(world):
    job, _ = source_image([0])
    fake_rbd.RBD().create(FakeIoctx(CLUSTERS['/b.conf']['pools']['images'],
                                    0), job.target_image_id, 8 * MiB)
    checkpoint = {'target_image_id': job.target_image_id, 'created': True}
    assert world.strategy.cleanup(job, checkpoint) == 1
    assert dest(job) is None


# -- applies ----------------------------------------------------------------

def test_applies_only_between_declared_rbd_regions(world):
    job, _ = source_image([0])
    assert world.strategy.applies(job) == (True, '')
    world.conf.set_override('regions', {'R1': 'images'}, group='rbd_store')
    assert world.strategy.applies(job) == (
        False, 'R2 is not declared an RBD region ([rbd_store] regions)')


def test_applies_says_why_not(world, monkeypatch):
    job, _ = source_image([0])
    job.source_image['stores'] = 'local'
    assert world.strategy.applies(job) == (
        False, 'the source image is not in RBD (it is in local)')
    job.source_image['stores'] = 'rbd'
    monkeypatch.setattr(job.target, 'default_store', lambda: 'local')
    assert world.strategy.applies(job) == (
        False, "R2 stores new images in 'local', not in RBD")
    monkeypatch.setattr(job.target, 'default_store', lambda: 'rbd')
    FakeRados.down = {'/b.conf'}
    ok, why = world.strategy.applies(job)
    assert not ok and why.startswith('the Ceph cluster of R2 did not answer')
    FakeRados.down = set()
    del CLUSTERS['/a.conf']['pools']['images'][job.source_image['id']]
    ok, why = world.strategy.applies(job)
    assert why == (f"the source image has no RBD snapshot images/"
                   f"{job.source_image['id']}@snap in R1's Ceph")


def test_plan_counts_the_allocated_bytes(world):
    job, _ = source_image([0, 1, 2])
    plan = world.strategy.plan(job)
    assert (plan.strategy, plan.bytes_total, plan.objects) == \
        ('rbd', 3 * BLOCK, 8)


def test_the_sweep_removes_the_rbd_copy_of_a_clone_it_sweeps(world):
    """A clone whose revert could not run leaves its reserved image and an
    RBD image not attached yet: the sweep removes both.
    """
    from clone_flows import constants as c
    from clone_flows import metadata
    from conductor import sweep
    job, _ = source_image([0, 20])
    progress = Progress(stop_after=1)
    with pytest.raises(exceptions.Interrupted):
        world.strategy.copy(job, progress)
    assert dest(job) is not None
    job.target.images[job.target_image_id][metadata.PROVENANCE_CLONE] = \
        'clone-1'
    services = fakes.FakeServices(
        world.conf, {'R1': job.source, 'R2': job.target},
        strategies={'rbd': world.strategy})
    fd = types.SimpleNamespace(uuid='clone-1', meta={'store': {
        c.CLONE_ID: 'clone-1', c.SOURCE_REGION: 'R1',
        c.TARGET_REGION: 'R2'}})
    # what the clone's persisted steps say: it planned an RBD copy of this
    # source image, and the copy reported a checkpoint
    atoms = [types.SimpleNamespace(name=c.PLAN_COPY, meta={},
                                   results={'strategy': 'rbd'}),
             types.SimpleNamespace(name=c.AUTHORIZE, meta={},
                                   results=job.source_image),
             types.SimpleNamespace(name=c.COPY_DATA, results=None, meta={
                 'progress_details': {'details': {
                     'checkpoint': progress.checkpoint}}})]
    conn = types.SimpleNamespace(update_flow_details=lambda fd: None,
                                 get_flow_details=lambda uuid: atoms,
                                 close=lambda: None)
    backend = types.SimpleNamespace(get_connection=lambda: conn)
    assert sweep.sweep_one(world.conf, backend, fd, services=services)
    assert job.target_image_id not in job.target.images
    assert dest(job) is None

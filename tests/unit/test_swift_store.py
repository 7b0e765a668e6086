"""The Swift strategy's segment logic, on in-memory Swift clusters.

The fakes keep what matters: objects with their stored ETag (which bit rot
does not change), DLO manifests, server-side copies that Swift checks
against the source ETag, PUTs refused (422) when the bytes' md5 differs
from the ETag sent, and counters of the bytes that pass through the
conductor.
"""
import hashlib
import os
import threading

import pytest

from clone_flows import exceptions
from clone_flows.stores import base
from clone_flows.stores import swift
from clone_flows.stores import swift_account
from tests.unit import fakes

SEG = 10000


def md5(data):
    return hashlib.md5(data).hexdigest()


class FakeCluster:
    def __init__(self, name):
        self.name = name
        self.objects = {}       # (account, container, obj) -> dict
        self.lock = threading.Lock()
        self.copies = 0
        self.puts = []


class FakeStream:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class FakeAccount:
    """One project's account in a FakeCluster, with SwiftAccount's
    methods.
    """

    def __init__(self, cluster, region, account):
        self.c, self.region, self.account = cluster, region, account
        self.cluster = cluster.name
        self.storage_url = f'http://{cluster.name}/v1/{account}'
        self.streamed = 0           # bytes read by the conductor
        self.fail_put_after = None  # simulate a crash after N streamed PUTs
        self.containers = set()

    def _key(self, container, obj):
        return (self.account, container, obj)

    def add(self, container, obj, data=b'', manifest=None, etag=None):
        self.containers.add(container)
        self.c.objects[self._key(container, obj)] = {
            'data': data, 'etag': etag or md5(data), 'manifest': manifest}

    def head(self, container, obj):
        o = self.c.objects.get(self._key(container, obj))
        if o is None:
            return None
        if o['manifest']:
            cont, prefix = o['manifest'].split('/', 1)
            segs = self.listing(cont, prefix)
            return {'x-object-manifest': o['manifest'],
                    'content-length': str(sum(s['bytes'] for s in segs)),
                    'etag': '"%s"' % swift.dlo_etag([s['hash'] for s in segs])}
        return {'content-length': str(len(o['data'])), 'etag': o['etag']}

    def listing(self, container, prefix):
        return [{'name': k[2], 'bytes': len(v['data']), 'hash': v['etag']}
                for k, v in sorted(self.c.objects.items())
                if k[0] == self.account and k[1] == container and
                k[2].startswith(prefix)]

    def ensure_container(self, container):
        self.containers.add(container)

    def get_stream(self, container, obj, chunk_size, byte_range=None):
        o = self.c.objects.get(self._key(container, obj))
        if o is None:
            raise swift.SwiftError('GET', 404)
        data = o['data']
        if byte_range is not None:
            data = data[byte_range[0]:byte_range[0] + byte_range[1]]

        def chunks():
            for i in range(0, len(data), chunk_size):
                self.streamed += len(data[i:i + chunk_size])
                yield data[i:i + chunk_size]
        return FakeStream(), chunks()

    def put(self, container, obj, data, etag=None):
        if self.fail_put_after is not None:
            if self.fail_put_after == 0:
                raise swift.SwiftError('PUT', None)
            self.fail_put_after -= 1
        body = b''.join(data)
        if etag and md5(body) != etag:
            raise swift.SwiftError('PUT', 422)
        with self.c.lock:
            self.add(container, obj, body)
            self.c.puts.append(obj)
        return md5(body)

    def copy_from(self, container, obj, source, src_container, src_obj,
                  etag=None, byte_range=None):
        assert source.c is self.c, 'server-side copy across clusters'
        o = self.c.objects.get(source._key(src_container, src_obj))
        if o is None:
            raise swift.SwiftError('PUT', 404)
        data = o['data']
        if byte_range is not None:      # a 206: Swift cannot check it
            data = data[byte_range[0]:byte_range[0] + byte_range[1]]
        elif md5(data) != o['etag']:     # Swift checks the copy
            raise swift.SwiftError('PUT', 422)
        with self.c.lock:
            self.add(container, obj, data)
            self.c.copies += 1
        return md5(data)

    def put_manifest(self, container, obj, prefix):
        self.add(container, obj, manifest=f'{container}/{prefix}')

    def delete(self, container, obj):
        return self.c.objects.pop(self._key(container, obj), None) is not None

    def delete_container(self, container):
        if self.listing(container, ''):
            return False
        present = container in self.containers
        self.containers.discard(container)
        return present


class FakeSession:
    """The trust-scoped session: its project and its catalog."""

    def __init__(self, project, endpoints):
        self.project, self.endpoints = project, endpoints

    def get_project_id(self):
        return self.project

    def get_endpoint(self, service_type, region_name, interface):
        assert service_type == 'object-store'
        return self.endpoints.get(region_name)


class LocationGlance(fakes.FakeGlanceRegion):
    """A single-store target Glance with the location API (and its
    service-role rule) that reads a multi-tenant location back.
    """

    def __init__(self, region, store=None, accounts=None):
        super().__init__(region)
        self.store = store
        self.accounts = accounts or {}
        self.location_calls = []

    def default_store(self):
        return self.store

    def add_location(self, image_id, url, validation_data, headers=None):
        self.location_calls.append((url, validation_data, headers))
        if not (headers or {}).get('X-Service-Token'):
            raise fakes.glance.Forbidden(self.region, 'POST', url, 403, '')
        image = self.images[image_id]
        # swift+http://<cluster>/v1/<account>/<container>/<obj>
        cluster, _, account, container, obj = url.split('://')[1].split('/')
        acct = self.accounts[(cluster, account)]
        # Glance reads the data back and hashes it (do_secure_hash)
        head = acct.head(container, obj)
        if head.get('x-object-manifest'):
            data = b''.join(
                acct.c.objects[acct._key(container, s['name'])]['data']
                for s in acct.listing(container, obj + '-'))
        else:
            data = acct.c.objects[acct._key(container, obj)]['data']
        if (hashlib.sha512(data).hexdigest()
                != validation_data['os_hash_value']):
            return          # Glance reverts: the image stays queued
        image.update(fakes._hashes(data), status='active')
        self.data[image_id] = data


@pytest.fixture
def world(conf):
    conf.set_override('regions', {
        'RegionOne': 'http://a/v1/AUTH_%(project_id)s', 'RegionTwo': ''},
        group='swift_store')
    conf.set_override('workers', 3, group='swift_store')
    conf.set_override('chunk_size', 4096, group='swift_store')
    return conf


def make(conf, same_cluster, data, segment=SEG, stores='swift',
         one_object=False, source_owner='p1'):
    """A source image in project ``source_owner``'s account in cluster a, a
    target region in cluster a (same) or b, the clone's project p1.
    """
    a = FakeCluster('a')
    b = a if same_cluster else FakeCluster('b')
    src = FakeAccount(a, 'RegionOne', f'AUTH_{source_owner}')
    dst = FakeAccount(b, 'RegionTwo', 'AUTH_p1')
    accounts = {(acct.cluster, acct.account): acct for acct in (src, dst)}
    by_region = {(acct.region, acct.account): acct for acct in (src, dst)}
    session = FakeSession('p1', {'RegionTwo': f'http://{b.name}/v1/AUTH_p1'})
    r1 = fakes.FakeGlanceRegion('RegionOne')
    r2 = LocationGlance('RegionTwo', accounts=accounts)
    r1.session = r2.session = session
    image = r1.add_image(data, stores=stores, owner=source_owner)
    cont = f"glance_{image['id']}"
    if len(data) > segment and not one_object:
        n = 0
        for n, i in enumerate(range(0, len(data), segment), 1):
            src.add(cont, '%s-%05d' % (image['id'], n), data[i:i + segment])
        src.add(cont, image['id'], manifest=f"{cont}/{image['id']}-")
    else:
        src.add(cont, image['id'], data)
    target = r2.create_image(name='copy')
    strategy = swift.SwiftStrategy(conf)
    strategy._service_token = lambda: 'service-token'

    def account(region, url, sess, timeout):
        assert sess is session          # the clone's trust, nothing else
        assert url.startswith('http://' + ('a' if region == 'RegionOne'
                                           else b.name))
        return by_region[(region, url.rsplit('/', 1)[1])]
    swift.SwiftAccount = account
    job = base.CopyJob(source=r1, target=r2, source_image=image,
                       target_image_id=target['id'], clone_id='c1')
    return strategy, job, src, dst


@pytest.fixture(autouse=True)
def _restore_swift_account():
    real = swift.SwiftAccount
    yield
    swift.SwiftAccount = real


class Progress:
    def __init__(self, stop_after_checkpoints=None):
        self.calls = []
        self.checkpoints = []
        self._stop = stop_after_checkpoints

    def __call__(self, done, total, checkpoint=None):
        self.calls.append((done, total))
        if checkpoint is not None:
            self.checkpoints.append(checkpoint)
            if self._stop is not None and len(
                    checkpoint['done']) >= self._stop:
                raise exceptions.Interrupted('killed')


def target_objects(dst, image_id):
    return sorted(o['name'] for o in dst.listing(f'glance_{image_id}',
                                                 image_id))


def test_same_cluster_copies_every_segment_server_side(world):
    data = os.urandom(10 * SEG + 17)
    strategy, job, src, dst = make(world, True, data)
    assert strategy.applies(job) == (True, '')
    assert strategy.plan(job).objects == 11
    out = strategy.copy(job, Progress())
    assert out.bytes_copied == 0 and src.streamed == 0     # zero through us
    assert dst.c.copies == 11
    assert out.details['mode'] == 'server-side'
    assert out.details['copied'] == 11
    tid = job.target_image_id
    assert target_objects(dst, tid) == [tid] + [
        '%s-%05d' % (tid, i) for i in range(1, 12)]
    image = job.target.get_image(tid)
    assert image['status'] == 'active' and image['checksum'] == md5(data)
    url, validation, headers = job.target.location_calls[0]
    # the multi-tenant store's location: the target project's account
    assert url == f'swift+http://a/v1/AUTH_p1/glance_{tid}/{tid}'
    assert validation == {'os_hash_algo': 'sha512',
                          'os_hash_value': hashlib.sha512(data).hexdigest()}
    assert headers == {'X-Service-Token': 'service-token'}
    # what is persisted names no location, account nor URL
    assert 'AUTH_' not in repr(out.to_dict()) and '://' not in repr(
        out.to_dict())


def test_a_source_in_another_projects_account_is_read_there(world):
    data = os.urandom(3 * SEG)
    strategy, job, src, dst = make(world, True, data, source_owner='p2')
    assert src.account == 'AUTH_p2' and dst.account == 'AUTH_p1'
    assert strategy.applies(job) == (True, '')
    strategy.copy(job, Progress())
    assert job.target.get_image(job.target_image_id)['checksum'] == md5(data)
    assert len(target_objects(dst, job.target_image_id)) == 4


def test_cross_cluster_streams_segments_and_checkpoints_each(world):
    data = os.urandom(10 * SEG)
    strategy, job, src, dst = make(world, False, data)
    progress = Progress()
    out = strategy.copy(job, progress)
    assert out.details['mode'] == 'streamed'
    assert src.streamed == len(data) == out.bytes_copied
    assert len(dst.c.puts) == 10
    done = [len(c['done']) for c in progress.checkpoints]
    assert done == list(range(0, 11))          # one after each segment
    assert job.target.get_image(job.target_image_id)['status'] == 'active'


def test_resume_copies_only_missing_segments(world):
    data = os.urandom(10 * SEG)
    strategy, job, src, dst = make(world, False, data)
    world.set_override('workers', 1, group='swift_store')
    first = Progress(stop_after_checkpoints=4)
    with pytest.raises(exceptions.Interrupted):
        strategy.copy(job, first)
    checkpoint = first.checkpoints[-1]
    assert len(checkpoint['done']) == 4
    puts_before = len(dst.c.puts)
    # one checkpointed segment went bad in the target meanwhile
    bad = '%s-%05d' % (job.target_image_id, 2)
    dst.c.objects[dst._key(f'glance_{job.target_image_id}', bad)]['etag'] = \
        'f' * 32
    out = strategy.copy(job, Progress(), checkpoint=checkpoint)
    again = dst.c.puts[puts_before:]
    assert bad in again
    assert len(again) == 10 - puts_before + 1
    assert out.details['skipped'] == puts_before - 1
    assert job.target.get_image(job.target_image_id)['status'] == 'active'


def test_missing_source_segment_is_named_and_nothing_is_copied(world):
    data = os.urandom(5 * SEG)
    strategy, job, src, dst = make(world, False, data)
    src.delete(f"glance_{job.source_image['id']}",
               '%s-%05d' % (job.source_image['id'], 3))
    ok, reason = strategy.applies(job)
    assert not ok and 'segment' in reason and '-00003 is missing' in reason
    with pytest.raises(swift.SourceDataBroken, match='-00003 is missing'):
        strategy.copy(job, Progress())
    assert target_objects(dst, job.target_image_id) == []


@pytest.mark.parametrize('same', [True, False], ids=['same', 'cross'])
def test_corrupted_source_segment_fails_and_cleanup_removes_copies(world,
                                                                   same):
    data = os.urandom(6 * SEG)
    strategy, job, src, dst = make(world, same, data)
    key = src._key(f"glance_{job.source_image['id']}",
                   '%s-%05d' % (job.source_image['id'], 4))
    rotten = bytearray(src.c.objects[key]['data'])
    rotten[10] ^= 0xFF
    src.c.objects[key]['data'] = bytes(rotten)     # its ETag stays
    with pytest.raises(swift.SourceDataBroken, match='-00004 .*corrupted'):
        strategy.copy(job, Progress())
    assert strategy.cleanup(job) >= 0
    assert target_objects(dst, job.target_image_id) == []
    assert f'glance_{job.target_image_id}' not in dst.containers
    assert strategy.cleanup(job) == 0                    # idempotent


@pytest.mark.parametrize('same', [True, False], ids=['same', 'cross'])
def test_a_big_single_object_is_copied_as_ranged_segments(world, same):
    world.set_override('segment_size_mb', 1, group='swift_store')
    data = os.urandom(3 * 1024 * 1024 + 5)
    strategy, job, src, dst = make(world, same, data, one_object=True)
    assert strategy.plan(job).objects == 4
    progress = Progress()
    out = strategy.copy(job, progress)
    tid = job.target_image_id
    assert target_objects(dst, tid) == [tid] + [
        '%s-%05d' % (tid, i) for i in range(1, 5)]
    assert out.details['segments'] == 4
    assert (src.streamed == 0) if same else (src.streamed == len(data))
    assert len(progress.checkpoints[-1]['etags']) == 4
    image = job.target.get_image(tid)
    assert image['status'] == 'active' and image['checksum'] == md5(data)


def test_ranged_segments_resume_from_the_checkpoint_etags(world):
    world.set_override('segment_size_mb', 1, group='swift_store')
    world.set_override('workers', 1, group='swift_store')
    data = os.urandom(4 * 1024 * 1024)
    strategy, job, src, dst = make(world, False, data, one_object=True)
    first = Progress(stop_after_checkpoints=2)
    with pytest.raises(exceptions.Interrupted):
        strategy.copy(job, first)
    checkpoint = first.checkpoints[-1]
    puts = len(dst.c.puts)
    out = strategy.copy(job, Progress(), checkpoint=checkpoint)
    assert out.details['skipped'] == len(checkpoint['done']) >= 2
    assert len(dst.c.puts) - puts == 4 - out.details['skipped']
    assert job.target.get_image(job.target_image_id)['checksum'] == md5(data)


def test_a_corrupted_single_object_is_caught_by_glance_hash(world):
    world.set_override('segment_size_mb', 1, group='swift_store')
    data = os.urandom(2 * 1024 * 1024 + 1)
    strategy, job, src, dst = make(world, True, data, one_object=True)
    key = src._key(f"glance_{job.source_image['id']}", job.source_image['id'])
    rotten = bytearray(data)
    rotten[7] ^= 1
    src.c.objects[key]['data'] = bytes(rotten)     # ranged reads see it
    with pytest.raises(swift.LocationRefused):
        strategy.copy(job, Progress())
    strategy.cleanup(job)
    assert target_objects(dst, job.target_image_id) == []


def test_single_object_source_is_one_object(world):
    data = os.urandom(SEG // 2)
    strategy, job, src, dst = make(world, True, data)
    out = strategy.copy(job, Progress())
    assert target_objects(dst, job.target_image_id) == [job.target_image_id]
    assert out.details['segments'] == 1
    assert job.target.get_image(job.target_image_id)['checksum'] == md5(data)


def test_without_the_service_token_the_location_is_refused(world):
    strategy, job, src, dst = make(world, True, os.urandom(2 * SEG))
    strategy._service_token = lambda: None
    with pytest.raises(exceptions.TargetNotAuthorized, match='service role'):
        strategy.copy(job, Progress())


def test_a_copy_glance_rejects_fails_verification(world):
    strategy, job, src, dst = make(world, True, os.urandom(2 * SEG))
    job.source_image['os_hash_value'] = '0' * 128
    with pytest.raises(swift.LocationRefused, match='do not hash to'):
        strategy.copy(job, Progress())


@pytest.mark.parametrize('case,reason', [
    ('target-not-mapped', 'RegionTwo is not declared a multi-tenant Swift '
                          'region ([swift_store] regions)'),
    ('source-in-file', 'the source image is not in Swift (it is in local)'),
    ('target-default-file', "RegionTwo stores new images in 'local', not in "
                            "Swift"),
    ('target-multi-store', 'RegionTwo runs several Glance stores, and Glance '
                           'then refuses a Swift location without '
                           'credentials'),
    ('credential-in-url', 'the storage URL of RegionOne carries a '
                          'credential'),
    ('template-without-project', 'has no %(project_id)s'),
    ('no-catalog-endpoint', 'RegionTwo has no object-store endpoint'),
    ('no-object', "is not in RegionOne's Swift store"),
    ('not-readable', "you may not read the image's objects in RegionOne's "
                     "Swift"),
    ('empty', 'the source image is empty'),
])
def test_applies_says_why_not(world, case, reason):
    strategy, job, src, dst = make(world, True, os.urandom(2 * SEG))
    regions = dict(world.swift_store.regions)
    cont = f"glance_{job.source_image['id']}"
    if case == 'target-not-mapped':
        del regions['RegionTwo']
    elif case == 'source-in-file':
        job.source_image['stores'] = 'local'
    elif case == 'target-default-file':
        job.target.store = 'local'
    elif case == 'target-multi-store':
        job.target.store = 'swift'
    elif case == 'credential-in-url':
        regions['RegionOne'] = 'http://u:k@a/v1/AUTH_%(project_id)s'
    elif case == 'template-without-project':
        regions['RegionOne'] = 'http://a/v1/AUTH_x'
    elif case == 'no-catalog-endpoint':
        job.target.session.endpoints.clear()
    elif case == 'no-object':
        for name in [o['name'] for o in src.listing(cont, '')]:
            src.delete(cont, name)
    elif case == 'not-readable':
        def forbidden(container, obj):
            raise swift.SwiftError('HEAD', 403)
        src.head = forbidden
    elif case == 'empty':
        job.source_image['size'] = 0
    world.set_override('regions', regions, group='swift_store')
    ok, why = strategy.applies(job)
    assert not ok and reason in why, why


@pytest.mark.parametrize('status', ['active', 'importing'])
def test_a_target_already_attached_is_not_copied_again(world, status):
    strategy, job, src, dst = make(world, False, os.urandom(2 * SEG))
    image = job.target.images[job.target_image_id]
    image['status'] = status
    gets = []

    def get_image(image_id):       # 'importing' ends in 'active'
        gets.append(image_id)
        if len(gets) > 2:
            image['status'] = 'active'
        return dict(image)
    job.target.get_image = get_image
    out = strategy.copy(job, Progress())
    assert out.details == {'already_attached': True}
    assert src.streamed == 0 and dst.c.puts == []


def test_dlo_etag_is_md5_of_segment_etags():
    assert swift.dlo_etag(['a' * 32, 'b' * 32]) == \
        hashlib.md5(('a' * 32 + 'b' * 32).encode()).hexdigest()


def test_a_location_never_carries_a_credential():
    assert swift.location_url('https://s/v1/AUTH_p', 'glance_i', 'i') == \
        'swift+https://s/v1/AUTH_p/glance_i/i'
    with pytest.raises(ValueError):
        swift.location_url('http://u:k@s/v1/AUTH_p', 'glance_i', 'i')


def test_a_swift_outage_is_one_sentence_and_the_details_go_to_the_log(
        world, caplog):
    strategy, job, src, dst = make(world, False, os.urandom(2 * SEG))
    dst.fail_put_after = 0
    with pytest.raises(swift.SwiftUnavailable) as e:
        strategy.copy(job, Progress())
    assert str(e.value) == 'the Swift store of RegionTwo stopped answering'
    assert 'c1' in caplog.text and 'PUT' in caplog.text


def test_swift_strategy_is_found_through_its_entry_point(conf):
    from clone_flows import stores
    assert isinstance(stores.load_strategies(conf)['swift'],
                      swift.SwiftStrategy)


class FakeConnection:
    """swiftclient.client.Connection as SwiftAccount uses it."""
    made = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        FakeConnection.made.append(self)

    def head_object(self, container, obj):
        raise swift_account.swiftclient.ClientException(
            'Object HEAD failed', http_status=404)

    def get_container(self, container, prefix, full_listing):
        raise swift_account.swiftclient.ClientException(
            'Container GET failed', http_status=404)

    def delete_object(self, container, obj):
        raise ConnectionResetError()


def test_swift_account_rides_on_swiftclient_with_the_clone_session(
        monkeypatch):
    monkeypatch.setattr(swift_account.swiftclient, 'Connection',
                        FakeConnection)
    session = object()
    acct = swift_account.SwiftAccount('RegionTwo', 'http://s/v1/AUTH_p/',
                                      session, timeout=7)
    assert acct.head('glance_i', 'i') is None          # 404: absent
    assert acct.listing('glance_i', 'i-') == []         # 404: no container
    with pytest.raises(swift_account.SwiftError) as e:  # no answer at all
        acct.delete('glance_i', 'i')
    assert e.value.status is None
    conn = FakeConnection.made[0]
    assert conn.kwargs['session'] is session and conn.kwargs['timeout'] == 7
    assert conn.kwargs['preauthurl'] == 'http://s/v1/AUTH_p'
    assert acct.account == 'AUTH_p' and acct.cluster == 'http://s'

"""The whole clone graph run by the in-process runner, against fake regions.

The same behaviours are proven against the real cloud in tests/functional.
"""
import os
import uuid

import pytest

from clone_flows import constants as c
from clone_flows import metadata
from conductor import persistence
from conductor import runner
from tests.unit import fakes


class Crash(BaseException):
    """Stands for kill -9: not an Exception, so TaskFlow does not revert."""


def _store(image_id, **overrides):
    return {c.CLONE_ID: str(uuid.uuid4()), c.SOURCE_REGION: 'R1',
            c.SOURCE_IMAGE_ID: image_id, c.TARGET_REGION: 'R2',
            c.TRUST_ID: 'trust-1', c.OVERRIDES: overrides,
            c.STRATEGY_NAME: 'auto'}


def _clone(conf, cloud, store, services=None):
    backend = persistence.get_backend(conf)
    book, fd, flow = runner.save_new_flow(conf, backend, store)
    services = services or fakes.FakeServices(conf, cloud)
    progress = []
    engine = runner.prepare_engine(conf, backend, book, fd, flow=flow,
                                   services=services,
                                   on_progress=progress.append)
    out = runner.run(engine, backend, store[c.CLONE_ID])
    return out, services, progress


def test_clone_copies_bits_and_metadata_and_reveals_the_copy(conf, cloud):
    data = os.urandom(50_000)
    src = cloud['R1'].add_image(data, name='deb', os_distro='debian',
                                hw_disk_bus='scsi', tags=['x'], min_ram=64,
                                visibility='public')
    out, services, progress = _clone(conf, cloud, _store(src['id']))
    assert out.succeeded, out.message
    new = cloud['R2'].images[out.result['image_id']]
    assert new['id'] != src['id']
    assert cloud['R2'].data[new['id']] == data
    assert (new['os_hash_value'] == src['os_hash_value']
            == out.result['os_hash_value'])
    assert (new['os_distro'], new['hw_disk_bus'], new['tags'],
            new['min_ram']) == ('debian', 'scsi', ['x'], 64)
    assert new['visibility'] == 'private' and new['os_hidden'] is False
    assert new[metadata.PROVENANCE_IMAGE] == src['id']
    assert new[metadata.PROVENANCE_REGION] == 'R1'
    assert progress[-1]['bytes_done'] == len(data)
    assert progress[-1]['percent'] == 100.0
    assert services.trust_deleted == 1


def test_empty_image_clones(conf, cloud):
    src = cloud['R1'].add_image(b'')
    out, _, _ = _clone(conf, cloud, _store(src['id']))
    assert out.succeeded, out.message
    assert out.result['size'] == 0


@pytest.mark.parametrize('make,expected', [
    (lambda r: str(uuid.uuid4()), 'is not visible to you in R1'),
    (lambda r: 'not-a-uuid', 'is not a valid image id'),
    (lambda r: r.add_image(status='queued')['id'], "is 'queued'"),
    (lambda r: r.add_image(b'x', status='deactivated')['id'],
     "is 'deactivated'"),
])
def test_bad_sources_fail_with_a_sentence_and_leave_nothing(conf, cloud, make,
                                                            expected):
    store = _store(make(cloud['R1']))
    out, services, _ = _clone(conf, cloud, store)
    assert not out.succeeded
    assert expected in out.message
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []
    assert services.trust_deleted == 1


def test_source_the_user_may_not_download_fails_before_anything_is_made(
        conf, cloud):
    src = cloud['R1'].add_image(b'licensed bits')
    cloud['R1'].refuse_download = True
    store = _store(src['id'])
    out, services, _ = _clone(conf, cloud, store)
    assert not out.succeeded
    assert out.failed_step == c.AUTHORIZE
    assert out.message.startswith(
        f"you may not download image {src['id']} in R1")
    assert not [call for call in cloud['R2'].calls if call[0] == 'create']
    assert services.trust_deleted == 1


def test_source_store_locations_are_not_persisted(conf, cloud):
    src = cloud['R1'].add_image(
        b'abc', direct_url='file:///secret/path',
        locations=[{'url': 'swift+http://u:KEY@h/v1/c/o', 'metadata': {}}])
    store = _store(src['id'])
    out, _, _ = _clone(conf, cloud, store)
    assert out.succeeded, out.message
    _, fd = runner.load_flow(persistence.get_backend(conf), store[c.CLONE_ID])
    saved = next(ad.results for ad in fd if ad.name == c.AUTHORIZE)
    assert saved['id'] == src['id'] and saved['size'] == 3
    assert not {'direct_url', 'locations', 'file', 'self'} & set(saved)


def test_cancel_during_the_stream_is_a_cancel_not_a_broken_source(
        conf, cloud):
    from clone_flows import exceptions
    src = cloud['R1'].add_image(os.urandom(300_000))
    attempts = []
    upload = cloud['R2'].upload_data

    def counted(image_id, chunks):
        attempts.append(image_id)
        return upload(image_id, chunks)
    cloud['R2'].upload_data = counted

    def guard(reverting=False, in_step=False, **_):
        if in_step and not reverting:
            raise exceptions.Cancelled()
    out, _, _ = _clone(conf, cloud, _store(src['id']),
                       services=fakes.FakeServices(conf, cloud, guard=guard))
    assert out.message == 'cancelled by user'
    assert len(attempts) == 1                # not retried as a broken stream


def test_source_stream_breaking_names_no_library_exception(conf, cloud):
    src = cloud['R1'].add_image(os.urandom(20_000))
    cloud['R1'].fail_source_after = 8192
    out, _, _ = _clone(conf, cloud, _store(src['id']))
    assert out.message.startswith('the image data stream of the source '
                                  'region stopped answering')
    assert 'Error' not in out.message and 'http' not in out.message


@pytest.mark.parametrize('fields,expected', [
    ({'cinder_encryption_key_id': 'key-1'}, 'is encrypted'),
    ({'block_device_mapping': '[{"snapshot_id": "s-1"}]', 'bdm_v2': 'True'},
     'snapshot of a volume-backed server'),
    ({'kernel_id': str(uuid.uuid4())}, 'has no verified copy in your project'),
])
def test_images_pointing_into_the_source_region_are_refused_before_copying(
        conf, cloud, fields, expected):
    src = cloud['R1'].add_image(b'abc', **fields)
    store = _store(src['id'])
    out, services, _ = _clone(conf, cloud, store)
    assert not out.succeeded
    assert out.failed_step == c.CHECK_METADATA
    assert expected in out.message
    assert not [call for call in cloud['R2'].calls if call[0] == 'create']


def test_kernel_and_ramdisk_map_to_their_verified_copies(conf, cloud):
    kernel = cloud['R1'].add_image(b'kernel')
    ramdisk = cloud['R1'].add_image(b'ramdisk')
    copied = {}
    for ref in (kernel, ramdisk):
        out, _, _ = _clone(conf, cloud, _store(ref['id']))
        assert out.succeeded, out.message
        copied[ref['id']] = out.result['image_id']
    # a copy of the kernel with other bits (not verified) is never chosen
    cloud['R2'].add_image(b'evil', **{metadata.PROVENANCE_REGION: 'R1',
                                      metadata.PROVENANCE_IMAGE: kernel['id'],
                                      'created_at': '9999'})
    src = cloud['R1'].add_image(b'disk', kernel_id=kernel['id'],
                                ramdisk_id=ramdisk['id'])
    out, _, _ = _clone(conf, cloud, _store(src['id']))
    assert out.succeeded, out.message
    new = cloud['R2'].images[out.result['image_id']]
    assert new['kernel_id'] == copied[kernel['id']]
    assert new['ramdisk_id'] == copied[ramdisk['id']]


def test_include_dependencies_clones_kernel_and_ramdisk_first(conf, cloud):
    kernel = cloud['R1'].add_image(b'kernel', disk_format='aki',
                                   container_format='aki')
    ramdisk = cloud['R1'].add_image(b'ramdisk', disk_format='ari',
                                    container_format='ari')
    src = cloud['R1'].add_image(b'disk', kernel_id=kernel['id'],
                                ramdisk_id=ramdisk['id'])
    store = dict(_store(src['id']), include_dependencies=True)
    out, _, _ = _clone(conf, cloud, store)
    assert out.succeeded, out.message
    new = cloud['R2'].images[out.result['image_id']]
    for key, ref in (('kernel_id', kernel), ('ramdisk_id', ramdisk)):
        dep = cloud['R2'].images[new[key]]
        assert cloud['R2'].data[dep['id']] == cloud['R1'].data[ref['id']]
        assert dep['os_hidden'] is False and dep['status'] == 'active'
        assert dep[metadata.PROVENANCE_IMAGE] == ref['id']
        assert dep['disk_format'] == ref['disk_format']


def test_a_failed_clone_removes_the_dependencies_it_cloned(conf, cloud):
    kernel = cloud['R1'].add_image(b'kernel')
    src = cloud['R1'].add_image(b'disk', kernel_id=kernel['id'],
                                cinder_encryption_key_id='key-1')
    store = dict(_store(src['id']), include_dependencies=True)
    out, _, _ = _clone(conf, cloud, store)
    assert not out.succeeded and out.failed_step == c.CHECK_METADATA
    assert [i for i in cloud['R2'].images.values()
            if i.get(metadata.PROVENANCE_IMAGE) == kernel['id']] == []


def test_the_sweep_removes_the_dependency_copies_of_a_clone(conf, cloud):
    """A clone whose revert could not run leaves its reserved image and
    the kernel copy it was making: the sweep removes both, and no other
    clone's copies.
    """
    import contextlib

    from taskflow.persistence import models

    from clone_flows.tasks import clone_dependencies
    from conductor import sweep
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    r2 = cloud['R2']
    left = [r2.add_image(status='queued', os_hidden=True,
                         **{metadata.PROVENANCE_CLONE: tag})['id']
            for tag in (mine, f'{mine}-kernel', f'{mine}-ramdisk')]
    kept = [r2.add_image(**{metadata.PROVENANCE_CLONE: f'{other}-kernel'}),
            r2.add_image(status='queued', os_hidden=True,
                         **{metadata.PROVENANCE_CLONE: other})]
    backend = persistence.get_backend(conf)
    book = models.LogBook(f'clone-{mine}', uuid=mine)
    fd = models.FlowDetail(c.CLONE_FLOW, uuid=mine)
    fd.meta['store'] = {c.CLONE_ID: mine, c.SOURCE_REGION: 'R1',
                        c.TARGET_REGION: 'R2'}
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    services = fakes.FakeServices(conf, cloud)
    assert sorted(i['id'] for i in sweep.leftover_images(
        conf, fd, services=services)) == sorted(left)
    assert sweep.sweep_one(conf, backend, fd, services=services)
    assert not set(left) & set(r2.images)
    assert {i['id'] for i in kept} <= set(r2.images)
    assert clone_dependencies.owner(f'{mine}-kernel') == mine
    assert clone_dependencies.owner(f'{mine}-ramdisk') == mine
    assert clone_dependencies.owner(mine) == mine
    assert clone_dependencies.owner('-kernel') == '-kernel'


def test_shared_key_manager_keeps_the_key_and_never_deletes_it(conf, cloud):
    conf.set_override('shared_key_manager', True, group='metadata')
    src = cloud['R1'].add_image(
        b'secret', cinder_encryption_key_id='key-1',
        cinder_encryption_key_deletion_policy='on_image_deletion')
    out, _, _ = _clone(conf, cloud, _store(src['id']))
    assert out.succeeded, out.message
    new = cloud['R2'].images[out.result['image_id']]
    assert new['cinder_encryption_key_id'] == 'key-1'
    assert new['cinder_encryption_key_deletion_policy'] == 'do_not_delete'


def test_target_quota_without_room_refuses_before_anything_is_made(
        conf, cloud):
    src = cloud['R1'].add_image(os.urandom(3 * 1024 * 1024))
    cloud['R2'].quota_usage = {
        'image_size_total': {'usage': 8, 'limit': 10},
        'image_count_total': {'usage': 1, 'limit': -1}}
    out, _, _ = _clone(conf, cloud, _store(src['id']))
    assert not out.succeeded and out.failed_step == c.PLAN_COPY
    assert out.message == ('R2 refused the image: project quota exceeded '
                           '(image_size_total: limit 10 MiB, in use 8 MiB, '
                           'the copy needs 3 MiB)')
    assert not [call for call in cloud['R2'].calls if call[0] == 'create']
    cloud['R2'].quota_usage['image_size_total']['limit'] = 11
    out, _, _ = _clone(conf, cloud, _store(src['id']))
    assert out.succeeded, out.message


def test_visibility_the_target_refuses_fails_before_any_byte_moves(
        conf, cloud):
    src = cloud['R1'].add_image(os.urandom(10_000))
    cloud['R2'].refuse_visibility = {'public'}
    store = _store(src['id'], visibility='public')
    out, _, progress = _clone(conf, cloud, store)
    assert not out.succeeded and out.failed_step == c.RESERVE_IMAGE
    assert out.message == ("R2 does not let you make images public "
                           "(Glance's publicize_image policy)")
    assert progress == []            # no data moved
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []


def test_reserved_image_stays_private_after_proving_it_may_be_revealed(
        conf, cloud):
    src = cloud['R1'].add_image(b'abc')
    store = _store(src['id'], visibility='public', protected=True)
    seen = {}
    upload = cloud['R2'].upload_data

    def spy(image_id, chunks):
        seen.update(cloud['R2'].images[image_id])
        return upload(image_id, chunks)
    cloud['R2'].upload_data = spy
    out, _, _ = _clone(conf, cloud, store)
    assert out.succeeded, out.message
    assert (seen['visibility'], seen['protected'], seen['os_hidden']) == \
        ('private', False, True)
    new = cloud['R2'].images[out.result['image_id']]
    assert (new['visibility'], new['protected']) == ('public', True)


@pytest.mark.parametrize('holds,revealed', [(False, False), (None, True)])
def test_a_withdrawn_delegation_reveals_nothing(conf, cloud, holds,
                                                revealed):
    src = cloud['R1'].add_image(b'abc')
    store = _store(src['id'])
    services = fakes.FakeServices(conf, cloud)
    services.delegation = holds          # refused / Keystone not answering
    out, _, _ = _clone(conf, cloud, store, services=services)
    assert out.succeeded is revealed
    left = fakes.leftovers(cloud['R2'], store[c.CLONE_ID])
    if revealed:
        assert len(left) == 1
    else:
        assert out.failed_step == c.ACTIVATE and left == []
        assert out.message.startswith('your rights on the project were '
                                      'withdrawn during the clone')


def test_a_property_the_target_rejects_is_named_before_any_byte_moves(
        conf, cloud):
    from clone_flows import glance
    src = cloud['R1'].add_image(os.urandom(10_000), hw_rng_model='x' * 300)
    update = cloud['R2'].update_image

    def strict(image_id, replace=None, remove=()):
        if any(len(str(v)) > 255 for v in (replace or {}).values()):
            raise glance.GlanceError('R2', 'PATCH', image_id, 400,
                                     'value too long')
        return update(image_id, replace, remove)
    cloud['R2'].update_image = strict
    store = _store(src['id'])
    out, _, progress = _clone(conf, cloud, store)
    assert out.failed_step == c.SYNC_PROPERTIES
    assert out.message.startswith("R2 rejected the image's properties (")
    assert out.message.endswith('(HTTP 400)') and 'hw_rng_model' in out.message
    assert progress == []
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []


def test_unknown_target_region_is_named(conf, cloud):
    src = cloud['R1'].add_image(b'abc')
    store = dict(_store(src['id']), target_region='Nowhere')
    out, _, _ = _clone(conf, cloud, store)
    assert "region 'Nowhere' has no image endpoint" in out.message


def test_hash_mismatch_fails_and_removes_the_copy(conf, cloud):
    src = cloud['R1'].add_image(b'hello world')
    cloud['R1'].data[src['id']] = b'hello w0rld'  # bit rot in the source store
    store = _store(src['id'])
    out, _, _ = _clone(conf, cloud, store)
    assert not out.succeeded
    assert 'does not match the source' in out.message
    assert out.failed_step == c.VERIFY
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []


def test_source_deleted_during_copy_fails_and_cleans(conf, cloud):
    src = cloud['R1'].add_image(os.urandom(10_000))
    store = _store(src['id'])
    original = cloud['R2'].upload_data

    def upload_then_source_vanishes(image_id, chunks):
        original(image_id, chunks)
        del cloud['R1'].images[src['id']]
    cloud['R2'].upload_data = upload_then_source_vanishes
    out, _, _ = _clone(conf, cloud, store)
    assert 'was deleted in R1 during the copy' in out.message
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []


def test_target_blinking_during_copy_is_retried(conf, cloud):
    src = cloud['R1'].add_image(os.urandom(10_000))
    cloud['R2'].fail_upload_times = 2
    out, _, _ = _clone(conf, cloud, _store(src['id']))
    assert out.succeeded, out.message
    assert len(cloud['R2'].images) == 1


def test_target_down_for_good_fails_after_the_attempts(conf, cloud):
    src = cloud['R1'].add_image(os.urandom(10_000))
    cloud['R2'].fail_upload_times = 99
    store = _store(src['id'])
    out, _, _ = _clone(conf, cloud, store)
    assert 'of R2 stopped answering' in out.message
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []


def test_source_stream_breaking_is_reported_and_cleaned(conf, cloud):
    src = cloud['R1'].add_image(os.urandom(20_000))
    cloud['R1'].fail_source_after = 8192
    store = _store(src['id'])
    out, _, _ = _clone(conf, cloud, store)
    assert 'image data stream' in out.message
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []


def test_killed_during_copy_resumes_into_the_same_image(conf, cloud):
    data = os.urandom(30_000)
    src = cloud['R1'].add_image(data)
    store = _store(src['id'])
    original = cloud['R2'].upload_data
    state = {'crashed': False}

    def crash_once(image_id, chunks):
        if not state['crashed']:
            state['crashed'] = True
            raise Crash()
        return original(image_id, chunks)
    cloud['R2'].upload_data = crash_once
    with pytest.raises(Crash):
        _clone(conf, cloud, store)
    reserved = fakes.leftovers(cloud['R2'], store[c.CLONE_ID])
    assert len(reserved) == 1

    backend = persistence.get_backend(conf)
    book, fd = runner.load_flow(backend, store[c.CLONE_ID])
    assert not runner.is_finished(fd)
    engine = runner.prepare_engine(conf, backend, book, fd,
                                   services=fakes.FakeServices(conf, cloud))
    creates_before = [x for x in cloud['R2'].calls if x[0] == 'create']
    out = runner.run(engine, backend, store[c.CLONE_ID])
    assert out.succeeded, out.message
    assert out.result['image_id'] == reserved[0]['id']
    assert [x for x in cloud['R2'].calls if x[0] == 'create'] == creates_before
    assert cloud['R2'].data[reserved[0]['id']] == data


def test_persisted_flow_holds_no_services_object(conf, cloud):
    src = cloud['R1'].add_image(b'abc')
    store = _store(src['id'])
    _clone(conf, cloud, store)
    backend = persistence.get_backend(conf)
    _, fd = runner.load_flow(backend, store[c.CLONE_ID])
    dumped = repr([(ad.name, ad.results) for ad in fd]) + repr(fd.meta)
    assert 'FakeServices' not in dumped and 'not-a-real-token' not in dumped


def test_cancel_during_copy_reverts_and_says_so(conf, cloud):
    from clone_flows import exceptions
    src = cloud['R1'].add_image(os.urandom(40_000))
    store = _store(src['id'])
    calls = {'n': 0}

    def guard(reverting=False, **_):
        calls['n'] += 1
        if not reverting and calls['n'] > 6:   # cancelled while copying
            raise exceptions.Cancelled()
    out, _, _ = _clone(conf, cloud, store,
                       services=fakes.FakeServices(conf, cloud, guard=guard))
    assert not out.succeeded
    assert out.message == 'cancelled by user'
    assert fakes.leftovers(cloud['R2'], store[c.CLONE_ID]) == []


def _checks_before_each_step(conf, cloud):
    """How many times a clone asks whether it may go on (not in a step)."""
    src = cloud['R1'].add_image(b'count')
    asked = []
    _clone(conf, cloud, _store(src['id']), services=fakes.FakeServices(
        conf, cloud, guard=lambda reverting=False, **_: asked.append(
            reverting)))
    return len(asked)


@pytest.mark.parametrize('at', range(1, 12))
def test_cancel_at_any_step_never_destroys_a_revealed_copy(conf, cloud, at):
    """A cancel read at the at-th check: before the copy is revealed the
    clone reverts and says it was cancelled; once revealed it ends success
    and the copy stays.
    """
    from clone_flows import exceptions
    assert _checks_before_each_step(conf, cloud) >= 11
    src = cloud['R1'].add_image(os.urandom(1000))
    store = _store(src['id'])
    seen = {'n': 0, 'revealed': None}

    def guard(reverting=False, in_step=False, cancellable=True):
        if reverting:
            return
        seen['n'] += 1
        if seen['n'] >= at and seen['revealed'] is None:
            copies = fakes.leftovers(cloud['R2'], store[c.CLONE_ID])
            seen['revealed'] = bool(copies) and not copies[0]['os_hidden']
        if seen['revealed'] is not None and cancellable:
            raise exceptions.Cancelled()      # asked once, read every time
    out, _, _ = _clone(conf, cloud, store,
                       services=fakes.FakeServices(conf, cloud, guard=guard))
    left = fakes.leftovers(cloud['R2'], store[c.CLONE_ID])
    if seen['revealed']:
        assert out.succeeded, out.message
        assert len(left) == 1 and not left[0]['os_hidden']
    else:
        assert not out.succeeded and out.message == 'cancelled by user'
        assert left == []


def test_lost_claim_stops_without_reverting(conf, cloud):
    from clone_flows import exceptions
    src = cloud['R1'].add_image(os.urandom(40_000))
    store = _store(src['id'])
    calls = {'n': 0}

    def guard(reverting=False, **_):
        calls['n'] += 1
        if calls['n'] > 6:
            raise exceptions.Interrupted('claim now held by someone else')
    with pytest.raises(exceptions.Interrupted):
        _clone(conf, cloud, store,
               services=fakes.FakeServices(conf, cloud, guard=guard))
    # nothing reverted: the reserved image stays for the new owner
    assert len(fakes.leftovers(cloud['R2'], store[c.CLONE_ID])) == 1
    backend = persistence.get_backend(conf)
    _, fd = runner.load_flow(backend, store[c.CLONE_ID])
    assert not runner.is_finished(fd)


def test_image_left_saving_by_a_paused_writer_is_replaced(conf, cloud):
    conf.set_override('busy_upload_timeout', 0.2, group='http_stream')
    data = os.urandom(20_000)
    src = cloud['R1'].add_image(data)
    store = _store(src['id'])
    original = cloud['R2'].create_image
    first = {}

    def create_busy(**fields):
        image = original(**fields)
        if not first:     # the first reservation is stuck in 'saving'
            first['id'] = image['id']
            cloud['R2'].images[image['id']]['status'] = 'saving'
        return image
    cloud['R2'].create_image = create_busy
    out, _, _ = _clone(conf, cloud, store)
    assert out.succeeded, out.message
    assert first['id'] not in cloud['R2'].images
    assert [i['id'] for i in fakes.leftovers(cloud['R2'], store[c.CLONE_ID])] \
        == [out.result['image_id']]
    assert cloud['R2'].data[out.result['image_id']] == data


def test_a_strategys_checkpoint_is_handed_back_on_resume(conf, cloud):
    from clone_flows.stores import base

    class Segmented(base.StoreStrategy):
        """Copies in 4 'segments', checkpointing after each."""
        name = 'segmented'
        crash_after = 2
        seen = []

        def applies(self, job):
            return True, ''

        def copy(self, job, progress, checkpoint=None):
            self.seen.append(checkpoint)
            data = job.source.data[job.source_image['id']]
            done = (checkpoint or {}).get('segments_done', 0)
            for seg in range(done, 4):
                if seg == self.crash_after:
                    self.crash_after = None
                    raise Crash()
                progress((seg + 1) * len(data) // 4, len(data),
                         checkpoint={'segments_done': seg + 1})
            job.target.upload_data(job.target_image_id, iter([data]))
            return base.CopyOutcome(bytes_copied=len(data))

        def cleanup(self, job, checkpoint=None):
            pass

    strategy = Segmented(conf)
    src = cloud['R1'].add_image(os.urandom(4000))
    store = dict(_store(src['id']), strategy_name='segmented')
    services = fakes.FakeServices(conf, cloud,
                                  strategies={'segmented': strategy})
    with pytest.raises(Crash):
        _clone(conf, cloud, store, services=services)
    backend = persistence.get_backend(conf)
    book, fd = runner.load_flow(backend, store[c.CLONE_ID])
    engine = runner.prepare_engine(conf, backend, book, fd, services=services)
    out = runner.run(engine, backend, store[c.CLONE_ID])
    assert out.succeeded, out.message
    assert strategy.seen == [None, {'segments_done': 2}]


def test_auto_falls_back_to_http_and_names_every_strategy_it_passed_over(
        conf, cloud):
    from clone_flows.stores import base
    from clone_flows.stores import http

    class Broken(base.StoreStrategy):
        name = 'broken'

        def applies(self, job):
            raise RuntimeError('misconfigured')

        def copy(self, job, progress, checkpoint=None):
            raise AssertionError('never chosen')

        def cleanup(self, job, checkpoint=None):
            pass

    conf.set_override('strategy_preference', ['rbd', 'broken', 'http'],
                      group='clone')
    src = cloud['R1'].add_image(b'data')
    services = fakes.FakeServices(conf, cloud, strategies={
        'broken': Broken(conf), 'http': http.HttpStreamStrategy(conf)})
    backend = persistence.get_backend(conf)
    store = _store(src['id'])
    out, _, _ = _clone(conf, cloud, store, services=services)
    assert out.succeeded, out.message
    _, fd = runner.load_flow(backend, store[c.CLONE_ID])
    plan = [ad.results for ad in fd if ad.name == c.PLAN_COPY][0]
    assert plan['strategy'] == 'http'
    assert plan['reason'] == ('rbd: not installed; broken: could not check '
                              '(the operator finds why in the clone\'s log)')


@pytest.mark.parametrize('hidden,cancelled', [(True, True), (False, False)])
def test_activate_run_again_after_revealing_ignores_a_late_cancel(
        conf, cloud, hidden, cancelled):
    """A run that revealed the copy and died before recording it: the next
    run of Activate finds the copy showing, so a cancel comes too late.
    """
    from clone_flows import exceptions
    from clone_flows.tasks import activate
    copy = cloud['R2'].add_image(b'abc', os_hidden=hidden)

    def guard(reverting=False, in_step=False, cancellable=True):
        if cancellable and not reverting:
            raise exceptions.Cancelled()
    services = fakes.FakeServices(conf, cloud, guard=guard)
    run = lambda: activate.Activate().execute(     # noqa: E731
        services, 'clone-1', 'R2', {'id': 'src'}, copy['id'], {},
        {'size': 3, 'checksum': copy['checksum'], 'os_hash_algo': 'sha512',
         'os_hash_value': copy['os_hash_value']})
    if cancelled:
        with pytest.raises(exceptions.Cancelled):
            run()
    else:
        assert run()['image_id'] == copy['id']

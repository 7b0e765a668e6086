"""Dry runs, if_exists and the copies of an image, against fake regions.

The same behaviours are proven against the real cloud in
tests/functional/test_dry_run.py.
"""
import os

import pytest

from clone_flows import constants as c
from clone_flows import copies
from clone_flows import flow
from clone_flows import metadata
from tests.unit import fakes
from tests.unit.test_clone_flow import _clone
from tests.unit.test_clone_flow import _store


def _dry(image_id, **overrides):
    return dict(_store(image_id, **overrides), **{c.DRY_RUN: True,
                                                  c.IF_EXISTS: 'copy'})


def _names(f):
    from tests.unit.test_flow_contract import _atoms
    return [a.name for a in _atoms(f)]


def test_dry_run_graph_has_no_step_that_changes_the_target():
    names = _names(flow.dry_run_flow())
    assert names == [c.HOLD_TRUST, c.AUTHORIZE, c.FIND_COPY, c.CHECK_METADATA,
                     c.PLAN_COPY, c.DRY_RUN_REPORT, c.RELEASE_TRUST]


def test_dry_run_reserves_nothing_releases_the_trust_and_reports(conf, cloud):
    src = cloud['R1'].add_image(os.urandom(5000), name='deb',
                                os_distro='debian', hw_disk_bus='scsi',
                                owner='p1', foo='bar')
    out, services, _ = _clone(conf, cloud, _dry(
        src['id'], visibility='public', properties={'foo': 'baz',
                                                    'extra': '1'}))
    assert out.succeeded, out.message
    assert cloud['R2'].images == {}
    assert services.trust_deleted == 1
    plan = out.result
    assert plan['dry_run'] is True and plan['bytes_to_move'] == 5000
    assert plan['strategy'] == 'http'
    props = plan['properties']
    assert props['os_distro']['action'] == 'copied'
    assert props['owner']['action'] == 'dropped'
    assert props['foo'] == {'action': 'overridden', 'value': 'baz',
                            'reason': 'your input'}
    assert props['extra']['action'] == 'added'
    assert props[metadata.PROVENANCE_IMAGE]['value'] == src['id']
    assert props[metadata.PROVENANCE_ORIGIN_IMAGE]['value'] == src['id']
    assert props['visibility'] == {
        'action': 'overridden', 'value': 'public',
        'reason': metadata.HANDLED['visibility']}
    assert {ch['check'] for ch in plan['checks']} >= {
        'source visible', 'source downloadable', 'target may create images',
        'quota headroom'}
    assert any('publicize_image' in n for n in plan['not_proven'])


def test_dry_run_of_a_reader_fails_as_the_clone_would(conf, cloud):
    src = cloud['R1'].add_image(b'x')
    services = fakes.FakeServices(conf, cloud)
    services.roles = ('reader',)
    out, services, _ = _clone(conf, cloud, _dry(src['id']), services=services)
    assert not out.succeeded
    assert out.message == 'you are not allowed to create images in R2'
    assert services.trust_deleted == 1


def test_dry_run_of_an_encrypted_image_fails_with_the_clone_sentence(conf,
                                                                     cloud):
    src = cloud['R1'].add_image(b'x', cinder_encryption_key_id='k')
    real, _, _ = _clone(conf, cloud, _store(src['id']))
    dry, services, _ = _clone(conf, cloud, _dry(src['id']))
    assert not dry.succeeded and dry.message == real.message
    assert 'encrypted' in dry.message
    assert services.trust_deleted == 1


def _with_if_exists(image_id, mode):
    return dict(_store(image_id), **{c.IF_EXISTS: mode})


@pytest.mark.parametrize('mode', ['reuse', 'fail', 'copy'])
def test_if_exists_with_a_verified_copy(conf, cloud, mode):
    src = cloud['R1'].add_image(os.urandom(3000), name='src')
    first, _, _ = _clone(conf, cloud, _store(src['id']))
    assert first.succeeded, first.message
    copy_id = first.result['image_id']
    out, services, _ = _clone(conf, cloud, _with_if_exists(src['id'], mode))
    assert services.trust_deleted == 1
    if mode == 'reuse':
        assert out.succeeded, out.message
        assert out.result['image_id'] == copy_id and out.result['reused']
        assert set(cloud['R2'].images) == {copy_id}
    elif mode == 'fail':
        assert not out.succeeded
        assert f'image {copy_id}' in out.message
        assert set(cloud['R2'].images) == {copy_id}
    else:
        assert out.succeeded and out.result['image_id'] != copy_id
        assert len(cloud['R2'].images) == 2


def test_if_exists_reuse_without_a_copy_makes_one(conf, cloud):
    src = cloud['R1'].add_image(os.urandom(3000), name='src')
    out, services, _ = _clone(conf, cloud, _with_if_exists(src['id'],
                                                           'reuse'))
    assert out.succeeded, out.message
    assert 'reused' not in out.result
    assert list(cloud['R2'].images) == [out.result['image_id']]
    assert services.trust_deleted == 1


def test_chain_keeps_the_origin_and_lists_descendants_of_a_deleted_middle(
        conf, cloud):
    src = cloud['R1'].add_image(os.urandom(3000), name='orig')
    first, _, _ = _clone(conf, cloud, _store(src['id']))
    middle = first.result['image_id']
    back = dict(_store(middle), **{c.SOURCE_REGION: 'R2',
                                   c.TARGET_REGION: 'R1'})
    second, _, _ = _clone(conf, cloud, back)
    assert second.succeeded, second.message
    grandchild = cloud['R1'].images[second.result['image_id']]
    assert grandchild[metadata.PROVENANCE_ORIGIN_IMAGE] == src['id']
    assert grandchild[metadata.PROVENANCE_ORIGIN_REGION] == 'R1'
    assert grandchild[metadata.PROVENANCE_IMAGE] == middle
    del cloud['R2'].images[middle]
    found = copies.descendants(cloud, 'R1', src['id'], original=src)
    assert [(e['region'], e['image_id'], e['verified']) for e in found] == [
        ('R1', grandchild['id'], True)]

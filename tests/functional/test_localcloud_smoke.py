"""The local two-region cloud is real: Keystone, two Glance APIs, ZooKeeper."""
import hashlib
import io
import os

from glanceclient import exc as glance_exc
import pytest

from tests.functional.conftest import glance_client


def _upload(gc, data, **fields):
    image = gc.images.create(disk_format='raw', container_format='bare',
                             **fields)
    gc.images.upload(image.id, io.BytesIO(data))
    return gc.images.get(image.id)


def test_demo_uploads_an_image_and_finds_it_by_hash(cloud):
    gc = glance_client(cloud, 'demo', 'RegionOne')
    data = os.urandom(4096)
    image = _upload(gc, data, name='smoke')
    try:
        assert image.os_hash_value == hashlib.sha512(data).hexdigest()
        found = list(gc.images.list(
            filters={'os_hash_value': image.os_hash_value}))
        assert [i.id for i in found] == [image.id]
    finally:
        gc.images.delete(image.id)


def test_demo_cannot_see_alt_demos_private_image(cloud):
    alt = glance_client(cloud, 'alt_demo', 'RegionOne')
    image = _upload(alt, b'private bits', name='alt-private',
                    visibility='private')
    try:
        demo = glance_client(cloud, 'demo', 'RegionOne')
        with pytest.raises(glance_exc.HTTPNotFound):
            demo.images.get(image.id)
        assert image.id not in {i.id for i in demo.images.list()}
    finally:
        alt.images.delete(image.id)


def test_regions_are_separate_glances(cloud):
    r1 = glance_client(cloud, 'demo', 'RegionOne')
    r2 = glance_client(cloud, 'demo', 'RegionTwo')
    image = _upload(r1, b'only in one', name='region-one-only')
    try:
        with pytest.raises(glance_exc.HTTPNotFound):
            r2.images.get(image.id)
    finally:
        r1.images.delete(image.id)


def test_reader_cannot_create_images(cloud):
    gc = glance_client(cloud, 'demo_reader', 'RegionTwo')
    with pytest.raises(glance_exc.HTTPForbidden):
        gc.images.create(name='nope', disk_format='raw',
                         container_format='bare')


def test_zookeeper_round_trip_with_kazoo(cloud):
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=cloud['zookeeper'], timeout=10)
    zk.start(timeout=15)
    try:
        path = f'/glance-clone-smoke/{os.getpid()}'
        zk.ensure_path('/glance-clone-smoke')
        zk.create(path, b'hello', ephemeral=True)
        assert zk.get(path)[0] == b'hello'
        zk.delete(path)
        assert not zk.exists(path)
    finally:
        zk.stop()
        zk.close()

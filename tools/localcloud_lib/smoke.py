"""Smoke test of a running local cloud (runs inside venv-cloud).

    .localcloud/venv-cloud/bin/python tools/localcloud_lib/smoke.py CLOUD_JSON

Checks, with python-glanceclient as ordinary users:
  * demo uploads an image to RegionOne and finds it by os_hash_value;
  * demo cannot see alt_demo's private image;
  * demo_reader gets 403 creating an image;
  * a glance-download import RegionOne -> RegionTwo as demo succeeds and the
    copy's os_hash_value equals the source's.
Deletes what it created.  Exit 0 when all checks pass.
"""
import hashlib
import io
import json
import os
import sys
import time

from glanceclient import client as glance_client
from glanceclient import exc as glance_exc
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session


def glance(cloud, user, region):
    u = cloud['users'][user]
    auth = v3.Password(auth_url=cloud['auth_url'], username=user,
                       password=u['password'], project_name=u['project'],
                       user_domain_id='default', project_domain_id='default')
    sess = ks_session.Session(auth=auth, timeout=120)
    return glance_client.Client('2', session=sess, region_name=region,
                                interface='public')


def wait_status(gc, image_id, want='active', timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        img = gc.images.get(image_id)
        if img.status == want:
            return img
        if img.status in ('killed', 'deleted'):
            raise AssertionError('image %s went %s' % (image_id, img.status))
        time.sleep(0.3)
    raise AssertionError('image %s still %s after %ds'
                         % (image_id, img.status, timeout))


def main():
    with open(sys.argv[1]) as f:
        cloud = json.load(f)
    size = int(os.environ.get('SMOKE_IMAGE_BYTES', 3 * 1048576 + 17))
    data = os.urandom(size)
    sha512 = hashlib.sha512(data).hexdigest()
    results = []
    created = []  # (client, id)

    def check(name, ok, detail=''):
        results.append(ok)
        print('%s %s%s' % ('PASS' if ok else 'FAIL', name,
                           (': ' + detail) if detail else ''), flush=True)

    demo1 = glance(cloud, 'demo', 'RegionOne')
    demo2 = glance(cloud, 'demo', 'RegionTwo')
    alt1 = glance(cloud, 'alt_demo', 'RegionOne')
    reader1 = glance(cloud, 'demo_reader', 'RegionOne')
    try:
        t = time.monotonic()
        src = demo1.images.create(name='localcloud-smoke', disk_format='raw',
                                  container_format='bare',
                                  visibility='private',
                                  os_distro='smoke', hw_smoke='yes')
        created.append((demo1, src.id))
        demo1.images.upload(src.id, io.BytesIO(data), image_size=size)
        src = wait_status(demo1, src.id)
        check('demo upload to RegionOne', src.os_hash_value == sha512,
              '%d bytes in %.1fs' % (size, time.monotonic() - t))
        found = list(demo1.images.list(filters={'os_hash_value': sha512}))
        check('find by os_hash_value', [i.id for i in found] == [src.id],
              '%d found' % len(found))

        alt = alt1.images.create(name='localcloud-smoke-alt',
                                 disk_format='raw', container_format='bare',
                                 visibility='private')
        created.append((alt1, alt.id))
        visible = {i.id for i in demo1.images.list()}
        try:
            demo1.images.get(alt.id)
            got = True
        except glance_exc.HTTPNotFound:
            got = False
        check("demo cannot see alt_demo's private image",
              alt.id not in visible and not got)

        try:
            img = reader1.images.create(name='localcloud-smoke-reader',
                                        disk_format='raw',
                                        container_format='bare')
            created.append((demo1, img.id))
            check('demo_reader gets 403 on image create', False,
                  'created %s' % img.id)
        except glance_exc.HTTPForbidden:
            check('demo_reader gets 403 on image create', True)

        t = time.monotonic()
        dst = demo2.images.create(name='localcloud-smoke-copy',
                                  disk_format='raw', container_format='bare',
                                  visibility='private')
        created.append((demo2, dst.id))
        demo2.images.image_import(dst.id, method='glance-download',
                                  remote_region='RegionOne',
                                  remote_image_id=src.id)
        dst = wait_status(demo2, dst.id)
        check('glance-download RegionOne -> RegionTwo',
              dst.os_hash_value == src.os_hash_value and dst.size == size,
              '%.1fs, os_distro=%s hw_smoke=%s'
              % (time.monotonic() - t, getattr(dst, 'os_distro', None),
                 getattr(dst, 'hw_smoke', None)))
        body = b''.join(demo2.images.data(dst.id))
        check('RegionTwo copy has the same bytes', body == data)
    except Exception as e:  # report, then clean up
        check('unexpected error', False, '%s: %s' % (type(e).__name__, e))
    finally:
        for gc, image_id in reversed(created):
            try:
                gc.images.delete(image_id)
            except Exception as e:
                print('cleanup: could not delete %s: %s' % (image_id, e))
    passed = sum(results)
    print('%d passed, %d failed' % (passed, len(results) - passed))
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())

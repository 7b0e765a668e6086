"""A user who loses their role on the project during a clone gets nothing
revealed there.

Keystone keeps honouring a trust-scoped token issued before the role was
removed (and Glance keeps accepting it), but issues no new one: Activate
asks Keystone for a fresh token of the trust before it reveals the copy.
The user here is made for the test (member of project demo) and removed
afterwards.
"""
import os
import subprocess
import uuid

import pytest

from tests.functional.conftest import user_env
from tests.functional.conftest import user_session
from tests.functional.test_clone_http import _finish
from tests.functional.test_clone_http import assert_failed_cleanly
from tests.functional.test_clone_http import clone_cmd
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import MiB
from tests.functional.test_clone_http import upload
from tests.functional.test_conductors import wait_for

IDENTITY = {'service_type': 'identity', 'interface': 'public',
            'version': (3, 0)}


@pytest.fixture
def leaver(cloud):
    """A member of project demo, and a way to take the role away."""
    admin = user_session(cloud, 'admin')
    name, password = f'leaver-{uuid.uuid4().hex[:8]}', uuid.uuid4().hex
    user = admin.post('/users', endpoint_filter=IDENTITY, json={'user': {
        'name': name, 'password': password,
        'domain_id': 'default'}}).json()['user']
    project = cloud['users']['demo']['project_id']
    member = admin.get('/roles?name=member',
                       endpoint_filter=IDENTITY).json()['roles'][0]['id']
    grant = f"/projects/{project}/users/{user['id']}/roles/{member}"
    admin.put(grant, endpoint_filter=IDENTITY)
    env = dict(user_env(cloud, 'demo'), OS_USERNAME=name,
               OS_PASSWORD=password)
    try:
        yield env, lambda: admin.delete(grant, endpoint_filter=IDENTITY)
    finally:
        admin.delete(f"/users/{user['id']}", endpoint_filter=IDENTITY)


def test_role_removed_mid_clone_reveals_nothing(cloud, clone_conf_file,
                                                leaver):
    env, remove_role = leaver
    src = upload(cloud, os.urandom(192 * MiB), name='leaver-src')
    proc = subprocess.Popen(clone_cmd(clone_conf_file, src.id,
                                      '--no-progress'), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(i.status == 'saving'
                             for i in copies_of(cloud, src.id)),
                 what='the copy to start')
        remove_role()
    finally:
        rc, out, err = _finish(proc)
    assert_failed_cleanly(cloud, rc, out, err, src.id,
                          'your rights on the project were withdrawn during '
                          'the clone')
    assert out['failed_step'] == 'clone-activate'

"""No secret reaches anything a user can read or an operator stores.

Successful and failed clones run through the real clone-api and a real
conductor (so the task database, the persistence database, ZooKeeper and
every log are written as in a deployment), over every installed strategy
that applies here.  Then every surface is searched for every secret the
local cloud holds: each Keystone user's password (the clone service user's,
Glance's own, the users'), the token the user called clone-api with, and any
Keystone token at all, and the services' ZooKeeper password (Fernet
tokens start with ``gAAAAA``: trust-scoped
tokens the conductor obtained are unknown to the test, the shape finds
them).  Each secret is looked for as is, URL-quoted and base64-encoded.

The secrets are every password the local cloud made (its secrets.json:
the users', Glance's and the clone service's, ZooKeeper's).

Surfaces a user can read: task show and list, the copy and the source
(image show, members, ``GET /v2/images/{id}/tasks`` in both regions).
Surfaces an operator stores: every file the services wrote (sqlite
databases of tasks and flows with their WAL files, logs; not the
configuration files, which must hold the service's own credentials), the
local cloud's logs, every ZooKeeper node's data, and the command line of
every process on the machine.  The bar is zero hits; a hit names its
surface.
"""
import base64
import json
import os
import pathlib
import re
import time
import urllib.parse

import pytest
import requests

from tests.functional.conftest import user_session
from tests.functional.test_api import running_api
from tests.functional.test_api import zookeeper_nodes
from tests.functional.test_clone_http import upload

FERNET = re.compile(rb'gAAAAA[A-Za-z0-9_\-=]{60,}')


def _forms(secret):
    raw = secret.encode()
    return {raw, urllib.parse.quote(secret, safe='').encode(),
            base64.b64encode(raw), base64.urlsafe_b64encode(raw)}


class Canary:
    """The secrets to look for, and the hits found so far by surface."""

    def __init__(self, secrets):
        self.secrets = {name: _forms(value) for name, value in secrets.items()
                        if value}
        self.hits = []
        self.kinds = set()           # the kinds of surface searched
        self.count = 0

    def scan(self, kind, where, data):
        if isinstance(data, str):
            data = data.encode()
        self.kinds.add(kind)
        self.count += 1
        surface = f'{kind}: {where}'
        for name, forms in self.secrets.items():
            if any(form in data for form in forms):
                self.hits.append(f'{surface}: {name}')
        for token in FERNET.findall(data):
            self.hits.append(f'{surface}: a Keystone token '
                             f'({token[:12].decode()}...)')


def _files(root, skip_suffixes=('.conf',)):
    for path in sorted(pathlib.Path(root).rglob('*')):
        if path.is_file() and not path.name.endswith(skip_suffixes) and \
                'venv' not in path.parts:
            yield path


def _api_get(api, token, path):
    r = requests.get(api['url'] + path, headers={'X-Auth-Token': token},
                     timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.text


def _post_clone(api, token, **input_):
    input_.setdefault('source_region', 'RegionOne')
    r = requests.post(api['url'] + '/v2/tasks', timeout=60,
                      headers={'X-Auth-Token': token},
                      json={'type': 'clone', 'input': input_})
    assert r.status_code == 201, r.text
    return r.json()['id']


def _wait_ended(api, token, task_id, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        task = json.loads(_api_get(api, token, f'/v2/tasks/{task_id}'))
        if task['status'] in ('success', 'failure') or \
                time.monotonic() > deadline:
            return task
        time.sleep(1)


def _glance_reads(cloud, region, image_id):
    """What demo and demo_reader can read of an image in ``region``."""
    out = []
    for user in ('demo', 'demo_reader'):
        sess = user_session(cloud, user)
        for path in (f'/v2/images/{image_id}', f'/v2/images/{image_id}/tasks',
                     f'/v2/images/{image_id}/members'):
            r = sess.get(path, raise_exc=False, endpoint_filter={
                'service_type': 'image', 'region_name': region,
                'interface': 'public'})
            out.append((f'{region} GET {path} as {user} '
                        f'({r.status_code})', r.text))
    return out


@pytest.fixture(scope='module')
def api(cloud, tmp_path_factory):
    with running_api(cloud, tmp_path_factory.mktemp('canary')) as running:
        yield running


def run_canary(cloud, api, clones, extra_secrets=None):
    """Run ``clones`` ({what: (input, expected status)}) through clone-api,
    then search every surface for every secret; returns the Canary.
    """
    demo_token = user_session(cloud, 'demo').get_token()
    secrets = {f'password of {name}': user['password']
               for name, user in cloud['users'].items()}
    # every secret the local cloud made, the services' own included
    # (Glance's service user, whose password a Swift location once leaked)
    stored = json.loads((pathlib.Path(cloud['state_dir']) /
                         'secrets.json').read_text())
    secrets.update({f'local cloud secret {name!r}': value
                    for name, value in stored.items()
                    if isinstance(value, str)})
    secrets['the token demo called clone-api with'] = demo_token
    secrets["the ZooKeeper password of glance-clone's services"] = \
        cloud['zookeeper_auth']['password']
    secrets.update(extra_secrets or {})
    canary = Canary(secrets)
    tasks = {what: _post_clone(api, demo_token, **input_)
             for what, (input_, _) in clones.items()}
    ended = {what: _wait_ended(api, demo_token, tid)
             for what, tid in tasks.items()}
    for what, (_, status) in clones.items():
        assert ended[what]['status'] == status, (what, ended[what])

    # what the user reads
    canary.scan('clone-api', 'task list', _api_get(api, demo_token,
                                                   '/v2/tasks?type=clone'))
    for what, tid in tasks.items():
        canary.scan('clone-api', f'task show ({what})',
                    _api_get(api, demo_token, f'/v2/tasks/{tid}'))
        copy_id = (ended[what].get('result') or {}).get('image_id')
        if copy_id:
            for where, text in _glance_reads(cloud, 'RegionTwo', copy_id):
                canary.scan('Glance', where, text)
        source_id = clones[what][0]['source_image_id']
        for where, text in _glance_reads(cloud, 'RegionOne', source_id):
            canary.scan('Glance', where, text)

    # what the operator stores
    for path in _files(api['dir']):
        canary.scan('clone services file', path.name, path.read_bytes())
    for path in _files(pathlib.Path(cloud['state_dir']) / 'logs'):
        canary.scan('local cloud log', path.name, path.read_bytes())
    for path, data in zookeeper_nodes(cloud):
        canary.scan('ZooKeeper node', path, data)
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            cmdline = pathlib.Path(f'/proc/{pid}/cmdline').read_bytes()
        except OSError:
            continue
        canary.scan('command line', f'pid {pid}', cmdline)

    # the detector works: the configuration (not searched: it must hold the
    # service's credentials) is found to hold the service user's password
    control = Canary(secrets)
    control.scan('control', 'clone-api configuration',
                 pathlib.Path(api['conf']).read_text())
    assert 'control: clone-api configuration: password of glance-clone' \
        in control.hits
    print(f'secret canary: {canary.count} surfaces searched for '
          f'{len(canary.secrets)} secrets and any Keystone token')
    assert canary.kinds == {'clone-api', 'Glance', 'clone services file',
                            'local cloud log', 'ZooKeeper node',
                            'command line'}
    return canary


def test_no_secret_reaches_any_surface_after_good_and_failed_clones(
        cloud, api):
    src = upload(cloud, os.urandom(3 * 1024 * 1024), name='canary-src',
                 hw_canary='yes')
    canary = run_canary(cloud, api, {
        'http, success': ({'source_image_id': src.id, 'strategy': 'http',
                           'name': 'canary-copy'}, 'success'),
        'auto, success': ({'source_image_id': src.id,
                           'name': 'canary-copy-auto'}, 'success'),
        'failure: no such image': ({
            'source_image_id': '6f1d2a3b-2222-4c4c-8d8d-0123456789ab'},
            'failure'),
        'failure: refused by the metadata check': ({
            'source_image_id': upload(
                cloud, b'x', name='canary-encrypted',
                cinder_encryption_key_id='6f1d2a3b-3333-4c4c-8d8d-'
                                         '0123456789ab',
                cinder_encryption_key_deletion_policy='do_not_delete').id},
            'failure'),
    })
    assert canary.hits == []

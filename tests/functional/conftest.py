"""The real local cloud, brought up once per test session.

``tools/localcloud up`` starts ZooKeeper, Keystone and two Glance regions on
127.0.0.1 (idempotent); if they were not running before the session, they
are stopped at its end.
"""
import json
import os
import pathlib
import subprocess
import sys

from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOCALCLOUD = ROOT / 'tools' / 'localcloud'


def localcloud(*args, check=True, capture=True):
    return subprocess.run([sys.executable, str(LOCALCLOUD), *args],
                          check=check, text=True, timeout=900,
                          capture_output=capture)


@pytest.fixture(scope='session')
def cloud():
    was_up = localcloud('status', check=False).returncode == 0
    if not was_up:
        r = localcloud('up', check=False)
        if r.returncode != 0:
            pytest.fail(f'local cloud did not come up:\n{r.stdout}\n'
                        f'{r.stderr}')
    info = json.loads(localcloud('env', '--json').stdout)
    yield info
    if not was_up and not os.environ.get('LOCALCLOUD_KEEP'):
        localcloud('down', check=False)


def restart_glance(region):
    """Stop and start one region's Glance (it reads its configuration and
    policy anew).
    """
    localcloud('stop', f'glance-{region}')
    localcloud('start', f'glance-{region}')


def glance_etc(cloud, region):
    """The directory of a region's Glance configuration files."""
    return pathlib.Path(cloud['state_dir']) / f'glance-{region}' / 'etc'


def user_session(cloud, user):
    u = cloud['users'][user]
    auth = v3.Password(auth_url=cloud['auth_url'], username=user,
                       password=u['password'], user_domain_name='Default',
                       project_name=u['project'],
                       project_domain_name='Default')
    return ks_session.Session(auth=auth)


def user_env(cloud, user, region='RegionOne'):
    u = cloud['users'][user]
    env = dict(os.environ)
    env.update(OS_AUTH_URL=cloud['auth_url'], OS_USERNAME=user,
               OS_PASSWORD=u['password'], OS_PROJECT_NAME=u['project'],
               OS_USER_DOMAIN_NAME='Default', OS_PROJECT_DOMAIN_NAME='Default',
               OS_REGION_NAME=region, OS_IDENTITY_API_VERSION='3',
               OS_INTERFACE='public', OS_AUTH_TYPE='password',
               # no version discovery: without glanceclient's schema cache
               # in ~/.glanceclient the CLI would fall back to v1
               OS_IMAGE_API_VERSION='2')
    return env


def glance_client(cloud, user, region):
    from glanceclient import client
    return client.Client('2', session=user_session(cloud, user),
                         region_name=region, interface='public')


@pytest.fixture(scope='session')
def clone_conf_file(cloud, tmp_path_factory):
    """A glance-clone.conf for the local cloud (service user, persistence)."""
    d = tmp_path_factory.mktemp('clone')
    out = subprocess.run([sys.executable, str(ROOT / 'tools/write-clone-conf'),
                          str(d)], check=True, capture_output=True, text=True)
    return pathlib.Path(out.stdout.strip())


@pytest.fixture(scope='session')
def clone_conf(clone_conf_file):
    from conductor import opts
    return opts.new_conf(['--config-file', str(clone_conf_file)],
                         default_config_files=[], log=False)

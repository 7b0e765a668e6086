"""The console scripts answer --help truthfully; unbuilt ones say so."""
import pathlib
import subprocess
import sys

import pytest

BIN = pathlib.Path(sys.executable).parent


def _run(*args):
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize('cmd',
                         ['clone-manage', 'clone-api', 'clone-conductor'])
def test_help_works(cmd):
    r = _run(cmd, '--help')
    assert r.returncode == 0 and 'usage:' in r.stdout


def test_clone_without_credentials_says_what_is_missing(tmp_path):
    env_free = {'PATH': '/usr/bin:/bin'}
    r = subprocess.run([str(BIN / 'clone-manage'), 'clone', '--source-region',
                        'R1', '--image', 'x', '--target-region', 'R2'],
                       capture_output=True, text=True, env=env_free,
                       timeout=60)
    assert r.returncode != 0 and 'OS_AUTH_URL is not set' in r.stderr


def test_resume_of_unknown_clone_is_a_clear_error(tmp_path):
    conf = tmp_path / 'c.conf'
    conf.write_text(f'[persistence]\nconnection = sqlite:///{tmp_path}/x.db\n')
    r = _run('clone-manage', '--config-file', str(conf), 'clone', '--resume',
             '00000000-0000-0000-0000-000000000000')
    assert r.returncode == 2 and 'no clone' in r.stderr


def test_clone_without_service_user_says_what_to_configure(tmp_path):
    conf = tmp_path / 'c.conf'
    conf.write_text(f'[persistence]\nconnection = sqlite:///{tmp_path}/x.db\n')
    env = {'PATH': '/usr/bin:/bin', 'OS_AUTH_URL': 'http://127.0.0.1:9/v3',
           'OS_USERNAME': 'u', 'OS_PASSWORD': 'p', 'OS_PROJECT_NAME': 'p'}
    r = subprocess.run([str(BIN / 'clone-manage'), '--config-file', str(conf),
                        'clone', '--source-region', 'R1', '--image', 'x',
                        '--target-region', 'R2'],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert 'clone service user is not configured' in r.stderr
    assert '[service_auth]' in r.stderr and 'Traceback' not in r.stderr

"""A region that blinks between two steps does not throw away a finished
copy: every Glance call a step can send again is retried for
``[clone] glance_retry_seconds`` (connection refused or lost, timeouts,
5xx), and only then fails the step.

The real RegionTwo Glance is stopped right after the copy finished (the
clone process is killed at that moment and resumed while Glance is down,
so the step that meets the outage is the one after the copy, every time),
then started again a few seconds later.
"""
import json
import os
import subprocess
import time

from tests.functional.conftest import glance_client
from tests.functional.conftest import localcloud
from tests.functional.conftest import user_env
from tests.functional.test_clone_http import BIN
from tests.functional.test_clone_http import clone_cmd
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import MiB
from tests.functional.test_clone_http import upload


def _kill_when_copied(cloud, proc, src_id, timeout=120):
    """SIGKILL the clone once its copy is active in RegionTwo; the copy
    (still hidden: not yet revealed) or None if the clone got further.
    """
    admin = glance_client(cloud, 'admin', 'RegionTwo')
    deadline = time.monotonic() + timeout
    copy_id = None
    while time.monotonic() < deadline and proc.poll() is None:
        if copy_id is None:
            found = copies_of(cloud, src_id)
            copy_id = found[0].id if found else None
        elif admin.images.get(copy_id).status == 'active':
            proc.kill()
            proc.wait()
            copy = admin.images.get(copy_id)
            return copy if copy.os_hidden else None
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    return None


def test_target_glance_restart_after_the_copy_does_not_discard_it(
        cloud, clone_conf_file):
    data = os.urandom(64 * MiB)
    src = upload(cloud, data, name='blip-after-copy')
    for _ in range(3):          # the kill must land between copy and reveal
        proc = subprocess.Popen(clone_cmd(clone_conf_file, src.id,
                                          '--no-progress'),
                                env=user_env(cloud, 'demo'), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        copy = _kill_when_copied(cloud, proc, src.id)
        if copy is not None:
            break
        for leftover in copies_of(cloud, src.id):
            glance_client(cloud, 'admin', 'RegionTwo').images.delete(
                leftover.id)
    assert copy is not None, 'the clone was never caught between copy and ' \
        'reveal'
    localcloud('stop', 'glance-RegionTwo')
    try:
        resumed = subprocess.Popen(
            [str(BIN / 'clone-manage'), '--config-file', str(clone_conf_file),
             'clone', '--resume', copy['clone_id'], '--json',
             '--no-progress'], env=user_env(cloud, 'demo'), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(5)
    finally:
        localcloud('start', 'glance-RegionTwo')
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    result = json.loads(stdout)['result']
    assert result['image_id'] == copy.id
    assert result['os_hash_value'] == src.os_hash_value
    shown = glance_client(cloud, 'demo', 'RegionTwo').images.get(copy.id)
    assert shown.status == 'active' and not shown.os_hidden
    assert [c.id for c in copies_of(cloud, src.id)] == [copy.id]

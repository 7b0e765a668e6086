"""End to end on the real local cloud: the per-project limit with the
progress a user reads (clone-api and a real conductor), and a killed
in-process clone finished by ``clone-manage clone --resume``.
"""
import json
import os
import re
import subprocess
import time

import requests

from tests.functional.conftest import user_env
from tests.functional.conftest import user_session
from tests.functional.test_api import BIN
from tests.functional.test_api import running_api
from tests.functional.test_api import stop
from tests.functional.test_clone_http import _start_clone_and_wait_for_saving
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import MiB
from tests.functional.test_clone_http import upload
from tests.functional.test_task_record_fencing import _conductor
from tests.functional.test_task_record_fencing import _log
from tests.functional.test_task_record_fencing import _task
from tests.functional.test_task_record_fencing import _until


def _post_clone(api, token, src_id):
    r = requests.post(f"{api['url']}/v2/tasks", timeout=60,
                      headers={'X-Auth-Token': token},
                      json={'type': 'clone', 'input': {
                          'source_region': 'RegionOne',
                          'source_image_id': src_id}})
    assert r.status_code == 201, r.text
    return r.json()['id']


def test_a_project_at_its_limit_waits_pending_while_its_clone_shows_progress(
        cloud, tmp_path):
    """[conductor] max_running_clones_per_project = 1: while demo's first
    clone copies (its record shows the copy's progress), demo's second
    stays pending, though the conductor could run two; it runs when the
    first has ended.
    """
    big = upload(cloud, os.urandom(256 * MiB), name='limit-first')
    small = upload(cloud, os.urandom(MiB), name='limit-second')
    token = user_session(cloud, 'demo').get_token()
    extra = ('\n[conductor]\nmax_running_clones_per_project = 1\n'
             'max_concurrent_clones = 2\n')
    with running_api(cloud, tmp_path, conductor=False,
                     extra_conf=extra) as api:
        a = _conductor(api, 'a')
        try:
            first = _post_clone(api, token, big.id)

            def first_progress():
                p = (_task(api, token, first).get('result') or {}).get(
                    'progress') or {}
                return p if p.get('bytes_done') else None
            progress = _until(first_progress,
                              'the first clone to report progress')
            second = _post_clone(api, token, small.id)
            seen = []

            def first_ended():
                one, two = (_task(api, token, t) for t in (first, second))
                seen.append((one['status'], two['status']))
                time.sleep(0.2)
                return one['status'] in ('success', 'failure')
            _until(first_ended, 'the first clone to end')
            _until(lambda: _task(api, token, second)['status'] in (
                'success', 'failure'), 'the second clone to end')
            ended = [_task(api, token, t) for t in (first, second)]
        finally:
            stop(a)
        log = _log(api, 'a')
    project = cloud['users']['demo']['project_id']
    assert [t['status'] for t in ended] == ['success', 'success'], ended
    # the second never ran beside the first, and it did wait
    assert ('processing', 'pending') in seen, seen
    assert all(two == 'pending' for one, two in seen
               if one == 'processing'), seen
    # it was started once, after the first ended: never claimed to wait
    assert log.count(f'Started clone {second} ') == 1
    assert log.index(f'Clone {first} ended') < \
        log.index(f'Started clone {second} of project {project} (1 running)')
    assert f'Clone {second}: attempt 2' not in log
    # what the user read while the first copied
    assert progress['bytes_total'] == big.size
    assert 0 < progress['bytes_done'] <= big.size
    assert progress['percent'] == round(
        100 * progress['bytes_done'] / big.size, 1)
    assert progress['strategy'] == 'http' and progress['attempt'] == 1
    assert progress['rate_bytes_per_s'] > 0


def test_a_killed_in_process_clone_is_finished_by_resume(cloud,
                                                         clone_conf_file):
    """``clone-manage clone`` killed (SIGKILL) mid-copy; ``clone-manage
    clone --resume CLONE_ID`` finishes it into the image it had reserved,
    and only that one.
    """
    src = upload(cloud, os.urandom(192 * MiB), name='resume-in-process')
    proc = _start_clone_and_wait_for_saving(cloud, clone_conf_file, src.id)
    proc.kill()
    _, stderr = proc.communicate(timeout=60)
    clone_id = re.search(r'^clone ([0-9a-f-]{36}): ', stderr, re.M).group(1)
    [reserved] = copies_of(cloud, src.id)
    assert reserved.status != 'active'
    r = subprocess.run(
        [str(BIN / 'clone-manage'), '--config-file', str(clone_conf_file),
         'clone', '--resume', clone_id, '--json', '--no-progress'],
        env=user_env(cloud, 'demo'), capture_output=True, text=True,
        timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out['result']['image_id'] == reserved.id
    assert out['result']['os_hash_value'] == src.os_hash_value
    copies = copies_of(cloud, src.id)
    assert [i.id for i in copies] == [reserved.id]
    assert copies[0].status == 'active'
    # a second resume of the ended clone is refused, changing nothing
    again = subprocess.run(
        [str(BIN / 'clone-manage'), '--config-file', str(clone_conf_file),
         'clone', '--resume', clone_id], env=user_env(cloud, 'demo'),
        capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and 'already ended' in again.stderr

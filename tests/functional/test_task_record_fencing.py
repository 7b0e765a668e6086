"""The task record is the user's view: only the conductor running the
latest attempt writes to it, an ended task's status and result are final,
and a clone no conductor runs shows that it waits.

clone-api and two real conductors share the task database and the
jobboard.  Conductor a copies a clone, is stopped (SIGSTOP) past its
ZooKeeper session, conductor b takes the clone over; a is continued while b
copies: its stale progress must not reach the record, and once b has ended
the clone, nothing a writes changes the outcome.
"""
import os
import signal
import subprocess
import sys
import time

import requests

from conductor.db import records
from tests.functional.conftest import glance_client
from tests.functional.conftest import ROOT
from tests.functional.conftest import user_session
from tests.functional.test_api import BIN
from tests.functional.test_api import running_api
from tests.functional.test_api import stop
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import MiB
from tests.functional.test_clone_http import upload

SESSION_TIMEOUT = 6      # tools/write-clone-conf's default


def _conductor(api, name, pause_at=None):
    """A conductor on the API's board; with ``pause_at`` (a step name) one
    that freezes right after that step did its work (writing
    ``<dir>/<name>.paused``), for kill tests.
    """
    conf = api['dir'] / f'{name}.conf'
    text = api['conf'].with_name('clone-conductor.conf').read_text()
    conf.write_text(text.replace('clone-conductor.log', f'{name}.log'))
    cmd = [str(BIN / 'clone-conductor'), '--config-file', str(conf)]
    if pause_at:
        cmd = [sys.executable, '-m', 'tests.functional.pausing_conductor',
               pause_at, str(api['dir'] / f'{name}.paused'), '--'] + cmd[1:]
    return subprocess.Popen(cmd, cwd=ROOT,
                            stdout=open(api['dir'] / f'{name}.out', 'w'),
                            stderr=subprocess.STDOUT)


def _task(api, token, task_id):
    r = requests.get(f"{api['url']}/v2/tasks/{task_id}", timeout=30,
                     headers={'X-Auth-Token': token})
    assert r.status_code == 200, r.text
    return r.json()


def _log(api, name):
    path = api['dir'] / f'{name}.log'
    return path.read_text() if path.exists() else ''


def post_clone(api, token, src):
    """POST a clone of ``src`` (RegionOne to the API's region); its id."""
    r = requests.post(f"{api['url']}/v2/tasks", timeout=60,
                      headers={'X-Auth-Token': token},
                      json={'type': 'clone', 'input': {
                          'source_region': 'RegionOne',
                          'source_image_id': src.id}})
    assert r.status_code == 201, r.text
    return r.json()['id']


def post_and_wait_for_copy(api, token, src, what):
    """POST a clone of ``src``; its id once its copy has passed 5 %."""
    task_id = post_clone(api, token, src)
    _until(lambda: (_task(api, token, task_id).get('result') or {})
           .get('progress', {}).get('percent', 0) > 5, what)
    return task_id


def _progress_of_attempt(task, attempt):
    """The task's progress if it is attempt ``attempt``'s and has a figure."""
    progress = (task.get('result') or {}).get('progress') or {}
    if progress.get('attempt') == attempt and \
            progress.get('percent') is not None:
        return progress
    return None


def _until(predicate, what, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}')


def test_a_paused_conductor_never_rewrites_progress_or_outcome(
        cloud, tmp_path):
    src = upload(cloud, os.urandom(192 * MiB), name='fenced-record')
    token = user_session(cloud, 'demo').get_token()
    with running_api(cloud, tmp_path, conductor=False) as api:
        # a stops itself (SIGSTOP) a third into the copy
        a = _conductor(api, 'a', pause_at='clone-copy-data@0.3:sigstop')
        b = None
        try:
            task_id = post_clone(api, token, src)
            _until((api['dir'] / 'a.paused').exists, 'conductor a to copy')
            time.sleep(SESSION_TIMEOUT + 2)
            b = _conductor(api, 'b')
            _until(lambda: f'Clone {task_id}: attempt 2' in _log(api, 'b'),
                   'conductor b to take the clone over')
            # a's upload holds the reserved image 'saving': b waits for it,
            # replaces the image and copies.  Continue a only once b's
            # progress is on the record, so that a's stale figures have
            # something to overwrite.
            first = _until(lambda: _progress_of_attempt(
                _task(api, token, task_id), 2), 'conductor b to copy')
            a.send_signal(signal.SIGCONT)
            seen = [(first['attempt'], first['percent'])]
            while True:
                task = _task(api, token, task_id)
                if task['status'] in ('success', 'failure'):
                    break
                progress = (task.get('result') or {}).get('progress') or {}
                if progress.get('percent') is not None:
                    seen.append((progress['attempt'], progress['percent']))
                time.sleep(0.05)
            assert task['status'] == 'success', task
            # attempt 2's figures only: never back to attempt 1's
            assert seen == sorted(seen), f'progress went back: {seen}'
            assert seen[-1][0] == 2
            assert f'Clone {task_id} interrupted' in _until(
                lambda: f'Clone {task_id} interrupted' in _log(api, 'a') and
                _log(api, 'a'), 'conductor a to stop')
            time.sleep(3)
            final = _task(api, token, task_id)
            assert (final['status'], final['result']) == \
                ('success', task['result'])
            assert final['result']['image_id'] == \
                copies_of(cloud, src.id)[0].id
            assert final['result']['attempts'] == 2
            assert final['result']['duration_s'] >= \
                final['result']['attempt_duration_s']
        finally:
            for proc in (a, b):
                if proc is not None:
                    proc.send_signal(signal.SIGCONT)
                    stop(proc)


def test_a_clone_nobody_runs_shows_it_waits_then_goes_on(cloud, tmp_path):
    src = upload(cloud, os.urandom(192 * MiB), name='waiting-clone')
    token = user_session(cloud, 'demo').get_token()
    extra = ('\n[conductor]\nheartbeat_interval = 0.5\n'
             '\n[api]\nstalled_after = 3\n')
    with running_api(cloud, tmp_path, conductor=False,
                     extra_conf=extra) as api:
        a = _conductor(api, 'a')
        b = None
        try:
            task_id = post_and_wait_for_copy(api, token, src,
                                             'conductor a to copy')
            running = _task(api, token, task_id)
            assert running['message'] == '' and \
                running['result']['progress']['rate_bytes_per_s'] > 0
            a.kill()
            a.wait()
            time.sleep(4)
            waiting = _task(api, token, task_id)
            assert waiting['status'] == 'processing'
            assert waiting['message'].startswith(
                f"no conductor has run this clone since "
                f"{waiting['updated_at']}"), waiting
            assert waiting['result']['waiting_since'] == waiting['updated_at']
            assert waiting['result']['progress']['rate_bytes_per_s'] == 0
            b = _conductor(api, 'b')
            done = _until(lambda: (lambda t: t['status'] in (
                'success', 'failure') and t)(_task(api, token, task_id)),
                'conductor b to finish the clone')
            assert done['status'] == 'success', done
            assert 'waiting_since' not in done['result']
            assert done['result']['attempts'] == 2
            assert done['result']['duration_s'] > \
                done['result']['attempt_duration_s'] + 4
        finally:
            for proc in (a, b):
                if proc is not None and proc.poll() is None:
                    stop(proc)


def test_a_cancel_after_the_copy_is_revealed_comes_too_late(cloud, tmp_path):
    """Conductor a reveals the copy and dies before recording it; the user
    cancels; conductor b runs Activate again: the copy stays, the clone
    ends success saying the cancel came too late.
    """
    src = upload(cloud, os.urandom(8 * MiB), name='late-cancel')
    token = user_session(cloud, 'demo').get_token()
    with running_api(cloud, tmp_path, conductor=False) as api:
        a = _conductor(api, 'a', pause_at='clone-activate')
        b = None
        try:
            task_id = post_clone(api, token, src)
            _until((api['dir'] / 'a.paused').exists, 'the copy revealed')
            copy = copies_of(cloud, src.id)[0]
            assert not copy.os_hidden            # out there already
            r = requests.delete(f"{api['url']}/v2/tasks/{task_id}",
                                timeout=30, headers={'X-Auth-Token': token})
            assert r.status_code == 204, r.text
            a.kill()
            a.wait()
            b = _conductor(api, 'b')
            done = _until(lambda: (lambda t: t['status'] in (
                'success', 'failure') and t)(_task(api, token, task_id)),
                'conductor b to end the clone')
            assert done['status'] == 'success', done
            assert done['message'] == records.CANCEL_TOO_LATE
            assert done['result']['image_id'] == copy.id
            shown = glance_client(cloud, 'demo', 'RegionTwo').images.get(
                copy.id)
            assert shown.status == 'active' and not shown.os_hidden
        finally:
            for proc in (a, b):
                if proc is not None and proc.poll() is None:
                    stop(proc)

"""A trust that could not be deleted when its clone ended is deleted by the
conductors' sweep once Keystone answers again.

clone-api and a real conductor (sweep every 2 s); the real Keystone is
stopped while the clone copies (Glance keeps accepting the tokens it has
validated, so the clone still ends), then started again.  The conductor
stops itself mid-copy (SIGSTOP, within its ZooKeeper session) until
Keystone is down, so a copy faster than the stop cannot end the clone with
Keystone still up.
"""
import os
import signal
import time

from conductor.db import api as db_api
from conductor import opts
from tests.functional.conftest import localcloud
from tests.functional.conftest import user_session
from tests.functional.test_api import running_api
from tests.functional.test_api import stop
from tests.functional.test_clone_http import MiB
from tests.functional.test_clone_http import upload
from tests.functional.test_task_record_fencing import _conductor
from tests.functional.test_task_record_fencing import _until
from tests.functional.test_task_record_fencing import post_clone

IDENTITY = {'service_type': 'identity', 'interface': 'public',
            'version': (3, 0)}


def test_trust_left_by_a_keystone_outage_is_deleted_when_it_is_back(
        cloud, tmp_path):
    src = upload(cloud, os.urandom(192 * MiB), name='trust-left')
    token = user_session(cloud, 'demo').get_token()
    with running_api(cloud, tmp_path, conductor=False,
                     extra_conf='\n[conductor]\nsweep_interval = 2\n'
                     '[jobboard]\nsession_timeout = 30\n') as api:
        conf = opts.new_conf(['--config-file', str(api['conf'])],
                             default_config_files=[], log=False)
        # a stops itself (SIGSTOP) a third into the copy
        a = _conductor(api, 'a', pause_at='clone-copy-data@0.3:sigstop')
        try:
            task_id = post_clone(api, token, src)
            _until((api['dir'] / 'a.paused').exists, 'the copy to run')
            trust_id = db_api.get_task(conf, task_id)['trust_id']
            try:
                localcloud('stop', 'keystone')
            finally:
                a.send_signal(signal.SIGCONT)
            try:
                ended = _until(lambda: (lambda t: t['status'] in (
                    'success', 'failure') and t)(
                        db_api.get_task(conf, task_id)), 'the clone to end')
                assert ended['status'] == 'success', ended
                time.sleep(3)                   # a sweep with Keystone down
                assert db_api.get_task(conf, task_id)['trust_id'] == trust_id
            finally:
                localcloud('start', 'keystone')
            _until(lambda: db_api.get_task(conf, task_id)['trust_id'] is None,
                   'the sweep to delete the trust', timeout=60)
            gone = user_session(cloud, 'admin').get(
                f'/OS-TRUST/trusts/{trust_id}', endpoint_filter=IDENTITY,
                raise_exc=False)
            assert gone.status_code == 404, gone.text
        finally:
            stop(a)

"""Clone notifications on a real RabbitMQ: a clone-api and a conductor
configured with oslo.messaging's ``messagingv2`` driver send them on a topic
of this test run; oslo.messaging's notification listener consumes them.

The broker: ``GLANCE_CLONE_TEST_RABBITMQ_URL`` (default guest on
127.0.0.1:5672, which ``tools/test-rabbitmq.sh`` makes answer).  Run alone,
the test is skipped when the broker does not answer;
``GLANCE_CLONE_TEST_REQUIRE_RABBITMQ=1`` (set by ``tools/test.sh``) fails it.
"""
import io
import json
import os
import pathlib
import subprocess
import threading
import time
import uuid

import pytest
import requests

from tests.functional.conftest import glance_client
from tests.functional.conftest import user_session
from tests.functional.test_api import BIN
from tests.functional.test_api import running_api
from tests.functional.test_api import stop
from tests.functional.test_secret_canary import Canary

RABBITMQ_URL = os.environ.get('GLANCE_CLONE_TEST_RABBITMQ_URL',
                              'rabbit://guest:guest@127.0.0.1:5672/')
REQUIRE = 'GLANCE_CLONE_TEST_REQUIRE_RABBITMQ'


def _kombu_url(url):
    return 'amqp://' + url.split('://', 1)[1]


@pytest.fixture(scope='module')
def broker():
    import kombu
    try:
        with kombu.Connection(_kombu_url(RABBITMQ_URL),
                              connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as e:
        reason = f'RabbitMQ at {RABBITMQ_URL.split("@")[-1]} does not ' \
                 f'answer: {e}'
        if os.environ.get(REQUIRE) == '1':
            pytest.fail(f'{reason} ({REQUIRE}=1)', pytrace=False)
        pytest.skip(reason)
    return RABBITMQ_URL


class Collector:
    """oslo.messaging notification endpoint: keeps every event."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def _keep(self, priority, ctxt, publisher_id, event_type, payload,
              metadata):
        with self.lock:
            self.events.append({'priority': priority, 'ctxt': ctxt,
                                'publisher_id': publisher_id,
                                'event_type': event_type,
                                'payload': payload, 'metadata': metadata})

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep('INFO', ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep('ERROR', ctxt, publisher_id, event_type, payload,
                   metadata)

    def of(self, clone_id):
        with self.lock:
            return [e for e in self.events
                    if e['payload'].get('clone_id') == clone_id]


@pytest.fixture(scope='module')
def topic(broker):
    """A topic of this run, consumed from before any clone starts; its
    queues are deleted afterwards.
    """
    import kombu
    from oslo_config import cfg
    import oslo_messaging
    name = f'glance_clone_test_{uuid.uuid4().hex[:12]}'
    conf = cfg.ConfigOpts()
    conf([], project='glance-clone-test', default_config_files=[])
    transport = oslo_messaging.get_notification_transport(conf,
                                                          url=broker)
    collector = Collector()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=name)], [collector],
        executor='threading')
    listener.start()
    try:
        yield name, collector
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
        with kombu.Connection(_kombu_url(broker)) as conn:
            channel = conn.channel()
            for priority in ('audit', 'debug', 'info', 'warn', 'error',
                             'critical', 'sample'):
                try:
                    channel.queue_delete(f'{name}.{priority}')
                except Exception:
                    channel = conn.channel()   # (a missing queue closes it)


@pytest.fixture(scope='module')
def api(cloud, topic, broker, tmp_path_factory):
    name, _ = topic
    extra = f"""
[oslo_messaging_notifications]
driver = messagingv2
transport_url = {broker}
topics = {name}

[notifications]
progress_interval = 0.2

[clone]
progress_interval = 0.05
"""
    with running_api(cloud, tmp_path_factory.mktemp('notify'),
                     conductor=False, extra_conf=extra) as running:
        yield running


def _post(api, token, **input_):
    r = requests.post(f"{api['url']}/v2/tasks", timeout=60,
                      headers={'X-Auth-Token': token},
                      json={'type': 'clone', 'input': dict(
                          input_, source_region='RegionOne')})
    assert r.status_code == 201, r.text
    return r.json()


def _wait(collector, clone_id, event_type, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in collector.of(clone_id)
                 if e['event_type'] == event_type]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f'no {event_type} of clone {clone_id} in '
                         f'{timeout}s: {collector.of(clone_id)}')


def test_successful_and_failed_clones_are_announced_without_secrets(
        cloud, api, topic):
    _, collector = topic
    gc1 = glance_client(cloud, 'demo', 'RegionOne')
    src = gc1.images.create(name='notify-src', disk_format='raw',
                            container_format='bare')
    data = os.urandom(24 * 2 ** 20 + 11)
    gc1.images.upload(src.id, io.BytesIO(data))
    src = gc1.images.get(src.id)
    demo_token = user_session(cloud, 'demo').get_token()
    alt_token = user_session(cloud, 'alt_demo').get_token()
    good = _post(api, demo_token, source_image_id=src.id, name='notified',
                 client_token='notify-good')
    bad = _post(api, alt_token, source_image_id=src.id)     # not visible
    # The trusts of both clones, while their records still hold them.
    from conductor.api import wsgi
    from conductor.db import api as db_api
    conf = wsgi.load_conf([str(api['conf'])], log=False)
    trusts = {t['id']: t['trust_id'] for t in db_api.list_tasks(conf)}
    db_api.dispose(conf)
    assert trusts[good['id']] and trusts[bad['id']]

    conductor = subprocess.Popen(
        [str(BIN / 'clone-conductor'), '--config-file',
         str(api['dir'] / 'clone-conductor.conf')],
        stdout=open(api['dir'] / 'clone-conductor.stdout', 'w'),
        stderr=subprocess.STDOUT)
    try:
        end = _wait(collector, good['id'], 'image.clone.end')[0]
        error = _wait(collector, bad['id'], 'image.clone.error')[0]
    finally:
        stop(conductor)

    ended = requests.get(f"{api['url']}/v2/tasks/{good['id']}",
                         headers={'X-Auth-Token': demo_token}).json()
    good_events = collector.of(good['id'])
    kinds = [e['event_type'] for e in good_events]
    assert kinds[0] == 'image.clone.start' and kinds[-1] == 'image.clone.end'
    assert set(kinds[1:-1]) == {'image.clone.progress'}, kinds
    for event in good_events:
        assert event['priority'] == 'INFO'
        assert event['publisher_id'].startswith('glance-clone.')
        p = event['payload']
        assert p['project_id'] == cloud['users']['demo']['project_id']
        assert p['user_id'] == cloud['users']['demo']['user_id']
        assert (p['source_region'], p['target_region'],
                p['source_image_id']) == ('RegionOne', 'RegionTwo', src.id)
    done = [e['payload']['bytes_done'] for e in good_events
            if e['event_type'] == 'image.clone.progress']
    assert done == sorted(done) and done[-1] <= len(data)
    p = end['payload']
    assert p['image_id'] == ended['result']['image_id']
    assert p['bytes'] == len(data) and p['strategy'] == 'http'
    assert p['status'] == 'success' and p['duration_s'] > 0

    bad_events = collector.of(bad['id'])
    assert [e['event_type'] for e in bad_events] == [
        'image.clone.start', 'image.clone.error']
    assert error['priority'] == 'ERROR'
    message = requests.get(f"{api['url']}/v2/tasks/{bad['id']}",
                           headers={'X-Auth-Token': alt_token}
                           ).json()['message']
    assert error['payload']['error'] == message and 'not visible' in message
    assert error['payload']['project_id'] == \
        cloud['users']['alt_demo']['project_id']
    assert error['payload']['image_id'] is None

    # No secret in any event: passwords, the users' tokens, the clones'
    # trust ids, any Keystone token, the broker's URL.
    secrets = {f'password of {n}': u['password']
               for n, u in cloud['users'].items()}
    stored = json.loads((pathlib.Path(cloud['state_dir']) /
                         'secrets.json').read_text())
    secrets.update({f'local cloud secret {k!r}': v for k, v in stored.items()
                    if isinstance(v, str)})
    secrets.update({'token of demo': demo_token, 'token of alt_demo':
                    alt_token, 'trust of the good clone': trusts[good['id']],
                    'trust of the failed clone': trusts[bad['id']],
                    'the broker URL': RABBITMQ_URL})
    canary = Canary(secrets)
    for event in good_events + bad_events:
        canary.scan('notification', event['event_type'], json.dumps(event))
    assert canary.count == len(good_events) + len(bad_events) >= 4
    assert canary.hits == []
    # the detector works on these events
    control = Canary({'trust': trusts[good['id']]})
    control.scan('control', 'event', json.dumps(dict(
        good_events[0], trust_id=trusts[good['id']])))
    assert control.hits

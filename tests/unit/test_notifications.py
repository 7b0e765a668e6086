"""Clone notifications as the task records change (oslo.messaging's ``log``
driver stands in for the bus here; tests/functional/test_notifications.py
consumes them from the real RabbitMQ).
"""
import json
import logging
import uuid

import pytest

from conductor.db import api as db_api
from conductor.db import records as records_mod
from conductor import notifications
from conductor import outcome as outcome_mod

TRUST = 'f00dfacef00dfacef00dfacef00dface'


@pytest.fixture
def task_conf(conf, tmp_path):
    conf.set_override('connection', f'sqlite:///{tmp_path}/tasks.sqlite',
                      group='database')
    yield conf
    db_api.dispose(conf)


def enable(conf, interval=30.0):
    notifications.register_opts(conf)
    notifications.enabled(conf)          # registers oslo.messaging's group
    conf.set_override('driver', ['log'], group='oslo_messaging_notifications')
    conf.set_override('progress_interval', interval, group='notifications')


def new_task(conf, **input_):
    input_ = dict({'source_region': 'RegionOne', 'target_region': 'RegionTwo',
                   'source_image_id': str(uuid.uuid4())}, **input_)
    return db_api.create_task(conf, {
        'id': str(uuid.uuid4()), 'owner': 'p1', 'user_id': 'u1',
        'input': input_, 'trust_id': TRUST, 'request_id': 'req-1'})


def events(caplog):
    """(event_type, priority, payload) of the notifications the log driver
    wrote.
    """
    found = []
    for rec in caplog.records:
        if rec.name.startswith('oslo.messaging.notification.'):
            message = json.loads(rec.getMessage())
            found.append((message['event_type'], message['priority'],
                          message['payload'], message['publisher_id']))
    return found


def run(records, caplog):
    assert records.notifier.flush(10)
    return events(caplog)


def test_no_driver_no_notifier_thread_and_nothing_sent(task_conf, caplog):
    records = records_mod.TaskRecords(task_conf)
    assert records.notifier.enabled is False
    task = new_task(task_conf)
    caplog.set_level(logging.INFO)
    records.processing(task['id'])
    records.progress(task['id'], {'bytes_done': 1, 'bytes_total': 2})
    records.failed(task['id'], 'boom')
    assert events(caplog) == []
    assert records.notifier._queue is None


def test_a_successful_clone_sends_start_progress_and_end(task_conf, caplog):
    enable(task_conf)
    caplog.set_level(logging.INFO)
    records = records_mod.TaskRecords(task_conf)
    task = new_task(task_conf)
    records.processing(task['id'])
    for done in (10, 20, 30):                 # one within the interval
        records.progress(task['id'], {'bytes_done': done, 'bytes_total': 30,
                                      'percent': done / 0.3,
                                      'strategy': 'http'})
    out = outcome_mod.Outcome(
        clone_id=task['id'], state='SUCCESS', succeeded=True,
        result={'image_id': 'copy-1', 'size': 30, 'region': 'RegionTwo',
                'copy': {'strategy': 'http', 'reason': 'x'}})
    records.finished(task['id'], out)
    got = run(records, caplog)
    assert [(e[0], e[1]) for e in got] == [
        ('image.clone.start', 'INFO'), ('image.clone.progress', 'INFO'),
        ('image.clone.end', 'INFO')]
    start, progress, end = (e[2] for e in got)
    assert got[0][3].startswith('glance-clone.')
    assert start['clone_id'] == task['id'] and start['attempt'] == 1
    assert start['project_id'] == 'p1' and start['user_id'] == 'u1'
    assert start['source_region'] == 'RegionOne'
    assert start['target_region'] == 'RegionTwo'
    assert progress['bytes_done'] == 10 and progress['strategy'] == 'http'
    assert end['image_id'] == 'copy-1' and end['bytes'] == 30
    assert end['strategy'] == 'http' and end['status'] == 'success'
    assert end['duration_s'] >= 0
    for event in got:
        assert TRUST not in json.dumps(event)


def test_progress_events_are_rate_limited_per_clone(task_conf, caplog):
    enable(task_conf, interval=0.0001)
    caplog.set_level(logging.INFO)
    records = records_mod.TaskRecords(task_conf)
    task = new_task(task_conf)
    records.processing(task['id'])
    records.progress(task['id'], {'bytes_done': 1})
    task_conf.set_override('progress_interval', 3600, group='notifications')
    records.progress(task['id'], {'bytes_done': 2})
    other = new_task(task_conf)
    records.processing(other['id'])
    records.progress(other['id'], {'bytes_done': 3})
    got = [e for e in run(records, caplog) if e[0] == 'image.clone.progress']
    assert [(e[2]['clone_id'], e[2]['bytes_done']) for e in got] == [
        (task['id'], 1), (other['id'], 3)]


def test_zero_interval_sends_no_progress_events(task_conf, caplog):
    enable(task_conf, interval=0)
    caplog.set_level(logging.INFO)
    records = records_mod.TaskRecords(task_conf)
    task = new_task(task_conf)
    records.processing(task['id'])
    records.progress(task['id'], {'bytes_done': 1})
    assert [e[0] for e in run(records, caplog)] == ['image.clone.start']


def test_a_failed_clone_sends_error_with_its_sentence(task_conf, caplog):
    enable(task_conf)
    caplog.set_level(logging.INFO)
    records = records_mod.TaskRecords(task_conf)
    task = new_task(task_conf)
    records.processing(task['id'])
    out = outcome_mod.Outcome(
        clone_id=task['id'], state='REVERTED', succeeded=False, result=None,
        failed_step='glance-clone-authorize',
        message='image X is not visible to you in RegionOne')
    records.finished(task['id'], out)
    got = run(records, caplog)
    assert [(e[0], e[1]) for e in got] == [
        ('image.clone.start', 'INFO'), ('image.clone.error', 'ERROR')]
    error = got[1][2]
    assert error['error'] == 'image X is not visible to you in RegionOne'
    assert error['status'] == 'failure' and error['failed_step']


def test_a_poison_job_sends_error(task_conf, caplog):
    enable(task_conf)
    caplog.set_level(logging.INFO)
    records = records_mod.TaskRecords(task_conf)
    task = new_task(task_conf)
    records.failed(task['id'], 'the clone was started 3 times')
    got = run(records, caplog)
    assert [e[0] for e in got] == ['image.clone.error']
    assert got[0][2]['error'] == 'the clone was started 3 times'


def test_a_conductor_whose_attempt_was_superseded_sends_no_end(task_conf,
                                                               caplog):
    enable(task_conf)
    caplog.set_level(logging.INFO)
    old = records_mod.TaskRecords(task_conf)
    new = records_mod.TaskRecords(task_conf)
    task = new_task(task_conf)
    old.processing(task['id'])
    new.processing(task['id'])                # a later attempt wins
    old.progress(task['id'], {'bytes_done': 5})
    old.finished(task['id'], outcome_mod.Outcome(
        clone_id=task['id'], state='SUCCESS', succeeded=True,
        result={'image_id': 'stale'}))
    assert db_api.get_task(task_conf, task['id'])['status'] == 'processing'
    assert new.notifier.flush(10)
    # (two senders: their events may interleave)
    assert sorted((e[0], e[2]['attempt']) for e in run(old, caplog)) == [
        ('image.clone.start', 1), ('image.clone.start', 2)]   # no progress
    caplog.clear()
    new.finished(task['id'], outcome_mod.Outcome(
        clone_id=task['id'], state='SUCCESS', succeeded=True,
        result={'image_id': 'copy'}))
    got = run(new, caplog)
    assert [e[0] for e in got] == ['image.clone.end']
    assert got[0][2]['image_id'] == 'copy' and got[0][2]['attempt'] == 2
    caplog.clear()
    new.failed(task['id'], 'too late')        # ended: nothing more
    assert run(new, caplog) == []


def test_a_full_queue_drops_newer_events_without_blocking(task_conf, caplog):
    import threading
    enable(task_conf)
    task_conf.set_override('queue_size', 1, group='notifications')
    notifier = notifications.Notifier(task_conf)
    sent, entered, release = [], threading.Event(), threading.Event()

    class Slow:                        # a broker that does not answer
        def info(self, ctxt, event_type, payload):
            entered.set()
            release.wait(10)
            sent.append(payload['attempt'])

    notifier._notifier = Slow()
    task = new_task(task_conf)
    caplog.set_level(logging.WARNING)
    notifier.start(dict(task, attempts=1))
    assert entered.wait(10)            # the thread is stuck sending it
    for attempt in (2, 3, 4, 5):       # 2 waits, 3 to 5 are dropped
        notifier.start(dict(task, attempts=attempt))
    assert caplog.text.count('dropped') == 3
    release.set()
    assert notifier.flush(10)
    assert sent == [1, 2]


def test_payload_holds_no_trust_token_or_url():
    task = {'id': 'c', 'owner': 'p', 'user_id': 'u', 'trust_id': TRUST,
            'input': {'source_region': 'R1', 'target_region': 'R2',
                      'source_image_id': 'i', 'client_token': 'tok-secret',
                      'properties': {'url': 'http://user:pw@host/'}},
            'result': {'image_id': 'x'}, 'created_at': '2026-01-01T00:00:00Z'}
    text = json.dumps(notifications.payload(task))
    for secret in (TRUST, 'tok-secret', 'user:pw', 'http'):
        assert secret not in text

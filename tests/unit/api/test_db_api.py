"""conductor.db.api against sqlite, MariaDB and PostgreSQL.

MariaDB (127.0.0.1:3306, root) and PostgreSQL (127.0.0.1:5432, postgres)
tests use a database ``glance_clone_test_<checkout>`` (created if missing:
one per checkout, so two checkouts' test runs never share it) and are
skipped with the reason when the server does not answer (failed in
``tools/test.sh``: tests/unit/databases.py).
"""
import datetime
import hashlib
import pathlib
import uuid

import pytest
import sqlalchemy as sa

from conductor.db import api as db_api
from tests.unit import databases as servers

DB = 'glance_clone_test_' + hashlib.sha1(
    str(pathlib.Path(__file__).resolve().parents[3]).encode(),
    usedforsecurity=False).hexdigest()[:8]
SERVERS = {kind: (url, servers.with_database(url, DB))
           for kind, url in servers.SERVERS.items()}


def _server_url(kind):
    admin_url, url = SERVERS[kind]
    engine = sa.create_engine(admin_url, isolation_level='AUTOCOMMIT')
    try:
        with engine.connect() as conn:
            if kind == 'mysql':
                conn.execute(sa.text(
                    f'CREATE DATABASE IF NOT EXISTS {DB} '
                    'CHARACTER SET utf8mb4'))
            else:
                exists = conn.execute(sa.text(
                    "SELECT 1 FROM pg_database WHERE datname = :name"),
                    {'name': DB}).first()
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE {DB}'))
    except servers.NOT_ANSWERING as e:
        servers.not_available(kind, e)
    finally:
        engine.dispose()
    # A clean table for every test.
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text('DROP TABLE IF EXISTS clone_tasks'))
        conn.execute(
            sa.text('DROP TABLE IF EXISTS clone_tasks_alembic_version'))
    engine.dispose()
    return url


@pytest.fixture(params=['sqlite', 'mysql', 'postgresql'])
def db_conf(request, conf, tmp_path):
    url = (f'sqlite:///{tmp_path}/tasks.sqlite' if request.param == 'sqlite'
           else _server_url(request.param))
    conf.set_override('connection', url, group='database')
    db_api.dispose(conf)
    yield conf
    db_api.dispose(conf)


def new(conf, owner='p1', **values):
    values.update(id=str(uuid.uuid4()), owner=owner)
    values.setdefault('input', {'source_region': 'R1'})
    return db_api.create_task(conf, values)


def test_sync_reaches_the_head_revision(db_conf):
    assert db_api.sync(db_conf) == db_api.head_revision() == '0001'
    assert db_api.sync(db_conf) == '0001'          # twice is fine


def test_create_and_get_use_wire_names_and_z_times(db_conf):
    task = new(db_conf, user_id='u1', input={'source_region': 'Régiön ☃'})
    got = db_api.get_task(db_conf, task['id'])
    assert got == task
    assert got['status'] == 'pending' and got['type'] == 'clone'
    assert got['message'] == '' and got['result'] is None
    assert got['input'] == {'source_region': 'Régiön ☃'}
    assert got['created_at'].endswith('Z') and got['expires_at'] is None
    assert got['cancel_requested'] is False and got['attempts'] == 0
    assert db_api.get_task(db_conf, str(uuid.uuid4())) is None


def test_client_token_is_unique_per_owner(db_conf):
    first = new(db_conf, client_token='t')
    with pytest.raises(db_api.DuplicateToken) as e:
        new(db_conf, client_token='t')
    assert e.value.task['id'] == first['id']
    assert new(db_conf, owner='p2', client_token='t')['id'] != first['id']
    assert new(db_conf)['client_token'] is None      # many without a token
    assert new(db_conf)['client_token'] is None
    assert db_api.get_task_by_token(db_conf, 'p1', 't')['id'] == first['id']


def test_finishing_sets_expires_at_after_the_ttl(db_conf):
    db_conf.set_override('task_ttl_hours', 5, group='api')
    task = new(db_conf)
    running = db_api.update_task(db_conf, task['id'], status='processing',
                                 result={'progress': {'percent': 50.0}})
    assert running['expires_at'] is None
    assert running['result']['progress']['percent'] == 50.0
    done = db_api.update_task(db_conf, task['id'], status='failure',
                              message='it broke')
    created = datetime.datetime.fromisoformat(done['updated_at'].rstrip('Z'))
    expires = datetime.datetime.fromisoformat(done['expires_at'].rstrip('Z'))
    assert abs((expires - created) - datetime.timedelta(hours=5)) < \
        datetime.timedelta(seconds=2)
    again = db_api.update_task(db_conf, task['id'], status='failure',
                               attempts=3)
    assert again['expires_at'] == done['expires_at']   # kept, not pushed
    assert again['message'] == 'it broke' and again['attempts'] == 3
    with pytest.raises(db_api.TaskNotFound):
        db_api.update_task(db_conf, str(uuid.uuid4()), status='success')
    with pytest.raises(TypeError):
        db_api.update_task(db_conf, task['id'], colour='blue')


def test_list_filters_sorts_and_pages(db_conf):
    ids = [new(db_conf)['id'] for _ in range(5)]
    other = new(db_conf, owner='p2')['id']
    db_api.update_task(db_conf, ids[1], status='success')
    assert [t['id'] for t in db_api.list_tasks(db_conf, owner='p1')] == \
        ids[::-1]
    assert len(db_api.list_tasks(db_conf)) == 6
    assert [t['id'] for t in db_api.list_tasks(
        db_conf, owner='p1', status='success')] == [ids[1]]
    assert db_api.list_tasks(db_conf, type='import') == []
    pages, marker = [], None
    while True:
        page = db_api.list_tasks(db_conf, owner='p1', sort_dir='asc',
                                 limit=2, marker=marker)
        if not page:
            break
        pages.append([t['id'] for t in page])
        marker = page[-1]['id']
    assert sum(pages, []) == ids and len(pages) == 3
    by_id = [t['id'] for t in db_api.list_tasks(db_conf, sort_key='id',
                                                sort_dir='asc')]
    assert by_id == sorted(ids + [other])
    with pytest.raises(db_api.MarkerNotFound):
        db_api.list_tasks(db_conf, owner='p1', marker=other)
    with pytest.raises(ValueError):
        db_api.list_tasks(db_conf, sort_key='owner')


def test_count_tasks_by_status(db_conf):
    a, b, _ = (new(db_conf)['id'] for _ in range(3))
    new(db_conf, owner='p2')
    db_api.update_task(db_conf, a, status='processing')
    db_api.update_task(db_conf, b, status='processing')
    assert db_api.count_tasks(db_conf, 'p1') == 2
    assert db_api.count_tasks(db_conf, 'p1', ('pending', 'processing')) == 3
    assert db_api.count_tasks(db_conf, 'p2') == 0


def test_request_cancel_only_while_running(db_conf):
    task = new(db_conf)
    assert db_api.request_cancel(db_conf, task['id'])['cancel_requested']
    done = new(db_conf)
    db_api.update_task(db_conf, done['id'], status='success')
    after = db_api.request_cancel(db_conf, done['id'])
    assert after['cancel_requested'] is False and after['status'] == 'success'
    with pytest.raises(db_api.TaskNotFound):
        db_api.request_cancel(db_conf, str(uuid.uuid4()))


def test_purge_removes_only_expired_tasks(db_conf):
    old = new(db_conf)
    db_api.update_task(db_conf, old['id'], status='success',
                       expires_at='2000-01-01T00:00:00Z')
    fresh = new(db_conf)
    db_api.update_task(db_conf, fresh['id'], status='success')
    running = new(db_conf)
    assert db_api.purge_expired(db_conf) == 1
    assert db_api.get_task(db_conf, old['id']) is None
    assert db_api.get_task(db_conf, fresh['id']) is not None
    far = datetime.datetime(2999, 1, 1)
    assert db_api.purge_expired(db_conf, now=far) == 1
    assert db_api.get_task(db_conf, running['id']) is not None


def test_a_paused_conductors_writes_never_land_over_a_newer_attempt(db_conf):
    task = new(db_conf)
    first = db_api.begin_attempt(db_conf, task['id'])
    db_api.update_task(db_conf, task['id'], fence=first,
                       result={'progress': {'percent': 53.4}})
    second = db_api.begin_attempt(db_conf, task['id'])      # new owner
    assert (first, second) == (1, 2)
    db_api.update_task(db_conf, task['id'], fence=second,
                       result={'progress': {'percent': 60.0}})
    db_api.update_task(db_conf, task['id'], fence=first,    # stale
                       result={'progress': {'percent': 46.4}})
    got = db_api.get_task(db_conf, task['id'])
    assert got['result'] == {'progress': {'percent': 60.0}}
    assert got['attempts'] == 2 and got['status'] == 'processing'


def test_an_ended_task_is_final_for_every_conductor(db_conf):
    task = new(db_conf)
    attempt = db_api.begin_attempt(db_conf, task['id'])
    db_api.update_task(db_conf, task['id'], fence=attempt, status='success',
                       result={'image_id': 'copy'})
    db_api.update_task(db_conf, task['id'], fence=attempt,
                       result={'progress': {'percent': 99.0}})
    db_api.update_task(db_conf, task['id'], fence=True, status='failure',
                       message='late')
    assert db_api.begin_attempt(db_conf, task['id']) is None
    got = db_api.get_task(db_conf, task['id'])
    assert (got['status'], got['result'], got['message']) == \
        ('success', {'image_id': 'copy'}, '')

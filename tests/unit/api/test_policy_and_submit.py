"""Policy defaults (and their sample file), the paste pipeline, and
submit_clone: the seam between the API and the conductors.
"""
import pathlib
import subprocess
import sys
import uuid

from oslo_context import context as oslo_context
import pytest
import webob

from conductor.api import app as api_app
from conductor.api import policies
from conductor.db import api as db_api
from conductor import submit

ROOT = pathlib.Path(__file__).resolve().parents[3]
IMAGE = '6f1d2a3b-1111-4c4c-8d8d-0123456789ab'


def test_policy_sample_is_up_to_date(tmp_path):
    out = tmp_path / 'policy.yaml'
    gen = pathlib.Path(sys.executable).with_name('oslopolicy-sample-generator')
    subprocess.run([str(gen), '--config-file',
                    str(ROOT / 'etc/oslo-policy-generator/glance-clone.conf'),
                    '--output-file', str(out)], check=True, cwd=ROOT)
    assert out.read_text() == (ROOT / 'etc/policy.yaml.sample').read_text(), (
        'etc/policy.yaml.sample is stale: regenerate it with '
        'oslopolicy-sample-generator --config-file '
        'etc/oslo-policy-generator/glance-clone.conf')


def test_policies_are_the_entry_point_target():
    from importlib import metadata as md
    eps = md.entry_points(group='oslo.policy.policies')
    assert any(ep.name == 'glance-clone' and
               ep.load() is policies.list_rules for ep in eps)


def ctx(project, roles):
    return oslo_context.RequestContext(project_id=project, user_id='u',
                                       roles=roles)


@pytest.mark.parametrize('rule,roles,own,allowed', [
    (policies.CREATE, ['member', 'reader'], True, True),
    (policies.CREATE, ['reader'], True, False),
    (policies.CREATE, ['member'], False, False),
    (policies.GET, ['reader'], True, True),
    (policies.GET, ['member', 'reader'], False, False),
    (policies.GET, ['admin'], False, True),
    (policies.LIST_ALL, ['member', 'reader'], True, False),
    (policies.LIST_ALL, ['admin'], True, True),
    (policies.CANCEL, ['reader'], True, False),
    (policies.CANCEL, ['member'], True, True),
])
def test_policy_defaults(api_conf, rule, roles, own, allowed):
    enforcer = policies.get_enforcer(api_conf)
    target = {'project_id': 'p1' if own else 'p2'}
    assert enforcer.authorize(rule, target, ctx('p1', roles)) is allowed


def test_paste_pipeline_loads_with_real_auth_token(api_conf):
    from keystonemiddleware import auth_token
    for group, opts in auth_token.list_opts():
        api_conf.register_opts(opts, group=group)
    api_conf.set_override('www_authenticate_uri', 'http://127.0.0.1:9/v3',
                          group='keystone_authtoken')
    app = api_app.load_app(api_conf)
    r = webob.Request.blank('/versions').get_response(app)
    assert r.status_int == 200 and r.headers['x-openstack-request-id']
    r = webob.Request.blank('/v2/tasks').get_response(app)
    assert r.status_int == 401                    # auth_token said no
    assert 'Keystone uri="http://127.0.0.1:9/v3"' in \
        r.headers['WWW-Authenticate']
    req = webob.Request.blank('/v2/tasks', method='POST',
                              body=b'{' + b' ' * 200_000 + b'}')
    req.content_type = 'application/json'
    assert req.get_response(app).status_int == 413


# -- submit_clone -------------------------------------------------------------

def request_ctx():
    return oslo_context.RequestContext(
        project_id='p1', user_id='u1', roles=['member', 'reader'],
        auth_token='secret-token-value', request_id='req-' + str(uuid.uuid4()))


class FakeBoard:
    def __init__(self, fail=False):
        self.posted, self.fail = [], fail

    def post_clone(self, conf, store, project_id=None):
        if self.fail:
            raise RuntimeError('zookeeper is gone')
        self.posted.append((store, project_id))
        return type('Job', (), {'uuid': 'job-1'})()


def test_submit_posts_ids_only_and_records_the_job(api_conf, trusts,
                                                   monkeypatch):
    board = FakeBoard()
    monkeypatch.setattr(submit.jobboard, 'post_clone', board.post_clone)
    task_input = {'source_region': 'RegionOne', 'source_image_id': IMAGE,
                  'target_region': 'RegionTwo', 'name': 'n'}
    task = submit.submit_clone(api_conf, request_ctx(), task_input)
    store, project = board.posted[0]
    assert project == 'p1'
    assert store['clone_id'] == task['id'] and store['trust_id'] == 'trust-1'
    assert store['overrides'] == {'name': 'n'}
    assert 'secret-token-value' not in repr(store) + repr(task)
    assert db_api.get_task(api_conf, task['id'])['job_id'] == 'job-1'
    assert task['status'] == 'pending' and task['user_id'] == 'u1'


def test_a_job_that_cannot_be_posted_fails_the_task_and_drops_the_trust(
        api_conf, trusts, monkeypatch, client):
    monkeypatch.setattr(submit.jobboard, 'post_clone',
                        FakeBoard(fail=True).post_clone)
    r = client.create()
    assert r.status_int == 503 and 'could not be queued' in \
        r.json['error']['message']
    tasks = db_api.list_tasks(api_conf)
    assert tasks[0]['status'] == 'failure'
    assert 'could not be queued' in tasks[0]['message']
    assert trusts['deleted'] == ['trust-1']


def test_keystone_refusing_the_trust_is_a_clear_403(api_conf, monkeypatch,
                                                    client, trusts):
    from keystoneauth1 import exceptions as ksa_exc

    def refuse(conf, context):
        raise ksa_exc.Forbidden()
    monkeypatch.setattr(submit, 'create_user_trust', refuse)
    r = client.create()
    assert r.status_int == 403 and 'trust' in r.json['error']['message']
    assert db_api.list_tasks(api_conf) == []


def test_tasks_recorded_but_never_queued_are_failed_by_fail_orphans(
        api_conf, trusts):
    import datetime
    old = submit.submit_clone(api_conf, request_ctx(), {
        'source_region': 'R1', 'source_image_id': IMAGE,
        'target_region': 'R2'})
    queued = submit.submit_clone(api_conf, request_ctx(), {
        'source_region': 'R1', 'source_image_id': IMAGE,
        'target_region': 'R2'})
    db_api.update_task(api_conf, queued['id'], job_id='job-9')
    later = datetime.datetime.now(datetime.timezone.utc).replace(
        tzinfo=None) + datetime.timedelta(minutes=10)
    assert submit.fail_orphans(api_conf, older_than=900, now=later) == []
    assert submit.fail_orphans(api_conf, older_than=300, now=later) == \
        [old['id']]
    task = db_api.get_task(api_conf, old['id'])
    assert task['status'] == 'failure' and 'never queued' in task['message']
    assert trusts['deleted'] == [old['trust_id']]
    assert db_api.get_task(api_conf, queued['id'])['status'] == 'pending'


def test_a_project_over_its_pending_cap_gets_429_and_nothing_is_made(
        api_conf, trusts, clients):
    api_conf.set_override('max_pending_clones_per_project', 2, group='api')
    demo, alt = clients['demo'], clients['alt']
    assert [demo.create().status_int for _ in range(2)] == [201, 201]
    r = demo.create()
    assert r.status_int == 429
    owner = db_api.list_tasks(api_conf)[0]['owner']
    assert r.json['error']['message'] == (
        f'project {owner} already has 2 clones waiting; try again when '
        f'some finish')
    assert len(trusts['made']) == 2 and len(db_api.list_tasks(api_conf)) == 2
    # another project still may; a pending clone that starts frees a place
    assert alt.create().status_int == 201
    task = db_api.list_tasks(api_conf, owner=owner)[0]
    db_api.update_task(api_conf, task['id'], status='processing')
    assert demo.create().status_int == 201


def test_the_service_over_its_global_pending_cap_gets_429(api_conf, trusts,
                                                          clients):
    api_conf.set_override('max_pending_clones', 2, group='api')
    assert clients['demo'].create().status_int == 201
    assert clients['alt'].create().status_int == 201
    r = clients['alt'].create()
    assert r.status_int == 429 and r.json['error']['message'] == (
        'the clone service already has 2 clones waiting (all projects); '
        'try again when some finish')
    assert len(trusts['made']) == 2


def test_a_client_token_replay_is_answered_even_over_the_cap(api_conf, trusts,
                                                             clients):
    api_conf.set_override('max_pending_clones_per_project', 1, group='api')
    demo = clients['demo']
    first = demo.create(client_token='t-1')
    assert first.status_int == 201
    again = demo.create(client_token='t-1')
    assert again.status_int == 200 and again.json['id'] == first.json['id']

"""What a clone's trust delegates, and the timeouts of Keystone sessions."""
import pytest

from clone_flows import auth
from clone_flows import exceptions
from conductor import submit


class Context:
    def __init__(self, roles, project_id='p1'):
        self.roles = roles
        self.project_id = project_id
        self.auth_token = 'tok'
        self.token_info = None


def test_trust_delegates_the_configured_roles_not_admin(conf):
    assert auth.trust_roles(conf, 'p1', ['admin', 'member', 'reader']) == \
        ['member']


def test_trust_roles_the_operator_lists_are_all_delegated(conf):
    conf.set_override('trust_roles', ['member', 'admin'], group='clone')
    assert auth.trust_roles(conf, 'p1', ['admin', 'member']) == \
        ['member', 'admin']


def test_a_user_without_member_is_refused_with_a_sentence(conf):
    with pytest.raises(exceptions.TrustRolesMissing) as e:
        auth.trust_roles(conf, 'p1', ['reader'])
    assert str(e.value) == (
        "cloning an image needs the role 'member' on project p1, which you "
        "do not have; ask the project's administrator for it")


def test_the_api_refuses_before_any_keystone_call(conf, monkeypatch):
    def no_call(*args, **kwargs):
        raise AssertionError('Keystone was called')
    monkeypatch.setattr(auth, 'service_user_id', no_call)
    monkeypatch.setattr(auth, 'create_trust', no_call)
    with pytest.raises(exceptions.TrustRolesMissing):
        submit.create_user_trust(conf, Context(['reader']))


def test_the_api_delegates_only_member_for_an_admin(conf, monkeypatch):
    made = {}

    def create(session, trustee, project_id, roles, hours):
        made.update(roles=roles, hours=hours, timeout=session.timeout)
        return 'trust-1'
    monkeypatch.setattr(submit, '_trustee', lambda conf: 'svc')
    monkeypatch.setattr(submit, '_keystone_url', lambda conf: 'http://ks/v3')
    monkeypatch.setattr(auth, 'create_trust', create)
    conf.set_override('keystone_timeout', 7, group='clone')
    assert submit.create_user_trust(
        conf, Context(['admin', 'member', 'reader'])) == 'trust-1'
    assert made == {'roles': ['member'], 'hours': 24, 'timeout': 7}


def test_service_session_times_out(tmp_path):
    from conductor import opts
    f = tmp_path / 'c.conf'
    f.write_text('[clone]\nkeystone_timeout = 9\n[service_auth]\n'
                 'auth_type = password\nauth_url = http://ks/v3\n'
                 'username = u\npassword = p\nproject_name = p\n')
    conf = opts.new_conf(['--config-file', str(f)], default_config_files=[],
                         log=False)
    assert auth.service_session(conf).timeout == 9
    assert auth.service_session(conf, trust_id='t').timeout == 9
    conf.set_override('timeout', 4, group='service_auth')
    assert auth.service_session(conf).timeout == 4


def test_a_keystone_that_times_out_under_auth_token_is_a_503_sentence():
    from keystoneauth1 import exceptions as ksa_exc
    import webob

    from conductor.api import middleware

    def hung(environ, start_response):
        raise ksa_exc.ConnectTimeout('Request to http://ks/v3 timed out')
    r = webob.Request.blank('/v2/tasks').get_response(
        middleware.KeystoneUnavailable(hung))
    assert r.status_int == 503
    assert r.json['error']['message'] == \
        'Keystone did not answer; try again later'
    assert 'http' not in r.text

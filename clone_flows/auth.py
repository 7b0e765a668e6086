"""Who acts: the clone service user, holding a Keystone trust from the user.

No token is ever stored. A clone keeps only the trust id; every run and every
resume rebuilds a trust-scoped session from the service's own credentials
(configuration) and that id. Keystone impersonation makes Glance see the
user, with the user's roles on their project.
"""
import datetime
import logging

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from clone_flows import exceptions
from clone_flows import glance

LOG = logging.getLogger(__name__)

SERVICE_AUTH_GROUP = 'service_auth'

clone_auth_opts = [
    cfg.StrOpt('endpoint_interface', default='public',
               choices=['public', 'internal', 'admin'],
               help='Catalog interface used to reach each region\'s Glance.'),
    cfg.IntOpt('trust_expiration_hours', default=72, min=1,
               help='A clone\'s trust expires after this many hours even if '
                    'nobody deletes it (a backstop: trusts are deleted when '
                    'the clone ends).'),
    cfg.IntOpt('glance_timeout', default=120, min=1,
               help='Seconds to wait for any single answer from Glance.'),
]


def register_opts(conf):
    conf.register_opts(clone_auth_opts, group='clone')
    ks_loading.register_auth_conf_options(conf, SERVICE_AUTH_GROUP)
    ks_loading.register_session_conf_options(conf, SERVICE_AUTH_GROUP)


def list_opts():
    return [('clone', clone_auth_opts),
            (SERVICE_AUTH_GROUP,
             ks_loading.get_session_conf_options() +
             ks_loading.get_auth_common_conf_options() +
             ks_loading.get_auth_plugin_conf_options('password'))]


def service_session(conf, trust_id=None):
    """A session as the clone service user; trust-scoped if ``trust_id``."""
    overrides = {}
    if trust_id:
        overrides = dict(trust_id=trust_id, project_id=None, project_name=None,
                         project_domain_id=None, project_domain_name=None,
                         domain_id=None, domain_name=None, system_scope=None)
    auth = ks_loading.load_auth_from_conf_options(conf, SERVICE_AUTH_GROUP,
                                                  **overrides)
    if auth is None:
        raise exceptions.ServiceNotConfigured(SERVICE_AUTH_GROUP)
    return ks_loading.load_session_from_conf_options(
        conf, SERVICE_AUTH_GROUP, auth=auth)


#: Keystone's v3 API, as the session's catalog lists it (the calls below are
#: plain REST: python-keystoneclient costs ~0.1 s of imports per process).
_IDENTITY = {'service_type': 'identity', 'interface': 'public',
             'version': (3, 0)}


def create_trust(user_session, trustee_user_id, project_id, roles, hours):
    """The user delegates ``roles`` on ``project_id`` to the clone service.

    Called with the *user's* session, when the clone is requested.
    """
    access = user_session.auth.get_access(user_session)
    expires = (datetime.datetime.now(datetime.timezone.utc) +
               datetime.timedelta(hours=hours))
    resp = user_session.post('/OS-TRUST/trusts', endpoint_filter=_IDENTITY,
                             json={'trust': {
                                 'trustor_user_id': access.user_id,
                                 'trustee_user_id': trustee_user_id,
                                 'project_id': project_id,
                                 'roles': [{'name': r} for r in roles],
                                 'impersonation': True,
                                 'expires_at': expires.strftime(
                                     '%Y-%m-%dT%H:%M:%S.%fZ')}})
    return resp.json()['trust']['id']


def delete_trust(conf, trust_id):
    """Revoke a clone's trust with the service's own (non-trust) token.

    Keystone lets the trustor or an admin delete a trust; deployments grant
    the trustee too (see the README).  A trust that cannot be deleted still
    expires on its own, so a refusal is logged, not raised.
    """
    try:
        service_session(conf).delete(f'/OS-TRUST/trusts/{trust_id}',
                                     endpoint_filter=_IDENTITY)
        return True
    except ksa_exc.NotFound:
        return False
    except ksa_exc.ClientException as e:
        LOG.warning('Could not delete trust %s (it expires on its own): %s',
                    trust_id, e)
        return False


def user_access(user_session):
    """The user's token data (id, project, roles): authenticates them."""
    try:
        return user_session.auth.get_access(user_session)
    except ksa_exc.Unauthorized as e:
        raise exceptions.CredentialsRefused(str(e)) from e
    except (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout) as e:
        raise exceptions.ServiceUnavailable(
            getattr(user_session.auth, 'auth_url', 'Keystone'),
            what='the identity service', detail=str(e)) from e


def service_user_id(conf):
    sess = service_session(conf)
    return sess.get_user_id()


class Services:
    """What tasks use to reach the world, rebuilt on every run and resume.

    Injected into a flow's storage as a transient value: it is never
    persisted.
    """

    def __init__(self, conf, trust_id=None, session=None, strategies=None,
                 guard=None):
        self.conf = conf
        self._trust_id = trust_id
        self._session = session
        self._strategies = strategies
        self._guard = guard
        self._glances = {}

    def proceed(self, reverting=False, in_step=False, cancellable=True):
        """Called before a step changes the world (and, with ``in_step``,
        often during long copies).

        The runner's guard raises :class:`exceptions.Interrupted` when this
        process no longer owns the clone, and :class:`exceptions.Cancelled`
        when the user cancelled it, unless the step is past cancelling
        (``cancellable=False``: the copy is revealed) or reverting.
        """
        if self._guard is not None:
            self._guard(reverting=reverting, in_step=in_step,
                        cancellable=cancellable)

    @property
    def session(self):
        if self._session is None:
            self._session = service_session(self.conf, self._trust_id)
        return self._session

    def glance(self, region):
        if region not in self._glances:
            self._glances[region] = glance.GlanceRegion(
                self.session, region,
                interface=self.conf.clone.endpoint_interface,
                timeout=self.conf.clone.glance_timeout,
                retry_seconds=self.conf.clone.glance_retry_seconds)
        return self._glances[region]

    def strategies(self):
        if self._strategies is None:
            from clone_flows import stores
            self._strategies = stores.load_strategies(self.conf)
        return self._strategies

    def delete_trust(self):
        if self._trust_id:
            return delete_trust(self.conf, self._trust_id)
        return False

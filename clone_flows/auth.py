"""Who acts: the clone service user, holding a Keystone trust from the user.

No token is ever stored. A clone keeps only the trust id; every run and every
resume rebuilds a trust-scoped session from the service's own credentials
(configuration) and that id.

A trust delegates only ``[clone] trust_roles`` (``member`` by default: what
Glance's default policies ask of a project user who creates, uploads, updates
and deletes an image and downloads the source; Keystone adds the roles they
imply, e.g. ``reader``), and only if the user holds every one of them on the
project: a user who lacks one is refused before anything is made.  ``admin``
is delegated only if the operator lists it.  With impersonation, Glance sees
the user (their user id, their project) holding just those roles.

Every call to Keystone has a timeout (``[clone] keystone_timeout``).
"""
import datetime
import logging

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from oslo_config import cfg

from clone_flows import exceptions

LOG = logging.getLogger(__name__)

SERVICE_AUTH_GROUP = 'service_auth'

clone_auth_opts = [
    cfg.StrOpt('endpoint_interface', default='public',
               choices=['public', 'internal', 'admin'],
               help='Catalog interface used to reach each region\'s Glance.'),
    cfg.ListOpt('trust_roles', default=['member'],
                help='Roles a clone\'s trust delegates to the clone service '
                     'on the user\'s project.  The user must hold every one '
                     'of them there (implied roles count), or the clone is '
                     'refused at once.  Keystone adds the roles these imply '
                     '(member implies reader) to the trust\'s tokens.  '
                     '"member" is what Glance\'s default policies need in '
                     'both regions; list "admin" only if your Glance '
                     'policies need it: it would give the clone service '
                     'admin power in both regions while the clone runs.'),
    cfg.IntOpt('trust_expiration_hours', default=24, min=1,
               help='A clone\'s trust expires after this many hours even if '
                    'nobody deletes it (a backstop: trusts are deleted when '
                    'the clone ends).  It must cover the longest clone, '
                    'from its request to its end: the longest time a clone '
                    'may wait as pending, plus the largest image divided by '
                    'the slowest copy rate, plus retries (e.g. 1 TiB at 50 '
                    'MiB/s is 6 hours).  Past it a clone can no longer act '
                    'for the user: it fails, and what it reserved may need '
                    'an admin to remove it.'),
    cfg.FloatOpt('keystone_timeout', default=30.0, min=0.1,
                 help='Seconds to wait for any single answer from Keystone '
                      '(tokens and catalog, trust creation and deletion), '
                      'for the user\'s session and the service\'s.  '
                      '[service_auth] timeout, if set, replaces it for the '
                      'service\'s own session.'),
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
    timeout = conf[SERVICE_AUTH_GROUP].timeout or conf.clone.keystone_timeout
    return ks_loading.load_session_from_conf_options(
        conf, SERVICE_AUTH_GROUP, auth=auth, timeout=timeout)


def user_session(conf, plugin, **kwargs):
    """A keystoneauth session for the user's own ``plugin`` (their token or
    password), whose calls to Keystone time out.
    """
    return ks_session.Session(auth=plugin,
                              timeout=conf.clone.keystone_timeout, **kwargs)


def trust_roles(conf, project_id, user_roles):
    """The roles a clone's trust delegates: ``[clone] trust_roles``, each of
    which the user must hold on ``project_id`` (``user_roles``: their
    token's roles, implied ones included).
    """
    wanted = [r for r in conf.clone.trust_roles if r]
    held = set(user_roles or ())
    missing = [r for r in wanted if r not in held]
    if missing:
        raise exceptions.TrustRolesMissing(project_id, missing)
    return wanted


#: Keystone's v3 API, as the session's catalog lists it (the calls below are
#: plain REST: python-keystoneclient costs ~0.1 s of imports per process).
_IDENTITY = {'service_type': 'identity', 'interface': 'public',
             'version': (3, 0)}


def create_trust(user_session, trustee_user_id, project_id, roles, hours):
    """The user delegates ``roles`` on ``project_id`` to the clone service
    (see :func:`trust_roles`); returns the trust id.

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
    the trustee too (doc/source/operator/policies.rst).  True: deleted now;
    False: it was already gone; None: Keystone did not answer or refused
    (logged, not raised: the conductors' sweep tries again for every ended
    clone, and the trust expires on its own).
    """
    try:
        service_session(conf).delete(f'/OS-TRUST/trusts/{trust_id}',
                                     endpoint_filter=_IDENTITY)
        return True
    except ksa_exc.NotFound:
        return False
    except ksa_exc.ClientException as e:
        LOG.warning('Could not delete trust %s (the sweep tries again; it '
                    'expires on its own): %s', trust_id, e)
        return None


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

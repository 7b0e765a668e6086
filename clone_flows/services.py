"""What a clone's tasks use to reach the world: Glance regions, the store
strategies, the clone's trust and its conductor's guard.
"""
import logging

from keystoneauth1 import exceptions as ksa_exc

from clone_flows import auth
from clone_flows import glance
from clone_flows import stores

LOG = logging.getLogger(__name__)


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
            self._session = auth.service_session(self.conf, self._trust_id)
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
            self._strategies = stores.load_strategies(self.conf)
        return self._strategies

    def delegation_holds(self):
        """Whether Keystone still issues a token for this clone's trust: a
        fresh one, not the session's cached token, which keeps working
        after the user loses a delegated role on the project (as Keystone 30
        does).  None when Keystone does not answer (unknown).
        """
        if not self._trust_id:
            return True
        try:
            auth.service_session(self.conf, self._trust_id).get_token()
        except (ksa_exc.Unauthorized, ksa_exc.Forbidden,
                ksa_exc.NotFound) as e:
            LOG.warning('Trust %s no longer holds: %s', self._trust_id, e)
            return False
        except (ksa_exc.ConnectionError, ksa_exc.ServiceUnavailable,
                ksa_exc.GatewayTimeout, ksa_exc.BadGateway) as e:
            LOG.warning('Could not re-check trust %s (Keystone: %s)',
                        self._trust_id, e)
            return None
        return True

    #: Whether this run deleted the trust or found it gone (then nobody
    #: needs to try again).
    trust_released = False

    def delete_trust(self):
        if not self._trust_id:
            return False
        released = auth.delete_trust(self.conf, self._trust_id)
        self.trust_released = released is not None
        return released

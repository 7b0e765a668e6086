from clone_flows import constants as c
from clone_flows.tasks import common


class HoldTrust(common.Task):
    """Proves the service can act for the user through their trust.

    Reversion strategy: the clone is over; revoke the trust (it also expires
    on its own).  Runs last among the reverts, after every step that needed it.
    """

    def __init__(self):
        super().__init__(name=c.HOLD_TRUST, requires=[c.SERVICES, c.TRUST_ID])

    def execute(self, services, trust_id):
        services.proceed()
        # Obtaining a trust-scoped token fails early if the trust is gone or
        # Keystone refuses it.
        services.session.get_token()

    def revert(self, services, trust_id, *args, **kwargs):
        services.proceed(reverting=True)
        services.delete_trust()

from clone_flows import constants as c
from clone_flows.tasks import common


class ReleaseTrust(common.Task):
    """The clone succeeded: revoke the trust that let the service act.

    Runs after Activate revealed the copy, so a cancel read now comes too
    late and does not undo the clone.  Reversion strategy: nothing to undo
    (this is the last step; a trust that could not be revoked expires on
    its own).
    """

    def __init__(self, name=c.RELEASE_TRUST):
        super().__init__(name=name, requires=[c.SERVICES, c.TRUST_ID])

    def execute(self, services, trust_id):
        services.proceed(cancellable=False)
        services.delete_trust()

import logging

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import glance
from clone_flows import metadata
from clone_flows import utils
from clone_flows.tasks import common

LOG = logging.getLogger(__name__)


class Activate(common.Task):
    """Reveals the proven copy: the user's visibility, hidden and protected,
    once Keystone shows the user still delegates the clone's roles (a user
    whose role was removed during the clone gets nothing revealed; Keystone
    not answering does not stop it: Glance would take the same token).

    Provides the result the user sees.  Reversion strategy: hide it again,
    private and unprotected, so ReserveImage's revert can delete it.
    """

    def __init__(self):
        super().__init__(
            name=c.ACTIVATE, provides=c.CLONED_IMAGE,
            requires=[c.SERVICES, c.CLONE_ID, c.TARGET_REGION, c.SOURCE_IMAGE,
                      c.TARGET_IMAGE_ID, c.OVERRIDES, c.VERIFIED_HASH])

    def execute(self, services, clone_id, target_region, source_image,
                target_image_id, overrides, verified_hash):
        services.proceed()
        if services.delegation_holds() is False:
            raise exceptions.DelegationWithdrawn(target_region)
        policy = metadata.MetadataPolicy.from_conf(services.conf)
        activation = policy.activation(source_image, overrides)
        try:
            image = services.glance(target_region).update_image(
                target_image_id, activation)
        except glance.Forbidden as e:
            raise exceptions.TargetRefused(
                target_region, f"make the copy {activation['visibility']}"
                f"{' and protected' if activation['protected'] else ''}"
                ) from e
        LOG.info('Clone %s: image %s is now %s in %s', clone_id,
                 target_image_id, image.get('visibility'), target_region)
        return {
            'image_id': target_image_id,
            'region': target_region,
            'name': image.get('name'),
            'visibility': image.get('visibility'),
            'size': verified_hash['size'],
            'checksum': verified_hash['checksum'],
            'os_hash_algo': verified_hash['os_hash_algo'],
            'os_hash_value': verified_hash['os_hash_value'],
        }

    def revert(self, services, target_region, target_image_id, result=None,
               **kwargs):
        services.proceed(reverting=True)
        # Even a failed update may have half-applied: hide it in any case.
        target = services.glance(target_region)

        def hide():
            try:
                target.update_image(target_image_id, {
                    'protected': False, 'os_hidden': True,
                    'visibility': 'private'})
            except glance.NotFound:
                pass

        utils.keep_trying(hide, f'Hiding image {target_image_id} again',
                          services.conf.clone.revert_timeout)

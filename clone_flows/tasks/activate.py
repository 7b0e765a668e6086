import logging

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import glance
from clone_flows import metadata
from clone_flows.tasks import common
from clone_flows import utils

LOG = logging.getLogger(__name__)


#: What a reserved image looks like: nothing of it shows.
RESERVED = {'visibility': 'private', 'os_hidden': True, 'protected': False}


def _revealed(image, activation):
    """Whether ``image`` already shows as ``activation`` makes it (and that
    shows more than a reserved image does).
    """
    return activation != RESERVED and all(
        image.get(k) == v for k, v in activation.items())


class Activate(common.Task):
    """Reveals the proven copy: the user's visibility, hidden and protected,
    once Keystone shows the user still delegates the clone's roles (a user
    whose role was removed during the clone gets nothing revealed; Keystone
    not answering does not stop it: Glance would take the same token).  A
    cancel is honoured until the copy shows; once revealed (by this run or
    by one that died before recording it) it comes too late.

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
        policy = metadata.MetadataPolicy.from_conf(services.conf)
        activation = policy.activation(source_image, overrides)
        # A run that revealed the copy and died before saying so: it is out
        # there, so a cancel now comes too late (as at ReleaseTrust).
        revealed = _revealed(services.glance(target_region).get_image(
            target_image_id), activation)
        services.proceed(cancellable=not revealed)
        if not revealed and services.delegation_holds() is False:
            raise exceptions.DelegationWithdrawn(target_region)
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

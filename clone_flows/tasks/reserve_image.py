import logging

from taskflow.types import failure as tf_failure

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import glance
from clone_flows import metadata
from clone_flows.tasks import common
from clone_flows import utils

LOG = logging.getLogger(__name__)


def find_reserved(target, clone_id):
    """Images in the target carrying this clone's provenance."""
    return target.find_images(**{metadata.PROVENANCE_CLONE: clone_id,
                                 'os_hidden': 'true'}) + \
        target.find_images(**{metadata.PROVENANCE_CLONE: clone_id})


#: Glance's policy behind each visibility a member may be refused.
VISIBILITY_POLICY = {'public': 'publicize_image',
                     'community': 'communitize_image'}


def prove_reveal(target, image_id, activation):
    """Glance lets the user reveal the copy as asked: the reserved image
    (queued, empty, hidden) takes the visibility and protection it will get
    at activation, then goes back to private and unprotected.  Raises
    :class:`exceptions.TargetRefused` naming what Glance refused.
    """
    visibility = activation.get('visibility')
    if visibility and visibility != 'private':
        try:
            target.update_image(image_id, {'visibility': visibility})
        except glance.Forbidden as e:
            policy = VISIBILITY_POLICY.get(visibility, 'modify_image')
            raise exceptions.TargetRefused(
                target.region, f"make images {visibility} (Glance's "
                f"{policy} policy)") from e
    if activation.get('protected'):
        try:
            target.update_image(image_id, {'protected': True})
        except glance.Forbidden as e:
            raise exceptions.TargetRefused(target.region,
                                           'protect images') from e
    target.update_image(image_id, {'visibility': 'private',
                                   'protected': False})


class ReserveImage(common.Task):
    """Creates the target image, queued, private and hidden, with provenance,
    and proves Glance will let it be revealed as the user asked (visibility,
    protection), before any data moves.

    Idempotent: an image this clone already reserved is reused, so a re-run
    after a crash never makes a second one.  Reversion strategy: delete every
    image carrying this clone's id (retrying while the region blinks).
    """

    def __init__(self):
        super().__init__(
            name=c.RESERVE_IMAGE, provides=c.TARGET_IMAGE_ID,
            requires=[c.SERVICES, c.CLONE_ID, c.SOURCE_REGION, c.SOURCE_IMAGE,
                      c.TARGET_REGION, c.OVERRIDES])

    def execute(self, services, clone_id, source_region, source_image,
                target_region, overrides):
        services.proceed()
        target = services.glance(target_region)
        policy = metadata.MetadataPolicy.from_conf(services.conf)
        # A create cut off by a blink may have made the image or not: each
        # try looks for it first, so a retried create never makes a second.
        image_id = utils.keep_trying(
            lambda: self._reserve(target, policy, clone_id, source_region,
                                  source_image, overrides),
            f'Reserving the image of clone {clone_id} in {target_region}',
            services.conf.clone.glance_retry_seconds, max_delay=8.0)
        prove_reveal(target, image_id,
                     policy.activation(source_image, overrides))
        return image_id

    @staticmethod
    def _reserve(target, policy, clone_id, source_region, source_image,
                 overrides):
        existing = {i['id']: i for i in find_reserved(target, clone_id)}
        if existing:
            image_id = sorted(existing)[0]
            LOG.info('Clone %s: reusing reserved image %s in %s', clone_id,
                     image_id, target.region)
            return image_id
        fields = policy.reservation(
            source_image, overrides,
            metadata.provenance(clone_id, source_region, source_image))
        try:
            image = target.create_image(**fields)
        except glance.Forbidden as e:
            raise exceptions.TargetNotAuthorized(target.region) from e
        except glance.GlanceError as e:
            LOG.warning('Clone %s: creating the image in %s rejected: %s',
                        clone_id, target.region, e)
            refusal = exceptions.rejected(
                target.region, f"the image's name or formats "
                f"({fields.get('disk_format')}/"
                f"{fields.get('container_format')})", e)
            if refusal is None:
                raise
            raise refusal from e
        LOG.info('Clone %s: reserved image %s in %s', clone_id, image['id'],
                 target.region)
        return image['id']

    def revert(self, services, clone_id, target_region, result=None, **kwargs):
        services.proceed(reverting=True)
        target = services.glance(target_region)
        timeout = services.conf.clone.revert_timeout

        def delete_all():
            ids = {i['id'] for i in find_reserved(target, clone_id)}
            if result and not isinstance(result, tf_failure.Failure):
                ids.add(result)
            for image_id in ids:
                if delete_reserved(target, image_id):
                    LOG.info('Clone %s: deleted image %s from %s', clone_id,
                             image_id, target_region)

        utils.keep_trying(delete_all, f'Deleting clone {clone_id} images in '
                          f'{target_region}', timeout)


def delete_reserved(target, image_id):
    """Delete a clone's image, unprotecting it first (a copy synced with a
    protected source is protected); False if it was gone already.
    """
    try:
        image = target.get_image(image_id)
    except glance.NotFound:
        return False
    if image.get('protected'):
        target.update_image(image_id, {'protected': False})
    return target.delete_image(image_id)

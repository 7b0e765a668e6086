import logging

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import glance
from clone_flows import metadata
from clone_flows.tasks import common

LOG = logging.getLogger(__name__)


class SyncProperties(common.Task):
    """Copies the source's appropriate metadata once (the metadata policy),
    with the references CheckMetadata mapped into the target region, onto
    the reserved image before any data moves: a property the target refuses
    fails the clone before the copy.

    Idempotent: it sets values, so a re-run sets the same values again.
    Reversion strategy: nothing of its own to undo; the image that received
    the properties is deleted by ReserveImage's revert.
    """

    def __init__(self):
        super().__init__(
            name=c.SYNC_PROPERTIES, provides=c.SYNCED_PROPERTIES,
            requires=[c.SERVICES, c.TARGET_REGION, c.SOURCE_IMAGE,
                      c.TARGET_IMAGE_ID, c.OVERRIDES, c.MAPPED_PROPERTIES])

    def execute(self, services, target_region, source_image, target_image_id,
                overrides, mapped_properties):
        services.proceed()
        policy = metadata.MetadataPolicy.from_conf(services.conf)
        to_set, tags, skipped = policy.properties(source_image, overrides,
                                                  mapped_properties)
        to_set['tags'] = tags
        try:
            services.glance(target_region).update_image(target_image_id,
                                                        to_set)
        except glance.Forbidden as e:
            LOG.warning('Setting %s on image %s refused: %s', sorted(to_set),
                        target_image_id, e)
            raise exceptions.TargetRefused(
                target_region, f"set these properties on your image: "
                f"{', '.join(sorted(to_set))}") from e
        except glance.GlanceError as e:
            LOG.warning('Setting %s on image %s rejected: %s', sorted(to_set),
                        target_image_id, e)
            refusal = exceptions.rejected(
                target_region, f"the image's properties "
                f"({', '.join(sorted(to_set))})", e)
            if refusal is None:
                raise
            raise refusal from e
        return {'copied': sorted(to_set), 'skipped': skipped}

    def revert(self, *args, **kwargs):
        # The properties live on the reserved image, which ReserveImage's
        # revert deletes; nothing here outlives it.
        return None

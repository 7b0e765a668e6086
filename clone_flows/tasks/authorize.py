import logging
import uuid

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import glance
from clone_flows.tasks import common

LOG = logging.getLogger(__name__)


def check_image_id(image_id):
    try:
        if str(uuid.UUID(str(image_id))) != str(image_id).lower():
            raise ValueError(image_id)
    except (ValueError, TypeError, AttributeError):
        raise exceptions.InvalidImageId(image_id)


#: Fields of the source image record that are never persisted: where the
#: data lives in the source region's stores (shown only where a deployment
#: enables them) and Glance's own links.  Later steps need none of them.
NOT_PERSISTED = frozenset(('direct_url', 'locations', 'file', 'schema',
                           'self'))


def persisted_fields(image):
    """The source image record as the clone keeps it (see NOT_PERSISTED)."""
    return {k: v for k, v in image.items() if k not in NOT_PERSISTED}


class Authorize(common.Task):
    """The user may read and download the (active) source image; both
    regions exist.

    Downloading is asked of Glance itself with the user's delegation (one
    byte), so its ``download_image`` policy decides for every strategy,
    including store-native ones that never read through Glance.  Provides
    the source image's metadata as seen now, without its store locations;
    later steps compare against it.  Reversion strategy: nothing to undo
    (reads only).
    """

    def __init__(self):
        super().__init__(
            name=c.AUTHORIZE, provides=c.SOURCE_IMAGE,
            requires=[c.SERVICES, c.SOURCE_REGION, c.SOURCE_IMAGE_ID,
                      c.TARGET_REGION])

    def execute(self, services, source_region, source_image_id, target_region):
        services.proceed()
        check_image_id(source_image_id)
        source = services.glance(source_region)
        target = services.glance(target_region)
        source.endpoint()
        target.endpoint()
        try:
            image = source.get_image(source_image_id)
        except (glance.NotFound, glance.Forbidden):
            raise exceptions.SourceImageNotFound(source_image_id,
                                                 source_region)
        if image.get('status') != 'active':
            raise exceptions.SourceImageNotActive(
                source_image_id, source_region, image.get('status'))
        try:
            may_download = source.may_download(source_image_id)
        except glance.NotFound:
            raise exceptions.SourceImageNotFound(source_image_id,
                                                 source_region)
        if not may_download:
            raise exceptions.SourceNotDownloadable(source_image_id,
                                                   source_region)
        LOG.info('Clone of %s from %s to %s authorized (%s bytes)',
                 source_image_id, source_region, target_region,
                 image.get('size'))
        return persisted_fields(image)

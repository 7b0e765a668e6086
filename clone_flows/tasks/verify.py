from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import glance
from clone_flows.tasks import common


class Verify(common.Task):
    """The copy's size, checksum and hash equal the source's.

    Also re-reads the source: an image deleted or deactivated during the copy
    fails the clone.  Reversion strategy: nothing to undo (reads only).
    """

    def __init__(self):
        super().__init__(
            name=c.VERIFY, provides=c.VERIFIED_HASH,
            requires=[c.SERVICES, c.SOURCE_REGION, c.TARGET_REGION,
                      c.SOURCE_IMAGE, c.TARGET_IMAGE_ID])

    def execute(self, services, source_region, target_region, source_image,
                target_image_id):
        services.proceed()
        src_id = source_image['id']
        try:
            now = services.glance(source_region).get_image(src_id)
        except (glance.NotFound, glance.Forbidden):
            raise exceptions.SourceImageVanished(src_id, source_region)
        if now.get('status') != 'active':
            raise exceptions.SourceImageVanished(src_id, source_region,
                                                 now.get('status'))
        copy = services.glance(target_region).get_image(target_image_id)
        if copy.get('status') != 'active':
            raise exceptions.VerificationFailed('status', 'active',
                                                copy.get('status'))
        fields = ['size', 'checksum']
        same_algo = (copy.get('os_hash_algo')
                     == source_image.get('os_hash_algo'))
        if same_algo:
            fields.append('os_hash_value')
        for field in fields:
            if copy.get(field) != source_image.get(field):
                raise exceptions.VerificationFailed(
                    field, source_image.get(field), copy.get(field))
        return {
            'size': copy.get('size'),
            'checksum': copy.get('checksum'),
            'os_hash_algo': copy.get('os_hash_algo'),
            'os_hash_value': copy.get('os_hash_value'),
            'compared': fields,
        }

import logging

from clone_flows import constants as c
from clone_flows import copies
from clone_flows import exceptions
from clone_flows import glance
from clone_flows.tasks import common

LOG = logging.getLogger(__name__)

#: Properties naming images of the source region.
IMAGE_REFERENCES = ('kernel_id', 'ramdisk_id')


def _is_volume_snapshot(image):
    return bool(image.get('block_device_mapping')) or \
        str(image.get('bdm_v2', '')).lower() == 'true'


class CheckMetadata(common.Task):
    """Settles what in the source's metadata points into the source region,
    before any data moves (doc/source/architecture.rst, section "The metadata
    policy").

    Refuses a snapshot of a volume-backed server (its data are Cinder
    snapshots of the source region) and an encrypted image unless the
    operator declares the key manager shared (then its key id is kept and
    the copy's deletion policy forced to ``do_not_delete``).  Maps
    ``kernel_id``/``ramdisk_id`` to their verified copies in the target
    project, or refuses the image naming those it could not map (a dry run
    with ``include_dependencies`` names them as the copies the clone would
    make).  Provides
    the mapped values, which SyncProperties writes.  Reversion strategy:
    nothing to undo (reads only).
    """

    def __init__(self):
        super().__init__(
            name=c.CHECK_METADATA, provides=c.MAPPED_PROPERTIES,
            requires=[c.SERVICES, c.SOURCE_REGION, c.TARGET_REGION,
                      c.SOURCE_IMAGE])

    def execute(self, services, source_region, target_region, source_image,
                include_dependencies=False, dry_run=False):
        services.proceed()
        image_id = source_image['id']
        if _is_volume_snapshot(source_image):
            raise exceptions.VolumeSnapshotImage(image_id, source_region)
        mapped = {}
        if source_image.get('cinder_encryption_key_id'):
            if not services.conf.metadata.shared_key_manager:
                raise exceptions.EncryptedImage(image_id, source_region)
            mapped['cinder_encryption_key_id'] = \
                source_image['cinder_encryption_key_id']
            mapped['cinder_encryption_key_deletion_policy'] = 'do_not_delete'
        missing = []
        for key in IMAGE_REFERENCES:
            ref = source_image.get(key)
            if not ref:
                continue
            copy = self._verified_copy(services, source_region, target_region,
                                       ref)
            if copy is None:
                missing.append((key, ref))
            else:
                mapped[key] = copy['id']
        if missing and include_dependencies and dry_run:
            # the clone would clone them first (CloneDependencies)
            mapped.update({key: f'(a copy of {ref}, made by the clone)'
                           for key, ref in missing})
        elif missing:
            raise exceptions.UnresolvedReferences(
                image_id, source_region, target_region, missing)
        if mapped:
            LOG.info('Image %s: references mapped into %s: %s', image_id,
                     target_region, sorted(mapped))
        return mapped

    @staticmethod
    def _verified_copy(services, source_region, target_region, ref):
        try:
            referenced = services.glance(source_region).get_image(ref)
        except (glance.NotFound, glance.Forbidden):
            return None
        found = copies.verified_copies(
            services.glance(target_region), source_region, referenced,
            project_id=services.session.get_project_id())
        return found[0] if found else None

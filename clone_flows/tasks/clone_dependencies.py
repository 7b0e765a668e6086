import logging

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import glance
from clone_flows import metadata
from clone_flows.stores import base
from clone_flows.stores import http
from clone_flows.tasks import check_metadata
from clone_flows.tasks import common
from clone_flows import utils

LOG = logging.getLogger(__name__)


def dependency_clone_id(clone_id, key):
    """The provenance clone id of the copy of a dependency: its own, so the
    main image's reservation and revert never take it for theirs.
    """
    return f'{clone_id}-{key.split("_")[0]}'


def owner(provenance_clone):
    """The clone an image with this provenance clone id belongs to: the
    clone itself, or the clone that copied it as a dependency.
    """
    for key in check_metadata.IMAGE_REFERENCES:
        suffix = dependency_clone_id('', key)
        if provenance_clone.endswith(suffix) and \
                len(provenance_clone) > len(suffix):
            return provenance_clone[:-len(suffix)]
    return provenance_clone


def _made_by(target, tag):
    return target.find_images(**{metadata.PROVENANCE_CLONE: tag,
                                 'os_hidden': 'true'}) + \
        target.find_images(**{metadata.PROVENANCE_CLONE: tag})


def find_copies(target, clone_id):
    """The dependency copies (kernel, ramdisk) clone ``clone_id`` made in
    ``target``, finished or not.
    """
    return [image for key in check_metadata.IMAGE_REFERENCES
            for image in _made_by(target, dependency_clone_id(clone_id, key))]


class CloneDependencies(common.Task):
    """With ``include_dependencies``, clones the kernel and ramdisk images
    the source refers to that have no verified copy in the target project
    yet, before the image itself (one graph, one outcome): each is copied
    over HTTP stream, verified by size, checksum and hash, given its
    metadata, and revealed with the image's visibility.  CheckMetadata then
    maps the references to them.  Without the flag: nothing (CheckMetadata
    refuses unmapped references).

    Idempotent: a dependency copy this clone already finished is kept, a
    half-made one replaced.  Reversion strategy: delete the dependency
    copies this clone made (retrying while the region blinks).
    """

    def __init__(self):
        super().__init__(
            name=c.CLONE_DEPENDENCIES, provides=c.CLONED_DEPENDENCIES,
            requires=[c.SERVICES, c.CLONE_ID, c.SOURCE_REGION,
                      c.TARGET_REGION, c.SOURCE_IMAGE, c.OVERRIDES])

    def execute(self, services, clone_id, source_region, target_region,
                source_image, overrides, include_dependencies=False):
        services.proceed()
        if not include_dependencies:
            return {}
        made = {}
        for key in check_metadata.IMAGE_REFERENCES:
            ref = source_image.get(key)
            if not ref or check_metadata.CheckMetadata._verified_copy(
                    services, source_region, target_region, ref):
                continue
            try:
                referenced = services.glance(source_region).get_image(ref)
            except (glance.NotFound, glance.Forbidden):
                continue                 # CheckMetadata names it
            services.proceed()
            made[key] = self._clone(services, clone_id, key, source_region,
                                    target_region, referenced, overrides)
        return made

    @staticmethod
    def _clone(services, clone_id, key, source_region, target_region,
               referenced, overrides):
        source = services.glance(source_region)
        target = services.glance(target_region)
        tag = dependency_clone_id(clone_id, key)
        for image in _made_by(target, tag):
            if image.get('status') == 'active' and not image.get('os_hidden') \
                    and image.get('os_hash_value') == \
                    referenced.get('os_hash_value'):
                return image['id']       # finished by an earlier run
            target.delete_image(image['id'])
        policy = metadata.MetadataPolicy.from_conf(services.conf)
        image = target.create_image(**policy.reservation(
            referenced, {}, metadata.provenance(tag, source_region,
                                                referenced)))
        job = base.CopyJob(source=source, target=target,
                           source_image=referenced,
                           target_image_id=image['id'], clone_id=clone_id)
        http.HttpStreamStrategy(services.conf).copy(
            job, lambda done, total, checkpoint=None: services.proceed(
                in_step=True))
        copy = target.get_image(image['id'])
        for field in ('size', 'checksum', 'os_hash_value'):
            if copy.get(field) != referenced.get(field):
                raise exceptions.VerificationFailed(
                    f'{key} {field}', referenced.get(field), copy.get(field))
        to_set, tags, _ = policy.properties(referenced, {})
        to_set['tags'] = tags
        target.update_image(image['id'], to_set)
        target.update_image(image['id'], {
            'visibility': overrides.get('visibility') or
            policy.default_visibility, 'os_hidden': False})
        LOG.info('Clone %s: %s %s cloned into %s as %s', clone_id, key,
                 referenced['id'], target_region, image['id'])
        return image['id']

    def revert(self, services, clone_id, target_region, result=None,
               **kwargs):
        services.proceed(reverting=True)
        target = services.glance(target_region)

        def delete_all():
            for image in find_copies(target, clone_id):
                if target.delete_image(image['id']):
                    LOG.info('Clone %s: deleted the dependency copy %s (%s)',
                             clone_id, image['id'],
                             image.get(metadata.PROVENANCE_CLONE))
        utils.keep_trying(delete_all, f'Deleting the dependency copies of '
                          f'clone {clone_id}',
                          services.conf.clone.revert_timeout)

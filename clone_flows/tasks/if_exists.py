"""``if_exists``: what a clone does when the target project already holds a
verified copy of its source (provenance and an equal ``os_hash_value``).
"""
import logging

from clone_flows import constants as c
from clone_flows import copies
from clone_flows import exceptions
from clone_flows.tasks import common

LOG = logging.getLogger(__name__)


def reused_result(copy, target_region):
    """The user's result for a clone that reuses ``copy`` (the shape of a
    copy's result, saying it was reused).
    """
    return {
        'image_id': copy['id'],
        'region': target_region,
        'name': copy.get('name'),
        'visibility': copy.get('visibility'),
        'size': copy.get('size'),
        'checksum': copy.get('checksum'),
        'os_hash_algo': copy.get('os_hash_algo'),
        'os_hash_value': copy.get('os_hash_value'),
        'reused': True,
        'reason': 'if_exists is reuse and this verified copy of the source '
                  'was already in your project: nothing was copied, and '
                  'the name, visibility, properties and tags asked for '
                  'were not applied to it',
    }


class FindExistingCopy(common.Task):
    """Looks in the target project for a verified copy of the source
    (visible, active, made from this source or its origin, equal hash).

    ``if_exists``: ``copy`` looks for nothing; ``reuse`` provides the
    newest such copy (the graph then skips the copy and ends with it);
    ``fail`` refuses the clone naming it.  Provides the copy found, or None.
    Reversion strategy: nothing to undo (reads only).
    """

    def __init__(self):
        super().__init__(
            name=c.FIND_COPY, provides=c.EXISTING_COPY,
            requires=[c.SERVICES, c.SOURCE_REGION, c.TARGET_REGION,
                      c.SOURCE_IMAGE, c.IF_EXISTS])

    def execute(self, services, source_region, target_region, source_image,
                if_exists):
        if if_exists == 'copy':
            return None
        services.proceed()
        found = copies.verified_copies(
            services.glance(target_region), source_region, source_image,
            project_id=services.session.get_project_id())
        if not found:
            return None
        copy = found[0]
        if if_exists == 'fail':
            raise exceptions.CopyExists(source_image['id'], source_region,
                                        copy['id'], target_region)
        LOG.info('Image %s of %s: reusing its verified copy %s in %s',
                 source_image['id'], source_region, copy['id'], target_region)
        return reused_result(copy, target_region)

"""Finding the verified copies of a source image in a target region.

A copy carries its provenance (``clone_source_region``,
``clone_source_image_id``); it is *verified* when it is active and its hash
equals the source's.  Glance filters on custom properties, so one listing
finds them.
"""
from clone_flows import metadata


def verified_copies(target, source_region, source_image, project_id=None):
    """Active images in ``target`` made from ``source_image`` (as seen in
    ``source_region``) whose hash equals its own; only those owned by
    ``project_id`` when given.  Newest first."""
    found = target.find_images(**{
        metadata.PROVENANCE_REGION: source_region,
        metadata.PROVENANCE_IMAGE: source_image['id'],
        'status': 'active'})
    return sorted(
        (i for i in found
         if i.get('os_hash_value') == source_image.get('os_hash_value')
         and i.get('os_hash_algo') == source_image.get('os_hash_algo')
         and (project_id is None or i.get('owner') == project_id)),
        key=lambda i: i.get('created_at') or '', reverse=True)

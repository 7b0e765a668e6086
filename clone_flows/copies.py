"""Finding the copies of an image, in one region or across regions.

A copy carries its provenance: its direct source (``clone_source_region``,
``clone_source_image_id``) and the first source of its chain
(``clone_origin_region``, ``clone_origin_image_id``).  A copy is *verified*
when it is active and its hash equals the source's.  Glance filters on
custom properties, so one listing (two: hidden images are listed only when
asked for) finds them.
"""
from clone_flows import metadata


def _find_all(region, **filters):
    """Images of ``region`` matching ``filters``, hidden ones included."""
    found = {i['id']: i for i in region.find_images(**filters)}
    for image in region.find_images(os_hidden='true', **filters):
        found.setdefault(image['id'], image)
    return list(found.values())


def _same_bits(image, source_image):
    return image.get('os_hash_value') is not None and \
        image.get('os_hash_value') == source_image.get('os_hash_value') and \
        image.get('os_hash_algo') == source_image.get('os_hash_algo')


def verified_copies(target, source_region, source_image, project_id=None):
    """Active, visible (not hidden) images in ``target`` made from
    ``source_image`` (as seen in ``source_region``) or from the same origin,
    whose hash equals its own; only those owned by ``project_id`` when
    given.  Newest first.

    Hidden images are left out: a clone's reserved image is hidden until the
    clone reveals it, and may still be removed.
    """
    origin = metadata.provenance(None, source_region, source_image)
    found = {}
    for filters in (
            {metadata.PROVENANCE_REGION: source_region,
             metadata.PROVENANCE_IMAGE: source_image['id']},
            {metadata.PROVENANCE_ORIGIN_REGION:
                origin[metadata.PROVENANCE_ORIGIN_REGION],
             metadata.PROVENANCE_ORIGIN_IMAGE:
                origin[metadata.PROVENANCE_ORIGIN_IMAGE]}):
        for image in target.find_images(status='active', **filters):
            found.setdefault(image['id'], image)
    return sorted(
        (i for i in found.values()
         if _same_bits(i, source_image) and i['id'] != source_image['id']
         and (project_id is None or i.get('owner') == project_id)),
        key=lambda i: i.get('created_at') or '', reverse=True)


def _entry(region, image, original):
    return {
        'region': region,
        'image_id': image['id'],
        'name': image.get('name'),
        'status': image.get('status'),
        'os_hidden': bool(image.get('os_hidden')),
        'visibility': image.get('visibility'),
        'owner': image.get('owner'),
        'created_at': image.get('created_at'),
        'os_hash_algo': image.get('os_hash_algo'),
        'os_hash_value': image.get('os_hash_value'),
        'verified': None if original is None else (
            image.get('status') == 'active' and _same_bits(image, original)),
        'source': {'region': image.get(metadata.PROVENANCE_REGION),
                   'image_id': image.get(metadata.PROVENANCE_IMAGE)},
        'origin': {'region': image.get(metadata.PROVENANCE_ORIGIN_REGION),
                   'image_id': image.get(metadata.PROVENANCE_ORIGIN_IMAGE)},
        'clone_id': image.get(metadata.PROVENANCE_CLONE),
    }


def descendants(regions, region, image_id, original=None):
    """Every copy of the image ``image_id`` of ``region`` in ``regions``
    (``{name: GlanceRegion}``) that their credentials may see, hidden ones
    included: the copies that name it as their origin, and those that
    descend from it source by source (copies made before origins were
    recorded).  ``original``: the image's record, if readable; each copy
    then says whether its bits equal it (``verified``).  Oldest first.
    """
    found = {}
    for name, glance in regions.items():
        for image in _find_all(glance, **{
                metadata.PROVENANCE_ORIGIN_REGION: region,
                metadata.PROVENANCE_ORIGIN_IMAGE: image_id}):
            found[(name, image['id'])] = image
    todo = [(region, image_id)] + list(found)
    seen = set(todo)
    while todo:
        parent_region, parent_id = todo.pop()
        for name, glance in regions.items():
            for image in _find_all(glance, **{
                    metadata.PROVENANCE_REGION: parent_region,
                    metadata.PROVENANCE_IMAGE: parent_id}):
                key = (name, image['id'])
                found.setdefault(key, image)
                if key not in seen:
                    seen.add(key)
                    todo.append(key)
    found.pop((region, image_id), None)
    return sorted((_entry(name, image, original)
                   for (name, _), image in found.items()),
                  key=lambda e: (e['created_at'] or '', e['image_id']))


def image_regions(session, interface='public'):
    """Names of the regions with an image endpoint in the catalog of
    ``session``'s token, sorted.
    """
    access = session.auth.get_access(session)
    endpoints = access.service_catalog.get_endpoints(
        service_type='image', interface=interface).get('image', [])
    return sorted({e.get('region_id') or e.get('region') for e in endpoints}
                  - {None})


def list_copies(session, conf, region, image_id):
    """``{'image': ..., 'copies': [...]}``: the copies of ``image_id`` of
    ``region`` in every region of ``session``'s catalog, as far as that
    session's user may see them (:func:`descendants`).

    Raises :class:`exceptions.RegionNotFound` for a region without an image
    endpoint, :class:`exceptions.InvalidImageId` for an id that is not one.
    """
    from clone_flows import exceptions
    from clone_flows import glance
    from clone_flows.tasks import authorize
    authorize.check_image_id(image_id)
    names = image_regions(session, conf.clone.endpoint_interface)
    if region not in names:
        raise exceptions.RegionNotFound(region)
    regions = {n: glance.GlanceRegion(
        session, n, interface=conf.clone.endpoint_interface,
        timeout=conf.clone.glance_timeout, retry_seconds=0)
        for n in names}
    try:
        original = regions[region].get_image(image_id)
    except (glance.NotFound, glance.Forbidden):
        original = None          # deleted (or not yours): its copies remain
    image = {'region': region, 'image_id': image_id,
             'found': original is not None}
    if original is not None:
        image.update(name=original.get('name'),
                     os_hash_algo=original.get('os_hash_algo'),
                     os_hash_value=original.get('os_hash_value'),
                     origin={'region': original.get(
                         metadata.PROVENANCE_ORIGIN_REGION),
                         'image_id': original.get(
                             metadata.PROVENANCE_ORIGIN_IMAGE)})
    return {'image': image,
            'copies': descendants(regions, region, image_id, original)}

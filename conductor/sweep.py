"""The sweep: removes what a clone left behind when its revert could not.

A clone is marked for the sweep when its revert failed for good or when its
job was trashed (poison).  Sweeping removes what the clone's copy strategy
wrote in the target store, through that strategy's own cleanup (e.g. Swift
segments or an RBD image no image record points at), then every image
carrying the clone's id in the target region, then the clone's trust; it
is idempotent and safe to run from several places (the conductor's
periodic task and ``clone-manage sweep``).
"""
import contextlib
import logging
import time

from taskflow import exceptions as tf_exc

from clone_flows import auth
from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import services as services_mod
from clone_flows.stores import base
from clone_flows.tasks import clone_dependencies
from clone_flows.tasks import reserve_image
from conductor.db import api as db_api
from conductor import persistence

LOG = logging.getLogger(__name__)

NEEDS_SWEEP = 'needs_sweep'
SWEPT = 'swept_at'


def mark(backend, fd, reason):
    fd.meta[NEEDS_SWEEP] = reason
    with contextlib.closing(backend.get_connection()) as conn:
        conn.update_flow_details(fd)


def pending(backend):
    """Flow details marked for the sweep and not swept yet (without their
    atoms: the sweep reads only the flow's meta, and the periodic sweep
    looks at every clone stored).
    """
    for fd in persistence.flow_details(backend):
        meta = fd.meta or {}
        if meta.get(NEEDS_SWEEP) and not meta.get(SWEPT):
            yield fd


def _atoms(backend, clone_id):
    """{atom name: atom detail} of a stored clone ({} if it has none)."""
    with contextlib.closing(backend.get_connection()) as conn:
        try:
            fd = conn.get_flow_details(clone_id)
        except tf_exc.NotFound:
            return {}
    return {ad.name: ad for ad in fd}


def _store_leftovers(services, target, atoms, clone_id, source_region,
                     image_ids):
    """Let the strategy the clone planned remove what it wrote in the target
    store for each of ``image_ids`` (e.g. Swift segments of a copy whose
    revert failed); the image records go afterwards.
    """
    plan = getattr(atoms.get(c.PLAN_COPY), 'results', None)
    authorize = getattr(atoms.get(c.AUTHORIZE), 'results', None)
    if not isinstance(plan, dict) or not isinstance(authorize, dict):
        return              # it never planned a copy: no store data
    strategy = services.strategies().get(plan.get('strategy'))
    if strategy is None:
        raise exceptions.CloneError(
            f"the strategy {plan.get('strategy')!r} of clone {clone_id} is "
            f"not installed here: its data cannot be removed")
    copy = atoms.get(c.COPY_DATA)
    progress = (((copy.meta or {}).get('progress_details') or {})
                if copy else {})
    checkpoint = (progress.get('details') or {}).get('checkpoint')
    for image_id in image_ids:
        strategy.cleanup(base.CopyJob(
            source=services.glance(source_region), target=target,
            source_image=authorize, target_image_id=image_id,
            clone_id=clone_id), checkpoint=checkpoint)


def leftover_images(conf, fd, services=None):
    """The images of a marked clone still in its target region, its
    dependency copies included (looked at with the clone's trust, as the
    sweep removes them).
    """
    store = (fd.meta or {}).get('store') or {}
    clone_id = store.get(c.CLONE_ID) or fd.uuid
    services = services or services_mod.Services(
        conf, trust_id=store.get(c.TRUST_ID))
    target = services.glance(store[c.TARGET_REGION])
    return reserve_image.find_reserved(target, clone_id) + \
        clone_dependencies.find_copies(target, clone_id)


def sweep_one(conf, backend, fd, services=None):
    """Remove this clone's leftovers; True when nothing remains: what its
    copy strategy wrote in the target store (through the strategy's own
    cleanup), its images in the target region and the dependency copies
    (kernel, ramdisk) it made there, as its revert would, then its trust.
    """
    store = (fd.meta or {}).get('store') or {}
    clone_id = store.get(c.CLONE_ID) or fd.uuid
    services = services or services_mod.Services(
        conf, trust_id=store.get(c.TRUST_ID))
    try:
        target = services.glance(store[c.TARGET_REGION])
        images = reserve_image.find_reserved(target, clone_id)
        if images:
            _store_leftovers(services, target, _atoms(backend, fd.uuid),
                             clone_id,
                             store[c.SOURCE_REGION],
                             sorted(i['id'] for i in images))
        for image in images + clone_dependencies.find_copies(target,
                                                             clone_id):
            reserve_image.delete_reserved(target, image['id'])
            LOG.info('Sweep: deleted image %s of clone %s', image['id'],
                     clone_id)
        services.delete_trust()
    except (exceptions.CloneError, KeyError) as e:
        LOG.warning('Sweep of clone %s incomplete: %s', clone_id, e)
        return False
    fd.meta[SWEPT] = time.time()
    with contextlib.closing(backend.get_connection()) as conn:
        conn.update_flow_details(fd)
    return True


def release_trusts(conf, limit=100):
    """Delete the trusts ended clones may still hold (their own release
    failed: Keystone did not answer) and forget them in the task records;
    returns (released, left).
    """
    released = left = 0
    for task_id, trust_id in db_api.trusts_of_ended_tasks(conf, limit):
        if auth.delete_trust(conf, trust_id) is None:
            left += 1
            continue
        db_api.update_task(conf, task_id, trust_id=None)
        released += 1
    return released, left


def sweep(conf, backend):
    """Sweep every marked clone; returns (swept, left)."""
    swept = left = 0
    for fd in list(pending(backend)):
        if sweep_one(conf, backend, fd):
            swept += 1
        else:
            left += 1
    return swept, left

"""The sweep: removes what a clone left behind when its revert could not.

A clone is marked for the sweep when its revert failed for good or when its
job was trashed (poison).  Sweeping deletes, in the target region, every
image carrying the clone's id and what the store strategies wrote for it
(their cleanup: e.g. an RBD image not attached yet), then the clone's
trust; it is idempotent and
safe to run from several places (the conductor's periodic task and
``clone-manage sweep``).
"""
import contextlib
import logging
import time

from clone_flows import auth
from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows.tasks import reserve_image
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
    looks at every clone stored)."""
    for fd in persistence.flow_details(backend):
        meta = fd.meta or {}
        if meta.get(NEEDS_SWEEP) and not meta.get(SWEPT):
            yield fd


def sweep_one(conf, backend, fd, services=None):
    """Remove this clone's leftovers; True when nothing remains."""
    store = (fd.meta or {}).get('store') or {}
    clone_id = store.get(c.CLONE_ID) or fd.uuid
    services = services or auth.Services(conf, trust_id=store.get(c.TRUST_ID))
    try:
        target = services.glance(store[c.TARGET_REGION])
        for image in reserve_image.find_reserved(target, clone_id):
            reserve_image._unprotect(target, image['id'])
            target.delete_image(image['id'])
            LOG.info('Sweep: deleted image %s of clone %s', image['id'], clone_id)
            _sweep_store_data(services, target, image['id'], clone_id)
        services.delete_trust()
    except (exceptions.CloneError, KeyError) as e:
        LOG.warning('Sweep of clone %s incomplete: %s', clone_id, e)
        return False
    fd.meta[SWEPT] = time.time()
    with contextlib.closing(backend.get_connection()) as conn:
        conn.update_flow_details(fd)
    return True


def _sweep_store_data(services, target, image_id, clone_id):
    """What a strategy wrote into the target store under ``image_id`` and
    Glance does not know about (an RBD image not attached yet): each
    strategy's idempotent cleanup."""
    from clone_flows.stores import base
    job = base.CopyJob(source=None, target=target, source_image={},
                       target_image_id=image_id, clone_id=clone_id)
    for name, strategy in sorted(services.strategies().items()):
        strategy.cleanup(job)


def release_trusts(conf, limit=100):
    """Delete the trusts ended clones may still hold (their own release
    failed: Keystone did not answer) and forget them in the task records;
    returns (released, left)."""
    from conductor.db import api as db_api
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

"""Stored clones in any state, made without running them (the flow detail
a conductor would leave), for the inspection commands' tests.
"""
import contextlib
import uuid

from taskflow.types import failure as tf_failure

from conductor import runner


def failure(message='boom'):
    try:
        raise RuntimeError(message)
    except RuntimeError:
        return tf_failure.Failure()


def stored_clone(conf, backend, flow_state='RUNNING', states=None,
                 failures=None, meta=None, results=None, store=None):
    """Save a clone's logbook and flow detail; ``states`` {atom: state},
    ``failures`` {atom: Failure}, ``results`` {atom: result}, ``meta``
    merged into the flow detail's meta.  Returns the flow detail.
    """
    store = store or runner.build_store(conf, 'trust-of-test', {
        'source_region': 'RegionOne', 'source_image_id': str(uuid.uuid4()),
        'target_region': 'RegionTwo'})
    book, fd, flow = runner.save_new_flow(conf, backend, store)
    # the atom details, as an engine adds them when a conductor prepares it
    runner.prepare_engine(conf, backend, book, fd, flow=flow)
    _, fd = runner.load_flow(backend, fd.uuid)
    for ad in fd:
        if states and ad.name in states:
            ad.state = states[ad.name]
        if failures and ad.name in failures:
            ad.failure = failures[ad.name]
        if results and ad.name in results:
            ad.results = results[ad.name]
    fd.state = flow_state
    fd.meta.update(meta or {})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.update_flow_details(fd)
    return fd

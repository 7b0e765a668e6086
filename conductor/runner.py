"""Runs one clone graph in this process, persisted so a killed run resumes.

The flow's persisted store holds ids only; the :class:`Services` that reach
Keystone and Glance are injected as transient values on every run and
resume, together with the copy's last checkpoint.
"""
import contextlib
import logging
import uuid

import taskflow.engines
from taskflow import exceptions as tf_exc
from taskflow import flow as tf_flow
from taskflow.persistence import models
from taskflow import states
from taskflow import task as tf_task

from clone_flows import auth
from clone_flows import constants as c
from clone_flows import flow as clone_flow_mod
from clone_flows import services as services_mod
from conductor import flowtables
from conductor import outcome
from conductor import sweep

LOG = logging.getLogger(__name__)

FACTORY = clone_flow_mod.clone_flow


def new_store(conf, user_session, request):
    """The persisted inputs of a new clone; creates the user's trust.

    ``request``: source_region, source_image_id, target_region and optional
    name, visibility, properties, tags, strategy, dry_run, if_exists.
    """
    trustee = auth.service_user_id(conf)
    access = auth.user_access(user_session)
    roles = auth.trust_roles(conf, access.project_id, access.role_names)
    trust_id = auth.create_trust(user_session, trustee, access.project_id,
                                 roles, conf.clone.trust_expiration_hours)
    return build_store(conf, trust_id, request)


def build_store(conf, trust_id, request):
    """The persisted inputs of a clone whose trust exists (ids only).

    Shared by :func:`new_store` (in-process clones) and
    :func:`conductor.submit.submit_clone` (the API).
    """
    overrides = {k: request[k] for k in
                 ('name', 'visibility', 'properties', 'tags', 'os_hidden',
                  'protected') if request.get(k) is not None}
    return {
        c.CLONE_ID: request.get('clone_id') or str(uuid.uuid4()),
        c.SOURCE_REGION: request['source_region'],
        c.SOURCE_IMAGE_ID: request['source_image_id'],
        c.TARGET_REGION: request['target_region'],
        c.TRUST_ID: trust_id,
        c.OVERRIDES: overrides,
        c.STRATEGY_NAME: request.get('strategy') or 'auto',
        c.DRY_RUN: bool(request.get('dry_run')),
        c.IF_EXISTS: request.get('if_exists') or 'copy',
        c.INCLUDE_DEPENDENCIES: bool(request.get('include_dependencies')),
    }


def save_new_flow(conf, backend, store):
    """Logbook + flow detail for a new clone (both named by the clone id),
    with the flow factory (``save_factory_details``: a conductor in another
    process rebuilds the graph from it) and the store in the flow's meta
    (ids only: the conductor's engine injects it, the sweep and operators
    read it) and the names of the graph's steps in order (``flow show``
    lists them without rebuilding the graph).  The engine that first runs
    the clone adds the details of the steps, as TaskFlow's conductors do.

    Returns ``(book, fd, flow)``: the graph built for it, which an engine in
    this process can run (:func:`prepare_engine`) without building it again.
    """
    clone_id = store[c.CLONE_ID]
    factory, kwargs = clone_flow_mod.factory_for(conf, store)
    flow = factory(**kwargs)
    book = models.LogBook(f'clone-{clone_id}', uuid=clone_id)
    fd = models.FlowDetail(c.CLONE_FLOW, uuid=clone_id)
    fd.meta['store'] = dict(store)
    fd.meta[flowtables.GRAPH_ORDER] = [a.name for a in atoms(flow)]
    book.add(fd)
    taskflow.engines.save_factory_details(fd, factory, [], kwargs)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    return book, fd, flow


def atoms(flow):
    """Every task and retry of a graph, in its order."""
    if flow.retry is not None:
        yield flow.retry
    for node, _ in flow.iter_nodes():
        if isinstance(node, tf_flow.Flow):
            yield from atoms(node)
        else:
            yield node


def load_flow(backend, clone_id):
    with contextlib.closing(backend.get_connection()) as conn:
        try:
            book = conn.get_logbook(clone_id)
        except tf_exc.NotFound:
            raise LookupError(f'no clone {clone_id} in this persistence')
    fd = book.find(clone_id)
    if fd is None:
        raise LookupError(f'clone {clone_id} has no flow detail')
    return book, fd


def prepare_engine(conf, backend, book, fd, store=None, services=None,
                   on_progress=None, flow=None):
    """An engine for the clone, new or resumed, with transient inputs set.

    ``store``: injected into the flow's storage, by default the one
    :func:`save_new_flow` put in the flow detail's meta (as TaskFlow's
    conductors do); ``flow``: the graph :func:`save_new_flow` built, else
    it is rebuilt from the flow detail.
    """
    if store is None:
        store = (fd.meta or {}).get('store')
    if flow is None:
        flow = taskflow.engines.flow_from_detail(fd)
    engine = taskflow.engines.load(flow, store=store, book=book,
                                   flow_detail=fd, backend=backend,
                                   engine='serial')
    prepare_transients(conf, engine, services=services,
                       on_progress=on_progress)
    return engine


def prepare_transients(conf, engine, services=None, on_progress=None):
    """What a clone's engine needs on every run, never persisted: its
    :class:`Services`, the copy's checkpoint, the progress relay.
    """
    inject_transients(conf, engine, services=services)
    if on_progress is not None:
        attach_progress(engine, on_progress)


def inject_transients(conf, engine, services=None):
    """Services (never persisted) and the copy's checkpoint, if any."""
    engine.compile()
    engine.prepare()
    trust_id = engine.storage.fetch(c.TRUST_ID)
    if services is None:
        services = services_mod.Services(conf, trust_id=trust_id)
    engine.storage.inject({c.SERVICES: services}, transient=True)
    try:
        details = engine.storage.get_task_progress_details(c.COPY_DATA) or {}
    except tf_exc.NotFound:     # a dry run copies nothing
        return
    checkpoint = (details.get('details') or {}).get('checkpoint')
    engine.storage.inject_atom_args(c.COPY_DATA,
                                    {c.COPY_CHECKPOINT: checkpoint},
                                    transient=True)


def attach_progress(engine, callback):
    """Call ``callback(details)`` on every progress event of the copy
    (``engine``: compiled).
    """
    def relay(event_type, details):
        # The engine's own start/end events carry no byte counts.
        if 'bytes_done' in details:
            callback(dict(details))
    for atom in engine.compilation.execution_graph:
        if isinstance(atom, tf_task.Task) and atom.name == c.COPY_DATA:
            atom.notifier.register(tf_task.EVENT_UPDATE_PROGRESS, relay)


def run(engine, backend, clone_id):
    """Run to the end; return the :class:`outcome.Outcome` (a clone that
    failed and reverted is an outcome, not an exception).
    """
    try:
        engine.run()
    except Exception:  # the failure is persisted; the outcome reads it
        LOG.info('Clone %s ended with a failure', clone_id, exc_info=True)
    else:
        if engine.storage.get_flow_state() == states.SUCCESS:
            # Saved before run() returned (the engine saves every state it
            # reaches): no need to read the whole flow back.
            return outcome.success(clone_id, _results(engine))
    fd = load_flow(backend, clone_id)[1]
    out = outcome.from_flow_detail(fd)
    if out.cleanup_failed:
        sweep.mark(backend, fd, 'revert failed')
    return out


def _results(engine):
    """``{step: result}`` of the steps an outcome reads that the clone's
    graph has and ran.
    """
    results = {}
    for name in outcome.RESULT_STEPS:
        try:
            if engine.storage.get_atom_state(name) == states.SUCCESS:
                results[name] = engine.storage.get(name)
        except tf_exc.NotFound:         # not a step of this graph
            continue
    return results


def is_finished(fd):
    return flowtables.is_finished(fd)

"""Runs one clone graph in this process, persisted so a killed run resumes.

The flow's persisted store holds ids only; the :class:`Services` that reach
Keystone and Glance are injected as transient values on every run and
resume, together with the copy's last checkpoint.
"""
import contextlib
import logging
import threading
import uuid

from oslo_utils import uuidutils
import taskflow.engines
from taskflow import exceptions as tf_exc
from taskflow import flow as tf_flow
from taskflow import retry as tf_retry
from taskflow import states
from taskflow import storage as tf_storage
from taskflow import task as tf_task
from taskflow.persistence import models
from taskflow.utils import misc as tf_misc

from clone_flows import auth
from clone_flows import constants as c
from clone_flows import flow as clone_flow_mod
from clone_flows import services as services_mod
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
    saved with the detail of every step and the store already in it.

    An engine would add those itself, each in a flow save of its own (the
    store, then the steps) on the conductor that first runs the clone; made
    here (:func:`add_atom_details`), they are written with the flow detail
    in one transaction, by the process that posts the clone.

    Returns ``(book, fd, flow)``: the graph built for it, which an engine in
    this process can run (:func:`prepare_engine`) without building it again.
    """
    clone_id = store[c.CLONE_ID]
    factory, kwargs = clone_flow_mod.factory_for(conf, store)
    flow = factory(**kwargs)
    book = models.LogBook(f'clone-{clone_id}', uuid=clone_id)
    fd = models.FlowDetail(c.CLONE_FLOW, uuid=clone_id)
    fd.meta['store'] = dict(store)     # ids only: for the sweep and operators
    book.add(fd)
    taskflow.engines.save_factory_details(fd, factory, [], kwargs)
    add_atom_details(fd, flow, store)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    return book, fd, flow


def add_atom_details(fd, flow, store):
    """Add to a new flow detail what an engine's storage would add before
    its first run: the store (``Storage.inject``: a task detail named
    ``Storage.injector_name``, SUCCESS, holding it) and a PENDING detail of
    each task and retry (``Storage.ensure_atoms``).  A unit test compares
    them with the details TaskFlow's storage makes itself."""
    injector = models.TaskDetail(tf_storage.Storage.injector_name,
                                 uuidutils.generate_uuid())
    injector.results = dict(store)
    injector.state = states.SUCCESS
    fd.add(injector)
    for atom in atoms(flow):
        kind = (models.RetryDetail if isinstance(atom, tf_retry.Retry)
                else models.TaskDetail)
        ad = kind(atom.name, uuidutils.generate_uuid())
        ad.state = states.PENDING
        ad.version = tf_misc.get_version_string(atom)
        fd.add(ad)


def atoms(flow):
    """Every task and retry of a graph, in its order."""
    if flow.retry is not None:
        yield flow.retry
    for node, _ in flow.iter_nodes():
        if isinstance(node, tf_flow.Flow):
            yield from atoms(node)
        else:
            yield node


def _holds_store(fd):
    return any(ad.name == tf_storage.Storage.injector_name for ad in fd)


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

    ``store`` is saved only into a flow detail that lacks it (one saved
    before :func:`save_new_flow` put it there); ``flow``: the graph
    :func:`save_new_flow` built, else it is rebuilt from the flow detail.
    """
    if flow is None:
        flow = taskflow.engines.flow_from_detail(fd)
    if _holds_store(fd):
        store = None
    engine = taskflow.engines.load(flow, store=store, book=book,
                                   flow_detail=fd, backend=backend,
                                   engine='serial')
    engine.storage._lock = ReentrantStorageLock()
    inject_transients(conf, engine, services=services)
    if on_progress is not None:
        attach_progress(flow, on_progress)
    return engine


class ReentrantStorageLock:
    """The lock of a clone engine's storage: one reentrant lock.

    TaskFlow's ``Storage`` takes its ``lock`` (a fasteners
    ``ReaderWriterLock``: a condition variable, the current thread's
    identity and two context managers per use) around each of its
    hundreds of calls per clone.  A serial engine's storage is used by
    the engine's own thread (its tasks and their progress reports run
    there too) and, rarely, by a conductor thread suspending the engine:
    readers never wait for each other in practice, so one exclusive,
    reentrant lock serves (stricter, not looser).  Set by
    :func:`prepare_engine` before the engine runs; a unit test checks that
    ``Storage.lock`` is still the attribute replaced.
    """

    __slots__ = ('_lock',)

    def __init__(self):
        self._lock = threading.RLock()

    def read_lock(self):
        return self._lock

    def write_lock(self):
        return self._lock


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
    engine.storage.inject_atom_args(c.COPY_DATA, {c.COPY_CHECKPOINT: checkpoint},
                                    transient=True)


def attach_progress(flow, callback):
    """Call ``callback(details)`` on every progress event of the copy."""
    def relay(event_type, details):
        # The engine's own start/end events carry no byte counts.
        if 'bytes_done' in details:
            callback(dict(details))
    for atom in atoms(flow):
        if atom.name == c.COPY_DATA:
            atom.notifier.register(tf_task.EVENT_UPDATE_PROGRESS, relay)


def run(engine, backend, clone_id):
    """Run to the end; return the :class:`outcome.Outcome` (a clone that
    failed and reverted is an outcome, not an exception)."""
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
    graph has and ran."""
    results = {}
    for name in outcome.RESULT_STEPS:
        try:
            if engine.storage.get_atom_state(name) == states.SUCCESS:
                results[name] = engine.storage.get(name)
        except tf_exc.NotFound:         # not a step of this graph
            continue
    return results


def is_finished(fd):
    return fd.state in (states.SUCCESS, states.REVERTED, states.FAILURE) or \
        bool((fd.meta or {}).get(outcome.GAVE_UP))

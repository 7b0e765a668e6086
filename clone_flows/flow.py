"""The clone graph, built by module-level factories (why each step exists:
doc/source/architecture.rst, section "The clone graph").

    hold trust -> authorize -> check metadata -> plan copy
        -> [retry with a fresh image: reserve image -> sync properties
                                      -> [retry: copy data]]
        -> verify -> activate -> release trust

With ``if_exists`` ``reuse`` or ``fail``, a step after authorize looks for
a verified copy already in the target project: ``fail`` ends there; with
``reuse`` a copy found skips everything up to releasing the trust.

The dry run (:func:`dry_run_flow`) runs the read-only steps and reports:

    hold trust -> authorize -> find existing copy -> check metadata
        -> plan copy -> report -> release trust

Everything the target may refuse (creating the image, revealing it as
asked, each property) is tried on the reserved, hidden image before any
byte moves.

A conductor in another process rebuilds it from this module's dotted name
and the factory's JSON arguments, so the factory takes plain values only.
"""
import time

from oslo_config import cfg
from taskflow.patterns import graph_flow
from taskflow.patterns import linear_flow
from taskflow import retry

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows.tasks import activate
from clone_flows.tasks import authorize
from clone_flows.tasks import check_metadata
from clone_flows.tasks import clone_dependencies
from clone_flows.tasks import copy_data
from clone_flows.tasks import dry_run
from clone_flows.tasks import hold_trust
from clone_flows.tasks import if_exists as if_exists_mod
from clone_flows.tasks import plan_copy
from clone_flows.tasks import release_trust
from clone_flows.tasks import reserve_image
from clone_flows.tasks import sync_properties
from clone_flows.tasks import verify

clone_opts = [
    cfg.ListOpt('strategy_preference', default=['rbd', 'swift', 'http'],
                help='Order in which the "auto" strategy tries the store '
                     'strategies; the first that applies copies the data.'),
    cfg.IntOpt('copy_attempts', default=3, min=1,
               help='Times the data copy is tried when a region stops '
                    'answering before the clone fails.'),
    cfg.FloatOpt('copy_retry_delay', default=2.0, min=0,
                 help='Seconds to wait before trying the copy again.'),
    cfg.IntOpt('revert_timeout', default=120, min=0,
               help='Seconds a revert keeps trying to remove what the clone '
                    'made while a region does not answer.'),
    cfg.FloatOpt('progress_interval', default=1.0, min=0.05,
                 help='Seconds between two progress reports of a copy.'),
]


def register_opts(conf):
    conf.register_opts(clone_opts, group='clone')


def list_opts():
    return [('clone', clone_opts)]


def _last_failures(history):
    return [f for _, f in history.outcomes_iter(index=-1)] if len(history) \
        else []


class RetryWhenUnavailable(retry.Times):
    """Tries the copy again when a region stopped answering.

    A reserved image still busy with an earlier attempt is left to the
    enclosing :class:`RetryWithFreshImage`; any other failure (a refusal, a
    bad image) reverts the whole clone at once.
    """

    def __init__(self, attempts, delay, **kwargs):
        super().__init__(attempts=attempts, name=c.COPY_RETRY,
                         revert_all=True, **kwargs)
        self._delay = delay

    def on_failure(self, history, *args, **kwargs):
        failures = _last_failures(history)
        if failures and all(f.check(exceptions.TargetImageBusy)
                            for f in failures):
            return retry.REVERT         # the parent retry decides
        if not failures or not all(
                f.check(exceptions.ServiceUnavailable) for f in failures):
            return retry.REVERT_ALL
        decision = super().on_failure(history, *args, **kwargs)
        if decision == retry.RETRY and self._delay:
            time.sleep(self._delay)
        return decision


class RetryWithFreshImage(retry.Times):
    """Replaces a reserved image that an earlier, paused attempt still
    writes into: ReserveImage's revert deletes it, the next try reserves a
    fresh one.  Anything else reverts the whole clone.
    """

    def __init__(self, attempts=2, **kwargs):
        super().__init__(attempts=attempts, name=c.RESERVE_RETRY,
                         revert_all=True, **kwargs)

    def on_failure(self, history, *args, **kwargs):
        failures = _last_failures(history)
        if failures and all(f.check(exceptions.TargetImageBusy)
                            for f in failures):
            return super().on_failure(history, *args, **kwargs)
        return retry.REVERT_ALL


def _no_copy_found(history):
    """Link decider: make the copy unless a verified one is reused."""
    return not history.get(c.FIND_COPY)


def _copy_found(history):
    return bool(history.get(c.FIND_COPY))


def clone_flow(copy_attempts=3, copy_retry_delay=2.0, progress_interval=1.0,
               if_exists='copy'):
    """The clone graph.  Inputs: see :mod:`clone_flows.constants`."""
    copy = linear_flow.Flow(
        c.COPY_FLOW,
        retry=RetryWhenUnavailable(copy_attempts, copy_retry_delay)).add(
        copy_data.CopyData(progress_interval=progress_interval))
    reserve_and_copy = linear_flow.Flow(
        c.RESERVE_FLOW, retry=RetryWithFreshImage()).add(
        reserve_image.ReserveImage(),
        sync_properties.SyncProperties(),
        copy)
    make_copy = (
        clone_dependencies.CloneDependencies(),
        check_metadata.CheckMetadata(),
        plan_copy.PlanCopy(),
        reserve_and_copy,
        verify.Verify(),
        activate.Activate(),
    )
    if if_exists == 'copy':
        return linear_flow.Flow(c.CLONE_FLOW).add(
            hold_trust.HoldTrust(),
            authorize.Authorize(),
            *make_copy,
            release_trust.ReleaseTrust(),
        )
    # A copy found and reused: the body is IGNOREd (and the release after
    # it); the second release runs instead.  None found: the opposite.
    head = linear_flow.Flow(c.CLONE_FLOW + '-head').add(
        hold_trust.HoldTrust(), authorize.Authorize())
    find = if_exists_mod.FindExistingCopy()
    body = linear_flow.Flow(c.CLONE_BODY).add(*make_copy)
    release = release_trust.ReleaseTrust()
    release_reused = release_trust.ReleaseTrust(name=c.RELEASE_TRUST_REUSED)
    graph = graph_flow.Flow(c.CLONE_FLOW).add(head, find, body, release,
                                              release_reused)
    graph.link(head, find)
    graph.link(find, body, decider=_no_copy_found)
    graph.link(body, release)
    graph.link(find, release_reused, decider=_copy_found)
    return graph


def dry_run_flow():
    """The checks of a clone and its plan, changing nothing: no image is
    reserved, the trust is released at the end (HoldTrust's revert deletes
    it when a check fails).  Inputs: those of :func:`clone_flow`.
    """
    return linear_flow.Flow(c.CLONE_FLOW).add(
        hold_trust.HoldTrust(),
        authorize.Authorize(),
        if_exists_mod.FindExistingCopy(),
        check_metadata.CheckMetadata(),
        plan_copy.PlanCopy(),
        dry_run.DryRunReport(),
        release_trust.ReleaseTrust(),
    )


def factory_kwargs(conf, if_exists='copy'):
    """The factory's JSON arguments, from configuration, for a new clone."""
    return {'copy_attempts': conf.clone.copy_attempts,
            'copy_retry_delay': conf.clone.copy_retry_delay,
            'progress_interval': conf.clone.progress_interval,
            'if_exists': if_exists}


def factory_for(conf, store):
    """``(factory, JSON arguments)`` of the graph for a clone's inputs: the
    dry run's or the clone's.
    """
    if store.get(c.DRY_RUN):
        return dry_run_flow, {}
    return clone_flow, factory_kwargs(conf, store.get(c.IF_EXISTS) or 'copy')

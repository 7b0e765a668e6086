"""What a clone's persisted graph says happened: state, result, reason."""
import dataclasses
import typing

from taskflow import states

from clone_flows import constants as c
from clone_flows import exceptions


@dataclasses.dataclass
class Outcome:
    clone_id: str
    state: str                       # TaskFlow flow state
    succeeded: bool
    result: typing.Optional[dict]    # the cloned image, on success
    failed_step: typing.Optional[str] = None
    message: str = ''
    cleanup_failed: bool = False

    def to_dict(self):
        return dataclasses.asdict(self)


def _failures(fd):
    for ad in fd:
        if ad.failure is not None:
            yield ad.name, ad.failure, 'execute'
        if getattr(ad, 'revert_failure', None) is not None:
            yield ad.name, ad.revert_failure, 'revert'


#: Flow detail meta key: set when the conductors gave up on a clone.
GAVE_UP = 'gave_up'


#: Steps whose result makes the user's result, best first: a dry run's
#: plan, a copy reused (if_exists), the copy made (with its PlanCopy).
RESULT_STEPS = (c.DRY_RUN_REPORT, c.FIND_COPY, c.ACTIVATE, c.PLAN_COPY)


def _result(results):
    """The user's result from ``{step: result}`` of the steps that ended
    SUCCESS (see RESULT_STEPS).
    """
    if results.get(c.DRY_RUN_REPORT):
        return results[c.DRY_RUN_REPORT]
    if results.get(c.FIND_COPY) and not results.get(c.ACTIVATE):
        return results[c.FIND_COPY]
    result, plan = results.get(c.ACTIVATE), results.get(c.PLAN_COPY)
    if result is not None and isinstance(plan, dict):
        # which store strategy copied the data, and why that one
        result = dict(result, copy={'strategy': plan.get('strategy'),
                                    'reason': plan.get('reason')})
    return result


def success(clone_id, results):
    """The outcome of a clone that ended SUCCESS, from ``{step: result}``
    of its steps named in RESULT_STEPS (as :func:`from_flow_detail` reads
    them).
    """
    return Outcome(clone_id=clone_id, state=states.SUCCESS, succeeded=True,
                   result=_result(results))


def from_flow_detail(fd):
    gave_up = (fd.meta or {}).get(GAVE_UP)
    if gave_up:
        return Outcome(clone_id=fd.uuid, state=fd.state, succeeded=False,
                       result=None, message=gave_up)
    result = _result({ad.name: ad.results for ad in fd
                      if ad.name in RESULT_STEPS and
                      ad.state == states.SUCCESS})
    succeeded = fd.state == states.SUCCESS
    step, message, cleanup_failed = None, '', False
    if not succeeded:
        execute_failures = [(n, f) for n, f, kind in _failures(fd)
                            if kind == 'execute'
                            and n not in (c.COPY_RETRY, c.RESERVE_RETRY)]
        revert_failures = [(n, f) for n, f, kind in _failures(fd)
                           if kind == 'revert']
        cleanup_failed = bool(revert_failures)
        if execute_failures:
            # The user error, if any, is the most telling failure.
            execute_failures.sort(key=lambda nf: not any(
                t.startswith('clone_flows.exceptions.') for t in nf[1]))
            step, failure = execute_failures[0]
            message = exceptions.user_message(
                list(failure), failure.exception_str,
                c.STEP_NAMES.get(step, step))
        elif fd.state in (states.FAILURE, states.REVERTED):
            message = 'the clone failed'
        if cleanup_failed:
            message += ('; cleaning up did not finish and is left to the '
                        'operator\'s sweep')
    return Outcome(clone_id=fd.uuid, state=fd.state, succeeded=succeeded,
                   result=result, failed_step=step, message=message,
                   cleanup_failed=cleanup_failed)

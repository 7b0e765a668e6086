import logging

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows.stores import base
from clone_flows.tasks import common

LOG = logging.getLogger(__name__)


MiB = 1024 * 1024


def check_headroom(target, size):
    """Refuse at once a copy the target project's quota cannot take, where
    Glance reports usage (unified limits); a limit below 0 is unlimited.
    """
    usage = target.usage()
    needs = {'image_size_total': -(-size // MiB), 'image_count_total': 1}
    for name, more in needs.items():
        u = usage.get(name) or {}
        limit, used = u.get('limit'), u.get('usage')
        if limit is None or used is None or limit < 0:
            continue
        if used + more > limit:
            unit = ' MiB' if name == 'image_size_total' else ''
            raise exceptions.TargetRefusedSize(
                target.region, True, f'{name}: limit {limit}{unit}, in use '
                f'{used}{unit}, the copy needs {more}{unit}')


class PlanCopy(common.Task):
    """Chooses the store strategy and says why, once the target project's
    quota has room for the copy (where Glance reports usage).

    ``auto`` tries the strategies in the configured order of preference and
    takes the first that applies; HTTP stream always does.  Every strategy
    passed over is named in the plan's reason with why (one the preference
    names but that is not installed: "not installed").  Reversion strategy:
    nothing to undo (decides only).
    """

    def __init__(self):
        super().__init__(
            name=c.PLAN_COPY, provides=c.COPY_PLAN,
            requires=[c.SERVICES, c.CLONE_ID, c.SOURCE_REGION, c.TARGET_REGION,
                      c.SOURCE_IMAGE, c.STRATEGY_NAME])

    def execute(self, services, clone_id, source_region, target_region,
                source_image, strategy_name):
        services.proceed()
        check_headroom(services.glance(target_region),
                       int(source_image.get('size') or 0))
        strategies = services.strategies()
        job = base.CopyJob(source=services.glance(source_region),
                           target=services.glance(target_region),
                           source_image=source_image, target_image_id=None,
                           clone_id=clone_id)
        if strategy_name and strategy_name != 'auto':
            if strategy_name not in strategies:
                raise exceptions.NoStrategy(
                    strategy_name, f"no such strategy (known: "
                    f"{', '.join(sorted(strategies))})")
            ok, reason = strategies[strategy_name].applies(job)
            if not ok:
                raise exceptions.NoStrategy(strategy_name, reason)
            plan = strategies[strategy_name].plan(job)
            plan.reason = 'requested'
            return plan.to_dict()
        rejected = {}
        order = list(services.conf.clone.strategy_preference)
        order += sorted(set(strategies) - set(order))
        for name in order:
            strategy = strategies.get(name)
            if strategy is None:
                rejected[name] = 'not installed'
                continue
            try:
                ok, reason = strategy.applies(job)
            except exceptions.CloneError:
                raise
            except Exception:   # a broken plugin must not stop clones
                LOG.exception('Strategy %s could not tell whether it applies',
                              name)
                ok, reason = False, ('could not check (the operator finds '
                                     'why in the clone\'s log)')
            if ok:
                plan = strategy.plan(job)
                plan.reason = '; '.join(f'{n}: {r}'
                                        for n, r in rejected.items()) \
                    or 'preferred'
                return plan.to_dict()
            rejected[name] = reason
        raise exceptions.NoStrategy('auto', '; '.join(
            f'{n}: {r}' for n, r in rejected.items()) or 'none installed')

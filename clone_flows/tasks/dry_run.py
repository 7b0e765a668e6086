"""A dry run's plan: what the read-only steps established, what a clone
would move and which metadata the copy would get, key by key.
"""
import logging

from clone_flows import auth
from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows import metadata
from clone_flows.tasks import common
from clone_flows.tasks import plan_copy
from clone_flows.tasks import reserve_image

LOG = logging.getLogger(__name__)

#: Roles that satisfy Glance's default ``add_image`` policy (a member of
#: the project, or an administrator).
CREATE_ROLES = ('member', 'admin')


def _check(name, detail):
    return {'check': name, 'passed': True, 'detail': detail}


def property_diff(policy, source, overrides, mapped, provenance):
    """``{key: {'action', 'reason'[, 'value']}}``: what the copy gets of each
    of the source's keys (``copied``, ``dropped``, ``mapped``,
    ``overridden``) and the keys it gets that the source lacks (``added``).
    Values are shown only where they differ from the source's.
    """
    to_set, tags, skipped = policy.properties(source, overrides, mapped)
    reserved = policy.reservation(source, overrides, {})
    activation = policy.activation(source, overrides)
    final = dict(to_set, tags=tags, name=reserved.get('name'),
                 disk_format=reserved.get('disk_format'),
                 container_format=reserved.get('container_format'),
                 **activation, **provenance)
    diff = {}
    for key in sorted(set(source) | set(final)):
        if key in provenance:
            diff[key] = {'action': 'added', 'value': final[key],
                         'reason': 'provenance of the copy'}
        elif key in mapped:
            diff[key] = {'action': 'mapped', 'value': mapped[key],
                         'reason': metadata.REFERENCES[key]}
        elif key not in final:
            diff[key] = {'action': 'dropped', 'reason': skipped.get(
                key, policy.decide(key)[1])}
        elif key not in source:
            diff[key] = {'action': 'added', 'value': final[key],
                         'reason': 'your input'}
        elif final[key] != source[key] and not (
                key in ('os_hidden', 'protected') and
                bool(final[key]) == bool(source[key])):
            diff[key] = {'action': 'overridden', 'value': final[key],
                         'reason': policy.decide(key)[1] if key in
                         metadata.HANDLED else 'your input'}
        else:
            diff[key] = {'action': 'copied', 'reason': policy.decide(key)[1]}
    return diff


def _headroom(target, size):
    usage = target.usage()
    if not usage:
        return _check('quota headroom', f'{target.region} does not report '
                      'quota usage: not checked (Glance enforces it when '
                      'the data arrives)')
    parts = []
    for name in ('image_size_total', 'image_count_total'):
        u = usage.get(name) or {}
        if u.get('limit') is not None and u.get('usage') is not None:
            unit = ' MiB' if name == 'image_size_total' else ''
            limit = 'unlimited' if u['limit'] < 0 else f"{u['limit']}{unit}"
            parts.append(f"{name}: {u['usage']}{unit} in use of {limit}")
    return _check('quota headroom', f"room for the copy in {target.region} "
                  f"({'; '.join(parts) or 'no limits set'}; the copy needs "
                  f"{-(-size // plan_copy.MiB)} MiB and 1 image)")


class DryRunReport(common.Task):
    """Builds the plan a dry run ends with, once the read-only steps passed.

    Proves with the delegation what it can without creating anything: the
    delegation holds a role Glance's default ``add_image`` policy accepts
    (else the dry run fails with the sentence the clone's reservation
    would give), and says what only the real clone proves.  Reversion
    strategy: nothing to undo (reads only).
    """

    def __init__(self):
        super().__init__(
            name=c.DRY_RUN_REPORT, provides=c.DRY_RUN_PLAN,
            requires=[c.SERVICES, c.SOURCE_REGION, c.SOURCE_IMAGE,
                      c.TARGET_REGION, c.OVERRIDES, c.MAPPED_PROPERTIES,
                      c.COPY_PLAN, c.EXISTING_COPY, c.IF_EXISTS])

    def execute(self, services, source_region, source_image, target_region,
                overrides, mapped_properties, copy_plan, existing_copy,
                if_exists):
        services.proceed()
        roles = set(auth.user_access(services.session).role_names or ())
        if not roles & set(CREATE_ROLES):
            raise exceptions.TargetNotAuthorized(target_region)
        image_id = source_image['id']
        size = int(source_image.get('size') or 0)
        policy = metadata.MetadataPolicy.from_conf(services.conf)
        activation = policy.activation(source_image, overrides)
        checks = [
            _check('delegation', 'the clone service can act for you through '
                   'your trust'),
            _check('source visible', f'image {image_id} in {source_region} '
                   f'is active and visible to you'),
            _check('source downloadable', f"{source_region}'s Glance lets "
                   f"you download it (its download_image policy)"),
            _check('metadata', 'nothing in its metadata stops a copy'
                   + (f" (references mapped: "
                      f"{', '.join(sorted(mapped_properties))})"
                      if mapped_properties else '')),
            _check('target may create images', 'your delegation holds the '
                   f"{' and '.join(sorted(roles & set(CREATE_ROLES)))} role "
                   f"on the project, which Glance's default add_image policy "
                   f"requires"),
            _headroom(services.glance(target_region), size),
        ]
        not_proven = [
            f"that {target_region} accepts the image: a dry run creates none; "
            f"a deployment's own add_image policy or the store may still "
            f"refuse it (the real clone learns it first, before any data "
            f"moves)"]
        policy_name = reserve_image.VISIBILITY_POLICY.get(
            activation['visibility'])
        if policy_name:
            not_proven.append(
                f"that you may make the copy {activation['visibility']} "
                f"(Glance's {policy_name} policy): only the real clone "
                f"proves it, on its reserved image before any data moves")
        if activation['protected']:
            not_proven.append('that you may protect the copy: only the real '
                              'clone proves it, before any data moves')
        provenance = metadata.provenance('(the id of the real clone)',
                                         source_region, source_image)
        plan = {
            'dry_run': True,
            'source_region': source_region,
            'source_image_id': image_id,
            'region': target_region,
            'checks': checks,
            'not_proven': not_proven,
            'strategy': copy_plan.get('strategy'),
            'strategy_reason': copy_plan.get('reason'),
            'bytes_to_move': copy_plan.get('bytes_total', size),
            'properties': property_diff(policy, source_image, overrides,
                                        mapped_properties, provenance),
            'if_exists': if_exists,
        }
        if existing_copy:
            plan['existing_copy'] = existing_copy['image_id']
            plan['would_reuse'] = True
            plan['bytes_to_move'] = 0
        LOG.info('Dry run of %s from %s to %s: %s, %s bytes', image_id,
                 source_region, target_region, plan['strategy'],
                 plan['bytes_to_move'])
        return plan

"""Who may do what with clone tasks: oslo.policy defaults, in code.

Sample: ``etc/policy.yaml.sample`` (``oslopolicy-sample-generator
--config-file etc/oslo-policy-generator/glance-clone.conf``; a unit test
keeps it current). Defaults: a member of a project creates clones in it and
sees and cancels its tasks; a reader sees them; an admin sees all.
"""
from oslo_policy import policy

ADMIN = 'role:admin'
PROJECT_MEMBER = 'role:member and project_id:%(project_id)s'
PROJECT_READER = 'role:reader and project_id:%(project_id)s'

CREATE = 'clone:task:create'
GET = 'clone:task:get'
LIST = 'clone:task:list'
LIST_ALL = 'clone:task:list_all_projects'
CANCEL = 'clone:task:cancel'
COPIES = 'clone:image:copies'

rules = [
    policy.RuleDefault('context_is_admin', ADMIN,
                       description='Who counts as a cloud admin.'),
    policy.RuleDefault('project_member', PROJECT_MEMBER,
                       description='A member of the target project.'),
    policy.RuleDefault('project_reader', PROJECT_READER,
                       description='A reader of the target project.'),
    policy.DocumentedRuleDefault(
        CREATE, 'rule:project_member or rule:context_is_admin',
        'Start a clone into the current project.',
        [{'method': 'POST', 'path': '/v2/tasks'}], scope_types=['project']),
    policy.DocumentedRuleDefault(
        GET, 'rule:project_reader or rule:context_is_admin',
        'Show a clone task (target: the task\'s owner project).',
        [{'method': 'GET', 'path': '/v2/tasks/{task_id}'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        LIST, 'rule:project_reader or rule:context_is_admin',
        'List the clone tasks of the current project.',
        [{'method': 'GET', 'path': '/v2/tasks'}], scope_types=['project']),
    policy.DocumentedRuleDefault(
        LIST_ALL, 'rule:context_is_admin',
        'List the clone tasks of every project.',
        [{'method': 'GET', 'path': '/v2/tasks'}], scope_types=['project']),
    policy.DocumentedRuleDefault(
        CANCEL, 'rule:project_member or rule:context_is_admin',
        'Cancel a pending or running clone (it reverts and ends failure).',
        [{'method': 'DELETE', 'path': '/v2/tasks/{task_id}'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        COPIES, 'rule:project_reader or rule:context_is_admin',
        'List the copies of an image across regions (each region\'s Glance '
        'shows only what the token may see).',
        [{'method': 'GET', 'path': '/v2/images/{image_id}/copies'}],
        scope_types=['project']),
]


def list_rules():
    return rules


def get_enforcer(conf):
    enforcer = policy.Enforcer(conf)
    enforcer.register_defaults(list_rules())
    return enforcer

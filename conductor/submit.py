"""Submitting a clone: the one seam between clone-api and the conductors.

:func:`submit_clone` turns a validated clone request into

1. a Keystone trust from the user to the clone service user (made with the
   user's token, which is then forgotten: never stored, never logged);
2. a task record (status ``pending``, id = the clone id);
3. an entry in its project's queue of pending clones in ZooKeeper
   (``conductor.jobboard.post_clone``; the task's ``job_id`` is the clone
   id, its job's uuid once a conductor starts it), when that module is
   installed; without it the task stays ``pending``.

If the job cannot be posted, the task ends ``failure`` at once and the trust
is deleted, so no task waits for a job that does not exist.  (A process
killed between 2 and 3 leaves a pending task without ``job_id`` and an
unused trust: ``clone-manage tasks fail-orphans`` ends such tasks
``failure`` and deletes their trusts.)

The per-project limit on running clones (``[conductor]
max_running_clones_per_project``) is the conductors' to enforce: excess
clones wait as ``pending``.  What may wait is bounded here: over ``[api]
max_pending_clones_per_project`` or ``[api] max_pending_clones``,
:class:`TooManyPending` is raised before any trust or record is made.
(Counted in the database before the trust is made, so requests of one
project arriving together may pass the cap by the API's concurrent
requests.)
"""
import logging
import time
import uuid

from keystoneauth1 import access as ks_access
from keystoneauth1.identity import access as access_plugin
from keystoneauth1.identity import v3

from clone_flows import auth
from conductor import confcache
from conductor.db import api as db_api
from conductor import jobboard
from conductor import runner

LOG = logging.getLogger(__name__)

#: The service user's id, per configuration object.
_TRUSTEE = confcache.PerConf()


class SubmitFailed(Exception):
    """The clone could not be queued; ``str()`` is a sentence for the user."""


class TooManyPending(Exception):
    """The project (or the service) has as many clones waiting as it may;
    ``str()`` is a sentence for the user.
    """


def check_pending(conf, owner):
    """:class:`TooManyPending` when ``owner`` may not queue one more clone."""
    per_project = conf.api.max_pending_clones_per_project
    if per_project:
        waiting = db_api.count_tasks(conf, owner, ('pending',))
        if waiting >= per_project:
            raise TooManyPending(
                f'project {owner} already has {waiting} clones waiting; '
                f'try again when some finish')
    overall = conf.api.max_pending_clones
    if overall:
        waiting = db_api.count_tasks(conf, None, ('pending',))
        if waiting >= overall:
            raise TooManyPending(
                f'the clone service already has {waiting} clones waiting '
                f'(all projects); try again when some finish')


class ClientTokenReused(Exception):
    """The project used this ``client_token`` for a clone of another input;
    ``str()`` is a sentence for the user.
    """

    def __init__(self, task):
        super().__init__(
            f"client_token already names task {task['id']}, created with "
            f"another input; use a new client_token for a new clone")
        self.task = task


def _same_request(task, task_input):
    """``task`` (found by client_token) if it was made from ``task_input``;
    :class:`ClientTokenReused` otherwise.
    """
    if task['input'] != task_input:
        raise ClientTokenReused(task)
    return task


def _trustee(conf):
    return _TRUSTEE.get(conf, lambda: auth.service_user_id(conf))


#: The service user's Keystone URL, per configuration object.
_KEYSTONE_URL = confcache.PerConf()


def _keystone_url(conf):
    """Where the user's token is used: the service user's Keystone."""
    return _KEYSTONE_URL.get(
        conf, lambda: auth.service_session(conf).auth.auth_url)


def user_auth_plugin(conf, context):
    """A keystoneauth plugin for the request's own token.

    When auth_token already validated it (``context.token_info``, its body),
    the token is used as is (no second trip to Keystone); otherwise a
    ``v3.Token`` plugin scoped to the request's project.
    """
    token_info = getattr(context, 'token_info', None)
    if token_info:
        access = ks_access.create(body=token_info,
                                  auth_token=context.auth_token)
        if access.project_id == context.project_id:
            return access_plugin.AccessInfoPlugin(
                access, auth_url=_keystone_url(conf))
    return v3.Token(auth_url=_keystone_url(conf), token=context.auth_token,
                    project_id=context.project_id)


def create_user_trust(conf, context):
    """A trust user -> clone service, delegating ``[clone] trust_roles`` on
    the request's project; built from the request's token
    (``context.auth_token``).  A user who lacks one of those roles is
    refused (:class:`clone_flows.exceptions.TrustRolesMissing`) before any
    call.
    """
    roles = auth.trust_roles(conf, context.project_id, context.roles)
    trustee = _trustee(conf)
    user_session = auth.user_session(conf, user_auth_plugin(conf, context))
    return auth.create_trust(user_session, trustee, context.project_id,
                             roles, conf.clone.trust_expiration_hours)


def submit_clone(conf, context, task_input):
    """Create the clone asked for by ``task_input`` (already validated,
    ``target_region`` filled in); return its task dict.

    With a ``client_token`` the project already used for the same input, the
    existing task is returned and nothing new is made (its ``request_id``
    then differs from ``context.request_id``); for another input,
    :class:`ClientTokenReused`.
    """
    owner = context.project_id
    token = task_input.get('client_token')
    if token is not None:
        existing = db_api.get_task_by_token(conf, owner, token)
        if existing is not None:
            return _same_request(existing, task_input)
    check_pending(conf, owner)
    clone_id = str(uuid.uuid4())
    t0 = time.monotonic()
    trust_id = create_user_trust(conf, context)
    t_trust = time.monotonic()
    values = {'id': clone_id, 'type': 'clone', 'status': 'pending',
              'owner': owner, 'user_id': context.user_id,
              'input': task_input, 'client_token': token,
              'trust_id': trust_id, 'request_id': context.request_id}
    try:
        task = db_api.create_task(conf, values)
    except db_api.DuplicateToken as e:
        auth.delete_trust(conf, trust_id)
        return _same_request(e.task, task_input)
    except Exception:
        auth.delete_trust(conf, trust_id)
        raise
    t_record = time.monotonic()
    request = dict(task_input, clone_id=clone_id)
    store = runner.build_store(conf, trust_id, request)
    try:
        job = jobboard.post_clone(conf, store, project_id=owner)
    except Exception:
        LOG.exception('Could not post the job of clone %s', clone_id)
        db_api.update_task(
            conf, clone_id, status='failure',
            message='the clone could not be queued (the job board did not '
                    'answer); nothing was done, try again')
        auth.delete_trust(conf, trust_id)
        raise SubmitFailed('the clone could not be queued; try again later')
    job_id = job if isinstance(job, str) else getattr(job, 'uuid', None)
    if job_id:
        task = db_api.update_task(conf, clone_id, job_id=str(job_id))
    t_job = time.monotonic()
    LOG.info('Clone %s queued: %s/%s -> %s (%.0f ms: trust %.0f, record '
             '%.0f, job %.0f)', clone_id, task_input['source_region'],
             task_input['source_image_id'], task_input['target_region'],
             (t_job - t0) * 1000, (t_trust - t0) * 1000,
             (t_record - t_trust) * 1000, (t_job - t_record) * 1000)
    return task


ORPHAN_MESSAGE = ('the clone was never queued (the API stopped while '
                  'accepting it); nothing was done, try again')


def fail_orphans(conf, older_than=300, now=None):
    """End tasks that stayed ``pending`` without a job for ``older_than``
    seconds (the API died between the record and the job); delete their
    trusts. Returns their ids. Only meaningful with a jobboard installed.
    """
    import datetime
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(
        tzinfo=None)
    cutoff = now - datetime.timedelta(seconds=older_than)
    ended = []
    for task in db_api.list_tasks(conf, status='pending', sort_dir='asc'):
        created = datetime.datetime.fromisoformat(
            task['created_at'].rstrip('Z'))
        if task['job_id'] or created > cutoff:
            continue
        db_api.update_task(conf, task['id'], status='failure',
                           message=ORPHAN_MESSAGE)
        if task['trust_id']:
            auth.delete_trust(conf, task['trust_id'])
        LOG.warning('Clone %s had no job after %ss: ended failure',
                    task['id'], older_than)
        ended.append(task['id'])
    return ended

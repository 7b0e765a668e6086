"""The user's view of a clone: its task record (status, message, result).

The conductor maps engine events onto it; a clone posted without a record
(for example by tests or by an operator) simply has none to update.  Each
change this conductor makes is also announced on the message bus when
notifications are configured (:mod:`conductor.notifications`).
"""
import datetime
import logging
import time

from clone_flows import constants as c
from conductor import notifications

LOG = logging.getLogger(__name__)


CANCEL_TOO_LATE = ('the cancel came too late: the copy had already been '
                   'revealed, so it stays')


class TaskRecords:
    """One conductor's writes to the task records, fenced: each clone's
    writes apply only while the attempt this conductor began is the latest
    and the task has not ended, so a paused or partitioned conductor that
    comes back can change neither a newer owner's progress nor an outcome.
    """

    def __init__(self, conf, notifier=None):
        self._conf = conf
        self._attempts = {}       # clone id -> the attempt this process runs
        self.notifier = notifier or notifications.Notifier(conf)

    def _api(self):
        from conductor.db import api
        return api

    def _update(self, clone_id, **values):
        api = self._api()
        fence = self._attempts.get(clone_id, True)
        try:
            return api.update_task(self._conf, clone_id, fence=fence, **values)
        except api.TaskNotFound:
            return None
        except Exception:
            LOG.exception('Could not update task record %s', clone_id)
            return None

    def get(self, clone_id):
        try:
            return self._api().get_task(self._conf, clone_id)
        except Exception:
            LOG.exception('Could not read task record %s', clone_id)
            return None

    def cancel_requested(self, clone_id):
        task = self.get(clone_id)
        return bool(task and task.get('cancel_requested'))

    def processing(self, clone_id):
        """This conductor begins an attempt at the clone (None: the task has
        ended or there is no record).
        """
        try:
            attempt = self._api().begin_attempt(self._conf, clone_id)
        except Exception:
            LOG.exception('Could not record the start of %s', clone_id)
            return None
        if attempt is not None:
            self._attempts[clone_id] = attempt
            if self.notifier.enabled:
                self.notifier.start(self.get(clone_id))
        return attempt

    def progress(self, clone_id, details):
        keys = ('bytes_done', 'bytes_total', 'percent', 'rate_bytes_per_s',
                'strategy')
        progress = {k: details.get(k) for k in keys}
        if clone_id in self._attempts:
            progress['attempt'] = self._attempts[clone_id]
        task = self._update(clone_id, result={'progress': progress})
        if self._applied(clone_id, task, 'processing'):
            self.notifier.progress(task, progress)
        return task

    def _applied(self, clone_id, task, status):
        """Whether this conductor's fenced write of ``status`` took effect
        (the record shows it, in this conductor's attempt).
        """
        if not task or task.get('status') != status:
            return False
        attempt = self._attempts.get(clone_id)
        return attempt is None or task.get('attempts') == attempt

    def finished(self, clone_id, outcome, started=None, trust_released=False):
        """Record how the clone ended.  ``trust_released``: its run deleted
        the trust (or found it gone); otherwise the record keeps the trust
        id for the sweep to delete.
        """
        task = self.get(clone_id) or {}
        released = {'trust_id': None} if trust_released else {}
        try:
            if outcome.succeeded:
                result = dict(outcome.result or {})
                if task.get('created_at'):
                    result['duration_s'] = round(time.time() - _epoch(
                        task['created_at']), 3)
                if started is not None:
                    result['attempt_duration_s'] = round(
                        time.time() - started, 3)
                if task.get('attempts'):
                    result['attempts'] = task['attempts']
                ended = self._update(
                    clone_id, status='success', result=result,
                    message=CANCEL_TOO_LATE if task.get('cancel_requested')
                    else '', **released)
                if self._ends_now(clone_id, task, ended, 'success'):
                    self.notifier.end(ended)
                return ended
            failed_step = c.STEP_NAMES.get(outcome.failed_step,
                                           outcome.failed_step)
            ended = self._update(clone_id, status='failure',
                                 message=outcome.message or 'the clone failed',
                                 result={'failed_step': failed_step},
                                 **released)
            if self._ends_now(clone_id, task, ended, 'failure'):
                self.notifier.error(ended, failed_step=failed_step)
            return ended
        finally:
            self._attempts.pop(clone_id, None)

    def failed(self, clone_id, message):
        try:
            before = self.get(clone_id) if self.notifier.enabled else None
            ended = self._update(clone_id, status='failure', message=message)
            if before and self._ends_now(clone_id, before, ended, 'failure'):
                self.notifier.error(ended)
            return ended
        finally:
            self._attempts.pop(clone_id, None)

    def _ends_now(self, clone_id, before, after, status):
        """Whether this write ended the clone: it had not ended before and
        the record now shows ``status`` in this conductor's attempt.
        """
        if (before or {}).get('status') in ('success', 'failure'):
            return False
        return self._applied(clone_id, after, status)

    def heartbeat(self):
        """Mark every clone this conductor runs as still running (their
        ``updated_at``); fenced like every write.
        """
        for clone_id in list(self._attempts):
            self._update(clone_id)

    def forget(self, clone_id):
        """This conductor no longer runs the clone (claim lost)."""
        self._attempts.pop(clone_id, None)


def _epoch(stamp):
    """Seconds since the epoch of a task's ISO 8601 UTC time."""
    return datetime.datetime.fromisoformat(stamp.rstrip('Z')).replace(
        tzinfo=datetime.timezone.utc).timestamp()

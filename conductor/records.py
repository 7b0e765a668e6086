"""The user's view of a clone: its task record (status, message, result).

The conductor maps engine events onto it; a clone posted without a record
(for example by tests or by an operator) simply has none to update.
"""
import logging
import time

from clone_flows import constants as c

LOG = logging.getLogger(__name__)


class TaskRecords:
    def __init__(self, conf):
        self._conf = conf

    def _api(self):
        from conductor.db import api
        return api

    def _update(self, clone_id, **values):
        api = self._api()
        try:
            return api.update_task(self._conf, clone_id, **values)
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

    def count_running(self, owner):
        try:
            return self._api().count_tasks(self._conf, owner, ('processing',))
        except Exception:
            LOG.exception('Could not count running clones of %s', owner)
            return 0

    def cancel_requested(self, clone_id):
        task = self.get(clone_id)
        return bool(task and task.get('cancel_requested'))

    def processing(self, clone_id):
        return self._update(clone_id, status='processing')

    def progress(self, clone_id, details):
        keys = ('bytes_done', 'bytes_total', 'percent', 'rate_bytes_per_s',
                'strategy')
        return self._update(clone_id, result={
            'progress': {k: details.get(k) for k in keys}})

    def finished(self, clone_id, outcome, started=None):
        if outcome.succeeded:
            result = dict(outcome.result or {})
            if started is not None:
                result['duration_s'] = round(time.time() - started, 3)
            return self._update(clone_id, status='success', message='',
                                result=result)
        return self._update(clone_id, status='failure',
                            message=outcome.message or 'the clone failed',
                            result={'failed_step': c.STEP_NAMES.get(
                                outcome.failed_step, outcome.failed_step)})

    def failed(self, clone_id, message):
        return self._update(clone_id, status='failure', message=message)

"""Notifications of clones on the message bus, as OpenStack services send
theirs (oslo.messaging).

Event types: ``image.clone.start`` (a conductor begins an attempt),
``image.clone.progress`` (at most one per clone every ``[notifications]
progress_interval`` seconds), ``image.clone.end`` (success; also a dry run
and a reused copy) and ``image.clone.error`` (failure, a cancel included),
from publisher ``glance-clone.<host>``, INFO priority except
``image.clone.error`` (ERROR).

They are off unless ``[oslo_messaging_notifications] driver`` names a
driver (``messagingv2``); ``transport_url`` (``[DEFAULT]``, or
``[oslo_messaging_notifications] transport_url``) names the broker and
``[oslo_messaging_notifications] topics`` the topics (default
``notifications``).  These options are oslo.messaging's own.

The payload holds ids, regions, counts and the user's one-sentence error:
never a trust id, a token, an image location or a URL.

Events are sent by one background thread in the order they were made, so a
broker that is slow or down never holds up a clone: while it cannot keep up,
up to ``[notifications] queue_size`` events wait and newer ones are dropped
(and logged).
"""
import atexit
import datetime
import logging
import queue
import socket
import threading
import time

from oslo_config import cfg

LOG = logging.getLogger(__name__)

START = 'image.clone.start'
PROGRESS = 'image.clone.progress'
END = 'image.clone.end'
ERROR = 'image.clone.error'

notification_opts = [
    cfg.FloatOpt('progress_interval', default=30.0, min=0,
                 help='Seconds at least between two image.clone.progress '
                      'notifications of one clone (0: none are sent). '
                      'Notifications are sent when [oslo_messaging_'
                      'notifications] driver is set.'),
    cfg.IntOpt('queue_size', default=1000, min=1,
               help='Notifications that may wait for a slow or unreachable '
                    'broker; newer ones are dropped (and logged) while '
                    'this many wait.'),
]

#: How long an exiting process waits for its last notifications to leave.
FLUSH_SECONDS = 5.0


def register_opts(conf):
    conf.register_opts(notification_opts, group='notifications')


def list_opts():
    return [('notifications', notification_opts)]


def _messaging_opts():
    import oslo_messaging.opts
    return oslo_messaging.opts.list_opts()


def enabled(conf):
    """Whether ``conf`` names a notification driver other than noop."""
    for group, opts in _messaging_opts():
        if group == 'oslo_messaging_notifications':
            conf.register_opts(opts, group=group)
    drivers = [d for d in conf.oslo_messaging_notifications.driver
               if d and d != 'noop']
    return bool(drivers)


def _epoch(stamp):
    return datetime.datetime.fromisoformat(stamp.rstrip('Z')).replace(
        tzinfo=datetime.timezone.utc).timestamp()


def payload(task, **extra):
    """The payload of a clone's event, from its task record (and ``extra``:
    bytes, strategy, copy id, error...).  Only these keys, never a trust
    id, a token, a location or a URL.
    """
    task_input = task.get('input') if isinstance(task.get('input'), dict) \
        else {}
    body = {
        'clone_id': task.get('id'),
        'project_id': task.get('owner'),
        'user_id': task.get('user_id'),
        'request_id': task.get('request_id'),
        'source_region': task_input.get('source_region'),
        'target_region': task_input.get('target_region'),
        'source_image_id': task_input.get('source_image_id'),
        'image_id': None,
        'dry_run': bool(task_input.get('dry_run')),
        'attempt': task.get('attempts'),
        'status': task.get('status'),
    }
    if task.get('created_at'):
        body['duration_s'] = round(time.time() - _epoch(task['created_at']),
                                   3)
    body.update(extra)
    return body


class Notifier:
    """Sends a conductor's clone events (when a driver is configured)."""

    def __init__(self, conf, host=None):
        self._conf = conf
        register_opts(conf)
        self.enabled = enabled(conf)
        self._last_progress = {}      # clone id -> monotonic time of the last
        self._queue = None
        if not self.enabled:
            return
        import oslo_messaging
        transport = oslo_messaging.get_notification_transport(conf)
        self._notifier = oslo_messaging.Notifier(
            transport,
            publisher_id=f'glance-clone.{host or socket.gethostname()}')
        self._queue = queue.Queue(maxsize=conf.notifications.queue_size)
        self._thread = threading.Thread(target=self._send_loop,
                                        name='clone-notifications',
                                        daemon=True)
        self._thread.start()
        atexit.register(self.flush, FLUSH_SECONDS)

    # -- sending -------------------------------------------------------------

    def _emit(self, priority, event_type, body):
        try:
            self._queue.put_nowait((priority, event_type, body))
        except queue.Full:
            LOG.warning('Notification %s of clone %s dropped: %d wait for '
                        'the message bus', event_type, body.get('clone_id'),
                        self._queue.qsize())

    def _send_loop(self):
        while True:
            priority, event_type, body = self._queue.get()
            try:
                getattr(self._notifier, priority)({}, event_type, body)
            except Exception:
                LOG.exception('Could not send notification %s of clone %s',
                              event_type, body.get('clone_id'))
            finally:
                self._queue.task_done()

    def flush(self, timeout=FLUSH_SECONDS):
        """Wait up to ``timeout`` seconds for the waiting events to leave;
        True when none waits.
        """
        if self._queue is None:
            return True
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # -- events ---------------------------------------------------------------

    def start(self, task):
        if self.enabled and task:
            self._last_progress.pop(task.get('id'), None)
            self._emit('info', START, payload(task))

    def progress(self, task, progress):
        """A progress event, unless one of this clone was sent less than
        ``progress_interval`` seconds ago.
        """
        interval = self._conf.notifications.progress_interval
        if not self.enabled or not task or not interval:
            return
        now = time.monotonic()
        last = self._last_progress.get(task.get('id'))
        if last is not None and now - last < interval:
            return
        self._last_progress[task.get('id')] = now
        self._emit('info', PROGRESS, payload(
            task, bytes_done=progress.get('bytes_done'),
            bytes_total=progress.get('bytes_total'),
            percent=progress.get('percent'),
            rate_bytes_per_s=progress.get('rate_bytes_per_s'),
            strategy=progress.get('strategy')))

    def end(self, task):
        if not self.enabled or not task:
            return
        self._last_progress.pop(task.get('id'), None)
        result = task.get('result') if isinstance(task.get('result'), dict) \
            else {}
        extra = {'image_id': result.get('image_id'),
                 'bytes': result.get('size'),
                 'strategy': (result.get('copy') or {}).get('strategy')
                 if isinstance(result.get('copy'), dict) else None,
                 'reused': bool(result.get('reused'))}
        if result.get('duration_s') is not None:
            extra['duration_s'] = result['duration_s']
        if task_input_dry_run(task):
            extra['strategy'] = result.get('strategy')
            extra['bytes'] = result.get('bytes_to_move')
        self._emit('info', END, payload(task, **extra))

    def error(self, task, failed_step=None):
        if not self.enabled or not task:
            return
        self._last_progress.pop(task.get('id'), None)
        self._emit('error', ERROR, payload(
            task, error=task.get('message') or 'the clone failed',
            failed_step=failed_step))


def task_input_dry_run(task):
    return isinstance(task.get('input'), dict) and \
        bool(task['input'].get('dry_run'))

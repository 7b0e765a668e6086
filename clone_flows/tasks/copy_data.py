import logging
import time

from taskflow import task

from clone_flows import constants as c
from clone_flows import exceptions
from clone_flows.stores import base
from clone_flows.tasks import common

LOG = logging.getLogger(__name__)


class CopyData(common.Task):
    """Moves the image's bytes with the planned store strategy.

    Reports progress (bytes done/total, rate) through TaskFlow's progress
    events, throttled; their details double as the checkpoint a resumed run
    receives, and each report asks whether the clone may go on (claim,
    cancellation).  A strategy that copied into the target store directly
    returns a location, attached here with the source's hashes as
    validation data.
    Reversion strategy: the strategy removes whatever partial data it wrote;
    the reserved image itself goes with ReserveImage's revert.
    """

    def __init__(self, progress_interval=1.0):
        super().__init__(
            name=c.COPY_DATA, provides=c.COPY_RESULT,
            requires=[c.SERVICES, c.CLONE_ID, c.SOURCE_REGION, c.TARGET_REGION,
                      c.SOURCE_IMAGE, c.TARGET_IMAGE_ID, c.COPY_PLAN])
        self._interval = progress_interval

    def _job(self, services, clone_id, source_region, target_region,
             source_image, target_image_id):
        return base.CopyJob(source=services.glance(source_region),
                            target=services.glance(target_region),
                            source_image=source_image,
                            target_image_id=target_image_id, clone_id=clone_id)

    def execute(self, services, clone_id, source_region, target_region,
                source_image, target_image_id, copy_plan, checkpoint=None):
        services.proceed()
        strategy = services.strategies()[copy_plan['strategy']]
        job = self._job(services, clone_id, source_region, target_region,
                        source_image, target_image_id)
        reporter = _Reporter(self, copy_plan['strategy'], self._interval,
                             lambda: services.proceed(in_step=True))
        outcome = strategy.copy(job, reporter, checkpoint=checkpoint)
        reporter.finish()
        if outcome.location:
            # Glance 33 accepts only the hash as validation data (no md5)
            job.target.add_location(target_image_id, outcome.location, {
                'os_hash_algo': source_image.get('os_hash_algo'),
                'os_hash_value': source_image.get('os_hash_value'),
            })
        result = outcome.to_dict()
        result.update(strategy=copy_plan['strategy'],
                      seconds=round(reporter.elapsed, 3))
        return result

    def revert(self, services, clone_id, source_region, target_region,
               source_image, target_image_id, copy_plan, checkpoint=None,
               **kwargs):
        services.proceed(reverting=True)
        strategy = services.strategies().get(copy_plan['strategy'])
        if strategy is None:
            return
        job = self._job(services, clone_id, source_region, target_region,
                        source_image, target_image_id)
        try:
            strategy.cleanup(job, checkpoint=checkpoint)
        except exceptions.CloneError as e:
            LOG.warning('Clone %s: cleanup of %s data failed: %s', clone_id,
                        copy_plan['strategy'], e)
            raise


class _Reporter:
    """The progress callback a strategy calls: (bytes_done, total, checkpoint).

    Emits TaskFlow progress events at most every ``interval`` seconds (and
    always for a checkpoint or the end), with bytes, percent and rate.
    """

    def __init__(self, task_, strategy, interval, proceed):
        self._task = task_
        self._proceed = proceed
        self._strategy = strategy
        self._interval = interval
        self._start = time.monotonic()
        self._last = 0.0
        self._done = 0
        self._total = 0
        self._checkpoint = None

    @property
    def elapsed(self):
        return time.monotonic() - self._start

    def __call__(self, bytes_done, bytes_total, checkpoint=None):
        self._done, self._total = bytes_done, bytes_total
        if checkpoint is not None:
            self._checkpoint = checkpoint
        now = time.monotonic()
        if checkpoint is not None or now - self._last >= self._interval:
            self._last = now
            self._emit()
        # Still ours, still wanted?  Raises to stop the copy mid-way; cheap
        # enough to ask on every chunk (the guard caches its slow checks).
        self._proceed()

    def finish(self):
        self._emit(final=True)

    def _emit(self, final=False):
        elapsed = max(self.elapsed, 1e-6)
        total = self._total
        fraction = 1.0 if final or not total else min(self._done / total, 1.0)
        details = {
            'progress': fraction,
            'bytes_done': self._done,
            'bytes_total': total,
            'percent': round(fraction * 100, 1),
            'rate_bytes_per_s': int(self._done / elapsed),
            'strategy': self._strategy,
        }
        if self._checkpoint is not None:
            details['checkpoint'] = self._checkpoint
        self._task.notifier.notify(task.EVENT_UPDATE_PROGRESS, details)

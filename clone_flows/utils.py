"""Small helpers shared by tasks."""
import logging
import time

from clone_flows import exceptions

LOG = logging.getLogger(__name__)


def keep_trying(fn, what, timeout, first_delay=0.5, max_delay=5.0,
                retry_on=(exceptions.ServiceUnavailable,)):
    """Call ``fn`` until it succeeds or ``timeout`` seconds have passed.

    For reverts and cleanups: a region that blinks must not leave debris.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        try:
            return fn()
        except retry_on as e:
            if time.monotonic() + delay > deadline:
                raise
            LOG.warning('%s failed (%s); trying again in %.1fs', what, e, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)

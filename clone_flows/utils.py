"""Small helpers shared by tasks."""
import logging
import time

from clone_flows import exceptions

LOG = logging.getLogger(__name__)


def keep_trying(fn, what, timeout, first_delay=0.5, max_delay=5.0,
                retry_on=(exceptions.ServiceUnavailable,), retry_if=None):
    """Call ``fn`` until it succeeds or ``timeout`` seconds have passed,
    while it raises ``retry_on`` (and ``retry_if(exc)`` holds, if given).

    For steps, reverts and cleanups: a region that blinks must neither fail
    a clone nor leave debris.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        try:
            return fn()
        except retry_on as e:
            if (retry_if is not None and not retry_if(e)) or \
                    time.monotonic() + delay > deadline:
                raise
            LOG.warning('%s failed (%s); trying again in %.1fs', what, e,
                        delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)

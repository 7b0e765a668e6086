"""Conductor decisions that need no ZooKeeper: when the conductor looks at
the board again.
"""
from conductor.worker import guards


class _Watches:
    """Stands for kazoo's ChildrenWatch: keeps the callback."""

    def __init__(self, client, path, func, allow_session_lost):
        self.func = func


class _Event:
    """Stands for the watch's threading.Event: records each pause asked
    for (its timeout, and whether a change had been seen), without waiting.
    """

    def __init__(self):
        self.flag = False
        self.pauses = []

    def set(self):
        self.flag = True

    def clear(self):
        self.flag = False

    def is_set(self):
        return self.flag

    def wait(self, timeout=None):
        self.pauses.append((timeout, self.flag))
        return self.flag


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _board_watch(monkeypatch):
    """A BoardWatch of 60 s on an injected clock; (watch, on_children,
    clock): the pauses it asks for are in ``watch._changed.pauses``.
    """
    watches, clock = [], _Clock()
    monkeypatch.setattr(guards.kz_watchers, 'ChildrenWatch',
                        lambda *a, **kw: watches.append(_Watches(*a, **kw)))
    monkeypatch.setattr(guards.time, 'monotonic', clock)
    wait = guards.BoardWatch(object(), '/board', 60.0, settle=0.5,
                             settle_step=0.02)
    wait._changed = _Event()
    return wait, watches[0].func, clock


def test_board_watch_looks_again_soon_after_a_new_job(monkeypatch):
    wait, on_children, clock = _board_watch(monkeypatch)
    on_children(['job1', 'job1.lock'])          # what is there at start
    on_children(['job1', 'job1.lock', 'job2'])  # job2 posted: wakes it
    wait.wait()
    # The board may not list job2 yet: the next pauses are short ...
    wait.wait()
    clock.now += 0.4
    wait.wait()
    # ... and only for a while.
    clock.now += 0.2
    wait.wait()
    assert wait._changed.pauses == [(0.02, True), (0.02, False),
                                    (0.02, False), (60.0, False)]


def test_board_watch_wakes_when_a_claim_is_released(monkeypatch):
    wait, on_children, _ = _board_watch(monkeypatch)
    on_children(['job1', 'job1.lock'])
    on_children(['job1'])                        # released or expired
    wait.wait()
    assert wait._changed.pauses == [(0.02, True)]


def test_board_watch_ignores_new_claims(monkeypatch):
    wait, on_children, _ = _board_watch(monkeypatch)
    on_children(['job1'])
    on_children(['job1', 'job1.lock'])           # claimed by someone
    wait.wait()
    assert wait._changed.pauses == [(60.0, False)]


def test_reopening_log_files_writes_to_the_new_file_after_rotation(tmp_path):
    import logging

    from conductor.worker import service
    path = tmp_path / 'glance-clone.log'
    handler = logging.FileHandler(path)
    log = logging.getLogger()
    log.addHandler(handler)
    try:
        log.warning('before rotation')
        path.rename(tmp_path / 'glance-clone.log.1')      # logrotate
        service.reopen_log_files()                        # SIGHUP
        log.warning('after rotation')
        handler.flush()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert path.read_text().strip() == 'after rotation'
    assert (tmp_path / 'glance-clone.log.1').read_text().strip() == \
        'before rotation'

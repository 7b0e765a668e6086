"""Conductor decisions that need no ZooKeeper: the per-project limit and
when the conductor looks at the board again."""
from conductor.worker import conductor as worker
from conductor.worker import guards


class Records:
    def __init__(self, tasks, running):
        self.tasks = tasks
        self.running = running

    def get(self, clone_id):
        return self.tasks.get(clone_id)

    def count_running(self, owner):
        return self.running.get(owner, 0)


def _conductor(conf, records):
    cond = object.__new__(worker.CloneConductor)
    cond.conf = conf
    cond.records = records
    return cond


def test_a_project_at_its_limit_waits_pending(conf):
    conf.set_override('max_running_clones_per_project', 2, group='conductor')
    records = Records({'c1': {'status': 'pending', 'owner': 'p1'},
                       'c2': {'status': 'pending', 'owner': 'p2'}},
                      {'p1': 2, 'p2': 1})
    cond = _conductor(conf, records)
    assert cond._must_wait('c1') is True
    assert cond._must_wait('c2') is False


def test_resumed_clones_and_clones_without_records_never_wait(conf):
    conf.set_override('max_running_clones_per_project', 1, group='conductor')
    records = Records({'c1': {'status': 'processing', 'owner': 'p1'}},
                      {'p1': 5})
    cond = _conductor(conf, records)
    assert cond._must_wait('c1') is False      # already running: resume it
    assert cond._must_wait('unknown') is False


def test_zero_means_no_limit(conf):
    conf.set_override('max_running_clones_per_project', 0, group='conductor')
    records = Records({'c1': {'status': 'pending', 'owner': 'p1'}}, {'p1': 99})
    assert _conductor(conf, records)._must_wait('c1') is False


class _Watches:
    """Stands for kazoo's ChildrenWatch: keeps the callback."""

    def __init__(self, client, path, func, allow_session_lost):
        self.func = func


class _Event:
    """Stands for the watch's threading.Event: records each pause asked
    for (its timeout, and whether a change had been seen), without waiting."""

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
    clock): the pauses it asks for are in ``watch._changed.pauses``."""
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

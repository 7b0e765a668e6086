"""Conductor decisions that need no ZooKeeper: the per-project limit."""
from conductor import worker


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


def _returns_within(fn, seconds):
    import threading
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def test_board_watch_looks_again_soon_after_a_new_job(monkeypatch):
    watches = []
    monkeypatch.setattr(worker.kz_watchers, 'ChildrenWatch',
                        lambda *a, **kw: watches.append(_Watches(*a, **kw)))
    wait = worker.BoardWatch(object(), '/board', 60.0)
    on_children = watches[0].func
    on_children(['job1', 'job1.lock'])          # what is there at start
    on_children(['job1', 'job1.lock', 'job2'])  # job2 posted: wakes it
    assert _returns_within(wait.wait, 5)
    # The board may not list job2 yet: the next pauses are short ...
    assert _returns_within(wait.wait, 5)
    assert _returns_within(wait.wait, 5)
    # ... and only for a while.
    wait._settle_until = 0.0
    assert not _returns_within(wait.wait, 0.5)
    wait.interrupt()


def test_board_watch_ignores_new_claims(monkeypatch):
    watches = []
    monkeypatch.setattr(worker.kz_watchers, 'ChildrenWatch',
                        lambda *a, **kw: watches.append(_Watches(*a, **kw)))
    wait = worker.BoardWatch(object(), '/board', 60.0)
    watches[0].func(['job1'])
    watches[0].func(['job1', 'job1.lock'])       # claimed by someone
    assert not _returns_within(wait.wait, 0.5)
    wait.interrupt()

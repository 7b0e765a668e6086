"""The fair order of pending clones (conductor.pending.Index), fed as its
ZooKeeper watches would feed it.
"""
import json
import uuid

from conductor import pending


class _Stat:
    def __init__(self, version):
        self.version = version


def _entry(millis, seq=0):
    return f'p{millis:013d}-{uuid.uuid4()}-{seq:010d}'


def _running(clones, last_start_ms=0):
    return json.dumps({'clones': clones,
                       'last_start_ms': last_start_ms}).encode()


def _index(queues, running=None, last_starts=None):
    index = pending.Index(client=None, board_path='/b')
    for node, entries in queues.items():
        index._on_queue(node, entries)
    for node, clones in (running or {}).items():
        index._on_running(node, _running(
            clones, (last_starts or {}).get(node, 0)), _Stat(1))
    return index


def test_entry_names_carry_the_posting_time_and_the_clone_id():
    clone_id = str(uuid.uuid4())
    name = f'p{1700000000123:013d}-{clone_id}-0000000007'
    assert pending.parse_entry(name) == (1700000000123, clone_id)
    assert pending.parse_entry('job0000000001') is None
    assert pending.parse_entry(f'p12-{clone_id}-0000000007') is None


def test_the_project_running_fewest_goes_first_whatever_its_backlog():
    a = [_entry(1000 + i, i) for i in range(30)]
    b = [_entry(5000)]
    index = _index({'A': a, 'B': b}, {'A': {'x': 'jobx'}})
    assert index.order(limit=0) == [('B', b[0]), ('A', a[0])]


def test_ties_go_to_the_project_whose_oldest_clone_waited_longest():
    a, b = [_entry(2000), _entry(3000)], [_entry(1000)]
    assert _index({'A': a, 'B': b}).order(limit=4) == [('B', b[0]),
                                                       ('A', a[0])]


def test_the_least_recently_served_project_goes_first_among_equals():
    """Round robin among projects running as many: N never started a
    clone, so it goes before A, whose backlog is older but which started
    one lately; of A and B, the one served longer ago goes first.
    """
    a, b = [_entry(1000 + i, i) for i in range(50)], [_entry(1500)]
    n = [_entry(9000)]
    index = _index({'A': a, 'B': b, 'N': n}, {'A': {}, 'B': {}},
                   last_starts={'A': 9500, 'B': 9400})
    assert index.order(limit=0) == [('N', n[0]), ('B', b[0]), ('A', a[0])]


def test_projects_at_their_running_limit_are_not_offered():
    a, b = [_entry(1000)], [_entry(2000)]
    index = _index({'A': a, 'B': b},
                   {'A': {'x': 'jobx', 'y': 'joby'}, 'B': {'z': 'jobz'}})
    assert index.order(limit=2) == [('B', b[0])]
    assert index.at_limit(2) == {'A': {'x': 'jobx', 'y': 'joby'}}
    assert index.order(limit=0) == [('B', b[0]), ('A', a[0])]


def test_an_entry_tried_is_skipped_for_the_next_of_its_project():
    a = [_entry(1000, 0), _entry(1000, 1)]
    index = _index({'A': a})
    assert index.order(limit=0, skip={a[0]}) == [('A', a[1])]
    assert index.order(limit=0, skip=set(a)) == []


def test_an_older_running_version_does_not_overwrite_a_newer_one():
    index = _index({'A': [_entry(1)]})
    index.note_running('A', pending.Running({'x': 'jobx'}, 5, 5))
    index._on_running('A', _running({}), _Stat(4))
    assert index.running('A') == {'x': 'jobx'}
    index._on_running('A', _running({}), _Stat(6))
    assert index.running('A') == {}


def test_a_running_node_round_trips():
    node = pending.Running({'c': 'jobc'}, 1234, 7)
    assert pending.Running.decode(node.encode(), 7) == node
    assert pending.Running.decode(b'', 0) == pending.Running({}, 0, 0)


def test_project_ids_become_one_znode_name_and_back():
    for project in ('0123abcd', 'a/b c%', 'ü'):
        node = pending.project_node(project)
        assert '/' not in node
        assert pending.project_of(node) == project


def test_a_clone_has_one_job_name_ever():
    clone_id = str(uuid.uuid4())
    name = pending.job_name(clone_id)
    assert name == pending.job_name(clone_id.upper())
    assert name.startswith('job') and int(name[3:]) == uuid.UUID(clone_id).int


def test_watches_feed_the_index_as_kazoo_calls_them(monkeypatch):
    """kazoo's DataWatch calls its function with (data, stat, event)."""
    made = []

    class Watch:
        def __init__(self, client, path, func, **kw):
            made.append((path, func))
    monkeypatch.setattr(pending.kz_watchers, 'ChildrenWatch', Watch)
    monkeypatch.setattr(pending.kz_watchers, 'DataWatch', Watch)
    index = pending.Index(client=None, board_path='/b')
    index._on_projects(['A'])
    funcs = dict(made)
    entry = _entry(1000)
    funcs['/b.pending/A']([entry])
    funcs['/b.running/A'](_running({'x': 'jobx'}), _Stat(3), object())
    assert index.running('A') == {'x': 'jobx'}
    assert index.order(limit=2) == [('A', entry)]
    assert index.order(limit=1) == []

"""The fair board on the real ZooKeeper, without conductors: two boards on
two clients stand for conductors on two hosts.  Clones are posted with
``conductor.jobboard.Poster`` as clone-api posts them (nothing runs them,
so their trust id is a placeholder).
"""
import contextlib
import uuid

import pytest
from taskflow import exceptions as tf_exc

from conductor import jobboard
from conductor import pending
from conductor import runner
from tests.functional.test_conductors import Conductors
from tests.functional.test_conductors import wait_for


@pytest.fixture
def board_env(cloud, tmp_path):
    cs = Conductors(cloud, tmp_path)
    conf = cs.conf()
    clients, boards = [], []
    poster = jobboard.Poster(conf)

    def post(project, **request):
        store = runner.build_store(conf, 'trust-placeholder', dict(
            {'source_region': 'RegionOne',
             'source_image_id': str(uuid.uuid4()),
             'target_region': 'RegionTwo'}, **request))
        poster.post(store, project_id=project)
        return store['clone_id']

    def board(name, limit):
        client = jobboard.make_client(conf)
        client.start(timeout=20)
        clients.append(client)
        b = jobboard.FairJobBoard(name, {'path': conf.jobboard.path},
                                  client=client, persistence=cs.backend(),
                                  max_running=limit)
        b.connect()
        boards.append(b)
        return b

    try:
        yield {'conf': conf, 'post': post, 'board': board, 'cs': cs}
    finally:
        for b in boards:
            b.close()
        poster.close()
        for client in clients:
            with contextlib.suppress(Exception):
                path = conf.jobboard.path
                for p in (path, path + '.pending', path + '.running'):
                    client.delete(p, recursive=True)
            client.stop()
            client.close()
        cs.stop_all()


def _sees(board, n_projects):
    board.iterjobs()           # starts its watches
    wait_for(lambda: len(board.index.order(0)) == n_projects,
             what='the board to see every project')


def _claim_first(board, who):
    """Claim what the board offers, in its order, until one is started:
    ``(job, refused)``.
    """
    refused = 0
    for job in board.iterjobs():
        try:
            board.claim(job, who)
            return job, refused
        except tf_exc.UnclaimableJob:
            refused += 1
    return None, refused


def test_two_boards_never_both_take_a_projects_last_slot(board_env):
    """Limit 1; p1 posted 3 clones before p2 posted 1.  Both boards offer
    p1's oldest first; one starts it, the other's start of the same clone
    fails whole, its start of p1's next is refused for the limit (no
    claim made), and it starts p2's.
    """
    post, board = board_env['post'], board_env['board']
    p1 = [post('p1') for _ in range(3)]
    p2 = post('p2')
    one, two = board('one', 1), board('two', 1)
    _sees(one, 2)
    _sees(two, 2)
    first_one, first_two = next(one.iterjobs()), next(two.iterjobs())
    assert first_one.uuid == first_two.uuid == p1[0]
    one.claim(first_one, 'one')
    with pytest.raises(tf_exc.UnclaimableJob):
        two.claim(first_two, 'two')
    job, refused = _claim_first(two, 'two')
    assert job.uuid == p2 and refused <= 1
    client = one.client
    path = board_env['conf'].jobboard.path
    running = {p: pending.read_running(client, path, p).clones
               for p in ('p1', 'p2')}
    assert running == {'p1': {p1[0]: pending.job_name(p1[0])},
                       'p2': {p2: pending.job_name(p2)}}
    jobs = sorted(n for n in client.get_children(path) if '.lock' not in n)
    assert jobs == sorted(pending.job_name(c) for c in (p1[0], p2))
    assert one.find_owner(first_one) == 'one' and two.find_owner(job) == 'two'
    left = client.get_children(f'{pending.pending_root(path)}/p1')
    assert sorted(pending.parse_entry(n)[1] for n in left) == sorted(p1[1:])


def test_a_clones_end_frees_its_projects_slot(board_env):
    """Limit 1: while p1's first clone runs its second is not even offered;
    once the first is consumed, the second starts.
    """
    post, board = board_env['post'], board_env['board']
    clones = [post('p1') for _ in range(2)]
    one = board('one', 1)
    _sees(one, 1)
    job, _ = _claim_first(one, 'one')
    assert job.uuid == clones[0]
    assert _claim_first(one, 'one') == (None, 0)   # at the limit: not offered
    one.consume(job, 'one')
    wait_for(lambda: one.index.running('p1') == {},
             what='the board to see the slot free')
    job, refused = _claim_first(one, 'one')
    assert job.uuid == clones[1] and refused == 0


def test_queue_entries_and_jobs_hold_ids_only(board_env):
    """A clone with ~110 KiB of properties: nothing of them is in
    ZooKeeper (queue entry, running node, job, claim), all of it in the
    flow's store in the persistence database.
    """
    post, board = board_env['post'], board_env['board']
    marker = 'MARKER-' + uuid.uuid4().hex
    properties = {f'p{i:04d}': marker + 'x' * 50 for i in range(1300)}
    clone_id = post('p1', properties=properties)
    one = board('one', 0)
    _sees(one, 1)
    client, path = one.client, board_env['conf'].jobboard.path
    before = _znodes(client, path)
    job, _ = _claim_first(one, 'one')
    assert job.uuid == clone_id
    after = _znodes(client, path)
    for data in list(before.values()) + list(after.values()):
        assert marker.encode() not in data
        assert len(data) < 1024
    job_data = after[f'{path}/{pending.job_name(clone_id)}']
    assert b'"details": {"flow_uuid": "' + clone_id.encode() in job_data
    _, fd = runner.load_flow(board_env['cs'].backend(), clone_id)
    assert fd.meta['store']['overrides']['properties'] == properties


def _znodes(client, path):
    """Data of every znode of the board, its queues and running nodes."""
    out = {}

    def walk(node):
        data, _ = client.get(node)
        out[node] = data or b''
        for child in client.get_children(node):
            walk(f'{node}/{child}')
    for root in (path, pending.pending_root(path),
                 pending.running_root(path)):
        if client.exists(root):
            walk(root)
    return out

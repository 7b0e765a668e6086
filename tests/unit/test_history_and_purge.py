"""The transition history conductors record, and the purge of finished
clones' flow records.
"""
import contextlib

import sqlalchemy as sa
import taskflow.engines
from taskflow.patterns import linear_flow
import taskflow.storage
from taskflow import task as tf_task

from conductor import flowstate
from conductor import flowtables
from conductor import persistence
from conductor import purge
from conductor.worker import history
from tests.unit import clones


class Ok(tf_task.Task):
    def execute(self):
        return {'id': 'x', 'password': 'hunter2'}


class Fails(tf_task.Task):
    def execute(self):
        raise RuntimeError('no')


def _run(backend, flow, recorder_name='cond-1'):
    engine = taskflow.engines.load(flow, backend=backend, engine='serial')
    with history.HistoryRecorder(engine, recorder_name):
        with contextlib.suppress(RuntimeError):
            engine.run()
    return engine.storage.flow_uuid


def _fd(backend, uuid):
    with contextlib.closing(backend.get_connection()) as conn:
        return conn.get_flow_details(uuid)


def test_history_records_each_transition_in_order_with_its_conductor(conf):
    backend = persistence.get_backend(conf)
    uuid = _run(backend, linear_flow.Flow('f').add(Ok('a'), Fails('b')))
    entries = flowtables.entries(_fd(backend, uuid).meta)
    got = [(e['kind'], e['name'], e['state']) for e in entries]
    assert got == [
        ('flow', 'f', 'RUNNING'),
        ('task', 'a', 'RUNNING'), ('task', 'a', 'SUCCESS'),
        ('task', 'b', 'RUNNING'), ('task', 'b', 'FAILURE'),
        ('task', 'b', 'REVERTING'), ('task', 'b', 'REVERTED'),
        ('task', 'a', 'REVERTING'), ('task', 'a', 'REVERTED'),
        ('flow', 'f', 'REVERTED')]
    assert {e['conductor'] for e in entries} == {'cond-1'}
    times = [e['time'] for e in entries]
    assert times == sorted(times)


def test_history_keeps_the_newest_entries_within_its_bound(conf, monkeypatch):
    monkeypatch.setattr(history, 'MAX_ENTRIES', 6)
    backend = persistence.get_backend(conf)
    uuid = _run(backend, linear_flow.Flow('f').add(Ok('a'), Fails('b')))
    meta = _fd(backend, uuid).meta
    entries = flowtables.entries(meta)
    assert len(entries) <= 6
    assert entries[-1]['state'] == 'REVERTED' and entries[-1]['kind'] == 'flow'
    assert meta[history.DROPPED] == 10 - len(entries)   # as above


def test_flow_rows_summarize_results_without_secrets(conf):
    backend = persistence.get_backend(conf)
    uuid = _run(backend, linear_flow.Flow('f').add(Ok('a')))
    [row] = flowstate.atom_rows(flowtables.load(backend.engine, uuid),
                                names=['a'])
    assert row['result'] == 'id=x'
    assert 'hunter2' not in str(row)
    assert row['attempts'] == 1 and row['duration_s'] is not None


def _count(backend, table):
    with backend.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(
            getattr(backend.tables, table))).scalar_one()


def test_purge_removes_finished_clones_and_keeps_running_and_unswept(conf):
    backend = persistence.get_backend(conf)
    keep = {
        'running': clones.stored_clone(conf, backend, 'RUNNING'),
        'pending': clones.stored_clone(conf, backend, 'PENDING'),
        'awaits sweep': clones.stored_clone(
            conf, backend, 'FAILURE', meta={'needs_sweep': 'revert failed'}),
    }
    go = {
        'success': clones.stored_clone(conf, backend, 'SUCCESS'),
        'reverted': clones.stored_clone(conf, backend, 'REVERTED'),
        'gave up': clones.stored_clone(conf, backend, 'RUNNING',
                                       meta={'gave_up': 'poison'}),
        'swept': clones.stored_clone(
            conf, backend, 'FAILURE',
            meta={'needs_sweep': 'x', 'swept_at': 1.0}),
    }
    # a user's property named like the mark does not make a clone finished
    store = dict(keep['running'].meta['store'],
                 clone_id='6a3c9d0e-0000-4000-8000-000000000001')
    store['overrides'] = {'properties': {'gave_up': 'yes'}}
    keep['user property'] = clones.stored_clone(conf, backend, 'RUNNING',
                                                store=store)
    atoms_per_clone = _count(backend, 'atomdetails') // 8
    assert purge.purge(backend, 3600) == []            # all too young
    purged = purge.purge(backend, 0)
    assert sorted(purged) == sorted(fd.uuid for fd in go.values())
    left = {fd.uuid for fd in persistence.flow_details(backend)}
    assert left == {fd.uuid for fd in keep.values()}
    assert _count(backend, 'logbooks') == len(keep)
    assert _count(backend, 'atomdetails') == len(keep) * atoms_per_clone


def test_durations_read_as_operators_write_them():
    assert [purge.parse_duration(t) for t in ('45', '45s', '15m', '12h',
                                              '30d', '2w')] == [
        45, 45, 900, 43200, 2592000, 1209600]
    for bad in ('', '3x', '-1d', 'd'):
        with contextlib.suppress(ValueError):
            purge.parse_duration(bad)
            raise AssertionError(bad)


def test_a_retried_clone_keeps_what_succeeded_unless_it_was_reverted(conf):
    from conductor.cmd import manage_clones
    backend = persistence.get_backend(conf)
    boom = clones.failure()
    fd = clones.stored_clone(
        conf, backend, 'FAILURE',
        states={'clone-hold-trust': 'SUCCESS', 'clone-authorize': 'SUCCESS',
                'clone-reserve-image': 'REVERT_FAILURE'},
        failures={'clone-reserve-image': boom},
        meta={'gave_up': 'poison', 'needs_sweep': 'poison job',
              'attempts': 6})
    manage_clones.reset_for_retry(fd)
    states = {ad.name: ad.state for ad in fd if ad.name[0] != '_'}
    assert states['clone-hold-trust'] == states['clone-authorize'] == \
        'SUCCESS'
    assert states['clone-reserve-image'] == 'PENDING'
    assert all(ad.failure is None for ad in fd)
    assert fd.state == 'PENDING'
    assert not {'gave_up', 'needs_sweep', 'attempts'} & set(fd.meta)
    reverted = clones.stored_clone(conf, backend, 'REVERTED', states={
        'clone-hold-trust': 'SUCCESS'})
    manage_clones.reset_for_retry(reverted)
    assert {ad.state for ad in reverted if ad.name[0] != '_'} == {'PENDING'}


def test_ordinary_transitions_are_saved_together(conf, monkeypatch):
    """Starts and successes wait for a later save (a flow transition, a
    failure, or save_after seconds); each is still recorded.
    """
    backend = persistence.get_backend(conf)
    saves = []
    real = taskflow.storage.Storage.update_flow_metadata

    def counting(self, update):
        saves.append(len(update.get(history.HISTORY, ())))
        return real(self, update)
    monkeypatch.setattr(taskflow.storage.Storage, 'update_flow_metadata',
                        counting)

    def run(save_after):
        saves.clear()
        flow = linear_flow.Flow('f').add(Ok('a'), Ok('b'), Ok('c'))
        engine = taskflow.engines.load(flow, backend=backend,
                                       engine='serial')
        with history.HistoryRecorder(engine, 'c-1', clock=lambda: 5.0,
                                     save_after=save_after):
            engine.run()
        return list(saves), flowtables.entries(_fd(
            backend, engine.storage.flow_uuid).meta)

    batched, entries = run(save_after=60)
    assert batched == [1, 8]        # flow RUNNING, then the rest with SUCCESS
    assert len(entries) == 8
    every, entries = run(save_after=0)
    assert len(every) == 8 and len(entries) == 8

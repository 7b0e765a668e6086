"""conductor.flowtables reads a clone's flow as TaskFlow stored it: the
same states, results, failures and meta as TaskFlow's own persistence API
gives back, without importing TaskFlow's backend.
"""
import contextlib
import json
import subprocess
import sys
import uuid

import pytest
from taskflow import engines
from taskflow import exceptions as tf_exc
from taskflow.persistence import models
from taskflow import storage as tf_storage

from conductor import flowstate
from conductor import flowtables
from conductor import persistence
from tests.unit import test_persistence as tp


def _normal(value):
    return json.loads(json.dumps(value))


def check_reads_what_taskflow_wrote(backend, fail):
    """A flow with a result and a retried step (``fail``: then a failure
    that reverts it all), read both ways; every field flow show uses
    agrees.
    """
    book = models.LogBook('det')
    fd = models.FlowDetail('det', uuid=str(uuid.uuid4()))
    order = ['produce', 'again', 'flaky'] + (['boom'] if fail else [])
    fd.meta[flowtables.GRAPH_ORDER] = order
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    engine = engines.load(tp.deterministic_flow(fail), book=book,
                          flow_detail=fd, backend=backend,
                          store={'history': {}}, engine='serial')
    if fail:
        with pytest.raises((RuntimeError, tf_exc.WrappedFailure)):
            engine.run()
    else:
        engine.run()
    with contextlib.closing(backend.get_connection()) as conn:
        theirs = conn.get_flow_details(fd.uuid)
    ours = flowtables.load(backend.engine, fd.uuid)

    assert (ours.uuid, ours.name, ours.state) == \
        (theirs.uuid, theirs.name, theirs.state) == \
        (fd.uuid, 'det', 'REVERTED' if fail else 'SUCCESS')
    assert ours.meta == _normal(theirs.meta)
    assert ours.finished
    by_name = {ad.name: ad for ad in theirs}
    assert sorted(a.name for a in ours) == sorted(by_name)
    for a in ours:
        ad = by_name[a.name]
        assert (a.state, a.intention) == (ad.state, ad.intention), a.name
        assert a.is_retry == isinstance(ad, models.RetryDetail), a.name
        assert a.meta == _normal(ad.meta), a.name
        if a.is_retry:      # its tries (a revert clears them)
            assert len(a.results) == len(ad.results) == (0 if fail else 2)
        else:
            assert a.results == _normal(ad.results), a.name
        for mine, tf in ((a.failure, ad.failure),
                         (a.revert_failure, ad.revert_failure)):
            assert (mine is None) == (tf is None), a.name
            if tf is not None:
                assert mine.exception_str == tf.exception_str
                assert mine.pformat() == tf.pformat()
                assert mine.pformat(traceback=True) == \
                    tf.pformat(traceback=True)
    rows = {r['name']: r for r in flowstate.atom_rows(ours)}
    assert list(rows) == order
    if fail:
        assert by_name['boom'].failure is not None  # the case was covered
        assert rows['boom']['failure'] == 'boom'
        assert rows['boom']['state'] == 'REVERTED'
    else:
        assert rows['again']['result'] == '2 tries'
        assert rows['produce']['result'] == 'value=Régiön ☃'


@pytest.mark.parametrize('fail', [False, True], ids=['success', 'reverted'])
def test_flowtables_reads_what_taskflow_wrote(tmp_path, fail):
    backend = persistence.get_backend(tp.make_conf(tp.sqlite_url(tmp_path)))
    try:
        check_reads_what_taskflow_wrote(backend, fail)
    finally:
        backend.close()


def test_an_unknown_clone_or_an_unused_database_is_a_lookup_error(tmp_path):
    unused = flowtables.engine(f'sqlite:///{tmp_path}/empty.sqlite')
    with pytest.raises(LookupError, match='no clone nope'):
        flowtables.load(unused, 'nope')
    backend = persistence.get_backend(tp.make_conf(tp.sqlite_url(tmp_path)))
    try:
        with pytest.raises(LookupError, match='no clone nope'):
            flowtables.load(backend.engine, 'nope')
    finally:
        backend.close()


def test_the_injector_name_is_taskflows():
    assert flowstate.INJECTOR == tf_storage.Storage.injector_name


def test_flow_show_imports_neither_taskflow_engines_nor_eventlet(tmp_path):
    """What makes a cold ``flow show`` cost: its process imports no TaskFlow
    backend, engine or eventlet (doc/source/benchmarks.rst).
    """
    conf = tmp_path / 'c.conf'
    conf.write_text(f'[persistence]\nconnection = sqlite:///{tmp_path}/'
                    f'f.sqlite\n')
    code = ('import sys\n'
            'from conductor.cmd import manage\n'
            f'rc = manage.main(["--config-file", "{conf}", "flow", "show", '
            '"nope"])\n'
            'heavy = sorted(m for m in ("eventlet", "taskflow.engines", '
            '"taskflow.persistence.backends.impl_sqlalchemy", "networkx", '
            '"kazoo", "keystoneauth1") if m in sys.modules)\n'
            'print(rc, heavy)\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == '1 []', r.stdout + r.stderr
    assert 'no clone nope' in r.stderr

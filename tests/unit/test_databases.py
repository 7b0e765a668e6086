"""A database server that does not answer: skipped, or failed when required."""
import pytest
import sqlalchemy as sa

from tests.unit import databases


def _connect_to_nothing(kind):
    """What connecting to a server that is not there raises."""
    url = {'mysql': 'mysql+pymysql://root@127.0.0.1:1/',
           'postgresql': 'postgresql+psycopg2://postgres@127.0.0.1:1/x'}[kind]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with pytest.raises(databases.NOT_ANSWERING) as info:
            engine.connect()
    finally:
        engine.dispose()
    return info.value


@pytest.mark.parametrize('kind', ['mysql', 'postgresql'])
def test_a_silent_server_skips_its_tests_by_default(kind, monkeypatch):
    monkeypatch.delenv(databases.REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match='not available'):
        databases.not_available(kind, _connect_to_nothing(kind))


@pytest.mark.parametrize('kind', ['mysql', 'postgresql'])
def test_a_silent_server_fails_its_tests_when_databases_are_required(
        kind, monkeypatch):
    monkeypatch.setenv(databases.REQUIRE, '1')
    with pytest.raises(pytest.fail.Exception, match='not available'):
        databases.not_available(kind, _connect_to_nothing(kind))


def test_the_reason_never_shows_a_password(monkeypatch):
    monkeypatch.setitem(databases.SERVERS, 'mysql',
                        'mysql+pymysql://root:s3cret-pw@127.0.0.1:1/')
    monkeypatch.delenv(databases.REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        databases.not_available('mysql', 'refused')
    assert 's3cret-pw' not in str(info.value)


def test_tools_test_sh_requires_the_databases():
    import pathlib
    script = pathlib.Path(__file__).resolve().parents[2] / 'tools/test.sh'
    assert f'export {databases.REQUIRE}=1' in script.read_text()

"""The MariaDB and PostgreSQL servers tests use, and what a silent one means.

Tests on a database server connect to 127.0.0.1:3306 as root (MariaDB) and
127.0.0.1:5432 as postgres (PostgreSQL); ``GLANCE_CLONE_TEST_MYSQL_URL`` and
``GLANCE_CLONE_TEST_POSTGRESQL_URL`` name other servers (an admin URL: the
tests create and drop their own databases there).

A server that does not answer skips its tests with the reason, except when
``GLANCE_CLONE_TEST_REQUIRE_DATABASES=1`` (set by ``tools/test.sh``, the
test command, which starts the servers first): then it fails them,
so no test vanishes from that run.  Only a refused or failed connection
counts as "not answering"; any other error (a missing driver, a wrong
statement) is the test's own error.
"""
import os

import pytest
import sqlalchemy as sa

REQUIRE = 'GLANCE_CLONE_TEST_REQUIRE_DATABASES'

SERVERS = {
    'mysql': os.environ.get('GLANCE_CLONE_TEST_MYSQL_URL',
                            'mysql+pymysql://root@127.0.0.1:3306/'),
    'postgresql': os.environ.get(
        'GLANCE_CLONE_TEST_POSTGRESQL_URL',
        'postgresql+psycopg2://postgres@127.0.0.1:5432/postgres'),
}

#: What a server that does not answer (or refuses us) raises.
NOT_ANSWERING = (sa.exc.OperationalError, sa.exc.InterfaceError)


def required():
    return os.environ.get(REQUIRE) == '1'


def not_available(kind, error):
    """Skip (or, when databases are required, fail) the running test."""
    url = sa.engine.make_url(SERVERS[kind]).render_as_string(
        hide_password=True)
    reason = f'{kind} at {url} is not available: {error}'
    if required():
        pytest.fail(f'{reason} ({REQUIRE}=1: a database server that does '
                    'not answer fails the test)', pytrace=False)
    pytest.skip(reason)


def with_database(url, name):
    """``url`` (a server's admin URL) naming database ``name`` instead."""
    return sa.engine.make_url(url).set(database=name).render_as_string(
        hide_password=False)

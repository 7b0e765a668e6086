"""sqlite files shared by processes: where they live and how they are opened.

Both databases of glance-clone (the task records and TaskFlow's
persistence) may be sqlite files that clone-api, the conductors and
clone-manage open at the same time on one host.
"""
import os

import sqlalchemy as sa


def is_file(url):
    """Whether ``url`` names a sqlite file (not an in-memory database)."""
    url = sa.engine.make_url(url)
    return bool(url.get_backend_name() == 'sqlite' and url.database
                and url.database != ':memory:'
                and 'mode=memory' not in str(url))


def ensure_dir(url):
    """Create the directory of a sqlite file if it is missing."""
    if is_file(url):
        path = sa.engine.make_url(url).database
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def on_connect(synchronous=None, busy_timeout_ms=None):
    """A ``connect`` listener: write-ahead logging, so that readers do not
    wait for the writer, and optionally ``PRAGMA synchronous`` and a busy
    timeout.
    """
    def listener(dbapi_conn, connection_record):
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute('PRAGMA journal_mode=WAL')
            if synchronous:
                cursor.execute(f'PRAGMA synchronous={synchronous}')
            if busy_timeout_ms:
                cursor.execute(f'PRAGMA busy_timeout={int(busy_timeout_ms)}')
        finally:
            cursor.close()
    return listener

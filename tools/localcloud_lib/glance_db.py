"""Where each local Glance keeps its database.

Glance on sqlite fails under concurrent clones ("database is locked": oslo.db
gives sqlite no pool and SQLite cannot upgrade a reader to a writer while
another writes), so when the machine's MariaDB answers on 127.0.0.1:3306
each region gets its own MariaDB database, as a real deployment would.

    LOCALCLOUD_GLANCE_DB=auto|mysql|sqlite   (default auto)
    LOCALCLOUD_MYSQL_URL=mysql+pymysql://root@127.0.0.1:3306
"""
import hashlib
import os
import socket
import subprocess

DEFAULT_MYSQL = 'mysql+pymysql://root@127.0.0.1:3306'


def _mysql_answers(host='127.0.0.1', port=3306):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def backend():
    choice = os.environ.get('LOCALCLOUD_GLANCE_DB', 'auto')
    if choice == 'auto':
        return 'mysql' if _mysql_answers() else 'sqlite'
    if choice not in ('mysql', 'sqlite'):
        raise ValueError('LOCALCLOUD_GLANCE_DB must be auto, mysql or sqlite')
    return choice


def db_name(cloud, region):
    """Unique per state dir: several local clouds may share one MariaDB."""
    tag = hashlib.sha1(cloud.state.encode()).hexdigest()[:8]
    return f'localcloud_{tag}_glance_{region.lower()}'


def connection(cloud, region, svc_dir):
    if backend() == 'mysql':
        base = os.environ.get('LOCALCLOUD_MYSQL_URL', DEFAULT_MYSQL)
        return f'{base}/{db_name(cloud, region)}?charset=utf8mb4'
    return f'sqlite:///{svc_dir}/glance.db?timeout=30'


def recreate_database(cloud, region, python):
    """Drop and create the region's MariaDB database (with the cloud venv's
    PyMySQL, so no client package is needed).
    """
    base = os.environ.get('LOCALCLOUD_MYSQL_URL', DEFAULT_MYSQL)
    name = db_name(cloud, region)
    code = (
        'import sys, sqlalchemy as sa\n'
        'e = sa.create_engine(sys.argv[1])\n'
        'with e.connect() as c:\n'
        '    c.exec_driver_sql("DROP DATABASE IF EXISTS `%s`" % sys.argv[2])\n'
        '    c.exec_driver_sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4" '
        '% sys.argv[2])\n')
    subprocess.run([python, '-c', code, base + '/', name], check=True,
                   capture_output=True, text=True, timeout=60)

"""Options of the persistence (``[DEFAULT] state_path``, ``[persistence]``),
read by :mod:`conductor.persistence` (the TaskFlow backend the conductors
write through) and :mod:`conductor.flowtables` (the inspection commands'
reader), kept apart so that a command that only reads does not import the
backend to register them.
"""
from oslo_config import cfg

persistence_opts = [
    cfg.StrOpt('state_path', default='/var/lib/glance-clone',
               help='Directory for local state (the default sqlite file).'),
]

persistence_group_opts = [
    cfg.StrOpt('connection',
               default='sqlite:///$state_path/glance-clone.sqlite',
               secret=True,
               help='SQLAlchemy URL of the TaskFlow persistence (logbooks, '
                    'flow and atom details): sqlite:///PATH, '
                    'mysql+pymysql://USER:PASSWORD@HOST/DB or '
                    'postgresql+psycopg2://USER:PASSWORD@HOST/DB. Several '
                    'conductors may share one MariaDB or PostgreSQL database '
                    '(or, on one host, one sqlite file).'),
    cfg.BoolOpt('cache_table_metadata', default=True,
                help='Build the SQLAlchemy table metadata of the TaskFlow '
                     'persistence once per backend instead of on every '
                     'storage call, as TaskFlow 6.5 does (which recompiles '
                     'every statement and keeps each copy alive: memory grows '
                     'with every call). Turn off only to measure the '
                     'difference.'),
    cfg.IntOpt('max_pool_size', default=5, min=1,
               help='Database connections kept open per process. Keep it at '
                    'least [conductor] max_concurrent_clones + 1: a storage '
                    'call beyond it opens and closes a connection of its own '
                    '(with PyMySQL that alone is costly: it builds a TLS '
                    'context for every new connection).'),
    cfg.StrOpt('sqlite_synchronous', default='NORMAL',
               choices=['OFF', 'NORMAL', 'FULL', 'EXTRA'],
               help='SQLite\'s "PRAGMA synchronous" for a sqlite file (in '
                    'write-ahead-log mode). NORMAL: a commit is not flushed '
                    'to disk by itself, so a progress report does not stall '
                    'the copy behind an fsync while the disk is busy with '
                    'image data; a killed process loses nothing, a power '
                    'cut may lose the last commits (the clone then resumes '
                    'from an earlier step: every step is idempotent). FULL: '
                    'flush every commit.'),
    cfg.IntOpt('upgrade_lock_timeout', default=300, min=1,
               help='Seconds a process waits for another one that is '
                    'creating or upgrading the persistence tables.'),
]


def register_opts(conf):
    conf.register_opts(persistence_opts)
    conf.register_opts(persistence_group_opts, group='persistence')


def list_opts():
    return [('DEFAULT', persistence_opts),
            ('persistence', persistence_group_opts)]

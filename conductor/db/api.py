"""Task records: the one module the API, the conductor and the CLIs call.

Every function takes the service's ``conf`` first; the engine for
``[database] connection`` is made once per URL and its schema is brought to
the newest alembic revision on first use (so a sqlite file just works).
Dicts use the Glance v2 wire names (``id, type, status, owner, input,
result, message, created_at, updated_at, expires_at``; times as ISO-8601
``...Z`` strings) plus the internal fields (``user_id, client_token,
trust_id, request_id, cancel_requested, job_id, attempts``).
"""
import copy
import datetime
import logging
import os
import threading

from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_db import options as db_options
from oslo_db.sqlalchemy import engines
from oslo_db.sqlalchemy import utils as db_utils
import sqlalchemy as sa
from sqlalchemy import orm

from conductor.db import models
from conductor import sqlite

LOG = logging.getLogger(__name__)
# Alembic narrates every start-up at INFO; our own line says what changed.
for _name in ('alembic.runtime.plugins', 'alembic.runtime.migration'):
    logging.getLogger(_name).setLevel(logging.WARNING)

DEFAULT_CONNECTION = 'sqlite:///$state_path/glance-clone-tasks.sqlite'

api_db_opts = [
    cfg.IntOpt('task_ttl_hours', default=48, min=1,
               help='A finished clone task (success or failure) is kept '
                    'this many hours; then "clone-manage tasks purge" '
                    'removes it.'),
]

SORT_KEYS = ('created_at', 'updated_at', 'id', 'type', 'status')
ISO_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


class DuplicateToken(Exception):
    """(owner, client_token) already names a task: ``self.task`` is it."""

    def __init__(self, task):
        super().__init__(f"client_token already used by task {task['id']}")
        self.task = task


class TaskNotFound(LookupError):
    def __init__(self, task_id):
        super().__init__(f'task {task_id} not found')
        self.task_id = task_id


class MarkerNotFound(LookupError):
    def __init__(self, marker):
        super().__init__(f"marker {marker} does not name a task you can see")
        self.marker = marker


# -- options --------------------------------------------------------------

def register_opts(conf):
    db_options.set_defaults(conf, connection=DEFAULT_CONNECTION)
    conf.register_opts(api_db_opts, group='api')


def list_opts():
    database_opts = copy.deepcopy(db_options.database_opts)
    for opt in database_opts:
        if opt.dest == 'connection':
            opt.default = DEFAULT_CONNECTION
            opt.help = ('SQLAlchemy URL of the task records (sqlite file by '
                        'default; mysql+pymysql:// or postgresql+psycopg2:// '
                        'in production).')
    return [('database', database_opts), ('api', api_db_opts)]


def _ensure_opts(conf):
    try:
        conf.database.connection
        conf.api.task_ttl_hours
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        register_opts(conf)


# -- engine, sessions, schema ---------------------------------------------

_LOCK = threading.Lock()
_ENGINES = {}       # url -> (engine, sessionmaker)


def _url(conf):
    _ensure_opts(conf)
    return conf.database.connection


def _make_engine(conf, url):
    sqlite.ensure_dir(url)
    kwargs = {}
    if not url.startswith('sqlite'):
        kwargs = dict(max_pool_size=conf.database.max_pool_size,
                      max_overflow=conf.database.max_overflow,
                      pool_timeout=conf.database.pool_timeout,
                      connection_recycle_time=(
                          conf.database.connection_recycle_time))
    engine = engines.create_engine(
        url, mysql_sql_mode=conf.database.mysql_sql_mode,
        max_retries=conf.database.max_retries,
        retry_interval=conf.database.retry_interval, **kwargs)
    if sqlite.is_file(url):
        sa.event.listen(engine, 'connect',
                        sqlite.on_connect(busy_timeout_ms=10000))
    return engine


def get_engine(conf):
    url = _url(conf)
    with _LOCK:
        entry = _ENGINES.get(url)
        if entry is None:
            engine = _make_engine(conf, url)
            _upgrade(engine)
            entry = (engine, orm.sessionmaker(bind=engine,
                                              expire_on_commit=False))
            _ENGINES[url] = entry
    return entry[0]


def _session(conf):
    get_engine(conf)
    return _ENGINES[_url(conf)][1]()


def _alembic_config():
    from alembic import config as alembic_config
    cfg_ = alembic_config.Config()
    cfg_.set_main_option('script_location', os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'migrations'))
    return cfg_


def head_revision():
    from alembic import script
    return script.ScriptDirectory.from_config(
        _alembic_config()).get_current_head()


def _upgrade(engine, revision='head'):
    from alembic import command
    if current_revision(engine) == head_revision():
        return
    before = current_revision(engine)
    acfg = _alembic_config()
    try:
        with engine.begin() as connection:
            acfg.attributes['connection'] = connection
            command.upgrade(acfg, revision)
    except db_exc.DBError:
        # Another process (a second worker) migrated at the same moment:
        # fine if the schema is now there.
        if current_revision(engine) is None:
            raise
    LOG.info('Task tables upgraded from revision %s to %s', before,
             current_revision(engine))


def current_revision(engine):
    from alembic.runtime import migration
    with engine.connect() as connection:
        ctx = migration.MigrationContext.configure(
            connection, opts={'version_table': 'clone_tasks_alembic_version'})
        return ctx.get_current_revision()


def sync(conf):
    """Bring the task tables to the newest revision (``clone-manage db
    sync``); returns the revision.
    """
    engine = get_engine(conf)     # first use upgrades
    return current_revision(engine)


def dispose(conf=None):
    """Close pooled connections (tests, forked workers)."""
    with _LOCK:
        urls = [_url(conf)] if conf is not None else list(_ENGINES)
        for url in urls:
            entry = _ENGINES.pop(url, None)
            if entry:
                entry[0].dispose()


# -- conversions ------------------------------------------------------------

def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def isotime(value):
    return value.strftime(ISO_FORMAT) if value is not None else None


def _parse_time(value):
    if value is None or isinstance(value, datetime.datetime):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(
                datetime.timezone.utc).replace(tzinfo=None)
        return value
    text = str(value).rstrip('Z')
    return datetime.datetime.fromisoformat(text)


def _to_dict(row):
    d = {name: getattr(row, name) for name in models.COLUMNS}
    for key in ('created_at', 'updated_at', 'expires_at'):
        d[key] = isotime(d[key])
    d['message'] = d['message'] or ''
    d['cancel_requested'] = bool(d['cancel_requested'])
    return d


def _ttl(conf):
    return datetime.timedelta(hours=conf.api.task_ttl_hours)


# -- the records -----------------------------------------------------------

def create_task(conf, values):
    """Insert a task; ``values`` needs ``id`` and ``owner``.

    Raises :class:`DuplicateToken` (carrying the existing task) when the
    owner already has a task with this ``client_token``.
    """
    values = dict(values)
    now = _now()
    values.setdefault('type', 'clone')
    values.setdefault('status', 'pending')
    values.setdefault('message', '')
    values.setdefault('cancel_requested', False)
    values.setdefault('attempts', 0)
    values['created_at'] = now
    values['updated_at'] = now
    if values.get('expires_at') is not None:
        values['expires_at'] = _parse_time(values['expires_at'])
    token = values.get('client_token')
    if values['status'] in models.FINISHED_STATUSES and \
            values.get('expires_at') is None:
        values['expires_at'] = now + _ttl(conf)
    # Write first, check after: a read before the write would hold an old
    # sqlite snapshot that cannot be upgraded to a write lock.
    with _session(conf) as session:
        row = models.CloneTask(**values)
        session.add(row)
        try:
            session.commit()
        except db_exc.DBDuplicateEntry:
            session.rollback()
            existing = _by_token(session, values['owner'], token) \
                if token is not None else None
            if existing is None:
                raise
            raise DuplicateToken(_to_dict(existing))
        return _to_dict(row)


def _by_token(session, owner, token):
    return session.execute(sa.select(models.CloneTask).where(
        models.CloneTask.owner == owner,
        models.CloneTask.client_token == token)).scalar_one_or_none()


def get_task_by_token(conf, owner, client_token):
    """The owner's task created with ``client_token``, or None."""
    with _session(conf) as session:
        row = _by_token(session, owner, client_token)
        return _to_dict(row) if row is not None else None


def get_task(conf, task_id):
    with _session(conf) as session:
        row = session.get(models.CloneTask, task_id)
        return _to_dict(row) if row is not None else None


def update_task(conf, task_id, fence=None, **values):
    """Change a task; refreshes ``updated_at``.  A task that becomes
    success/failure gets ``expires_at = now + [api] task_ttl_hours`` unless
    it already has one.  Raises :class:`TaskNotFound`.

    ``fence``: a conductor's write, made only while the task has not ended
    and, when ``fence`` is an int, only while ``attempts`` still equals it
    (the attempt this conductor began: a later one by another conductor
    wins).  A fenced write that does not apply changes nothing.
    """
    unknown = set(values) - set(models.COLUMNS)
    if unknown:
        raise TypeError(f'unknown task fields: {sorted(unknown)}')
    now = _now()
    values = {k: (_parse_time(v) if k in ('created_at', 'updated_at',
                                          'expires_at') else v)
              for k, v in values.items()}
    if 'message' in values and values['message'] is None:
        values['message'] = ''
    values['updated_at'] = now
    if values.get('status') in models.FINISHED_STATUSES and \
            'expires_at' not in values:
        values['expires_at'] = sa.func.coalesce(models.CloneTask.expires_at,
                                                now + _ttl(conf))
    where = [models.CloneTask.id == task_id]
    if fence is not None:
        where.append(models.CloneTask.status.notin_(models.FINISHED_STATUSES))
        if fence is not True:
            where.append(models.CloneTask.attempts == fence)
    # One UPDATE first (it takes the write lock at once, also on sqlite),
    # then read the row back in the same transaction.
    with _session(conf) as session:
        session.execute(
            sa.update(models.CloneTask).where(*where).values(**values)
            .execution_options(synchronize_session=False))
        row = session.get(models.CloneTask, task_id, populate_existing=True)
        if row is None:     # (rowcount is no proof: MySQL counts changes)
            session.rollback()
            raise TaskNotFound(task_id)
        task = _to_dict(row)
        session.commit()
        return task


def begin_attempt(conf, task_id):
    """A conductor starts running a task: ``processing``, ``attempts`` + 1.
    Returns the new attempt number (the fence of this conductor's later
    writes), or None when the task has ended or does not exist.
    """
    with _session(conf) as session:
        session.execute(
            sa.update(models.CloneTask)
            .where(models.CloneTask.id == task_id,
                   models.CloneTask.status.notin_(models.FINISHED_STATUSES))
            .values(status='processing', updated_at=_now(),
                    attempts=models.CloneTask.attempts + 1)
            .execution_options(synchronize_session=False))
        row = session.get(models.CloneTask, task_id, populate_existing=True)
        if row is None or row.status in models.FINISHED_STATUSES:
            session.rollback()
            return None
        attempt = row.attempts
        session.commit()
        return attempt


def request_cancel(conf, task_id):
    """Set ``cancel_requested`` if the task is still pending/processing.

    Atomic (one conditional UPDATE). Returns the task after the change;
    raises :class:`TaskNotFound`. The caller tells from ``status`` whether
    it was already finished.
    """
    with _session(conf) as session:
        session.execute(
            sa.update(models.CloneTask)
            .where(models.CloneTask.id == task_id,
                   models.CloneTask.status.in_(('pending', 'processing')))
            .values(cancel_requested=True, updated_at=_now()))
        session.commit()
        row = session.get(models.CloneTask, task_id, populate_existing=True)
        if row is None:
            raise TaskNotFound(task_id)
        return _to_dict(row)


def list_tasks(conf, owner=None, status=None, type=None,
               sort_key='created_at', sort_dir='desc', limit=None,
               marker=None):
    """Tasks, newest first by default; ``marker`` is the id of the last task
    of the previous page (:class:`MarkerNotFound` if it is not one of the
    tasks this query can see).
    """
    if sort_key not in SORT_KEYS:
        raise ValueError(f'sort_key must be one of {", ".join(SORT_KEYS)}')
    if sort_dir not in ('asc', 'desc'):
        raise ValueError('sort_dir must be asc or desc')
    with _session(conf) as session:
        query = session.query(models.CloneTask)
        if owner is not None:
            query = query.filter(models.CloneTask.owner == owner)
        if status is not None:
            query = query.filter(models.CloneTask.status == status)
        if type is not None:
            query = query.filter(models.CloneTask.type == type)
        marker_row = None
        if marker is not None:
            marker_row = session.get(models.CloneTask, marker)
            if marker_row is None or (owner is not None and
                                      marker_row.owner != owner):
                raise MarkerNotFound(marker)
        keys = [sort_key] if sort_key == 'id' else [sort_key, 'id']
        query = db_utils.paginate_query(query, models.CloneTask, limit, keys,
                                        marker=marker_row, sort_dir=sort_dir)
        return [_to_dict(r) for r in query.all()]


def trusts_of_ended_tasks(conf, limit=100):
    """(task id, trust id) of ended tasks whose trust may still exist: the
    clone's own release of it failed or is not known to have worked.
    """
    with _session(conf) as session:
        rows = session.execute(
            sa.select(models.CloneTask.id, models.CloneTask.trust_id)
            .where(models.CloneTask.status.in_(models.FINISHED_STATUSES),
                   models.CloneTask.trust_id.isnot(None))
            .order_by(models.CloneTask.updated_at).limit(limit)).all()
        return [(r.id, r.trust_id) for r in rows]


def count_tasks(conf, owner, statuses=('processing',)):
    """Tasks of ``owner`` (None: of every project) in ``statuses``."""
    query = sa.select(sa.func.count()).select_from(models.CloneTask).where(
        models.CloneTask.status.in_(tuple(statuses)))
    if owner is not None:
        query = query.where(models.CloneTask.owner == owner)
    with _session(conf) as session:
        return session.execute(query).scalar_one()


def purge_expired(conf, now=None):
    """Delete tasks whose ``expires_at`` has passed; returns how many."""
    now = _parse_time(now) if now is not None else _now()
    with _session(conf) as session:
        result = session.execute(sa.delete(models.CloneTask).where(
            models.CloneTask.expires_at.is_not(None),
            models.CloneTask.expires_at < now))
        session.commit()
        return result.rowcount

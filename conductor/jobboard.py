"""Clones as TaskFlow jobs on a ZooKeeper jobboard (kazoo).

A posted clone waits in its project's queue (:mod:`conductor.pending`) and
becomes a job when a conductor starts it (:class:`FairJobBoard`).  Queue
entries and jobs hold ids only (clone id, project); the logbook, the flow
factory's name and JSON arguments and the store (the request's input) are
saved in persistence first, so any conductor can rebuild the graph.  One
long-lived ZooKeeper client per process.

With ``[jobboard] password``, every client authenticates with ZooKeeper's
digest scheme and every znode it creates (the board path, jobs, their
locks, the trash, the conductors' entries) carries one ACL: all rights for
that digest identity, nothing for anyone else (``world:anyone`` included).
A board made by an older version without ACLs is given them when a process
first connects with the credential (:func:`secure_board`).
"""
import contextlib
import json
import logging
import threading
import time

from kazoo import client as kazoo_client
from kazoo import exceptions as kazoo_exceptions
from kazoo.protocol import serialization as kazoo_serialization
from kazoo.recipe import watchers as kz_watchers
from kazoo import security as kazoo_security
from oslo_config import cfg
from taskflow import exceptions as tf_exc
from taskflow.jobs import backends as job_backends
from taskflow.jobs.backends import impl_zookeeper as zk_impl
from taskflow.jobs import base as tf_jobs_base

from clone_flows import constants as c
from conductor import confcache
from conductor import pending
from conductor import persistence
from conductor import runner

LOG = logging.getLogger(__name__)


class _HideCredentials(logging.Filter):
    """kazoo logs every request at DEBUG, its digest ``Auth`` (user:password)
    included: the password is replaced before the record is written.
    """

    def filter(self, record):
        if isinstance(record.args, tuple) and any(
                isinstance(a, kazoo_serialization.Auth) for a in record.args):
            record.args = tuple(
                a._replace(auth=a.auth.split(':', 1)[0] + ':***')
                if isinstance(a, kazoo_serialization.Auth) else a
                for a in record.args)
        return True


#: kazoo's own logger (its default), given to every client we make.
KAZOO_LOG = logging.getLogger('kazoo.client')
KAZOO_LOG.addFilter(_HideCredentials())

jobboard_opts = [
    cfg.ListOpt('zookeeper_hosts', default=['127.0.0.1:2181'],
                help='ZooKeeper ensemble (host:port list).'),
    cfg.FloatOpt('session_timeout', default=10.0, min=2.0,
                 help='ZooKeeper session timeout in seconds: how long a '
                      'dead conductor keeps its clones claimed.'),
    cfg.StrOpt('path', default='/glance-clone/jobs',
               help='ZooKeeper path of the clone jobboard.  TaskFlow keeps '
                    '".trash" and ".entities" beside it: with a password, '
                    'its parent node (unless "/") is glance-clone\'s too '
                    'and gets the same ACL.'),
    cfg.IntOpt('max_attempts', default=5, min=1,
               help='A clone claimed this many times without ending (its '
                    'conductor died or kept failing) is trashed and marked '
                    'failed: poison jobs end.'),
    cfg.StrOpt('username', default='glance-clone', regex=r'^[^:]+$',
               help='ZooKeeper digest user of glance-clone\'s services '
                    '(used with password).'),
    cfg.BoolOpt('use_tls', default=False,
                help='Connect to ZooKeeper over TLS (its secureClientPort, '
                     'Netty): zookeeper_hosts then lists TLS ports.  The '
                     'server\'s certificate must be signed by tls_ca_file '
                     '(or a system CA) and name the host as written in '
                     'zookeeper_hosts.'),
    cfg.StrOpt('tls_ca_file',
               help='PEM file of the CA(s) that sign ZooKeeper\'s '
                    'certificates (with use_tls; default: the system CAs).'),
    cfg.StrOpt('tls_cert_file',
               help='PEM client certificate for ZooKeeper servers that '
                    'require one (ssl.clientAuth=need), with tls_key_file.'),
    cfg.StrOpt('tls_key_file',
               help='PEM private key of tls_cert_file.'),
    cfg.StrOpt('password', secret=True,
               help='Password of the ZooKeeper digest user, the same for '
                    'every clone-api and clone-conductor.  With it, the '
                    'board\'s znodes are readable and writable by that '
                    'identity only; without it, anyone who reaches '
                    'ZooKeeper can read, claim and delete clone jobs.'),
]


def register_opts(conf):
    conf.register_opts(jobboard_opts, group='jobboard')


def list_opts():
    return [('jobboard', jobboard_opts)]


def _acl(conf):
    """The ACL of every znode we create, or None without a credential."""
    group = conf.jobboard
    if not group.password:
        return None
    return [kazoo_security.make_digest_acl(group.username, group.password,
                                           all=True)]


class TLSClient(kazoo_client.KazooClient):
    """A kazoo client whose four-letter words also work over TLS.

    kazoo 2.11's ``command()`` hands the server's *port* to TLS as its host
    name and fails (python-zk/kazoo#770), and TaskFlow's board checks the
    server's version with ``envi`` when it connects.  The word goes to the
    configured hosts instead, by name, over TLS like everything else.
    """

    def __init__(self, *args, command_timeout=10.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.command_timeout = command_timeout

    def command(self, cmd=b'ruok'):
        error = None
        for host, port in self.hosts:
            try:
                sock = self.handler.create_connection(
                    (host, port), hostname=host, timeout=self.command_timeout,
                    use_ssl=True, ca=self.ca, certfile=self.certfile,
                    keyfile=self.keyfile, verify_certs=True,
                    check_hostname=True)
            except OSError as e:
                error = e
                continue
            with contextlib.closing(sock):
                sock.sendall(cmd)
                chunks = []
                while chunk := sock.recv(8192):
                    chunks.append(chunk)
            return b''.join(chunks).decode('utf-8', 'replace')
        raise kazoo_exceptions.ConnectionLoss(
            f'no ZooKeeper server answered {cmd!r} over TLS: {error}')


def make_client(conf):
    """A kazoo client for this process (not started)."""
    group = conf.jobboard
    kwargs = {}
    if group.password:
        kwargs.update(
            auth_data=[('digest', f'{group.username}:{group.password}')],
            default_acl=_acl(conf))
    cls = kazoo_client.KazooClient
    if group.use_tls:
        if bool(group.tls_cert_file) != bool(group.tls_key_file):
            raise ValueError('[jobboard] tls_cert_file and tls_key_file go '
                             'together: set both or neither')
        cls = TLSClient
        kwargs.update(use_ssl=True, verify_certs=True, check_hostname=True,
                      ca=group.tls_ca_file, certfile=group.tls_cert_file,
                      keyfile=group.tls_key_file,
                      command_timeout=group.session_timeout)
    return cls(hosts=','.join(group.zookeeper_hosts),
               timeout=group.session_timeout, logger=KAZOO_LOG, **kwargs)


def make_board(conf, client, backend, name='glance-clone'):
    """The jobboard over an existing client (the board does not own it):
    TaskFlow's own, which lists the clones that have started.
    """
    board = job_backends.fetch(
        name, {'board': 'zookeeper', 'path': conf.jobboard.path},
        client=client, persistence=backend)
    return _connect(conf, client, board)


def make_conductor_board(conf, client, backend, name='glance-clone'):
    """A conductor's jobboard (:class:`FairJobBoard`): it offers the clones
    this conductor should start, fairly across projects, up to ``[conductor]
    max_running_clones_per_project`` each.
    """
    board = FairJobBoard(
        name, {'board': 'zookeeper', 'path': conf.jobboard.path},
        client=client, persistence=backend,
        max_running=conf.conductor.max_running_clones_per_project,
        known_timeout=conf.jobboard.session_timeout)
    return _connect(conf, client, board)


def _connect(conf, client, board):
    board.connect()
    acl = _acl(conf)
    if acl is None:
        LOG.warning('ZooKeeper jobboard %s has no credential ([jobboard] '
                    'password): anyone who reaches ZooKeeper can read and '
                    'delete clone jobs', conf.jobboard.path)
    else:
        secure_board(client, board, acl)
    return board


def secure_board(client, board, acl):
    """Give ``acl`` to every znode of ``board`` that lacks it; return how
    many were changed.

    The board's znodes: its path, the ``.trash`` and ``.entities`` paths
    TaskFlow keeps beside it, everything under those three, and their
    common parent (unless it is ``/``), so that nobody else can make them.
    Nodes made by our clients already have ``acl`` (their default ACL); older
    ones (a version without a credential) get it here.  The board path is
    set last, and the rest is looked at only when the board path lacks it:
    a board secured once costs one call per start.
    """
    acl = list(acl)
    if list(client.get_acls(board.path)[0]) == acl:
        return 0
    changed = 0

    def secure(node, recurse=True):
        nonlocal changed
        with contextlib.suppress(kazoo_exceptions.NoNodeError):
            for child in (client.get_children(node) if recurse else ()):
                secure(f'{node}/{child}')
            if list(client.get_acls(node)[0]) != acl:
                client.set_acls(node, acl)
                changed += 1

    for path in (board.trash_path, board.entity_path,
                 pending.pending_root(board.path),
                 pending.running_root(board.path)):
        secure(path)
    parent = board.path.rsplit('/', 1)[0]
    if parent:
        secure(parent, recurse=False)
    for child in client.get_children(board.path):
        secure(f'{board.path}/{child}')
    secure(board.path, recurse=False)
    LOG.warning('ZooKeeper jobboard %s: ACLs set on %d znodes made without '
                'them; only glance-clone\'s digest user may use them now',
                board.path, changed)
    return changed


def job_details(clone_id, project_id):
    """What a clone's job znode holds: ids only.  The request's input (its
    properties, tags, name) stays in the database: the flow detail saved
    by :func:`conductor.runner.save_new_flow` holds the store.
    """
    return {'flow_uuid': clone_id, 'project_id': project_id}


def post(client, backend, conf, store, project_id=None):
    """Save the clone's flow to persistence, then queue it as pending in
    its project's queue (:mod:`conductor.pending`); returns the clone id,
    which is also its job's uuid once a conductor starts it.
    """
    runner.save_new_flow(conf, backend, store)
    clone_id = store[c.CLONE_ID]
    entry = pending.enqueue(client, conf.jobboard.path, clone_id,
                            project_id or '-')
    LOG.info('Queued clone %s as %s', clone_id, entry)
    return clone_id


class PendingJob(zk_impl.ZookeeperJob):
    """A clone waiting in its project's queue, offered to the conductor as
    a job; :meth:`FairJobBoard.claim` starts it (it has no znode on the
    board before).
    """

    def __init__(self, board, node, entry, clone_id, backend):
        project_id = pending.project_of(node)
        super().__init__(
            board, f'clone-{clone_id}', board.client,
            f'{board.path}/{pending.job_name(clone_id)}', uuid=clone_id,
            details=job_details(clone_id, project_id),
            book_data={'name': f'clone-{clone_id}', 'uuid': clone_id},
            backend=backend)
        self.node = node
        self.entry = entry
        self.project_id = project_id


class FairJobBoard(zk_impl.ZookeeperJobBoard):
    """The conductors' jobboard: ``iterjobs()`` offers only what this
    conductor should start, fairly across projects.

    First the clones already started whose conductor let go (their job is
    on the board without a claim: a resume); then, one at a time, the
    oldest pending clone of the project running the fewest clones (ties:
    the project that has waited longest since it last started a clone,
    one that never did first; then the oldest clone), skipping projects at
    ``max_running`` (0: no limit).  Nothing is read from ZooKeeper to choose
    (:class:`conductor.pending.Index` keeps its view by watches), and
    nothing is claimed that this conductor would not run: a pending clone
    is started by :meth:`claim` itself, in one transaction that removes it
    from its queue, adds it to its project's running node at the version
    read (which is how conductors on several hosts keep the limit between
    them), creates its job and this conductor's claim.
    """

    def __init__(self, name, conf, client, persistence, max_running=0,
                 known_timeout=10.0):
        super().__init__(name, conf, client=client, persistence=persistence)
        self.client = client
        self.max_running = max_running
        self._backend = persistence
        self._known_timeout = known_timeout
        self.index = pending.Index(client, self.path)
        self._children = None          # the board's znode names (watched)
        self._posted = {}              # job path -> Event: the board knows it
        self._posted_lock = threading.Lock()
        self.notifier.register(tf_jobs_base.POSTED, self._on_posted)

    # -- what to try -----------------------------------------------------
    def _watch_board(self):
        if self._children is None:
            self._children = set()
            kz_watchers.ChildrenWatch(self.client, self.path,
                                      func=self._on_board,
                                      allow_session_lost=True)

    def _on_board(self, children):
        self._children = set(children)

    def _unclaimed(self):
        names = self._children or set()
        locked = {n[:-len(self.LOCK_POSTFIX)] for n in names
                  if n.endswith(self.LOCK_POSTFIX)}
        return {n for n in names if n.startswith(self.JOB_PREFIX) and
                not n.endswith(self.LOCK_POSTFIX) and n not in locked}

    def iterjobs(self, only_unclaimed=False, ensure_fresh=False):
        self.index.start()
        self._watch_board()
        return self._fair_jobs(ensure_fresh)

    def _fair_jobs(self, ensure_fresh):
        if self._unclaimed():
            # a started clone nobody holds: resume it before starting more
            yield from super().iterjobs(only_unclaimed=True,
                                        ensure_fresh=ensure_fresh)
        if ensure_fresh:
            self._drop_stale_running()
        tried = set()
        while True:
            order = self.index.order(self.max_running, skip=tried)
            if not order:
                return
            node, entry = order[0]
            tried.add(entry)
            clone_id = pending.parse_entry(entry)[1]
            yield PendingJob(self, node, entry, clone_id, self._backend)

    def _drop_stale_running(self):
        """Running entries whose job has left the board (a conductor died
        between ending a clone and releasing its entry) free their slot.
        """
        names = self._children or set()
        for node, running in self.index.at_limit(self.max_running).items():
            for clone_id, name in running.items():
                if name in names or self.client.exists(f'{self.path}/{name}'):
                    continue
                if pending.release(self.client, self.path,
                                   pending.project_of(node), clone_id):
                    LOG.warning('Clone %s of project %s is no longer on the '
                                'board: its running slot is freed', clone_id,
                                pending.project_of(node))

    # -- starting a pending clone -----------------------------------------
    def _on_posted(self, _state, details):
        job = details.get('job')
        with self._posted_lock:
            event = self._posted.get(getattr(job, 'path', None))
        if event is not None:
            event.set()

    def claim(self, job, who):
        if not isinstance(job, PendingJob):
            return super().claim(job, who)
        entry_path = (f'{pending.pending_root(self.path)}/{job.node}/'
                      f'{job.entry}')
        running_path = f'{pending.running_root(self.path)}/{job.node}'
        name = pending.job_name(job.uuid)
        try:
            running = pending.read_running(self.client, self.path,
                                           job.project_id)
            self.index.note_running(job.node, running)
            if self.max_running and \
                    len(running.clones) >= self.max_running:
                raise tf_exc.UnclaimableJob(
                    f'project {job.project_id} already runs '
                    f'{len(running.clones)} clones (limit '
                    f'{self.max_running})')
            started = running._replace(
                clones=dict(running.clones, **{job.uuid: name}),
                last_start_ms=max(int(time.time() * 1000),
                                  running.last_start_ms + 1),
                version=running.version + 1)
            posting = tf_jobs_base.format_posting(
                job.uuid, job.name, details=job.details,
                book=_BookRef(f'clone-{job.uuid}', job.uuid))
            event = threading.Event()
            with self._posted_lock:
                self._posted[job.path] = event
            try:
                txn = self.client.transaction()
                txn.delete(entry_path)
                txn.set_data(running_path, started.encode(),
                             version=running.version)
                txn.create(job.path, json.dumps(posting).encode())
                txn.create(job.lock_path,
                           json.dumps({'owner': who}).encode(),
                           ephemeral=True)
                results = txn.commit()
                failed = [r for r in results if isinstance(r, Exception)
                          and not isinstance(
                              r, kazoo_exceptions.RolledBackError)]
                if not failed:
                    self.index.note_running(job.node, started)
                    self.index.note_started(job.node, job.entry)
                    # consume/abandon/trash ask the board to know the job
                    event.wait(self._known_timeout)
            finally:
                with self._posted_lock:
                    self._posted.pop(job.path, None)
        except kazoo_exceptions.KazooException as e:
            raise tf_exc.JobFailure(
                f'clone {job.uuid} was not started: ZooKeeper said '
                f'{type(e).__name__}') from e
        if failed:
            if isinstance(results[0], kazoo_exceptions.NoNodeError):
                self.index.note_started(job.node, job.entry)   # taken
            raise tf_exc.UnclaimableJob(
                f'clone {job.uuid} was not started: '
                f'{type(failed[0]).__name__} (another conductor started it, '
                f'or another clone of its project)')
        LOG.info('Started clone %s of project %s (%d running)', job.uuid,
                 job.project_id, len(started.clones))

    # -- ending ----------------------------------------------------------
    def _release(self, job):
        details = job.details or {}
        project_id, clone_id = details.get('project_id'), \
            details.get('flow_uuid')
        if project_id and clone_id:
            with contextlib.suppress(kazoo_exceptions.KazooException):
                pending.release(self.client, self.path, project_id, clone_id)

    def consume(self, job, who):
        super().consume(job, who)
        self._release(job)

    def trash(self, job, who):
        super().trash(job, who)
        self._release(job)


class _BookRef:
    """What a job posting names of its logbook."""

    def __init__(self, name, uuid):
        self.name, self.uuid = name, uuid


class Poster:
    """One process's connection for posting clones (the API's side)."""

    def __init__(self, conf):
        self._conf = conf
        self._lock = threading.Lock()
        self._client = None
        self._board = None
        self._backend = None

    def _ensure(self):
        with self._lock:
            if self._board is None or not self._board.connected:
                if self._client is None:
                    self._client = make_client(self._conf)
                self._backend = (self._backend
                                 or persistence.get_backend(self._conf))
                self._board = make_board(self._conf, self._client,
                                         self._backend)
            return self._board, self._backend

    def post(self, store, project_id=None):
        _board, backend = self._ensure()
        return post(self._client, backend, self._conf, store,
                    project_id=project_id)

    def close(self):
        with self._lock:
            if self._board is not None:
                self._board.close()
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.stop()
                    self._client.close()
            self._board = self._client = None


#: This process's poster, per configuration object.
_POSTERS = confcache.PerConf()


def post_clone(conf, store, project_id=None):
    """Post a clone with this process's long-lived poster for ``conf``."""
    return _POSTERS.get(conf, lambda: Poster(conf)).post(
        store, project_id=project_id)

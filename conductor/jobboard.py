"""Clones as TaskFlow jobs on a ZooKeeper jobboard (kazoo).

A posted job holds ids only (the flow's persisted store: clone id, regions,
image id, trust id); the logbook and the flow factory's name and JSON
arguments are saved in persistence first, so any conductor can rebuild the
graph.  One long-lived ZooKeeper client per process.

With ``[jobboard] password``, every client authenticates with ZooKeeper's
digest scheme and every znode it creates (the board path, jobs, their
locks, the trash, the conductors' entries) carries one ACL: all rights for
that digest identity, nothing for anyone else (``world:anyone`` included).
A board made by an older version without ACLs is given them when a process
first connects with the credential (:func:`secure_board`).
"""
import contextlib
import logging
import threading

from kazoo import client as kazoo_client
from kazoo import exceptions as kazoo_exceptions
from kazoo import security as kazoo_security
from kazoo.protocol import serialization as kazoo_serialization
from oslo_config import cfg
from taskflow.jobs import backends as job_backends

from clone_flows import constants as c
from conductor import persistence
from conductor import runner

LOG = logging.getLogger(__name__)


class _HideCredentials(logging.Filter):
    """kazoo logs every request at DEBUG, its digest ``Auth`` (user:password)
    included: the password is replaced before the record is written."""

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
    """The jobboard over an existing client (the board does not own it)."""
    board = job_backends.fetch(
        name, {'board': 'zookeeper', 'path': conf.jobboard.path},
        client=client, persistence=backend)
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

    for path in (board.trash_path, board.entity_path):
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


def job_details(store, task=None):
    details = {'store': dict(store), 'flow_uuid': store[c.CLONE_ID]}
    if task is not None:
        details['project_id'] = task.get('owner')
    return details


def post(board, backend, conf, store, project_id=None):
    """Save the clone's flow to persistence, then post its job."""
    book, _fd, _flow = runner.save_new_flow(conf, backend, store)
    details = job_details(store)
    if project_id:
        details['project_id'] = project_id
    job = board.post(f'clone-{store[c.CLONE_ID]}', book=book, details=details)
    LOG.info('Posted clone %s as job %s', store[c.CLONE_ID], job.uuid)
    return job


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
                self._backend = self._backend or persistence.get_backend(self._conf)
                self._board = make_board(self._conf, self._client, self._backend)
            return self._board, self._backend

    def post(self, store, project_id=None):
        board, backend = self._ensure()
        return post(board, backend, self._conf, store, project_id=project_id)

    def close(self):
        with self._lock:
            if self._board is not None:
                self._board.close()
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.stop()
                    self._client.close()
            self._board = self._client = None


_POSTERS = {}
_POSTERS_LOCK = threading.Lock()


def post_clone(conf, store, project_id=None):
    """Post a clone with this process's long-lived poster for ``conf``."""
    with _POSTERS_LOCK:
        poster = _POSTERS.get(id(conf))
        if poster is None:
            poster = _POSTERS[id(conf)] = Poster(conf)
    return poster.post(store, project_id=project_id)

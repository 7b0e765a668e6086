"""Clones as TaskFlow jobs on a ZooKeeper jobboard (kazoo).

A posted job holds ids only (the flow's persisted store: clone id, regions,
image id, trust id); the logbook and the flow factory's name and JSON
arguments are saved in persistence first, so any conductor can rebuild the
graph.  One long-lived ZooKeeper client per process.
"""
import contextlib
import logging
import threading

from kazoo import client as kazoo_client
from oslo_config import cfg
from taskflow.jobs import backends as job_backends

from clone_flows import constants as c
from conductor import persistence
from conductor import runner

LOG = logging.getLogger(__name__)

jobboard_opts = [
    cfg.ListOpt('zookeeper_hosts', default=['127.0.0.1:2181'],
                help='ZooKeeper ensemble (host:port list).'),
    cfg.FloatOpt('session_timeout', default=10.0, min=2.0,
                 help='ZooKeeper session timeout in seconds: how long a '
                      'dead conductor keeps its clones claimed.'),
    cfg.StrOpt('path', default='/glance-clone/jobs',
               help='ZooKeeper path of the clone jobboard.'),
    cfg.IntOpt('max_attempts', default=5, min=1,
               help='A clone claimed this many times without ending (its '
                    'conductor died or kept failing) is trashed and marked '
                    'failed: poison jobs end.'),
]


def register_opts(conf):
    conf.register_opts(jobboard_opts, group='jobboard')


def list_opts():
    return [('jobboard', jobboard_opts)]


def make_client(conf):
    """A kazoo client for this process (not started)."""
    return kazoo_client.KazooClient(
        hosts=','.join(conf.jobboard.zookeeper_hosts),
        timeout=conf.jobboard.session_timeout)


def make_board(conf, client, backend, name='glance-clone'):
    """The jobboard over an existing client (the board does not own it)."""
    board = job_backends.fetch(
        name, {'board': 'zookeeper', 'path': conf.jobboard.path},
        client=client, persistence=backend)
    board.connect()
    return board


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

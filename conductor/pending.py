"""Pending clones in ZooKeeper, one queue per project, and the fair order
in which conductors start them.

A posted clone is not a TaskFlow job yet: it is an entry in its project's
queue, ``<board path>.pending/<project>/p<posted ms>-<clone id>-<seq>``,
holding ids only.  A conductor with a free slot turns the entry into a
claimed job in one ZooKeeper transaction (:mod:`conductor.jobboard`), so the
jobboard itself holds only clones that have started.

What runs per project is ``<board path>.running/<project>``: a JSON object
``{"clones": {clone id: job znode name}, "last_start_ms": ...}``.  Every
start writes it with the version it read, so two conductors on two hosts can
never both take a project's last slot; the clone's end (consume or trash)
removes its entry.

:class:`Index` is one conductor's view of both, kept by ZooKeeper watches:
looking for work reads nothing from ZooKeeper; a change costs each conductor
one read of the queue or running node that changed, whose size is bounded by
``[api] max_pending_clones_per_project`` or the running limit -- never by the
whole backlog.
"""
import collections
import functools
import json
import threading
import time
import urllib.parse
import uuid

from kazoo import exceptions as kazoo_exceptions
from kazoo.recipe import watchers as kz_watchers

ENTRY_PREFIX = 'p'


def pending_root(board_path):
    return board_path.rstrip('/') + '.pending'


def running_root(board_path):
    return board_path.rstrip('/') + '.running'


def project_node(project_id):
    """A project id as one znode name (any character but '/' is kept)."""
    return urllib.parse.quote(project_id, safe='')


def project_of(node):
    return urllib.parse.unquote(node)


def job_name(clone_id):
    """The clone's job znode on the board: one per clone, ever (a second
    start of the same clone finds it taken).  TaskFlow reads the digits after
    ``job`` as the job's sequence number.
    """
    return f'job{uuid.UUID(clone_id).int:039d}'


def parse_entry(name):
    """``(posted ms, clone id)`` of a queue entry's name, or None."""
    rest = name[len(ENTRY_PREFIX):]
    if len(rest) < 52 or rest[13] != '-' or rest[50] != '-':
        return None
    try:
        return int(rest[:13]), str(uuid.UUID(rest[14:50]))
    except ValueError:
        return None


def dequeue(client, board_path, clone_id):
    """Remove the clone's entries from every project's queue (an operator
    takes a waiting clone away); returns how many were removed.
    """
    removed = 0
    root = pending_root(board_path)
    try:
        projects = client.get_children(root)
    except kazoo_exceptions.NoNodeError:
        return 0
    for project in projects:
        try:
            names = client.get_children(f'{root}/{project}')
        except kazoo_exceptions.NoNodeError:
            continue
        for name in names:
            entry = parse_entry(name)
            if entry is None or entry[1] != clone_id:
                continue
            try:
                client.delete(f'{root}/{project}/{name}')
                removed += 1
            except kazoo_exceptions.NoNodeError:
                pass                     # a conductor started it meanwhile
    return removed


def enqueue(client, board_path, clone_id, project_id):
    """Add the clone to its project's queue; returns the entry's path."""
    posted = int(time.time() * 1000)
    base = (f'{pending_root(board_path)}/{project_node(project_id)}/'
            f'{ENTRY_PREFIX}{posted:013d}-{clone_id}-')
    value = json.dumps({'clone_id': clone_id,
                        'project_id': project_id}).encode()
    return client.create(base, value=value, sequence=True, makepath=True)


class Running(collections.namedtuple('Running',
                                     'clones last_start_ms version')):
    """A project's running node: ``clones`` {clone id: job znode name},
    when it last started one (ms, the starting conductor's clock; 0:
    never), the node's version (-1: none).
    """

    @classmethod
    def decode(cls, data, version):
        doc = json.loads(data or b'{}')
        return cls(dict(doc.get('clones') or {}),
                   int(doc.get('last_start_ms') or 0), version)

    def encode(self):
        return json.dumps({'clones': self.clones,
                           'last_start_ms': self.last_start_ms}).encode()


NONE_RUNNING = Running({}, 0, -1)


def read_running(client, board_path, project_id):
    """The project's :class:`Running`; the node is made when missing."""
    path = f'{running_root(board_path)}/{project_node(project_id)}'
    try:
        data, stat = client.get(path)
    except kazoo_exceptions.NoNodeError:
        try:
            client.create(path, NONE_RUNNING.encode(), makepath=True)
        except kazoo_exceptions.NodeExistsError:
            pass
        data, stat = client.get(path)
    return Running.decode(data, stat.version)


def release(client, board_path, project_id, clone_id, attempts=20):
    """Remove the clone from its project's running node (it ended)."""
    path = f'{running_root(board_path)}/{project_node(project_id)}'
    for _ in range(attempts):
        try:
            data, stat = client.get(path)
        except kazoo_exceptions.NoNodeError:
            return False
        running = Running.decode(data, stat.version)
        if clone_id not in running.clones:
            return False
        running.clones.pop(clone_id)
        try:
            client.set(path, running.encode(), version=stat.version)
            return True
        except kazoo_exceptions.BadVersionError:
            continue
    return False


def counts(client, board_path):
    """``{project: (pending, running)}`` read once (for operators)."""
    out = {}
    for root, i in ((pending_root(board_path), 0),
                    (running_root(board_path), 1)):
        try:
            nodes = client.get_children(root)
        except kazoo_exceptions.NoNodeError:
            continue
        for node in nodes:
            if i == 0:
                n = len(client.get_children(f'{root}/{node}'))
            else:
                n = len(Running.decode(client.get(f'{root}/{node}')[0],
                                       0).clones)
            pair = list(out.get(project_of(node), (0, 0)))
            pair[i] = n
            out[project_of(node)] = tuple(pair)
    return out


class Index:
    """One conductor's watched view of every project's queue and running
    clones, and the fair order of what to start next.
    """

    def __init__(self, client, board_path):
        self._client = client
        self._board_path = board_path
        self._lock = threading.Lock()
        self._queues = {}       # project node -> sorted entry names
        self._running = {}      # project node -> Running
        self._watched = set()
        self._started = False

    def start(self):
        if self._started:
            return
        self._started = True
        for root in (pending_root(self._board_path),
                     running_root(self._board_path)):
            self._client.ensure_path(root)
        kz_watchers.ChildrenWatch(self._client,
                                  pending_root(self._board_path),
                                  func=self._on_projects,
                                  allow_session_lost=True)

    def _on_projects(self, nodes):
        for node in nodes:
            if node in self._watched:
                continue
            self._watched.add(node)
            kz_watchers.ChildrenWatch(
                self._client, f'{pending_root(self._board_path)}/{node}',
                func=functools.partial(self._on_queue, node),
                allow_session_lost=True)
            # (kazoo calls it with the event as a third argument)
            kz_watchers.DataWatch(
                self._client, f'{running_root(self._board_path)}/{node}',
                func=functools.partial(self._on_running, node))

    def _on_queue(self, node, names):
        entries = sorted(n for n in names if parse_entry(n))
        with self._lock:
            self._queues[node] = entries

    def _on_running(self, node, data, stat, _event=None):
        self.note_running(node, NONE_RUNNING if stat is None else
                          Running.decode(data, stat.version))

    def note_running(self, node, running):
        """Record a project's :class:`Running`, unless older than known."""
        with self._lock:
            known = self._running.get(node)
            if known is None or running.version >= known.version:
                self._running[node] = running

    def note_started(self, node, entry):
        """Forget an entry this conductor has just started."""
        with self._lock:
            entries = self._queues.get(node)
            if entries and entry in entries:
                entries.remove(entry)

    def running(self, node):
        with self._lock:
            return dict(self._running.get(node, NONE_RUNNING).clones)

    def order(self, limit, skip=()):
        """Queue entries to try, best first: one per project under its
        running limit (0: none), the project running fewest clones first,
        then the one that has waited longest since it last started a clone
        (one that never did first: round robin, least recently served
        first), then the one whose oldest clone was posted first.
        ``skip``: entry names already tried.
        """
        with self._lock:
            choices = []
            for node, entries in self._queues.items():
                head = next((e for e in entries if e not in skip), None)
                if head is None:
                    continue
                running = self._running.get(node, NONE_RUNNING)
                if limit and len(running.clones) >= limit:
                    continue
                choices.append((len(running.clones), running.last_start_ms,
                                parse_entry(head)[0], head, node))
        choices.sort()
        return [(node, head) for *_key, head, node in choices]

    def at_limit(self, limit):
        """Projects with clones waiting that are at their running limit:
        ``{project node: {clone id: job znode name}}``.
        """
        if not limit:
            return {}
        with self._lock:
            return {node: dict(self._running[node].clones)
                    for node, entries in self._queues.items()
                    if entries and node in self._running and
                    len(self._running[node].clones) >= limit}

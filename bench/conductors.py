#!/usr/bin/env python3
"""Conductors: kill-to-resume latency, RSS over many clones, throughput.

    .venv/bin/python bench/conductors.py [--clones 500] [--rss-clones 1000]
        [--timeouts 4,10] [--rounds 3] [--big-mib 200]
        [--persistence postgresql|sqlite] [--only kill,rss,throughput]
        [--code head|tree] [--compare REV] [--conductors 1,2]
        [--sources N] [--sweep-interval S] [--keep]

Real ``clone-conductor`` processes against the real local cloud
(``tools/localcloud``; its ``LOCALCLOUD_*`` variables are honoured, and a
cloud that is not up is brought up and stopped again at the end). Clones are
posted directly with ``conductor.jobboard.Poster`` and
``conductor.runner.new_store`` (one Keystone trust per clone, created as user
``demo``), as the API would. Each phase has its own jobboard path and its own
persistence database (PostgreSQL on 127.0.0.1:5432, created and dropped
here), shared by its conductors.

1. **Kill-to-resume** for each ``--timeouts`` value (``[jobboard]
   session_timeout``): conductor A copies a ``--big-mib`` image and is killed
   (``kill -9``) or stopped (SIGTERM) at ~40 % of the copy (the bytes in
   RegionTwo's file store); measured from the signal to conductor B's log
   line ``Clone <id>: attempt 2``. Two set-ups: B already running
   ("standby", as in a deployment with several conductors) and B started
   right after the signal ("cold", includes B's start-up). The column
   "lock gone" is when ZooKeeper deleted A's claim (session expiry after a
   kill, A's release after SIGTERM), seen by a watch. Target after kill -9:
   claim <= timeout + 1 s.
2. **RSS**: one conductor runs ``--rss-clones`` clones of 1 KiB images,
   posted as it goes (at most ``--backlog`` waiting on the board, so the
   board does not grow); its RSS is sampled every 0.2 s and printed every
   100 clones (now and peak so far). Target: flat.
3. **Throughput**: ``--clones`` clones of 1 KiB images, all posted first
   (trusts made beforehand), then 1 and then 2 conductors drain the board
   (``[conductor] max_concurrent_clones`` each); wall from the first claim
   to the last end in the conductors' logs.

Everything a phase made in RegionTwo is deleted after it; the source images
at the end. The conductors run a snapshot of HEAD (``--code head``), not the
shared work tree, so that edits made meanwhile do not change what is
measured; ``--code tree`` measures the work tree. Per phase the table also
gives the CPU each part of the cloud spent per clone and the HTTP 500s the
local Glance answered the conductors (its sqlite database is locked now and
then by concurrent writes), which is what bounds the throughput here.
About an hour on 2 busy cores.

``--compare REV`` measures the code of commit ``REV`` (a snapshot, as
HEAD's) side by side with it: the RSS phase runs once for each code, the
throughput phase ``--rounds`` times for each, interleaved (before, after,
after, before, ...); each code's conductors run, and its clones are posted
by, that code (the poster is a child process on the snapshot).
``--sources N`` uploads only N source images and clones them in turn.
"""
import argparse
import concurrent.futures
import configparser
import contextlib
import io
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psutil

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Where the product's code comes from: the work tree, or (--code head, the
#: default) a snapshot of HEAD, so that edits others make to the shared work
#: tree during the hour this runs do not change what is measured midway.
SRC = ROOT

# The poster's board and ZooKeeper client narrate their closing on stderr.
for _name in ('taskflow', 'kazoo'):
    logging.getLogger(_name).setLevel(logging.ERROR)

BIN = pathlib.Path(sys.executable).parent
LOCALCLOUD = ROOT / 'tools' / 'localcloud'
MiB = 1024 * 1024
PG = dict(host='127.0.0.1', port=5432, user='postgres')
FINISHED = ('SUCCESS', 'FAILURE', 'REVERTED')
LOG_TIME = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) ')
T0 = time.monotonic()


def say(msg):
    print(f'[{time.monotonic() - T0:7.1f}s] {msg}', flush=True)


def load():
    return '/'.join(f'{x:.1f}' for x in os.getloadavg())


def localcloud(*args, check=True):
    return subprocess.run([sys.executable, str(LOCALCLOUD), *args],
                          check=check, capture_output=True, text=True,
                          timeout=900)


def log_time(line):
    m = LOG_TIME.match(line)
    if not m:
        return None
    return time.mktime(time.strptime(m.group(1), '%Y-%m-%d %H:%M:%S')) + \
        int(m.group(2)) / 1000


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f'timed out after {timeout}s waiting for {what}')


# -- the cloud ---------------------------------------------------------------

class Cloud:
    """Sessions and Glance clients of the local cloud, one per thread."""

    def __init__(self, info):
        self.info = info
        self._local = threading.local()

    def session(self, user='demo'):
        from keystoneauth1.identity import v3
        from keystoneauth1 import session as ks_session
        key = f'session_{user}'
        if not hasattr(self._local, key):
            u = self.info['users'][user]
            auth = v3.Password(
                auth_url=self.info['auth_url'], username=user,
                password=u['password'], user_domain_name='Default',
                project_name=u['project'], project_domain_name='Default')
            setattr(self._local, key, ks_session.Session(auth=auth))
        return getattr(self._local, key)

    def glance(self, user, region):
        from glanceclient import client
        key = f'glance_{user}_{region}'
        if not hasattr(self._local, key):
            setattr(self._local, key, client.Client(
                '2', session=self.session(user), region_name=region,
                interface='public'))
        return getattr(self._local, key)

    def upload(self, data, name):
        # The local Glance keeps its records in sqlite, which now and then
        # answers a concurrent write with 500 "database is locked": retry.
        from glanceclient import exc
        gc = self.glance('demo', 'RegionOne')
        for attempt in range(1, 6):
            image = None
            try:
                image = gc.images.create(name=name, disk_format='raw',
                                         container_format='bare')
                gc.images.upload(image.id, io.BytesIO(data))
                return image.id
            except (exc.HTTPInternalServerError, exc.HTTPConflict):
                if image is not None:
                    self.delete_images('RegionOne', [image.id])
                if attempt == 5:
                    raise
                time.sleep(0.2 * attempt)

    def data_file(self, region, image_id):
        return (pathlib.Path(self.info['regions'][region]['data_dir'])
                / image_id)

    def copies(self, source_ids):
        """RegionTwo images (hidden or not) cloned from ``source_ids``."""
        from clone_flows import metadata
        gc = self.glance('admin', 'RegionTwo')
        found = []
        for hidden in (False, True):
            filters = {metadata.PROVENANCE_REGION: 'RegionOne'}
            if hidden:
                filters['os_hidden'] = True
            for image in gc.images.list(filters=filters, page_size=200):
                if image.get(metadata.PROVENANCE_IMAGE) in source_ids:
                    found.append(image)
        return found

    def delete_images(self, region, image_ids):
        """Delete, one at a time (see :meth:`upload`); returns how many
        could not be deleted.
        """
        from glanceclient import exc
        gc = self.glance('admin', region)
        left = 0
        for image_id in image_ids:
            for attempt in range(1, 6):
                try:
                    gc.images.delete(image_id)
                    break
                except exc.HTTPNotFound:
                    break
                except exc.HTTPException:
                    if attempt == 5:
                        left += 1
                    else:
                        time.sleep(0.2 * attempt)
        return left


class CloudMeter:
    """What the local cloud spent during a phase: CPU of each service
    (gunicorn workers included) and the HTTP 500s Glance answered the
    conductors (its sqlite database says "database is locked" under
    concurrent writes).
    """

    SERVICES = ('keystone', 'glance-RegionOne', 'glance-RegionTwo',
                'zookeeper')

    def __init__(self, cloud):
        self.info = cloud.info
        self.cpu0 = self._cpu()
        self.offsets = {r: self._log(r).stat().st_size
                        for r in ('RegionOne', 'RegionTwo')}

    def _log(self, region):
        return pathlib.Path(self.info['regions'][region]['log'])

    def _cpu(self):
        cpu = {}
        for svc in self.SERVICES:
            try:
                top = psutil.Process(self.info['services'][svc]['pid'])
                total = 0.0
                for proc in [top] + top.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        t = proc.cpu_times()
                        total += t.user + t.system
                cpu[svc] = total
            except (psutil.Error, KeyError):
                cpu[svc] = None
        return cpu

    def read(self):
        cpu1 = self._cpu()
        cpu = {svc: (cpu1[svc] - self.cpu0[svc]
                     if cpu1[svc] is not None and self.cpu0[svc] is not None
                     else None) for svc in self.SERVICES}
        errors = 0
        for region, offset in self.offsets.items():
            with open(self._log(region), 'rb') as f:
                f.seek(offset)
                for line in f:
                    if b'" 500 ' in line and b'clone-conductor' in line:
                        errors += 1
        return {'cpu': cpu, 'glance_500': errors}


def clone_lines(fleet, names):
    """Per clone, from the conductors' logs: first claim, end, outcome,
    whether a step failed and was retried, and the failure message.
    """
    clones = {}
    pat = re.compile(r'Clone ([0-9a-f-]{36})(?::| ended:) ?(.*)$')
    for name in names:
        for line in fleet.log(name).splitlines():
            m = pat.search(line)
            if not m:
                continue
            c_ = clones.setdefault(m.group(1), {'retried': False})
            text = m.group(2)
            if text.startswith('attempt 1 on'):
                c_['start'] = log_time(line)
            elif ' ended: ' in line:
                c_['end'] = log_time(line)
                c_['ok'] = text.startswith('success')
                c_['message'] = text
            elif text.startswith('step ') and text.split()[2] == 'FAILURE':
                c_['retried'] = True
    return clones


def summarise_clones(clones):
    done = [v for v in clones.values() if 'start' in v and 'end' in v]
    durations = sorted(v['end'] - v['start'] for v in done)
    failures = {}
    for v in done:
        if not v['ok']:
            failures[v['message']] = failures.get(v['message'], 0) + 1
    return {
        'first': min(v['start'] for v in done),
        'last': max(v['end'] for v in done),
        'median_s': statistics.median(durations),
        'p90_s': durations[int(0.9 * (len(durations) - 1))],
        'retried': sum(v['retried'] for v in done),
        'failures': failures,
    }


# -- persistence --------------------------------------------------------------

class Databases:
    """PostgreSQL databases made for this run (or sqlite files)."""

    def __init__(self, kind, work_dir, run_id):
        self.kind = kind
        self.dir = work_dir
        self.run_id = run_id
        self.made = []

    def new(self, label):
        if self.kind == 'sqlite':
            return f'sqlite:///{self.dir}/{label}-flows.sqlite'
        import psycopg2
        name = f'cbench_{self.run_id}_{label}'.replace('-', '_')
        conn = psycopg2.connect(dbname='postgres', **PG)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        self.made.append(name)
        return f'postgresql+psycopg2://postgres@127.0.0.1:5432/{name}'

    def drop_all(self):
        if not self.made:
            return
        import psycopg2
        conn = psycopg2.connect(dbname='postgres', **PG)
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in self.made:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
        self.made = []


class FlowStates:
    """Reads the flows' states straight from the shared persistence."""

    def __init__(self, url):
        import sqlalchemy as sa
        self._sa = sa
        self._engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def finished(self):
        """{clone_id: state} of every finished flow."""
        with self._engine.connect() as conn:
            rows = conn.execute(self._sa.text(
                'SELECT uuid, state FROM flowdetails'))
            return {u: s for u, s in rows if s in FINISHED}

    def close(self):
        self._engine.dispose()


# -- conductors ---------------------------------------------------------------

class Fleet:
    """Conductor processes sharing one persistence and one jobboard path."""

    def __init__(self, bench, label, persistence_url, session_timeout,
                 max_concurrent, src=None):
        self.bench = bench
        self.src = src or SRC
        self._poster_proc = None
        self.label = label
        self.dir = bench.dir / label
        self.board = f'/glance-clone-bench/{bench.run_id}/{label}'
        self.persistence_url = persistence_url
        self.session_timeout = session_timeout
        self.max_concurrent = max_concurrent
        self.procs = {}
        self.restarts = []            # (name, what the log says)
        self._cpu = {}                # pid -> last CPU seconds seen
        self.poster_conf_file = self.conf_file('poster')
        self._poster = None
        self._conf = None

    def conf_file(self, name):
        d = self.dir / name
        env = dict(os.environ, CLONE_PERSISTENCE=self.persistence_url,
                   CLONE_SESSION_TIMEOUT=str(self.session_timeout),
                   CLONE_BOARD_PATH=self.board)
        path = subprocess.run(
            [sys.executable, str(self.src / 'tools/write-clone-conf'), str(d),
             str(self.bench.cloud_json)],
            check=True, capture_output=True, text=True, env=env).stdout.strip()
        cp = configparser.ConfigParser(interpolation=None)
        cp.optionxform = str
        cp.read(path)
        cp['DEFAULT']['debug'] = 'false'
        if not cp.has_section('conductor'):
            cp.add_section('conductor')
        cp['conductor']['name'] = f'{self.label}-{name}'
        cp['conductor']['max_concurrent_clones'] = str(self.max_concurrent)
        # all of the bench's clones are one project's ("-": posted without
        # one); it measures conductors, not the per-project limit
        cp['conductor']['max_running_clones_per_project'] = '0'
        if self.bench.args.sweep_interval is not None:
            cp['conductor']['sweep_interval'] = str(
                self.bench.args.sweep_interval)
        with open(path, 'w') as f:
            cp.write(f)
        return path

    def name(self, name):
        return f'{self.label}-{name}'

    def start(self, name):
        conf = self.conf_file(name)
        out = open(self.dir / f'{name}.out', 'ab')
        self.procs[name] = subprocess.Popen(
            [str(BIN / 'clone-conductor'), '--config-file', conf],
            cwd=self.src, stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(self.src)))
        return self.procs[name]

    def revive(self, name):
        """Start ``name`` again if it died (the machine is shared: other
        people's clean-ups have sent our conductors SIGTERM); returns True
        when it did.
        """
        proc = self.procs[name]
        if proc.poll() is None:
            return False
        tail = [line for line in self.log(name).splitlines()
                if 'Signal ' in line or ' ERROR ' in line][-1:]
        why = f'exit {proc.returncode}' + (
            f': {tail[0].split(" - ")[-1].split("] ")[-1]}' if tail else '')
        say(f'  {self.label}: conductor {name} died ({why}); starting it '
            f'again')
        self.restarts.append((name, why))
        self.start(name)
        self.wait_serving(name)
        return True

    def sample_cpu(self):
        for proc in self.procs.values():
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(proc.pid).cpu_times()
                self._cpu[proc.pid] = t.user + t.system

    def cpu_seconds(self):
        """CPU of every conductor process this fleet ran (as last seen)."""
        self.sample_cpu()
        return sum(self._cpu.values())

    def log(self, name):
        path = self.dir / name / 'glance-clone.log'
        return path.read_text() if path.exists() else ''

    def wait_serving(self, name, timeout=90):
        proc = self.procs[name]

        def serving():
            if proc.poll() is not None:
                raise RuntimeError(f'conductor {name} exited with '
                                   f'{proc.returncode}; see {self.dir}')
            return f'Conductor {self.name(name)} serving' in self.log(name)
        wait_for(serving, timeout, f'conductor {name} to serve', 0.1)

    def line_time(self, name, text):
        """Time (log clock) of the first log line of ``name`` with ``text``."""
        for line in self.log(name).splitlines():
            if text in line:
                return log_time(line)
        return None

    def stop(self, name, timeout=60):
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)
        if self._poster is not None:
            with contextlib.suppress(Exception):
                self._poster.close()
            self._poster = None
        if self._poster_proc is not None:
            with contextlib.suppress(Exception):
                self._poster_proc.stdin.close()
                self._poster_proc.wait(60)
            self._poster_proc = None

    # -- posting ---------------------------------------------------------
    def conf(self):
        if self._conf is None:
            from conductor import opts
            self._conf = opts.new_conf(
                ['--config-file', self.poster_conf_file],
                default_config_files=[], log=False)
        return self._conf

    def make_stores(self, source_ids, count, what, threads=4):
        """``count`` clone stores (a trust each, as demo), cycling sources."""
        from conductor import runner
        conf = self.conf()
        done = [0]
        lock = threading.Lock()
        t0 = time.monotonic()

        def one(i):
            for attempt in range(5):
                try:
                    store = runner.new_store(
                        conf, self.bench.cloud.session('demo'), {
                            'source_region': 'RegionOne',
                            'source_image_id': source_ids[i % len(source_ids)],
                            'target_region': 'RegionTwo',
                            'name': f'cbench-{self.bench.run_id}-'
                                    f'{self.label}-{i}'})
                    break
                except Exception as e:
                    # the local Keystone's sqlite is "locked" now and then
                    if attempt == 4:
                        raise
                    say(f'  {what}: trust {i}: {e}; trying again')
                    time.sleep(1 + attempt)
            with lock:
                done[0] += 1
                if done[0] % 100 == 0:
                    say(f'  {what}: {done[0]}/{count} trusts created')
            return store
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            stores = list(pool.map(one, range(count)))
        wall = time.monotonic() - t0
        say(f'  {what}: {count} trusts in {wall:.1f}s '
            f'({count / wall:.1f}/s, {threads} threads)')
        return stores

    def post(self, store):
        if self.src != SRC:
            return self._post_with_snapshot(store)
        from conductor import jobboard
        if self._poster is None:
            self._poster = jobboard.Poster(self.conf())
        return self._poster.post(store)

    def _post_with_snapshot(self, store):
        """Post with the code this fleet runs (a child process on it)."""
        if self._poster_proc is None:
            self._poster_proc = subprocess.Popen(
                [sys.executable, '-c', POSTER, self.poster_conf_file],
                cwd=self.src, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True, env=dict(os.environ, PYTHONPATH=str(self.src)))
        self._poster_proc.stdin.write(json.dumps(store) + '\n')
        self._poster_proc.stdin.flush()
        if self._poster_proc.stdout.readline().strip() != 'ok':
            raise RuntimeError(f'{self.label}: the poster failed')


#: A child that posts the clones it reads (JSON lines) with its own code.
POSTER = """
import json, logging, sys
for name in ('taskflow', 'kazoo'):
    logging.getLogger(name).setLevel(logging.ERROR)
from conductor import jobboard, opts
conf = opts.new_conf(['--config-file', sys.argv[1]],
                     default_config_files=[], log=False)
poster = jobboard.Poster(conf)
for line in sys.stdin:
    poster.post(json.loads(line))
    print('ok', flush=True)
poster.close()
"""


# -- the bench ----------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix='conductors-bench-'))
        self.started_cloud = False
        if localcloud('status', check=False).returncode != 0:
            say('local cloud not up: tools/localcloud up')
            localcloud('up')
            self.started_cloud = True
        info = json.loads(localcloud('env', '--json').stdout)
        self.cloud_json = self.dir / 'cloud.json'
        self.cloud_json.write_text(json.dumps(info))
        self.cloud = Cloud(info)
        self.dbs = Databases(args.persistence, self.dir, self.run_id)
        self.sources = []          # RegionOne images we uploaded
        self.fleets = []

    def fleet(self, label, session_timeout=None, max_concurrent=None,
              src=None):
        url = self.dbs.new(label)
        f = Fleet(self, label, url,
                  session_timeout or self.args.session_timeout,
                  max_concurrent or self.args.max_concurrent, src=src)
        self.fleets.append(f)
        return f

    def close(self):
        for f in self.fleets:
            f.stop_all()
        if self.sources:
            copies = [i.id for i in self.cloud.copies(set(self.sources))]
            left = self.cloud.delete_images('RegionTwo', copies)
            left += self.cloud.delete_images('RegionOne', self.sources)
            say(f'deleted {len(self.sources)} source images and '
                f'{len(copies)} leftover copies'
                + (f'; {left} could not be deleted' if left else ''))
        self.dbs.drop_all()
        if self.started_cloud:
            localcloud('down', check=False)
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def upload_small(self, count):
        t0 = time.monotonic()

        def one(i):
            return self.cloud.upload(os.urandom(1024 + i % 512),
                                     f'cbench-{self.run_id}-small-{i}')
        ids = []                     # one at a time: see Cloud.upload
        for i in range(count):
            ids.append(one(i))
            if (i + 1) % 100 == 0:
                say(f'  uploaded {i + 1}/{count} source images')
        self.sources.extend(ids)
        say(f'uploaded {count} source images of ~1 KiB to RegionOne in '
            f'{time.monotonic() - t0:.1f}s')
        return ids

    def cleanup_copies(self, source_ids):
        copies = [i.id for i in self.cloud.copies(set(source_ids))]
        left = self.cloud.delete_images('RegionTwo', copies)
        if left:
            say(f'  {left} copies could not be deleted (tried 5 times each)')
        return len(copies)

    # -- 1. kill-to-resume ----------------------------------------------
    def kill_rounds(self):
        args = self.args
        data = os.urandom(args.big_mib * MiB)
        t0 = time.monotonic()
        big = self.cloud.upload(data, f'cbench-{self.run_id}-big')
        del data
        self.big_checksum = self.cloud.glance('demo', 'RegionOne').images.get(
            big).checksum
        self.sources.append(big)
        say(f'uploaded a {args.big_mib} MiB source image in '
            f'{time.monotonic() - t0:.1f}s')
        from kazoo.client import KazooClient
        zk = KazooClient(hosts=self.cloud.info['zookeeper'])
        zk.start(timeout=10)
        rows = []
        try:
            for timeout in args.timeouts:
                for sig in (signal.SIGKILL, signal.SIGTERM):
                    for mode in ('standby', 'cold'):
                        samples = []
                        for r in range(args.rounds):
                            label = (f'kill-t{timeout:g}-{sig.name.lower()}-'
                                     f'{mode}-{r}').replace('.', '_')
                            samples.append(self.kill_round(
                                zk, big, label, timeout, sig, mode))
                        rows.append({'timeout': timeout, 'signal': sig.name,
                                     'mode': mode, 'samples': samples})
        finally:
            zk.stop()
            zk.close()
        return rows

    def kill_round(self, zk, big, label, timeout, sig, mode):
        from clone_flows import constants as c
        fleet = self.fleet(label, session_timeout=timeout)
        try:
            store = fleet.make_stores([big], 1, label)[0]
            clone_id = store[c.CLONE_ID]
            fleet.start('a')
            fleet.wait_serving('a')    # one at a time: the schema is made once
            if mode == 'standby':
                fleet.start('b')
                fleet.wait_serving('b')
            job = fleet.post(store)
            attempt1 = f'Clone {clone_id}: attempt 1'
            victim = wait_for(
                lambda: next((n for n in fleet.procs
                              if attempt1 in fleet.log(n)), None),
                120, 'a conductor to claim the clone', 0.1)
            other = 'b' if victim == 'a' else 'a'
            reserved = re.compile(rf'Clone {clone_id}: (?:reserved|reusing '
                                  rf'reserved) image (\S+)')
            image_id = wait_for(
                lambda: (reserved.search(fleet.log(victim))
                         or [None, None])[1],
                120, 'the reserved image')
            path = self.cloud.data_file('RegionTwo', image_id)
            total = self.args.big_mib * MiB

            def mid_copy():
                with contextlib.suppress(FileNotFoundError):
                    return path.stat().st_size >= 0.4 * total
            wait_for(mid_copy, 120, 'the copy to reach 40 %', 0.01)
            done_bytes = path.stat().st_size
            gone = {}

            def watch(event):
                if event.type == 'DELETED':
                    gone['t'] = time.time()
            if not zk.exists(job.lock_path, watch=watch):
                raise RuntimeError('the claim vanished before the signal')
            t_sig = time.time()
            if sig == signal.SIGKILL:
                fleet.procs[victim].kill()
            else:
                fleet.procs[victim].send_signal(sig)
            if mode == 'cold':
                fleet.start(other)
            attempt2 = f'Clone {clone_id}: attempt 2'
            wait_for(lambda: attempt2 in fleet.log(other), timeout + 90,
                     f'conductor {other} to claim the clone', 0.05)
            claimed = fleet.line_time(other, attempt2)
            if sig == signal.SIGKILL:
                fleet.procs.pop(victim).wait()
            else:
                fleet.procs[victim].wait(60)
                fleet.procs.pop(victim)
            states = FlowStates(fleet.persistence_url)
            try:
                state = wait_for(lambda: states.finished().get(clone_id), 300,
                                 'the clone to finish', 0.2)
            finally:
                states.close()
            copies = self.cloud.copies({big})
            sample = {'claim': claimed - t_sig,
                      'lock_gone': gone['t'] - t_sig if 't' in gone else None,
                      'state': state, 'copies': len(copies),
                      'verified': [i.checksum for i in copies] == [
                          self.big_checksum],
                      'copied_at_signal': done_bytes / total}
            say(f'  {label}: {sig.name} at {sample["copied_at_signal"]:.0%} '
                f'copied; lock gone +{_fmt(sample["lock_gone"])}s, claimed by '
                f'{other} +{sample["claim"]:.2f}s; clone {state}, '
                f'{len(copies)} cop{"y" if len(copies) == 1 else "ies"}')
            self.cloud.delete_images('RegionTwo', [i.id for i in copies])
            return sample
        finally:
            fleet.stop_all()

    # -- 2. RSS over many clones ----------------------------------------
    def rss(self, sources, src=None, code=None):
        args = self.args
        n = args.rss_clones
        fleet = self.fleet('rss' + (f'-{_tag(code)}' if code else ''),
                           src=src)
        stores = fleet.make_stores(sources, n, 'rss')
        proc = fleet.start('a')
        fleet.wait_serving('a')
        ps = psutil.Process(proc.pid)
        states = FlowStates(fleet.persistence_url)
        peak = [ps.memory_info().rss]
        stop = threading.Event()
        series = [{'clones': 0, 'rss': peak[0], 'peak': peak[0],
                   'elapsed': 0.0}]

        def sampler():
            while not stop.wait(0.2):
                with contextlib.suppress(psutil.Error):
                    peak[0] = max(peak[0], procs[0].memory_info().rss)
        procs = [ps]
        threading.Thread(target=sampler, daemon=True).start()
        posted = 0
        t0 = time.monotonic()
        meter = CloudMeter(self.cloud)
        next_mark = 100
        restarted = []
        last_say = t0
        try:
            while True:
                done = len(states.finished())
                while posted < n and posted - done < args.backlog:
                    fleet.post(stores[posted])
                    posted += 1
                while done >= next_mark and next_mark <= n:
                    rss_now = procs[0].memory_info().rss
                    peak[0] = max(peak[0], rss_now)
                    series.append({'clones': next_mark, 'rss': rss_now,
                                   'peak': peak[0],
                                   'elapsed': time.monotonic() - t0})
                    say(f'  rss: {next_mark}/{n} clones, RSS '
                        f'{rss_now / MiB:.1f} MiB, peak {peak[0] / MiB:.1f} '
                        f'MiB, {next_mark / (time.monotonic() - t0):.1f} '
                        f'clones/s, load {load()}')
                    next_mark += 100
                if done >= n:
                    break
                fleet.sample_cpu()
                if fleet.revive('a'):
                    procs[0] = psutil.Process(fleet.procs['a'].pid)
                    peak[0] = procs[0].memory_info().rss
                    restarted.append(done)
                if time.monotonic() - last_say > 30:
                    last_say = time.monotonic()
                    say(f'  rss: {done}/{n} done')
                time.sleep(0.3)
            cpu_s = fleet.cpu_seconds()
            failed = [u for u, s in states.finished().items()
                      if s != 'SUCCESS']
            spent = meter.read()
            wall = time.monotonic() - t0
        finally:
            stop.set()
            states.close()
            fleet.stop_all()
        summary = summarise_clones(clone_lines(fleet, ['a']))
        removed = self.cleanup_copies(sources)
        say(f'  rss: {summary["retried"]} clones with a retried step, '
            f'{len(failed)} failed {summary["failures"] or ""}; removed '
            f'{removed} copies')
        return {'code': code, 'series': series, 'failed': len(failed),
                'cpu_s': cpu_s,
                'clones': n, 'wall': wall, 'summary': summary,
                'spent': spent, 'restarted_at': restarted,
                'restarts': fleet.restarts}

    # -- 3. throughput ----------------------------------------------------
    def throughput(self, sources, conductors, src=None, code=None, round_=0):
        n = self.args.clones
        label = f'tp{conductors}' + (f'-{_tag(code)}-{round_}' if code
                                     else '')
        fleet = self.fleet(label, src=src)
        stores = fleet.make_stores(sources, n, label)
        t0 = time.monotonic()
        for i, store in enumerate(stores):
            fleet.post(store)
        say(f'  {label}: {n} jobs posted in {time.monotonic() - t0:.1f}s')
        names = [chr(ord('a') + i) for i in range(conductors)]
        for name in names:               # together: the poster made the schema
            fleet.start(name)
        for name in names:
            fleet.wait_serving(name)
        states = FlowStates(fleet.persistence_url)
        load_before = load()
        meter = CloudMeter(self.cloud)
        try:
            last = 0
            while True:
                done = states.finished()
                if len(done) >= n:
                    break
                fleet.sample_cpu()
                for name in names:
                    fleet.revive(name)
                if len(done) - last >= 50 or len(done) == n:
                    last = len(done)
                    say(f'  {label}: {len(done)}/{n} done, load {load()}')
                time.sleep(0.5)
            cpu_s = fleet.cpu_seconds()
            failed = [u for u, s in done.items() if s != 'SUCCESS']
            spent = meter.read()
        finally:
            states.close()
            fleet.stop_all()
        per = {name: fleet.log(name).count(' ended: ') for name in names}
        summary = summarise_clones(clone_lines(fleet, names))
        wall = summary['last'] - summary['first']
        removed = self.cleanup_copies(sources)
        say(f'  {label}: {n} clones in {wall:.1f}s ({n / wall:.2f}/s), '
            f'per conductor {per}, {summary["retried"]} with a retried step, '
            f'{len(failed)} failed {summary["failures"] or ""}; removed '
            f'{removed} copies')
        return {'code': code, 'conductors': conductors, 'clones': n,
                'wall': wall,
                'per_s': n / wall, 'failed': len(failed), 'per': per,
                'cpu_s': cpu_s, 'load': f'{load_before} -> '
                f'{load()}', 'summary': summary, 'spent': spent,
                'restarts': fleet.restarts}


def _tag(code):
    return re.sub(r'\W+', '-', code).strip('-')


def _fmt(v, digits=2):
    return '-' if v is None else f'{v:.{digits}f}'


def _git(*args, **kw):
    return subprocess.run(['git', *args], cwd=ROOT, check=True,
                          capture_output=True, **kw).stdout


def snapshot(rev, dest):
    """The code of commit ``rev`` unpacked in ``dest``; its short id."""
    dest.mkdir()
    tar = _git('archive', rev, 'conductor', 'clone_flows', 'tools')
    subprocess.run(['tar', '-x', '-C', str(dest)], input=tar, check=True)
    return _git('rev-parse', '--short', rev, text=True).strip()


def use_code(how, work_dir):
    """Point SRC (this process and the conductors) at the code to measure;
    returns what it is, for the table.
    """
    global SRC
    head = _git('rev-parse', '--short', 'HEAD', text=True).strip()
    if how == 'tree':
        dirty = [line[3:] for line in _git(
            'status', '--porcelain', '--', 'conductor', 'clone_flows',
            text=True).splitlines()]
        what = f'work tree at {head}' + (
            f' + uncommitted {", ".join(dirty)}' if dirty else '')
    else:
        SRC = work_dir / 'src'
        SRC.mkdir()
        tar = _git('archive', 'HEAD', 'conductor', 'clone_flows', 'tools')
        subprocess.run(['tar', '-x', '-C', str(SRC)], input=tar, check=True)
        what = f'{head} (snapshot of HEAD)'
    sys.path.insert(0, str(SRC))
    return what


def _cpu_cells(cpu_conductors, spent, clones):
    ms = [1000 * cpu_conductors / clones]
    for svc in CloudMeter.SERVICES:
        v = spent['cpu'].get(svc)
        ms.append(None if v is None else 1000 * v / clones)
    return ' / '.join(_fmt(v, 0) for v in ms)


CPU_HEAD = ('CPU ms per clone: conductors / Keystone / Glance R1 / Glance R2 '
            '/ ZooKeeper')


def header(args, info, started):
    return [f'Conductors on the local cloud: {os.cpu_count()} cores shared '
            f'with other work (load average {info["load_start"]} at start, '
            f'{load()} at end); persistence {args.persistence}; [conductor] '
            f'max_concurrent_clones = {args.max_concurrent}; code '
            f'{info["code"]}; {time.strftime("%Y-%m-%d %H:%M", started)}', '']


def section_kills(args, kills):
    out = []
    p = out.append
    if kills:
        p(f'1. Kill-to-resume, {args.big_mib} MiB image, signal at ~40 % of '
          f'the copy, {args.rounds} rounds each; seconds from the signal to '
          f'B\'s "attempt 2" (standby: B already running; cold: B started '
          f'right after the signal)')
        p('')
        p('| session timeout | signal | B | lock gone (median) '
          '| B claims: each round | median | max | target | met | clone |')
        p('|---|---|---|---|---|---|---|---|---|---|')
        for row in kills:
            s = row['samples']
            claims = [x['claim'] for x in s]
            gone = [x['lock_gone'] for x in s if x['lock_gone'] is not None]
            if row['signal'] == 'SIGKILL':
                target = row['timeout'] + 1
                met = 'yes' if max(claims) <= target else 'no'
                target = f'<= {target:g}'
            else:
                target, met = '~0', ''
            ok = all(x['state'] == 'SUCCESS' and x['copies'] == 1 and
                     x['verified'] for x in s)
            p(f'| {row["timeout"]:g} s | {row["signal"]} | {row["mode"]} | '
              f'{_fmt(statistics.median(gone)) if gone else "-"} | '
              f'{", ".join(_fmt(x) for x in claims)} | '
              f'{_fmt(statistics.median(claims))} | {_fmt(max(claims))} | '
              f'{target} | {met} | '
              f'{"1 copy, checksum ok" if ok else "NOT OK"} |')
        p('')
    return out


def section_rss(args, rss):
    out = []
    if isinstance(rss, list):
        return [line for one in rss for line in section_rss(args, one)]
    p = out.append
    if rss:
        s = rss['series']
        sm = rss['summary']
        p(f'2. One conductor\'s RSS over {rss["clones"]} clones of ~1 KiB '
          + (f'(code {rss["code"]}) ' if rss.get('code') else '') +
          f'images ([conductor] sweep_interval = '
          f'{args.sweep_interval if args.sweep_interval is not None else 30}; '
          f'{rss["wall"]:.0f} s; {rss["failed"]} failed, '
          f'{sm["retried"]} with a retried step, {rss["spent"]["glance_500"]} '
          f'Glance 500s; {CPU_HEAD}: '
          f'{_cpu_cells(rss["cpu_s"], rss["spent"], rss["clones"])})')
        p('')
        p('| clones done | ' + ' | '.join(str(x['clones']) for x in s) + ' |')
        p('|---|' + '---|' * len(s))
        p('| RSS MiB | ' + ' | '.join(f'{x["rss"] / MiB:.1f}' for x in s)
          + ' |')
        p('| peak so far MiB | ' + ' | '.join(f'{x["peak"] / MiB:.1f}'
                                              for x in s) + ' |')
        first = next((x for x in s if x['clones'] >= 100), None)
        if first is not None and s[-1]['clones'] > first['clones']:
            n = s[-1]['clones'] - first['clones']
            per = (s[-1]['peak'] - first['peak']) / n / 1024
            p('')
            p(f'Peak growth from {first["clones"]} to {s[-1]["clones"]} '
              f'clones: {(s[-1]["peak"] - first["peak"]) / MiB:+.1f} MiB '
              f'({per:+.1f} KiB per clone); target: flat.')
        if sm['failures']:
            p('Failures: ' + '; '.join(f'{n} x "{m}"' for m, n in
                                       sm['failures'].items()))
        if rss['restarts']:
            p(f'The conductor was stopped from outside the bench and '
              f'started again at {rss["restarted_at"]} clones done '
              f'({rss["restarts"]}); RSS and peak start again from there.')
        p('')
    return out


def section_tps(tps):
    out = []
    p = out.append
    if tps:
        p(f'3. Throughput, {tps[0]["clones"]} clones of ~1 KiB images posted '
          f'beforehand (wall: first claim to last end, from the conductors\' '
          f'logs; per clone: its claim to its end)')
        p('')
        p('| code | conductors | wall s | clones/s | per conductor | '
          'per clone median / p90 s | failed | retried a step | Glance 500s | '
          f'{CPU_HEAD} | load before -> after |')
        p('|---|---|---|---|---|---|---|---|---|---|---|')
        for t in tps:
            sm = t['summary']
            p(f'| {t.get("code") or "-"} | {t["conductors"]} | '
              f'{t["wall"]:.1f} | {t["per_s"]:.2f} | '
              f'{", ".join(str(v) for v in t["per"].values())} | '
              f'{sm["median_s"]:.2f} / {sm["p90_s"]:.2f} | {t["failed"]} | '
              f'{sm["retried"]} | {t["spent"]["glance_500"]} | '
              f'{_cpu_cells(t["cpu_s"], t["spent"], t["clones"])} | '
              f'{t["load"]} |')
        for t in tps:
            if t['summary']['failures']:
                p(f'Failures with {t["conductors"]}: ' + '; '.join(
                    f'{n} x "{m}"' for m, n in
                    t['summary']['failures'].items()))
            if t['restarts']:
                p(f'With {t["conductors"]}: conductors stopped from outside '
                  f'the bench and started again: {t["restarts"]}.')
        p('')
    return out


def section_compare(tps):
    """Medians per code and conductor count, and their ratio."""
    codes = sorted({t['code'] for t in tps if t.get('code')})
    if len(codes) != 2:
        return []
    out = ['Side by side (medians over rounds):', '',
           '| conductors | code | rounds | clones/s | conductor CPU ms per '
           'clone | cloud CPU ms per clone |', '|---|---|---|---|---|---|']
    for n in sorted({t['conductors'] for t in tps}):
        per = {}
        for code in codes:
            rows = [t for t in tps if t['code'] == code
                    and t['conductors'] == n]
            rate = statistics.median(t['per_s'] for t in rows)
            cond = statistics.median(1000 * t['cpu_s'] / t['clones']
                                     for t in rows)
            cloud = statistics.median(
                (1000 * (t['cpu_s'] + sum(v for v in t['spent']['cpu'].values()
                                          if v is not None)) / t['clones'])
                for t in rows)
            per[code] = rate
            out.append(f'| {n} | {code} | {len(rows)} | {rate:.2f} | '
                       f'{cond:.0f} | {cloud:.0f} |')
        before, after = (per[c] for c in sorted(codes, key=lambda c: 'after'
                                                in c))
        out.append(f'| {n} | after/before | | {after / before:.2f} | | |')
    return out + ['']


def show(lines):
    print('\n'.join([''] + lines), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--clones', type=int, default=500)
    p.add_argument('--rss-clones', type=int, default=1000)
    p.add_argument('--timeouts', default='4,10',
                   type=lambda s: [float(x) for x in s.split(',') if x])
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--big-mib', type=int, default=200)
    p.add_argument('--backlog', type=int, default=8,
                   help='RSS phase: clones waiting on the board at most')
    p.add_argument('--session-timeout', type=float, default=10,
                   help='[jobboard] session_timeout of the RSS and '
                        'throughput phases')
    p.add_argument('--max-concurrent', type=int, default=2,
                   help='[conductor] max_concurrent_clones')
    p.add_argument('--sweep-interval', type=int, default=None,
                   help='[conductor] sweep_interval (default: as '
                        'tools/write-clone-conf writes it, 30)')
    p.add_argument('--persistence', choices=('postgresql', 'sqlite'),
                   default='postgresql')
    p.add_argument('--only', default='kill,rss,throughput',
                   type=lambda s: set(s.split(',')))
    p.add_argument('--code', choices=('head', 'tree'), default='head',
                   help='measure a snapshot of HEAD (default) or the work '
                        'tree as it is')
    p.add_argument('--compare', metavar='REV',
                   help='also measure the code of commit REV, side by side '
                        '(RSS once each, throughput --rounds times each, '
                        'interleaved)')
    p.add_argument('--side', choices=('both', 'before', 'after'),
                   default='both',
                   help='with --compare: measure only one side (two runs '
                        'in parallel then see the same machine)')
    p.add_argument('--conductors', default='1,2',
                   type=lambda s: [int(x) for x in s.split(',') if x],
                   help='throughput phase: conductor counts (default 1,2)')
    p.add_argument('--sources', type=int, default=None,
                   help='source images to upload (default: one per clone, '
                        'up to 500)')
    p.add_argument('--keep', action='store_true',
                   help='keep the work directory (configs, conductor logs)')
    args = p.parse_args(argv)
    started = time.localtime()
    info = {'load_start': load()}
    bench = Bench(args)
    info['code'] = use_code(args.code, bench.dir)
    codes = [(None, None)]
    if args.compare:
        before = snapshot(args.compare, bench.dir / 'before')
        after = info['code'].split()[0]
        codes = [(bench.dir / 'before', f'{before} (before)'),
                 (SRC, f'{after} (after)')]
        info['code'] += f', side by side with {before} (before)'
        if args.side != 'both':
            codes = [c for c in codes if f'({args.side})' in c[1]]
    say(f'work directory {bench.dir}; load {load()}')
    kills = rss = None
    tps = []
    try:
        if 'kill' in args.only:
            say('1. kill-to-resume')
            kills = bench.kill_rounds()
            show(section_kills(args, kills))
        small = []
        if 'rss' in args.only or 'throughput' in args.only:
            count = max(args.clones if 'throughput' in args.only else 0,
                        min(args.rss_clones, 500) if 'rss' in args.only else 0)
            if args.sources:
                count = min(count, args.sources)
            small = bench.upload_small(count)
        if 'rss' in args.only:
            rss = []
            for src, code in codes:
                say(f'2. RSS over {args.rss_clones} clones'
                    + (f', code {code}' if code else ''))
                rss.append(bench.rss(small, src=src, code=code))
                show(section_rss(args, rss[-1]))
        if 'throughput' in args.only:
            rounds = args.rounds if args.compare else 1
            for r in range(rounds):
                order = codes if r % 2 == 0 else codes[::-1]
                for n in args.conductors:
                    for src, code in order:
                        say(f'3. throughput, {n} conductor'
                            f'{"s" if n > 1 else ""}'
                            + (f', code {code}, round {r + 1}/{rounds}'
                               if code else ''))
                        tps.append(bench.throughput(small, n, src=src,
                                                    code=code, round_=r + 1))
            show(section_tps(tps))
    finally:
        bench.close()
    show(header(args, info, started) + section_kills(args, kills) +
         [line for one in (rss or [None]) for line in section_rss(args, one)]
         + section_tps(tps) + section_compare(tps))
    return 0


if __name__ == '__main__':
    sys.exit(main())

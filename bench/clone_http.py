"""Benchmark: cloning an image RegionOne -> RegionTwo over HTTP, side by side.

    .venv/bin/python bench/clone_http.py [--size-mib 1024] [--rounds 4]
                                         [--rss-sizes 1024,4096]
                                         [--compare REV]

INTRO: this is one story, read top to bottom.  It uploads a random image to
RegionOne of the local cloud (``tools/localcloud``; the ``LOCALCLOUD_*``
variables choose which one, and it is brought up if it is not running), then
copies it into RegionTwo four ways, interleaved round by round in
balanced orders (a Williams square: in four rounds each method runs once
in each position and once right after each other method), with the disk
flushed (``sync``, untimed) before each copy, so that the machine's noise
and whatever one copy leaves for the next fall on all of them alike:

  (a) this product: ``clone-manage clone --no-progress --json`` as user
      ``demo``, with the configuration ``tools/write-clone-conf`` writes.
      Timed as the whole process: start-up, trust, checks, reservation,
      copy, verification, metadata, activation, trust release.
  (a2) the same flow run by a ``clone-conductor`` already running (as in
      a deployment: the process and its imports are paid once, not per
      clone): the request made in this process as the API makes it (the
      user's trust, the persisted inputs, the job posted on the ZooKeeper
      jobboard), timed from the request until the outcome is persisted.
  (b) Glance's own ``glance-download`` import into RegionTwo: an image is
      created there (not timed), then timed from ``POST .../import`` until
      the image is ``active``.
  (c) a bare client: ``GET`` the source's ``/file`` and stream it straight
      into ``PUT /file`` of a queued RegionTwo image, no checks at all, in
      chunks of the product's own ``[http_stream] chunk_size`` (so a/c is
      the flow's overhead, not a chunk-size choice).  Timed from the GET to
      the PUT's answer.

For (a) and (a2) it also reads the copy step's own duration from the clone's
persisted result ("a: its copy step alone"): the gap between it and (a) is \
the fixed
cost of a clone (process start-up, trust, checks, verification, metadata),
the gap between it and (c) the data path's.

Every copy is checked against the source's size and sha512 after its clock
stops (so (c) did not win by being wrong), and deleted at once.  Then it
prints the medians, the ratios a/b and a/c against their targets, and the
peak RSS of the process that copies, for each of ``--rss-sizes``: for
(a) the ``VmHWM`` of clone-manage from ``/proc``, polled while it runs (not
``ru_maxrss`` from ``wait4``: a child's counts the parent's RSS at the
fork, and this script is as big as the clone); for (a2) the conductor's
``VmHWM`` once started and after the clones of each size (it only grows, so
a bigger image that leaves it unchanged did not grow it).  Every image it
made, in both regions, is
deleted at the end, even when it fails or is interrupted.

``--compare REV`` replaces (b) and (c) by the product at commit ``REV`` (a
``git archive`` snapshot on the ``PYTHONPATH`` of its processes), so that
the four methods of the square are (a), (a) at REV, (a2), (a2) at REV: the
code before a change measured side by side with the code after it.  (a2)
at REV is a second conductor, on a jobboard path of its own; this process
(today's code) posts its clones.
"""
import argparse
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from keystoneauth1 import adapter
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
import requests
import sqlalchemy as sa
from taskflow.persistence import backends

from clone_flows import constants
from conductor import jobboard
from conductor import opts
from conductor import outcome
from conductor import persistence
from conductor import runner

# (a2)'s poster: its ZooKeeper client narrates its closing on stderr.
logging.getLogger('kazoo').setLevel(logging.ERROR)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCALCLOUD = os.path.join(ROOT, 'tools', 'localcloud')
WRITE_CONF = os.path.join(ROOT, 'tools', 'write-clone-conf')
CLONE_MANAGE = os.path.join(sys.prefix, 'bin', 'clone-manage')

MiB = 1024 * 1024
CHUNK = MiB                 # random data generated at a time for the sources
TARGETS = {'a/b': 0.7, 'a/c': 1.15, 'a2/b': 0.7, 'a2/c': 1.15,
           'rss_mib': 100}
RUN = 'bench-' + uuid.uuid4().hex[:8]    # marks every image of this run
METHODS = {
    'a': 'clone-manage clone (this product)',
    'a2': 'the flow on a running conductor',
    'b': 'glance-download import',
    'c': 'bare stream GET -> PUT',
}


def say(*args):
    print(f'[{time.strftime("%H:%M:%S")}]', *args, flush=True)


class Ticker:
    """Says where a long piece of work is, at most every ``every`` seconds."""

    def __init__(self, what, every=5.0):
        self.what, self.every = what, every
        self.start = self.last = time.monotonic()

    def __call__(self, text, force=False):
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            say(f'  {self.what}: {text} ({now - self.start:.0f} s)')


# -- 1. The cloud: whichever tools/localcloud points at, up if needed -------

def localcloud(*args, check=True):
    return subprocess.run([sys.executable, LOCALCLOUD, *args], check=check,
                          text=True, capture_output=True)


def cloud_up():
    """The cloud description; and whether this run brought it up."""
    started = False
    if localcloud('status', check=False).returncode != 0:
        say('the local cloud is not running: tools/localcloud up ...')
        subprocess.run([sys.executable, LOCALCLOUD, 'up'], check=True)
        started = True
    return json.loads(localcloud('env', '--json').stdout), started


# -- 2. Talking to Glance as demo (keystoneauth for control, requests for
#       the bare data path) ---------------------------------------------------

class Region:
    """One region's Image API v2 as user demo: just what the story needs."""

    def __init__(self, session, name):
        self.name = name
        self.session = session
        self.api = adapter.Adapter(session, service_type='image',
                                   region_name=name, interface='public')
        self.url = self.api.get_endpoint().rstrip('/')

    def create(self, name, **props):
        resp = self.api.post('/v2/images', json=dict(
            name=name, disk_format='raw', container_format='bare',
            visibility='private', bench_run=RUN, **props))
        return resp.json()['id']

    def get(self, image_id):
        return self.api.get(f'/v2/images/{image_id}').json()

    def delete(self, image_id, timeout=60):
        """Delete, and make sure it is gone: Glance on sqlite can answer 500
        ("database is locked") while an import task of the image finishes.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.api.delete(f'/v2/images/{image_id}',
                                     raise_exc=False).status_code
            if status in (204, 404):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f'cannot delete image {image_id} in '
                                   f'{self.name}: HTTP {status}')
            time.sleep(1)

    def wait_tasks_done(self, image_id, timeout=120):
        """Until every import task of the image has ended (after the image
        went active, Glance's task still finishes and holds the image).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.api.get(f'/v2/images/{image_id}/tasks').json()
            if all(t['status'] in ('success', 'failure')
                   for t in tasks.get('tasks', [])):
                return
            time.sleep(0.2)

    def ours(self):
        """Ids of every image of this run here, hidden ones too."""
        ids = set()
        for hidden in ('false', 'true'):
            body = self.api.get('/v2/images', params={
                'bench_run': RUN, 'os_hidden': hidden, 'limit': 1000}).json()
            ids.update(i['id'] for i in body['images'])
        return ids

    def headers(self, **extra):
        return dict({'X-Auth-Token': self.session.get_token()}, **extra)


def random_chunks(size, ticker):
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield os.urandom(n)
        sent += n
        ticker(f'{sent / MiB:,.0f}/{size / MiB:,.0f} MiB')


def upload_random(region, size):
    """A new active image of ``size`` random bytes; returns its metadata."""
    image_id = region.create(f'{RUN}-source-{size // MiB}MiB')
    ticker = Ticker(f'uploading {size // MiB} MiB of random data to '
                    f'{region.name}')
    region.api.put(f'/v2/images/{image_id}/file',
                   data=random_chunks(size, ticker),
                   headers={'Content-Type': 'application/octet-stream'})
    image = region.get(image_id)
    assert image['status'] == 'active', image['status']
    ticker(f"done, {image['size']:,} bytes", force=True)
    return image


def same_bits(source, copy):
    return (copy.get('status') == 'active' and copy['size'] == source['size']
            and copy['os_hash_value'] == source['os_hash_value'])


# -- 3. The three ways to copy.  Each returns (seconds, copy id, extra). ----

def copy_step_seconds(conf, clone_id):
    """How long the clone's copy step took, from its persisted result."""
    backend = backends.fetch({'connection': conf.persistence.connection})
    with contextlib.closing(backend.get_connection()) as conn:
        flow = conn.get_logbook(clone_id).find(clone_id)
    return next(a.results['seconds'] for a in flow
                if a.name == constants.COPY_DATA)


def watch_peak_rss(pid, peak, every=0.02):
    """Keeps ``peak[0]`` at the process's own peak RSS (MiB) until it ends:
    ``VmHWM`` counts from its exec, unlike ``ru_maxrss``.
    """
    while True:
        try:
            with open(f'/proc/{pid}/status') as f:
                hwm = next(int(line.split()[1]) for line in f
                           if line.startswith('VmHWM:'))
        except (OSError, StopIteration):    # gone, or a zombie
            return
        peak[0] = max(peak[0], hwm / 1024)
        time.sleep(every)


def run_clone_manage(conf, env, source, name):
    """(a) The product, as a child process, its peak RSS watched."""
    cmd = [CLONE_MANAGE, '--config-file', conf.config_file[0], 'clone',
           '--source-region', 'RegionOne', '--image', source['id'],
           '--target-region', 'RegionTwo', '--name', name,
           '--no-progress', '--json']
    with tempfile.TemporaryFile('w+') as out:
        start = time.monotonic()
        child = subprocess.Popen(cmd, env=env, stdout=out,
                                 stderr=subprocess.PIPE, text=True)
        peak = [0.0]
        watcher = threading.Thread(target=watch_peak_rss,
                                   args=(child.pid, peak))
        watcher.start()
        for line in child.stderr:        # its progress lines, every ~5 s
            say('   ', line.rstrip())
        child.stderr.close()
        watcher.join()                   # ends when the child is a zombie
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    try:
        printed = json.loads(text)
    except ValueError:
        raise RuntimeError(f'clone-manage exited {child.returncode}: {text}')
    if not printed.get('succeeded'):
        raise RuntimeError(f"clone failed: {printed.get('message')}")
    return seconds, printed['result']['image_id'], {
        'copy_step_s': copy_step_seconds(conf, printed['clone_id']),
        'rss_mib': peak[0],
        'cpu_s': usage.ru_utime + usage.ru_stime}


class WarmConductor:
    """(a2) One ``clone-conductor`` for the whole run, and this process as
    the API: it makes the trust and posts each clone on the jobboard.
    """

    def __init__(self, conf, session, workdir, env=None, name='conductor'):
        self.conf, self.session = conf, session
        self.log = open(os.path.join(workdir, f'{name}.out'), 'w')
        self.proc = subprocess.Popen(
            [os.path.join(sys.prefix, 'bin', 'clone-conductor'),
             '--config-file', conf.config_file[0]],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.poster = jobboard.Poster(conf)
        self.backend = persistence.get_backend(conf)

    def clone(self, source, name, poll=0.05):
        flows = self.backend.tables.flowdetails
        state_of = sa.select(flows.c.state).where(
            flows.c.uuid == sa.bindparam('u'))
        start = time.monotonic()
        store = runner.new_store(self.conf, self.session, {
            'source_region': 'RegionOne', 'source_image_id': source['id'],
            'target_region': 'RegionTwo', 'name': name})
        self.poster.post(store)
        clone_id = store[constants.CLONE_ID]
        polls = 0
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'clone-conductor exited '
                                   f'{self.proc.returncode}')
            # One indexed read per poll, not the whole flow: this process
            # shares the two cores with the clone it measures.
            with self.backend.engine.connect() as conn:
                state = conn.execute(state_of, {'u': clone_id}).scalar()
            polls += 1
            if state in ('SUCCESS', 'REVERTED', 'FAILURE') or polls % 20 == 0:
                _, fd = runner.load_flow(self.backend, clone_id)
                if runner.is_finished(fd):
                    break
            time.sleep(poll)
        seconds = time.monotonic() - start
        out = outcome.from_flow_detail(fd)
        if not out.succeeded:
            raise RuntimeError(f'clone failed: {out.message}')
        return seconds, out.result['image_id'], {
            'copy_step_s': copy_step_seconds(self.conf, clone_id),
            'conductor_rss_mib': self.peak_rss_mib()}

    def peak_rss_mib(self):
        """The conductor's peak RSS since it started (``VmHWM``): its
        imports and every clone it has run so far.
        """
        with open(f'/proc/{self.proc.pid}/status') as f:
            return next(int(line.split()[1]) for line in f
                        if line.startswith('VmHWM:')) / 1024

    def close(self):
        self.poster.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run_glance_download(src_region, dst_region, source, name):
    """(b) Glance's glance-download import, polled until active."""
    image_id = dst_region.create(name)
    ticker = Ticker('glance-download')
    start = time.monotonic()
    dst_region.api.post(f'/v2/images/{image_id}/import', json={'method': {
        'name': 'glance-download', 'glance_region': src_region.name,
        'glance_image_id': source['id'],
        'glance_service_interface': 'public'}})
    while True:
        image = dst_region.get(image_id)
        if image['status'] == 'active':
            break
        if image['status'] in ('killed', 'deleted') or \
                image.get('os_glance_failed_import'):
            raise RuntimeError(f"glance-download failed: {image['status']} "
                               f"{image.get('os_glance_failed_import')}")
        ticker(image['status'])
        time.sleep(0.1)
    seconds = time.monotonic() - start
    dst_region.wait_tasks_done(image_id)       # not timed: before deleting
    return seconds, image_id, {}


def run_bare_stream(src_region, dst_region, source, name, chunk_size):
    """(c) GET -> PUT with requests, chunk by chunk, nothing else."""
    image_id = dst_region.create(name)
    ticker = Ticker('bare stream')
    src_url = f"{src_region.url}/v2/images/{source['id']}/file"
    dst_url = f'{dst_region.url}/v2/images/{image_id}/file'
    start = time.monotonic()
    with requests.get(src_url, headers=src_region.headers(), stream=True,
                      timeout=120) as src:
        src.raise_for_status()

        def chunks():
            done = 0
            for chunk in src.iter_content(chunk_size):
                done += len(chunk)
                ticker(f"{done / MiB:,.0f}/{source['size'] / MiB:,.0f} MiB")
                yield chunk

        dst = requests.put(dst_url, data=chunks(), timeout=120,
                           headers=dst_region.headers(
                               **{'Content-Type': 'application/octet-stream'}))
        dst.raise_for_status()
    return time.monotonic() - start, image_id, {}


# -- 4. The story ------------------------------------------------------------

def round_order(r):
    """The methods in round ``r`` (1-based): rows of a 4x4 Williams square,
    each method preceded by each other one once in four rounds.
    """
    square = ((0, 1, 3, 2), (1, 2, 0, 3), (2, 3, 1, 0), (3, 0, 2, 1))
    methods = list(METHODS)
    return [methods[i] for i in square[(r - 1) % len(square)]]


def snapshot(rev, workdir):
    """The code of commit ``rev``, unpacked under ``workdir``."""
    dest = os.path.join(workdir, 'before')
    os.makedirs(dest)
    tar = subprocess.run(['git', 'archive', rev, 'conductor', 'clone_flows'],
                         cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', dest], input=tar, check=True)
    return dest


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--size-mib', type=int, default=1024,
                   help='image size for the timed rounds (default 1024)')
    p.add_argument('--rounds', type=int, default=4,
                   help='rounds of each method (default 4: one Williams '
                        'square; at least 3)')
    p.add_argument('--rss-sizes', default='1024,4096',
                   help='image sizes (MiB) whose clone peak RSS is measured '
                        '(default 1024,4096; "" for none)')
    p.add_argument('--compare', metavar='REV',
                   help='measure (a) and (a2) at commit REV instead of (b) '
                        'and (c)')
    p.add_argument('--keep-cloud', action='store_true',
                   help='leave the local cloud running if this run started it')
    args = p.parse_args()
    if args.rounds < 3:
        p.error('--rounds must be at least 3')
    rss_sizes = [int(s) for s in args.rss_sizes.split(',') if s.strip()]
    if args.compare:
        rev = args.compare
        del METHODS['b'], METHODS['c']
        METHODS['a_before'] = f'clone-manage clone at {rev}'
        METHODS['a2_before'] = f'a running conductor at {rev}'
        rss_sizes = []

    cloud, started = cloud_up()
    say(f"cloud: Keystone {cloud['auth_url']}, state {cloud['state_dir']}; "
        f'images of this run are marked bench_run={RUN}')
    load_before = os.getloadavg()

    # The user who clones, as keystoneauth sees them and as clone-manage's
    # OS_* environment.
    demo = cloud['users']['demo']
    session = ks_session.Session(auth=v3.Password(
        auth_url=cloud['auth_url'], username='demo', password=demo['password'],
        project_name=demo['project'], user_domain_name='Default',
        project_domain_name='Default'))
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env.update(OS_AUTH_URL=cloud['auth_url'], OS_USERNAME='demo',
               OS_PASSWORD=demo['password'], OS_PROJECT_NAME=demo['project'],
               OS_USER_DOMAIN_NAME='Default', OS_PROJECT_DOMAIN_NAME='Default',
               OS_REGION_NAME='RegionTwo', OS_INTERFACE='public')
    one, two = Region(session, 'RegionOne'), Region(session, 'RegionTwo')

    # The product's configuration for this cloud (it holds the service
    # user's password: the directory goes at the end).
    workdir = tempfile.mkdtemp(prefix='glance-clone-bench-')
    conf_file = subprocess.run([sys.executable, WRITE_CONF, workdir],
                               check=True, text=True,
                               capture_output=True).stdout.strip()
    conf = opts.new_conf(['--config-file', conf_file], log=False)
    # (a2)'s conductor watches a board of its own, on the local ZooKeeper.
    with open(conf_file, 'a') as f:
        f.write(f'\n[jobboard]\npath = /glance-clone-bench/{RUN}\n')
    conf = opts.new_conf(['--config-file', conf_file], log=False)
    warm = WarmConductor(conf, session, workdir)
    warm_before = None
    if args.compare:
        before = snapshot(args.compare, workdir)
        env_before = dict(env, PYTHONPATH=before)
        conf_before_file = os.path.join(workdir, 'before.conf')
        with open(conf_file) as f, open(conf_before_file, 'w') as out:
            out.write(f.read() + f'\n[jobboard]\npath = '
                      f'/glance-clone-bench/{RUN}-before\n')
        conf_before = opts.new_conf(['--config-file', conf_before_file],
                                    log=False)
        warm_before = WarmConductor(
            conf_before, session, workdir, name='conductor-before',
            env=dict(os.environ, PYTHONPATH=before))
    time.sleep(3)                            # started and watching
    conductor_idle_mib = warm.peak_rss_mib()
    chunk_size = conf.http_stream.chunk_size
    say(f'clone configuration: {conf_file} (chunk_size {chunk_size})')

    copiers = {
        'a': lambda src, name: run_clone_manage(conf, env, src, name),
        'a2': warm.clone,
        'b': lambda src, name: run_glance_download(one, two, src, name),
        'c': lambda src, name: run_bare_stream(one, two, src, name,
                                               chunk_size),
    }
    if args.compare:
        copiers['a_before'] = lambda src, name: run_clone_manage(
            conf, env_before, src, name)
        copiers['a2_before'] = warm_before.clone
    times = {m: [] for m in METHODS}
    copy_steps = {m: [] for m in METHODS if m.startswith('a')}
    rss = {}                                 # size MiB -> [peak RSS MiB]
    conductor_rss = {}                       # size MiB -> its VmHWM after
    failed, leftovers = False, []
    try:
        size = args.size_mib * MiB
        source = upload_random(one, size)

        # Round by round, each method once, in the orders of a Williams
        # square: over four rounds every method runs once in each position
        # and right after each other method once.  (A copy runs measurably
        # faster right after some methods than after others; a fixed or
        # merely rotated order would hand that to the same method every
        # round.)  The disk is flushed before each copy (untimed), so that
        # none pays for the writeback of the gigabyte written before it.
        for r in range(1, args.rounds + 1):
            for m in round_order(r):
                name = f'{RUN}-{m}{r}'
                os.sync()
                say(f'round {r}/{args.rounds} ({m}) {METHODS[m]} ...')
                seconds, copy_id, extra = copiers[m](source, name)
                copy = two.get(copy_id)
                two.delete(copy_id)
                if not same_bits(source, copy):
                    raise RuntimeError(f'({m}) made a wrong copy: {copy}')
                times[m].append(seconds)
                if 'rss_mib' in extra:
                    rss.setdefault(args.size_mib, []).append(extra['rss_mib'])
                if 'conductor_rss_mib' in extra:
                    conductor_rss[args.size_mib] = extra['conductor_rss_mib']
                if 'copy_step_s' in extra:
                    copy_steps[m].append(extra['copy_step_s'])
                say(f'round {r}/{args.rounds} ({m}) {seconds:.1f} s, '
                    f'{args.size_mib / seconds:.1f} MiB/s' + ''.join(
                        f', {k} {v:.1f}' for k, v in extra.items()))
        one.delete(source['id'])

        # Peak RSS at other sizes: one clone each, by (a) and by (a2).  The
        # conductor's VmHWM only ever grows, so a bigger image that leaves
        # it where the smaller one did has not grown it.
        for size_mib in rss_sizes:
            if size_mib in rss:
                continue
            say(f'peak RSS at {size_mib} MiB ...')
            source = upload_random(one, size_mib * MiB)
            for m in ('a', 'a2'):
                seconds, copy_id, extra = copiers[m](
                    source, f'{RUN}-rss{size_mib}{m}')
                copy = two.get(copy_id)
                two.delete(copy_id)
                if not same_bits(source, copy):
                    raise RuntimeError(f'({m}) made a wrong copy: {copy}')
                if m == 'a':
                    peak = extra['rss_mib']
                    rss[size_mib] = [peak]
                else:
                    peak = conductor_rss[size_mib] = extra['conductor_rss_mib']
                say(f'{size_mib} MiB cloned by ({m}) in {seconds:.1f} s, '
                    f'peak RSS {peak:.1f} MiB')
            one.delete(source['id'])
    except BaseException:
        failed = True
        raise
    finally:
        # Nothing of this run stays behind, in either region.
        for region in (one, two):
            for image_id in sorted(region.ours()):
                say(f'cleanup: deleting {image_id} in {region.name}')
                try:
                    region.delete(image_id)
                except Exception as e:
                    leftovers.append(image_id)
                    say(f'cleanup: {e}')
        warm.close()
        if warm_before is not None:
            warm_before.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if started and not args.keep_cloud:
            say('stopping the local cloud this run started')
            localcloud('down', check=False)
        if failed:
            say('FAILED; ' + (f'images left behind: {leftovers}' if leftovers
                              else 'every image of the run was deleted'))

    # -- 5. The table ---------------------------------------------------------
    med = {m: statistics.median(t) for m, t in times.items()}
    print()
    print(f'clone {args.size_mib} MiB RegionOne -> RegionTwo, '
          f'{args.rounds} rounds interleaved, chunk_size {chunk_size}, '
          f'{time.strftime("%Y-%m-%d")}, {os.cpu_count()} cores, load '
          f'average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} '
          f'after')
    print()
    print(f"| {'method':<38} | median s | MiB/s | rounds (s) |")
    print(f"|{'-' * 40}|---------:|------:|------------|")
    for m, what in METHODS.items():
        print(f'| ({m}) {what:<{35 - len(m)}} | {med[m]:8.1f} | '
              f'{args.size_mib / med[m]:5.1f} | '
              f"{', '.join(f'{t:.1f}' for t in times[m])} |")
        if copy_steps.get(m):
            step = statistics.median(copy_steps[m])
            label = f'{m}: its copy step alone'
            print(f"| {label:<38} | {step:8.1f} | "
                  f'{args.size_mib / step:5.1f} | '
                  f"{', '.join(f'{t:.1f}' for t in copy_steps[m])} |")
    print()
    if args.compare:
        for x, y in (('a', 'a_before'), ('a2', 'a2_before')):
            rounds = [tx / ty for tx, ty in zip(times[x], times[y])]
            print(f'{x}/{x} at {args.compare} = {med[x] / med[y]:.2f} (ratio '
                  f'of medians, {med[x] - med[y]:+.2f} s); round by round '
                  f'{", ".join(f"{v:.2f}" for v in rounds)}')
        return 0
    for ratio, (x, y) in (('a/b', ('a', 'b')), ('a/c', ('a', 'c')),
                          ('a2/b', ('a2', 'b')), ('a2/c', ('a2', 'c'))):
        value = med[x] / med[y]
        rounds = [tx / ty for tx, ty in zip(times[x], times[y])]
        print(f'{ratio} = {value:.2f} (ratio of medians; target <= '
              f"{TARGETS[ratio]}: "
              f"{'met' if value <= TARGETS[ratio] else 'MISSED'}"
              f'); round by round {", ".join(f"{v:.2f}" for v in rounds)}, '
              f'median {statistics.median(rounds):.2f}')
    for m in ('a', 'a2'):
        step = statistics.median(copy_steps[m])
        print(f"{m}'s copy step / c = {step / med['c']:.2f}; fixed cost of a "
              f"clone ({m} - its copy step) = {med[m] - step:.1f} s")
    peaks = {s: max(v) for s, v in sorted(rss.items())}
    for size_mib, peak in peaks.items():
        print(f'peak RSS of clone-manage, {size_mib} MiB image: '
              f'{peak:.1f} MiB '
              f"(target <= {TARGETS['rss_mib']}: "
              f"{'met' if peak <= TARGETS['rss_mib'] else 'MISSED'})")
    if len(peaks) > 1:
        sizes = sorted(peaks)
        print(f'RSS growth {sizes[0]} -> {sizes[-1]} MiB image: '
              f'{peaks[sizes[-1]] - peaks[sizes[0]]:+.1f} MiB')
    print(f'peak RSS of the conductor (a2): {conductor_idle_mib:.1f} MiB '
          f'started, before any clone')
    for size_mib, peak in sorted(conductor_rss.items()):
        print(f'peak RSS of the conductor (a2) after the {size_mib} MiB '
              f'clones: {peak:.1f} MiB (target <= {TARGETS["rss_mib"]}: '
              f"{'met' if peak <= TARGETS['rss_mib'] else 'MISSED'})")
    if leftovers:
        print(f'images left behind: {leftovers}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

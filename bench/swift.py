"""Benchmark: the Swift strategy against HTTP stream, side by side.

    .venv/bin/python bench/swift.py [--size-mib 1024] [--rounds 3]
                                    [--workers 1,2,4] [--big-gib 6]

One story, top to bottom.  It uses the local cloud ``tools/localcloud``
points at (the ``LOCALCLOUD_*`` variables choose which), switches it to Swift
with Glance's default 64 MB segments, and clones RegionOne -> RegionTwo with
``clone-manage clone`` as user ``demo``, timing the whole process:

  1. ``LOCALCLOUD_SWIFT=shared`` (one cluster for both regions): a
     ``--size-mib`` image, round by round: the Swift strategy (server-side
     segment copies), then HTTP stream.  Then one clone of a ``--big-gib``
     image with the Swift strategy (and none over HTTP: the 1 GiB rounds
     give its rate).
  2. ``LOCALCLOUD_SWIFT=per-region`` (one cluster per region): the same
     source image, round by round: Swift with each of ``--workers`` segment
     streams, then HTTP stream.

For every Swift clone it also reads, from the clone's persisted result, how
long the segment copy took and how long Glance took to attach the objects
(``POST /v2/images/{id}/locations`` and the wait until the image is active:
Glance 33 reads the whole image back to compute its checksum and hash, the
only way the copy gets a checksum).

In the same rounds it measures the **physical limit** of this machine: the
same segments copied by Swift alone (python-swiftclient, one ``PUT`` with
``X-Copy-From`` per segment in one cluster, one ``GET`` -> ``PUT`` stream
per segment between clusters, 4 at a time, into a reserved image's
container) plus Glance's own attach of them (its hash read), with no clone
around it; and the same segment copies made by the strategy's old
hand-written ``requests`` client (``clone_flows/stores/swift.py`` at
commit ``OLD_CLIENT``, the last with it) and by its python-swiftclient one
(``SwiftAccount``), side by side in alternating order (issue 14: the library
unless it costs more than 10 %).

Every copy is checked against the source's size and sha512 and deleted at
once; every image this run made is deleted at the end, and the cloud is put
back to the Swift setting it had.
"""
import argparse
import concurrent.futures
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from keystoneauth1 import adapter
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from clone_flows import constants  # noqa: E402
from clone_flows.stores import swift_account  # noqa: E402
from conductor import opts  # noqa: E402
from conductor import persistence  # noqa: E402
from conductor import runner  # noqa: E402

LOCALCLOUD = os.path.join(ROOT, 'tools', 'localcloud')
WRITE_CONF = os.path.join(ROOT, 'tools', 'write-clone-conf')
CLONE_MANAGE = os.path.join(sys.prefix, 'bin', 'clone-manage')
MiB = 1024 * 1024
RUN = 'bench-swift-' + uuid.uuid4().hex[:8]


def say(*args):
    print(f'[{time.strftime("%H:%M:%S")}]', *args, flush=True)


# -- 1. The cloud, in the Swift topology asked for --------------------------

def localcloud(*args, swift=None):
    env = dict(os.environ)
    if swift is not None:
        env['LOCALCLOUD_SWIFT'] = swift
        env.pop('LOCALCLOUD_SWIFT_REGIONS', None)
    return subprocess.run([sys.executable, LOCALCLOUD, *args], env=env,
                          text=True, capture_output=True, check=True)


def topology(mode):
    t = time.monotonic()
    for attempt in (1, 2):
        try:
            localcloud('up', swift=mode)
            break
        except subprocess.CalledProcessError as e:
            say(f'tools/localcloud up (LOCALCLOUD_SWIFT={mode}) failed:\n'
                f'{e.stdout[-2000:]}{e.stderr[-2000:]}')
            if attempt == 2:
                raise
    say(f'local cloud in LOCALCLOUD_SWIFT={mode} '
        f'({time.monotonic() - t:.1f} s)')
    return json.loads(localcloud('env', '--json').stdout)


def clone_conf(cloud, workdir, name, workers):
    """tools/write-clone-conf plus the [swift_store] mapping of cloud.json."""
    d = os.path.join(workdir, name)
    path = subprocess.run([sys.executable, WRITE_CONF, d], check=True,
                          capture_output=True, text=True).stdout.strip()
    regs = {r: v for r, v in cloud['swift']['regions'].items() if v}
    with open(path, 'a') as f:
        f.write('\n[swift_store]\nworkers = %d\nregions = %s\ncontainers = %s'
                '\n' % (workers,
                        ','.join(f"{r}:{v['storage_url_template']}"
                                 for r, v in regs.items()),
                        ','.join(f"{r}:{v['container']}"
                                 for r, v in regs.items())))
    return path


# -- 2. Glance as user demo ---------------------------------------------------

def session(cloud, user='demo'):
    u = cloud['users'][user]
    return ks_session.Session(auth=v3.Password(
        auth_url=cloud['auth_url'], username=user, password=u['password'],
        user_domain_name='Default', project_name=u['project'],
        project_domain_name='Default'))


class Region:
    def __init__(self, cloud, name):
        self.name = name
        self.session = session(cloud)
        self.api = adapter.Adapter(self.session,
                                   service_type='image', region_name=name,
                                   interface='public')
        self.storage_url = cloud['swift']['regions'][name][
            'storage_url_template'] % {
                'project_id': cloud['users']['demo']['project_id']}

    def upload_random(self, size):
        image_id = self.api.post('/v2/images', json=dict(
            name=f'{RUN}-{size // MiB}MiB', disk_format='raw',
            container_format='bare', bench_run=RUN)).json()['id']
        t = time.monotonic()

        def chunks():
            for off in range(0, size, 4 * MiB):
                yield os.urandom(min(4 * MiB, size - off))
        self.api.put(f'/v2/images/{image_id}/file', data=chunks(),
                     headers={'Content-Type': 'application/octet-stream'})
        image = self.get(image_id)
        assert image['status'] == 'active' and image['size'] == size, image
        say(f'uploaded {size / MiB:,.0f} MiB to {self.name} '
            f'({time.monotonic() - t:.0f} s, stores: {image.get("stores")})')
        return image

    def get(self, image_id):
        return self.api.get(f'/v2/images/{image_id}').json()

    def delete(self, image_id):
        for _ in range(30):
            status = self.api.delete(f'/v2/images/{image_id}',
                                     raise_exc=False).status_code
            if status in (204, 404):
                return
            time.sleep(1)

    def ours(self):
        ids = set()
        for hidden in ('false', 'true'):
            body = self.api.get('/v2/images', params={
                'bench_run': RUN, 'os_hidden': hidden, 'limit': 1000}).json()
            ids.update(i['id'] for i in body['images'])
        return ids


# -- 3. One clone, timed, checked, deleted ------------------------------------

def clone(cloud, conf, source, strategy, target):
    env = dict(os.environ, OS_AUTH_URL=cloud['auth_url'], OS_USERNAME='demo',
               OS_PASSWORD=cloud['users']['demo']['password'],
               OS_PROJECT_NAME='demo', OS_USER_DOMAIN_NAME='Default',
               OS_PROJECT_DOMAIN_NAME='Default', OS_REGION_NAME='RegionOne',
               OS_IDENTITY_API_VERSION='3', OS_INTERFACE='public',
               OS_AUTH_TYPE='password')
    t = time.monotonic()
    r = subprocess.run([CLONE_MANAGE, '--config-file', conf, 'clone',
                        '--source-region', 'RegionOne', '--image',
                        source['id'], '--target-region', 'RegionTwo',
                        '--strategy', strategy, '--json', '--no-progress',
                        '--property', f'bench_run={RUN}'],
                       env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t
    out = json.loads(r.stdout)
    if not out.get('succeeded'):
        raise RuntimeError(f'{strategy} clone failed: {out.get("message")}')
    result = out['result']
    copy = target.get(result['image_id'])
    assert copy['os_hash_value'] == source['os_hash_value'] and \
        copy['size'] == source['size'], 'the copy differs from the source'
    details = copy_details(conf, out['clone_id'])
    target.delete(result['image_id'])
    return seconds, details


def copy_details(conf_file, clone_id):
    conf = opts.new_conf(['--config-file', conf_file],
                         default_config_files=[], log=False)
    _, fd = runner.load_flow(persistence.get_backend(conf), clone_id)
    ad = next(a for a in fd if a.name == constants.COPY_DATA)
    return (ad.results or {}).get('details') or {}


# -- 4. The same segments without the strategy: Swift alone, two clients --

#: the last commit whose Swift strategy had its own requests client
OLD_CLIENT = '5dc6ca14bc8be45c81d5b06040ae00da6ad1d3b4'


def old_client():
    """The strategy's hand-written requests client before python-swiftclient
    (clone_flows/stores/swift.py at OLD_CLIENT), loaded as a module.
    """
    text = subprocess.run(['git', '-C', ROOT, 'show',
                           f'{OLD_CLIENT}:clone_flows/stores/swift.py'],
                          check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader('old_swift', loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(text, 'clone_flows/stores/swift.py (old)', 'exec'),
         module.__dict__)
    return module


class Segments:
    """Copies the source image's segments into a reserved image's container
    (Glance's multi-tenant naming), ``workers`` at a time, with one of three
    clients: 'swift' (python-swiftclient through SwiftAccount: the limit
    and the new strategy's client) or 'old' (the requests client).
    """

    def __init__(self, r1, r2, source, same, workers=4, old=None):
        self.r1, self.r2, self.source = r1, r2, source
        self.same, self.workers, self.old = same, workers, old

    def copy(self, client):
        src_id = self.source['id']
        target = self.r2.api.post('/v2/images', json=dict(
            name=f'{RUN}-limit', disk_format='raw', container_format='bare',
            bench_run=RUN)).json()['id']
        src_c, dst_c = f'glance_{src_id}', f'glance_{target}'
        new_src = swift_account.SwiftAccount('RegionOne', self.r1.storage_url,
                                             self.r1.session)
        new_dst = swift_account.SwiftAccount('RegionTwo', self.r2.storage_url,
                                             self.r2.session)
        segments = new_src.listing(src_c, src_id + '-')
        names = ['%s-%05d' % (target, i + 1) for i in range(len(segments))]
        if client == 'old':
            tokens = self.r1.session.get_token

            def token(refresh=False):
                return tokens()
            src = self.old.SwiftAccount('RegionOne', self.r1.storage_url,
                                        src_c, token)
            dst = self.old.SwiftAccount('RegionTwo', self.r2.storage_url,
                                        dst_c, token)
            dst.ensure_container()

            def one(seg, name):
                if self.same:
                    return dst.copy_from(name, src, seg['name'], seg['hash'])
                resp, chunks = src.get_stream(seg['name'], MiB)
                try:
                    return dst.put(name, chunks, seg['hash'])
                finally:
                    resp.close()
        else:
            new_dst.ensure_container(dst_c)

            def one(seg, name):
                if self.same:
                    return new_dst.copy_from(dst_c, name, new_src, src_c,
                                             seg['name'], seg['hash'])
                body, chunks = new_src.get_stream(src_c, seg['name'], MiB)
                try:
                    return new_dst.put(dst_c, name, chunks, seg['hash'])
                finally:
                    body.close()
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            etags = list(pool.map(one, segments, names))
        assert etags == [s['hash'] for s in segments], 'a segment differs'
        new_dst.put_manifest(dst_c, target, target + '-')
        return time.monotonic() - t, target, new_dst, dst_c

    def drop(self, target, dst, container):
        for o in dst.listing(container, ''):
            dst.delete(container, o['name'])
        dst.delete_container(container)
        self.r2.delete(target)

    def attach(self, target, dst, container, service_session):
        """Glance's own attach of the copied objects: the location API, then
        the wait until it has hashed them and made the image active.
        """
        url = 'swift+http://%s/%s/%s' % (
            dst.storage_url.split('://', 1)[1], container, target)
        t = time.monotonic()
        self.r2.api.post(f'/v2/images/{target}/locations', json={
            'url': url, 'validation_data': {
                'os_hash_algo': self.source['os_hash_algo'],
                'os_hash_value': self.source['os_hash_value']}},
            headers={'X-Service-Token': service_session.get_token()})
        while self.r2.get(target)['status'] != 'active':
            time.sleep(0.1)
        seconds = time.monotonic() - t
        copy = self.r2.get(target)
        assert copy['os_hash_value'] == self.source['os_hash_value']
        self.r2.delete(target)
        return seconds

    def round(self, res, prefix, service_session, first_old=True):
        """The old client's copy and the limit (swiftclient's copy, then
        Glance's attach), in the order asked (alternate it between rounds:
        the second copy may find the source segments in the page cache).
        """
        for client in ('old', 'swift') if first_old else ('swift', 'old'):
            seconds, target, dst, container = self.copy(client)
            if client == 'old':
                res.add(f'{prefix}-old-client', seconds, {})
                self.drop(target, dst, container)
                continue
            attach = self.attach(target, dst, container, service_session)
            res.add(f'{prefix}-limit', seconds + attach,
                    {'copy_seconds': seconds, 'attach_seconds': attach})


# -- 5. The rounds ------------------------------------------------------------

class Results:
    def __init__(self):
        self.rows = {}          # label -> [(seconds, details)]

    def add(self, label, seconds, details):
        self.rows.setdefault(label, []).append((seconds, details))
        extra = ''
        if 'copy_seconds' in details:
            extra = (f" (segments {details['copy_seconds']:.1f} s, Glance "
                     f"attach {details['attach_seconds']:.1f} s)")
        say(f'  {label}: {seconds:.1f} s{extra}')

    def median(self, label, key=None):
        values = [d.get(key) if key else s for s, d in self.rows[label]]
        return statistics.median(v for v in values if v is not None)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size-mib', type=int, default=1024)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--workers', default='1,2,4')
    p.add_argument('--big-gib', type=float, default=6)
    args = p.parse_args()
    workers = [int(w) for w in args.workers.split(',')]
    size = args.size_mib * MiB
    saved = json.loads(localcloud('env', '--json').stdout).get(
        'swift', {}).get('mode', 'off')
    res = Results()
    with tempfile.TemporaryDirectory(prefix='bench-swift-') as work, \
            contextlib.ExitStack() as cleanup:
        cloud = topology('shared')
        r1, r2 = Region(cloud, 'RegionOne'), Region(cloud, 'RegionTwo')

        @cleanup.callback
        def delete_everything():
            for region in (r1, r2):
                for image_id in region.ours():
                    region.delete(image_id)
            topology(saved)

        source = r1.upload_random(size)
        service = session(cloud, 'glance-clone')
        old = old_client()
        conf = clone_conf(cloud, work, 'shared', workers=4)
        say(f'same cluster, {args.size_mib} MiB, {args.rounds} rounds')
        for i in range(args.rounds):
            say(f' round {i + 1}')
            res.add('same-swift', *clone(cloud, conf, source, 'swift', r2))
            res.add('same-http', *clone(cloud, conf, source, 'http', r2))
            Segments(r1, r2, source, True, old=old).round(
                res, 'same', service, first_old=i % 2 == 0)
        big = None
        if args.big_gib:
            big = r1.upload_random(int(args.big_gib * 1024) * MiB)
            say(f'same cluster, {args.big_gib:g} GiB')
            res.add('big-swift', *clone(cloud, conf, big, 'swift', r2))
            r1.delete(big['id'])

        cloud = topology('per-region')
        r1, r2 = Region(cloud, 'RegionOne'), Region(cloud, 'RegionTwo')
        confs = {w: clone_conf(cloud, work, f'cross-{w}', workers=w)
                 for w in workers}
        say(f'one cluster per region, {args.size_mib} MiB, '
            f'{args.rounds} rounds')
        for i in range(args.rounds):
            say(f' round {i + 1}')
            for w in workers:
                res.add(f'cross-swift-{w}',
                        *clone(cloud, confs[w], source, 'swift', r2))
            res.add('cross-http', *clone(cloud, confs[workers[0]], source,
                                         'http', r2))
            Segments(r1, r2, source, False, old=old).round(
                res, 'cross', service, first_old=i % 2 == 0)
    report(res, args, workers)


def report(res, args, workers):
    gib = args.size_mib / 1024
    size = f'{gib:g} GiB'
    lines = ['| case | image | time (median) | segments copied | Glance '
             'attach | vs HTTP stream | limit / time |',
             '|---|---|---|---|---|---|---|']

    def part(label, key):
        return f'{res.median(label, key):.1f} s' if key in \
            res.rows[label][0][1] else '-'

    def row(label, name, image=size, base=None, limit=None):
        med = res.median(label)
        vs_http = f'{res.median(base) / med:.2f}x' if base else '-'
        vs_limit = f'{res.median(limit) / med:.2f}' if limit else '-'
        lines.append(f"| {name} | {image} | {med:.1f} s | "
                     f"{part(label, 'copy_seconds')} | "
                     f"{part(label, 'attach_seconds')} | {vs_http} | "
                     f"{vs_limit} |")
    row('same-http', 'one cluster: HTTP stream', base='same-http')
    row('same-swift', 'one cluster: Swift strategy, server-side (4 workers)',
        base='same-http', limit='same-limit')
    row('same-limit', 'one cluster: limit = Swift alone (COPY per segment, '
        '4 at a time) + Glance attach', base='same-http')
    if 'big-swift' in res.rows:
        row('big-swift', 'one cluster: Swift strategy, server-side',
            image=f'{args.big_gib:g} GiB')
    row('cross-http', 'two clusters: HTTP stream', base='cross-http')
    for w in workers:
        row(f'cross-swift-{w}', f'two clusters: Swift strategy, {w} worker'
            f'{"s" if w > 1 else ""}', base='cross-http',
            limit='cross-limit' if w == 4 else None)
    row('cross-limit', 'two clusters: limit = Swift alone (GET -> PUT per '
        'segment, 4 at a time) + Glance attach', base='cross-http')
    lines += ['', '| segment copy, 4 at a time | image | old requests client '
              '| python-swiftclient | swiftclient / old |', '|---|---|---|---|'
              '---|']
    for where, label in (('one cluster (server-side)', 'same'),
                         ('two clusters (streamed)', 'cross')):
        old = res.median(f'{label}-old-client')
        new = res.median(f'{label}-limit', 'copy_seconds')
        lines.append(f'| {where} | {size} | {old:.1f} s | {new:.1f} s | '
                     f'{new / old:.2f} |')
    print()
    print(f'{args.rounds} rounds, medians; one run, interleaved '
          f'({time.strftime("%Y-%m-%d")})')
    print('\n'.join(lines))
    print()
    for label, rows in res.rows.items():
        print(f'{label}: ' + ', '.join(f'{s:.1f}' for s, _ in rows))


if __name__ == '__main__':
    main()

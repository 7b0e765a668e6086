"""Benchmark: the Ceph RBD strategy against HTTP stream and the physical
limit, side by side.

    .venv/bin/python bench/rbd.py [--rounds 3]

One story, top to bottom.  It switches the local cloud ``tools/localcloud``
points at to ``LOCALCLOUD_CEPH=per-region`` (RegionOne's Glance stores in
Ceph cluster a, RegionTwo's in b, thin-provisioned RBD images), uploads two
sparse raw images as user ``demo`` (1 GiB holding 300 MiB of data, 4 GiB
holding 1 GiB, in 8 MiB blocks at random places), and then, round by round
and for each image:

  1. clones it RegionOne -> RegionTwo with ``clone-manage clone --strategy
     rbd`` (the whole process timed), reading from the clone's persisted
     result the bytes it moved and how long the copy and Glance's attach
     (its hash read of the attached image) took;
  2. the same with ``--strategy http`` (every byte, zeros included, through
     both Glances);
  3. the **physical limit** of this machine: a bare ``rbd export-diff
     <src>@snap - | rbd import-diff - <dst>`` between the clusters (admin
     users, pipefail), the snapshot protected, plus Glance's own attach of
     that image to a reserved image (location API, then the wait until it
     has read and hashed it and made the image active), with no clone
     around it.

Once per image it also measures the export-diff stream (bytes, and bytes
after ``zstd -1``) to say whether compression in transit would pay.
Every copy is checked against the source's size and hash and deleted; the
sources are deleted at the end and the cloud is put back to
``LOCALCLOUD_CEPH=off``.
"""
import argparse
import json
import os
import random
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
from conductor import opts  # noqa: E402
from conductor import persistence  # noqa: E402
from conductor import runner  # noqa: E402

LOCALCLOUD = os.path.join(ROOT, 'tools', 'localcloud')
WRITE_CONF = os.path.join(ROOT, 'tools', 'write-clone-conf')
CLONE_MANAGE = os.path.join(sys.prefix, 'bin', 'clone-manage')
MiB = 1024 * 1024
GiB = 1024 * MiB
RUN = 'bench-rbd-' + uuid.uuid4().hex[:8]
IMAGES = ((GiB, 300 * MiB), (4 * GiB, GiB))


def say(*args):
    print(f'[{time.strftime("%H:%M:%S")}]', *args, flush=True)


def localcloud(*args, ceph=None):
    env = dict(os.environ)
    if ceph is not None:
        env['LOCALCLOUD_CEPH'] = ceph
        env.pop('LOCALCLOUD_CEPH_REGIONS', None)
    return subprocess.run([sys.executable, LOCALCLOUD, *args], env=env,
                          text=True, capture_output=True, check=True)


def session(cloud, user):
    u = cloud['users'][user]
    return ks_session.Session(auth=v3.Password(
        auth_url=cloud['auth_url'], username=user, password=u['password'],
        user_domain_name='Default', project_name=u['project'],
        project_domain_name='Default'))


class Region:
    def __init__(self, cloud, name):
        self.name = name
        self.api = adapter.Adapter(session(cloud, 'demo'),
                                   service_type='image', region_name=name,
                                   interface='public')

    def upload_sparse(self, size, data, seed):
        image_id = self.api.post('/v2/images', json=dict(
            name=f'{RUN}-{size // MiB}MiB', disk_format='raw',
            container_format='bare', bench_run=RUN)).json()['id']
        block = 8 * MiB
        rnd = random.Random(seed)
        slots = set(rnd.sample(range(size // block), data // block))
        t = time.monotonic()

        def chunks():
            zeros = bytes(block)
            for i in range(size // block):
                yield os.urandom(block) if i in slots else zeros
        self.api.put(f'/v2/images/{image_id}/file', data=chunks(),
                     headers={'Content-Type': 'application/octet-stream'})
        image = self.get(image_id)
        assert image['status'] == 'active' and image['size'] == size, image
        say(f'uploaded {size // MiB} MiB ({data // MiB} MiB of data) to '
            f'{self.name} in {time.monotonic() - t:.0f} s, stores: '
            f'{image.get("stores")}')
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
    copy = target.get(out['result']['image_id'])
    assert copy['os_hash_value'] == source['os_hash_value'] and \
        copy['size'] == source['size'], 'the copy differs from the source'
    conf_ = opts.new_conf(['--config-file', conf], default_config_files=[],
                          log=False)
    _, fd = runner.load_flow(persistence.get_backend(conf_), out['clone_id'])
    result = next(a for a in fd if a.name == constants.COPY_DATA).results
    target.delete(copy['id'])
    return seconds, result


class Limit:
    """export-diff | import-diff with the clusters' admins, then Glance's
    attach of the result, timed.
    """

    def __init__(self, cloud, source, target):
        self.cloud, self.source, self.target = cloud, source, target
        self.a = cloud['ceph']['clusters']['a']['admin_conf']
        self.b = cloud['ceph']['clusters']['b']['admin_conf']
        self.fsid_b = cloud['ceph']['clusters']['b']['fsid']
        self.service = session(cloud, 'glance-clone')

    def rbd(self, conf, *args):
        subprocess.run(['rbd', '-c', conf, *args],
                       check=True, capture_output=True, timeout=600)

    def run(self):
        src = self.source
        reserved = self.target.api.post('/v2/images', json=dict(
            name=f'{RUN}-limit', disk_format='raw', container_format='bare',
            bench_run=RUN)).json()['id']
        try:
            return self._run(src, reserved)
        except BaseException:
            # Glance removes the RBD image it holds when the image goes;
            # one it never took is removed here
            self.target.delete(reserved)
            subprocess.run(['bash', '-c', 'rbd -c "$1" snap unprotect '
                            '"$2@snap"; rbd -c "$1" snap purge "$2"; '
                            'rbd -c "$1" rm --no-progress "$2"', '-', self.b,
                            f'images/{reserved}'], capture_output=True)
            raise

    def _run(self, src, reserved):
        t = time.monotonic()
        self.rbd(self.b, 'create', '--size', f'{src["size"] // MiB}M',
                 '--object-size', '8M', f'images/{reserved}')
        subprocess.run(
            ['bash', '-c', 'set -euo pipefail; rbd -c "$1" --no-progress '
             'export-diff "images/$3@snap" - | rbd -c "$2" --no-progress '
             'import-diff - "images/$4"', '-', self.a, self.b, src['id'],
             reserved], check=True, capture_output=True, timeout=600)
        self.rbd(self.b, 'snap', 'protect', f'images/{reserved}@snap')
        copy_seconds = time.monotonic() - t
        location = {
            'url': f'rbd://{self.fsid_b}/images/{reserved}/snap',
            'validation_data': {'os_hash_algo': src['os_hash_algo'],
                                'os_hash_value': src['os_hash_value']}}
        self.target.api.post(
            f'/v2/images/{reserved}/locations', json=location,
            headers={'X-Service-Token': self.service.get_token()})
        while self.target.get(reserved)['status'] != 'active':
            time.sleep(0.1)
        seconds = time.monotonic() - t
        assert self.target.get(reserved)['os_hash_value'] == \
            src['os_hash_value']
        self.target.delete(reserved)
        return seconds, copy_seconds

    def stream_sizes(self):
        """(export-diff stream bytes, the same after zstd -1)."""
        with tempfile.TemporaryDirectory() as d:
            raw = os.path.join(d, 'diff')
            self.rbd(self.a, 'export-diff', f'images/{self.source["id"]}@snap',
                     raw)
            size = os.path.getsize(raw)
            z = subprocess.run(['bash', '-c', 'zstd -1 -q -c "$1" | wc -c',
                                '-', raw], check=True, capture_output=True,
                               text=True).stdout
            return size, int(z)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=3)
    args = p.parse_args()
    t = time.monotonic()
    localcloud('up', ceph='per-region')
    say(f'local cloud with Ceph per region up in {time.monotonic() - t:.1f} s')
    cloud = json.loads(localcloud('env', '--json').stdout)
    r1, r2 = Region(cloud, 'RegionOne'), Region(cloud, 'RegionTwo')
    work = tempfile.mkdtemp(prefix='bench-rbd-')
    conf = subprocess.run([sys.executable, WRITE_CONF, work], check=True,
                          capture_output=True, text=True).stdout.strip()
    sources = []
    try:
        for i, (size, data) in enumerate(IMAGES):
            sources.append(r1.upload_sparse(size, data, seed=i))
        res = {}
        streams = {}
        for src in sources:
            streams[src['id']] = Limit(cloud, src, r2).stream_sizes()
        for rnd in range(1, args.rounds + 1):
            for src in sources:
                key = src['size']
                row = res.setdefault(key, {'rbd': [], 'http': [], 'limit': [],
                                           'rbd_copy': [], 'limit_copy': [],
                                           'rbd_bytes': [], 'http_bytes': []})
                s, result = clone(cloud, conf, src, 'rbd', r2)
                row['rbd'].append(s)
                row['rbd_copy'].append(result['details']['copy_seconds'])
                row.setdefault('rbd_attach', []).append(
                    result['details']['attach_seconds'])
                row['rbd_bytes'].append(result['bytes_copied'])
                s, result = clone(cloud, conf, src, 'http', r2)
                row['http'].append(s)
                row['http_bytes'].append(result['bytes_copied'])
                s, copy_s = Limit(cloud, src, r2).run()
                row.setdefault('limit_attach', []).append(s - copy_s)
                row['limit'].append(s)
                row['limit_copy'].append(copy_s)
                say(f'round {rnd}, {key // GiB} GiB: rbd {row["rbd"][-1]:.1f}'
                    f' s (copy {row["rbd_copy"][-1]:.1f} s, attach '
                    f'{row["rbd_attach"][-1]:.1f} s), http '
                    f'{row["http"][-1]:.1f} s, limit {s:.1f} s (copy '
                    f'{copy_s:.1f} s, attach {s - copy_s:.1f} s)')
        report(res, streams, sources, args)
    finally:
        for src in sources:
            r1.delete(src['id'])
        localcloud('up', ceph='off')


def report(res, streams, sources, args):
    med = statistics.median
    print(f'\n{args.rounds} rounds, medians (s); ratios to HTTP stream and '
          f'to the physical limit (export-diff | import-diff + Glance\'s '
          f'hash read of the attached image); a clone is the whole '
          f'clone-manage process (trust, reserve, verify, activate...)\n')
    print('| image | RBD strategy: clone (copy + attach) | HTTP stream | '
          'limit (copy + attach) | RBD / HTTP | RBD / limit | RBD copy + '
          'attach / limit | bytes moved: RBD / HTTP |')
    print('|---|---|---|---|---|---|---|---|')
    for src in sources:
        row = res[src['size']]
        data = {GiB: '300 MiB', 4 * GiB: '1 GiB'}[src['size']]
        inside = med(row['rbd_copy']) + med(row['rbd_attach'])
        print(f"| {src['size'] // GiB} GiB raw, {data} allocated | "
              f"{med(row['rbd']):.1f} ({med(row['rbd_copy']):.1f} + "
              f"{med(row['rbd_attach']):.1f}) | {med(row['http']):.1f} | "
              f"{med(row['limit']):.1f} ({med(row['limit_copy']):.1f} + "
              f"{med(row['limit_attach']):.1f}) | "
              f"{med(row['rbd']) / med(row['http']):.2f} | "
              f"{med(row['rbd']) / med(row['limit']):.2f} | "
              f"{inside / med(row['limit']):.2f} | "
              f"{row['rbd_bytes'][0] / MiB:,.0f} MiB / "
              f"{row['http_bytes'][0] / MiB:,.0f} MiB |")
    print('\nexport-diff stream per image: raw / zstd -1')
    for src in sources:
        raw, z = streams[src['id']]
        print(f"- {src['size'] // GiB} GiB: {raw / MiB:,.0f} MiB / "
              f"{z / MiB:,.0f} MiB")


if __name__ == '__main__':
    main()

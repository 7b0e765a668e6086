"""The Swift strategy against real Swift clusters and real Glance regions.

The module brings the local cloud to the Swift topology each test needs
(``LOCALCLOUD_SWIFT=shared|per-region``: Glance's multi-tenant Swift store,
writing 2 MB segments) with ``tools/localcloud up``, and puts it back to the
file store at the end.  Tests are ordered so the cloud switches topology as
few times as possible.
"""
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys
import time
import urllib.parse

import pytest
from swiftclient import client as swiftclient

from clone_flows import constants as c
from clone_flows.stores import swift
from conductor import runner
from tests.functional.conftest import glance_client
from tests.functional.conftest import LOCALCLOUD
from tests.functional.conftest import ROOT
from tests.functional.conftest import user_env
from tests.functional.conftest import user_session
from tests.functional.test_clone_http import clone_cmd
from tests.functional.test_clone_http import copies_of
from tests.functional.test_clone_http import upload
from tests.functional import test_conductors as tc

SEG_MB = 2                   # Glance's swift_store_large_object_chunk_size
SEG = SEG_MB * 1000 * 1024   # glance_store's "MB" is 1000 KiB


class SwiftTopology:
    """Switches the local cloud between Swift topologies (only on change)."""

    def __init__(self):
        self.current = None
        self.info = None

    def ensure(self, mode, regions=None):
        key = (mode, regions)
        if key != self.current:
            env = dict(os.environ, LOCALCLOUD_SWIFT=mode,
                       LOCALCLOUD_SWIFT_CHUNK_MB=str(SEG_MB),
                       LOCALCLOUD_SWIFT_LARGE_MB=str(SEG_MB))
            env.pop('LOCALCLOUD_SWIFT_REGIONS', None)
            if regions:
                env['LOCALCLOUD_SWIFT_REGIONS'] = regions
            t = time.monotonic()
            r = subprocess.run([sys.executable, str(LOCALCLOUD), 'up'],
                               env=env, capture_output=True, text=True,
                               timeout=900)
            if r.returncode != 0:
                pytest.fail(f'LOCALCLOUD_SWIFT={mode} up failed:\n'
                            f'{r.stdout[-3000:]}\n{r.stderr[-3000:]}')
            print(f'localcloud LOCALCLOUD_SWIFT={mode} regions={regions}: '
                  f'{time.monotonic() - t:.1f}s')
            self.current = key
            self.info = json.loads(subprocess.run(
                [sys.executable, str(LOCALCLOUD), 'env', '--json'],
                check=True, capture_output=True, text=True).stdout)
        return self.info


@pytest.fixture(scope='module')
def topology(cloud):
    topo = SwiftTopology()
    yield topo
    if topo.current is not None:
        subprocess.run([sys.executable, str(LOCALCLOUD), 'up'],
                       env=dict(os.environ, LOCALCLOUD_SWIFT='off'),
                       capture_output=True, timeout=900)


def swift_section(info, regions=None, workers=4, segment_size_mb=256,
                  catalog=False):
    """[swift_store] for the running topology: storage URL templates from
    cloud.json, or (``catalog``) the object-store endpoints of the catalog
    (per-region mode: cluster a is RegionOne's endpoint, b RegionTwo's).
    """
    regs = {r: v for r, v in info['swift']['regions'].items() if v}
    regs.update(regions or {})
    return ('\n[swift_store]\nworkers = %d\nsegment_size_mb = %d\n'
            'regions = %s\ncontainers = %s\n' % (
                workers, segment_size_mb,
                ','.join(f"{r}:" + ('' if catalog else
                                    v['storage_url_template'])
                         for r, v in regs.items()),
                ','.join(f"{r}:{v['container']}" for r, v in regs.items())))


def write_conf(info, d, **kw):
    path = subprocess.run(
        [sys.executable, str(ROOT / 'tools/write-clone-conf'), str(d)],
        check=True, capture_output=True, text=True).stdout.strip()
    with open(path, 'a') as f:
        f.write(swift_section(info, **kw))
    return path


def store(info, region, user='demo'):
    """The account of ``user``'s project in the region's Swift, as that
    user sees it (multi-tenant store: the project's images are there).
    """
    r = info['swift']['regions'][region]
    url = r['storage_url_template'] % {
        'project_id': info['users'][user]['project_id']}
    return swift.SwiftAccount(region, url, user_session(info, user))


def container(image_id):
    """Glance's multi-tenant container of an image (container "glance")."""
    return f'glance_{image_id}'


def containers(acct):
    """Names of every container in the account."""
    conn = swiftclient.Connection(session=acct._session,
                                  preauthurl=acct.storage_url)
    return {c['name'] for c in conn.get_account(full_listing=True)[1]}


def run_clone(info, conf, image_id, *extra, count_to=None):
    cmd = clone_cmd(conf, image_id, '--no-progress', *extra)
    if count_to:
        cmd = [sys.executable, '-m', 'tests.functional.net_counting',
               str(count_to), '--'] + cmd[1:]
    r = subprocess.run(cmd, env=user_env(info, 'demo'), capture_output=True,
                       text=True, timeout=600, cwd=ROOT)
    out = json.loads(r.stdout) if r.stdout.strip().startswith('{') else None
    assert out is not None, r.stderr
    return r.returncode, out


def copy_result(conf, clone_id):
    from conductor import opts
    from conductor import persistence
    conf = opts.new_conf(['--config-file', str(conf)],
                         default_config_files=[], log=False)
    _, fd = runner.load_flow(persistence.get_backend(conf), clone_id)
    return next(ad.results for ad in fd if ad.name == c.COPY_DATA)


def proxy_writes(info, cluster, since=0):
    """Object PUTs that succeeded at a cluster's proxy (client requests),
    read from its access log from byte offset ``since``.
    """
    path = info['swift']['clusters'][cluster]['proxy_log']
    with open(path, errors='replace') as f:
        f.seek(since)
        text = f.read()
    pattern = re.compile(r'^swift-\w-proxy: 127\.0\.0\.1 127\.0\.0\.1 \S+ '
                         r'PUT (\S+) HTTP/1\.\d 201 ', re.M)
    return [m.group(1).rsplit('/', 1)[1] for m in pattern.finditer(text)]


def log_size(info, cluster):
    return os.path.getsize(info['swift']['clusters'][cluster]['proxy_log'])


def segment_names(acct, image_id):
    return sorted(o['name'] for o in acct.listing(container(image_id),
                                                  image_id + '-'))


def corrupt(info, cluster, image_id, obj):
    """Flip one byte of an object's file on disk (its ETag stays)."""
    account = 'AUTH_' + info['users']['demo']['project_id']
    name = f'/{account}/{container(image_id)}/{obj}'
    root = pathlib.Path(info['swift']['clusters'][cluster]['devices'])
    for path in root.rglob('*.data'):
        raw, i = b'', 0
        while True:
            key = 'user.swift.metadata' + (str(i) if i else '')
            try:
                raw += os.getxattr(path, key)
            except OSError:
                break
            i += 1
        meta = pickle.loads(raw, encoding='bytes')
        meta = {(k.decode() if isinstance(k, bytes) else k):
                (v.decode() if isinstance(v, bytes) else v)
                for k, v in meta.items()}
        if meta.get('name') == name:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            return path
    raise AssertionError(f'no file for {name} under {root}')


def assert_verified_copy(info, src, data, result):
    assert result['os_hash_value'] == src.os_hash_value
    assert result['checksum'] == src.checksum and result['size'] == len(data)
    r2 = glance_client(info, 'demo', 'RegionTwo')
    copy = r2.images.get(result['image_id'])
    assert copy.status == 'active'
    assert b''.join(r2.images.data(copy.id)) == data


# -- one cluster for both regions ---------------------------------------------

def test_same_cluster_clone_moves_no_image_bytes_through_the_conductor(
        topology, tmp_path):
    info = topology.ensure('shared')
    conf = write_conf(info, tmp_path / 'conf')
    data = os.urandom(6 * SEG + 4321)                  # 7 segments
    src = upload(info, data, name='swift-same-cluster')
    r1, r2 = store(info, 'RegionOne'), store(info, 'RegionTwo')
    assert len(segment_names(r1, src.id)) == 7
    counts = tmp_path / 'net-swift.json'
    rc, out = run_clone(info, conf, src.id, count_to=counts)
    assert rc == 0, out
    result = out['result']
    assert result['copy']['strategy'] == 'swift', result['copy']
    assert_verified_copy(info, src, data, result)
    new = result['image_id']
    # Glance-shaped objects under the new id, each segment a copy
    assert [o.rsplit('-', 1)[1] for o in segment_names(r2, new)] == \
        ['%05d' % i for i in range(1, 8)]
    assert [o['hash'] for o in r2.listing(container(new), new + '-')] == \
        [o['hash'] for o in r1.listing(container(src.id), src.id + '-')]
    details = copy_result(conf, out['clone_id'])['details']
    assert details['mode'] == 'server-side' and details['copied'] == 7
    swift_net = json.loads(counts.read_text())
    # The same image over HTTP stream, measured the same way
    counts_http = tmp_path / 'net-http.json'
    rc, out_http = run_clone(info, conf, src.id, '--strategy', 'http',
                             count_to=counts_http)
    assert rc == 0, out_http
    http_net = json.loads(counts_http.read_text())
    print(f'conductor socket bytes for a {len(data)} B image: swift '
          f'{swift_net}, http {http_net}')
    assert http_net['received'] >= len(data) and http_net['sent'] >= len(data)
    # everything the Swift clone said and heard: API calls only
    assert swift_net['received'] + swift_net['sent'] < 300 * 1024
    assert swift_net['received'] + swift_net['sent'] < len(data) / 40


def cloud_passwords(info):
    """Every password of the local cloud: its users' (cloud.json) and the
    services' (secrets.json: Glance's own, whose user operates Swift).
    """
    found = {u['password'] for u in info['users'].values()}
    with open(os.path.join(info['state_dir'], 'secrets.json')) as f:
        found |= {v for v in json.load(f).values() if isinstance(v, str)}
    return {p for p in found if p}


def test_a_reader_of_the_copy_sees_no_credential_in_its_tasks_or_image(
        topology, tmp_path):
    info = topology.ensure('shared')
    conf = write_conf(info, tmp_path / 'conf')
    src = upload(info, os.urandom(3 * SEG), name='swift-no-credential')
    rc, out = run_clone(info, conf, src.id, '--strategy', 'swift')
    assert rc == 0, out
    new = out['result']['image_id']
    reader = user_session(info, 'demo_reader')
    glance = reader.get_endpoint(service_type='image', region_name='RegionTwo',
                                 interface='public').rstrip('/')
    tasks = reader.get(f'{glance}/v2/images/{new}/tasks').json()
    image = reader.get(f'{glance}/v2/images/{new}').json()
    (task,) = [t for t in tasks['tasks'] if t['type'] == 'location_import']
    loc = urllib.parse.urlsplit(task['input']['loc_url'])
    assert loc.scheme == 'swift+http' and '@' not in loc.netloc, loc
    assert loc.path.endswith(f'/{container(new)}/{new}')
    seen = json.dumps([tasks, image]) + urllib.parse.unquote(
        json.dumps([tasks, image]))
    for password in cloud_passwords(info):
        assert password not in seen
    # nor in what the clone stored and logged
    for path in (tmp_path / 'conf').iterdir():
        if path.suffix in ('.log', '.sqlite'):
            text = path.read_bytes()
            for password in cloud_passwords(info):
                assert password.encode() not in text, path


def test_swift_clone_asks_glance_whether_the_user_may_download(
        topology, tmp_path):
    """Swift copies never read through Glance: its download policy is asked
    with the user's delegation first (RegionOne: download_image admin-only;
    before, demo's Swift clone succeeded and demo downloaded the copy).
    """
    from tests.functional.test_download_policy import download_admin_only
    info = topology.ensure('shared')
    conf = write_conf(info, tmp_path / 'conf')
    src = upload(info, os.urandom(2 * SEG), name='swift-licensed')
    with download_admin_only(info, src.id):
        rc, out = run_clone(info, conf, src.id, '--strategy', 'swift')
    assert rc == 1, out
    assert out['message'].startswith(
        f'you may not download image {src.id} in RegionOne'), out
    assert out['failed_step'] == 'clone-authorize'
    assert copies_of(info, src.id) == []


def test_secret_canary_over_swift_clones(topology, tmp_path):
    """The secret canary (tests/functional/test_secret_canary.py) over the
    Swift strategy, through clone-api and a real conductor: a server-side
    Swift clone, one refused for the strategy, one of a missing image.
    """
    from tests.functional.test_api import running_api
    from tests.functional.test_secret_canary import run_canary
    info = topology.ensure('shared')
    src = upload(info, os.urandom(3 * SEG), name='swift-canary')
    with running_api(info, tmp_path / 'api', extra_conf=swift_section(
            info)) as api:
        canary = run_canary(info, api, {
            'swift, success': ({'source_image_id': src.id,
                                'strategy': 'swift'}, 'success'),
            'swift, refused: empty image': ({
                'source_image_id': upload(info, b'', name='swift-empty').id,
                'strategy': 'swift'}, 'failure'),
            'failure: no such image': ({
                'source_image_id': '6f1d2a3b-4444-4c4c-8d8d-0123456789ab',
                'strategy': 'swift'}, 'failure'),
        })
    assert canary.hits == []


def test_a_region_not_declared_multi_tenant_swift_falls_back_to_http(
        topology, tmp_path):
    info = topology.ensure('shared')
    one = info['swift']['regions']['RegionOne']
    conf = write_conf(info, tmp_path / 'conf')
    with open(conf, 'a') as f:      # the last word: RegionOne only
        f.write(f"regions = RegionOne:{one['storage_url_template']}\n")
    data = os.urandom(2 * SEG)
    src = upload(info, data, name='swift-undeclared')
    why = ('RegionTwo is not declared a multi-tenant Swift region '
           '([swift_store] regions)')
    rc, out = run_clone(info, conf, src.id)
    assert rc == 0, out
    assert out['result']['copy']['strategy'] == 'http'
    assert f'swift: {why}' in out['result']['copy']['reason']
    assert_verified_copy(info, src, data, out['result'])
    rc, out = run_clone(info, conf, src.id, '--strategy', 'swift')
    assert rc == 1
    assert out['message'].startswith(
        f"store strategy 'swift' cannot copy this image: {why}"), out


def test_corrupted_segment_same_cluster_fails_cleanly(topology, tmp_path):
    _corrupted_segment_fails_cleanly(topology.ensure('shared'), 'a',
                                     tmp_path)


# -- one cluster per region ---------------------------------------------------

class SwiftConductors(tc.Conductors):
    """Conductors whose configuration maps both regions to their Swift."""

    def __init__(self, cloud, tmp_path, workers=2, **kw):
        self.workers = workers
        super().__init__(cloud, tmp_path, **kw)

    def _conf(self, name):
        path = super()._conf(name)
        with open(path, 'a') as f:
            f.write(swift_section(self.cloud, workers=self.workers,
                                  catalog=True))
        return path


def test_cross_cluster_kill_9_resumes_with_only_the_missing_segments(
        topology, tmp_path):
    info = topology.ensure('per-region')
    data = os.urandom(10 * SEG)                        # 10 segments
    src = upload(info, data, name='swift-cross-kill')
    r1, r2 = store(info, 'RegionOne'), store(info, 'RegionTwo')
    assert len(segment_names(r1, src.id)) == 10
    conductors = SwiftConductors(info, tmp_path, workers=2)
    try:
        marker = conductors.start('a', pause_at=c.COPY_DATA + '@0.3')
        clone_id = conductors.post(src.id)
        tc.wait_for(marker.exists, what='conductor a to copy 30%')
        time.sleep(2)              # the segments in flight land (or not)
        conductors.kill9('a')
        (target,) = copies_of(info, src.id)
        present = segment_names(r2, target.id)
        assert 1 <= len(present) < 10, present
        offset = log_size(info, 'b')
        conductors.start('b')
        out = conductors.wait(clone_id)
    finally:
        conductors.stop_all()
    tc.assert_one_verified_copy(info, src, out)
    assert out.result['copy']['strategy'] == 'swift'
    again = [o for o in proxy_writes(info, 'b', offset)
             if o.startswith(target.id + '-')]
    print(f'segments in RegionTwo when conductor a died: {len(present)}; '
          f'copied after the resume: {len(again)}')
    assert sorted(again) == sorted(set(segment_names(r2, target.id)) -
                                   set(present))
    assert len(again) == 10 - len(present)
    details = copy_result(conductors.poster_conf, clone_id)['details']
    assert details['mode'] == 'streamed'
    assert (details['copied'], details['skipped']) == (10 - len(present),
                                                       len(present))
    assert b''.join(glance_client(info, 'demo', 'RegionTwo').images.data(
        target.id)) == data


def test_corrupted_segment_cross_cluster_fails_cleanly(topology, tmp_path):
    _corrupted_segment_fails_cleanly(topology.ensure('per-region'), 'a',
                                     tmp_path)


def test_single_object_source_moves_as_ranged_segments(topology, tmp_path):
    info = topology.ensure('per-region')
    conf = write_conf(info, tmp_path / 'conf', segment_size_mb=1,
                      catalog=True)
    data = os.urandom(SEG - 1000)       # under Glance's threshold: 1 object
    # with its size known (glanceclient uploads chunked, which Glance's
    # Swift store always segments)
    gc = glance_client(info, 'demo', 'RegionOne')
    src = gc.images.create(name='swift-one-object', disk_format='raw',
                           container_format='bare')
    user_session(info, 'demo').put(
        gc.http_client.get_endpoint().rstrip('/')
        + f'/v2/images/{src.id}/file',
        data=data, headers={'Content-Type': 'application/octet-stream'})
    src = gc.images.get(src.id)
    r1, r2 = store(info, 'RegionOne'), store(info, 'RegionTwo')
    assert segment_names(r1, src.id) == []
    rc, out = run_clone(info, conf, src.id, '--strategy', 'swift')
    assert rc == 0, out
    assert_verified_copy(info, src, data, out['result'])
    new = out['result']['image_id']
    assert segment_names(r2, new) == [f'{new}-00001', f'{new}-00002']
    details = copy_result(conf, out['clone_id'])['details']
    assert (details['segments'], details['mode']) == (2, 'streamed')


def test_missing_segment_fails_cleanly(topology, tmp_path):
    info = topology.ensure('per-region')
    conf = write_conf(info, tmp_path / 'conf')
    src = upload(info, os.urandom(4 * SEG), name='swift-missing-segment')
    r1, r2 = store(info, 'RegionOne'), store(info, 'RegionTwo')
    assert r1.delete(container(src.id), f'{src.id}-00003')
    before = containers(r2)
    rc, out = run_clone(info, conf, src.id, '--strategy', 'swift')
    assert rc == 1
    assert f'segment {src.id}-00003 is missing' in out['message'], out
    assert copies_of(info, src.id) == []
    assert containers(r2) == before


def _corrupted_segment_fails_cleanly(info, cluster, tmp_path):
    conf = write_conf(info, tmp_path / 'conf')
    src = upload(info, os.urandom(5 * SEG), name='swift-corrupted-segment')
    r2 = store(info, 'RegionTwo')
    corrupt(info, cluster, src.id, f'{src.id}-00004')
    before = containers(r2)
    rc, out = run_clone(info, conf, src.id, '--strategy', 'swift')
    assert rc == 1
    assert f'segment {src.id}-00004 of image {src.id} is corrupted' in \
        out['message'], out
    assert copies_of(info, src.id) == []
    assert containers(r2) == before    # no object nor container left behind


# -- the sweep ----------------------------------------------------------------

def test_the_sweep_removes_swift_segments_a_failed_revert_left(
        topology, tmp_path, monkeypatch):
    """A copy whose segments are written but whose location never reaches
    the image (the attach fails), and whose revert cannot clean up: the
    segments stay in the target store with no image pointing at them.  The
    sweep removes them through the strategy's own cleanup, then the image;
    another image of the same user in the same store is untouched.
    """
    from clone_flows import exceptions
    from clone_flows import glance
    from clone_flows.tasks import reserve_image
    from conductor import opts
    from conductor import persistence
    from conductor import sweep
    info = topology.ensure('per-region')
    conf_path = write_conf(info, tmp_path / 'conf')
    conf = opts.new_conf(config_files=[conf_path], log=False)
    backend = persistence.get_backend(conf)
    bystander = upload(info, os.urandom(SEG), region='RegionTwo',
                       name='swift-sweep-bystander')
    src = upload(info, os.urandom(3 * SEG), name='swift-sweep-leftovers')
    r2 = store(info, 'RegionTwo')

    def attach_refused(self, image_id, url, validation_data, headers=None):
        raise exceptions.TargetRejected('RegionTwo', 'the location', 400)

    def cleanup_fails(self, job, checkpoint=None):
        raise exceptions.ServiceUnavailable('RegionTwo', what='Swift',
                                            detail='injected')

    monkeypatch.setattr(glance.GlanceRegion, 'add_location', attach_refused)
    monkeypatch.setattr(swift.SwiftStrategy, 'cleanup', cleanup_fails)
    new = runner.new_store(conf, user_session(info, 'demo'), {
        'source_region': 'RegionOne', 'source_image_id': src.id,
        'target_region': 'RegionTwo', 'strategy': 'swift'})
    book, fd, flow = runner.save_new_flow(conf, backend, new)
    engine = runner.prepare_engine(conf, backend, book, fd, flow=flow)
    out = runner.run(engine, backend, new[c.CLONE_ID])
    monkeypatch.undo()
    assert not out.succeeded and out.cleanup_failed, out
    as_clone = runner.services_mod.Services(
        conf, trust_id=new[c.TRUST_ID]).glance('RegionTwo')
    left = [i['id'] for i in reserve_image.find_reserved(
        as_clone, new[c.CLONE_ID])]
    assert len(left) == 1
    assert len(segment_names(r2, left[0])) == 3     # orphaned in Swift

    swept, unswept = sweep.sweep(conf, backend)
    assert (swept, unswept) == (1, 0)
    assert segment_names(r2, left[0]) == []
    assert container(left[0]) not in containers(r2)
    r2_images = glance_client(info, 'demo', 'RegionTwo')
    with pytest.raises(Exception, match='404|not found|Not Found'):
        r2_images.images.get(left[0])
    assert segment_names(r2, bystander.id)            # untouched
    assert r2_images.images.get(bystander.id).status == 'active'


# -- mixed stores -------------------------------------------------------------

def test_mixed_stores_fall_back_to_http_and_say_why(topology, tmp_path):
    info = topology.ensure('per-region', regions='RegionOne')
    assert info['swift']['regions']['RegionTwo'] is None
    # the operator's mapping still says RegionTwo is in Swift: Glance, asked
    # at plan time, says otherwise
    stale = dict(info['swift']['regions']['RegionOne'])
    conf = write_conf(info, tmp_path / 'conf', regions={'RegionTwo': stale})
    data = os.urandom(3 * SEG)
    src = upload(info, data, name='swift-to-file')
    assert segment_names(store(info, 'RegionOne'), src.id)
    rc, out = run_clone(info, conf, src.id)
    assert rc == 0, out
    result = out['result']
    assert result['copy']['strategy'] == 'http'
    assert "swift: RegionTwo stores new images in 'local', not in Swift" in \
        result['copy']['reason'], result['copy']
    assert_verified_copy(info, src, data, result)

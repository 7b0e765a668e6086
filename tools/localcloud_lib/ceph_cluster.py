"""Real Ceph for the local cloud: two single-host clusters (opt-in).

Opt-in with ``LOCALCLOUD_CEPH``:

* ``off`` (default): no Ceph process runs.
* ``shared``: one cluster (``a``) holds both regions' images (pool
  ``images``).
* ``per-region``: RegionOne stores in cluster ``a``, RegionTwo in ``b``.

``LOCALCLOUD_CEPH_REGIONS`` (default: both) limits which regions store in
Ceph; the others keep their store (mixed stores).  Each cluster is one
monitor and one bluestore OSD whose block device is a sparse file
(``LOCALCLOUD_CEPH_OSD_GB``, 20 by default, nothing allocated up front)
outside the OSD's data directory, on 127.0.0.1, cephx on, no manager (RBD
does not need one; health then stays HEALTH_WARN), no systemd: the two
daemons are started and stopped by tools/localcloud by pid like every other
service.  Monitor ports: ``LOCALCLOUD_CEPH_A_PORT`` /
``LOCALCLOUD_CEPH_B_PORT``
(default: derived from ``LOCALCLOUD_ZK_PORT`` so clouds of different state
dirs on one machine do not collide).  OSDs take free ports of Ceph's
6800-7300 range.

Users of each cluster (keyrings ``keys/ceph.client.<name>.keyring``, 0600):
``admin`` (tools only), ``glance`` (Glance's RBD store: ``profile rbd`` on
the pool), ``glance-clone-read`` (the clone service reading a source:
``profile rbd-read-only`` on the pool) and ``glance-clone-write`` (the clone
service writing a copy: ``profile rbd`` on the pool).  ``glance-clone.conf``
of each cluster names only the clone users' keyrings.

The Debian packages ``ceph-mon ceph-osd ceph-common python3-rbd
python3-rados`` are installed with apt when missing (tools/bootstrap.sh
installs them too).
"""
import json
import os
import shutil
import socket
import subprocess
import time
import uuid

CLUSTERS = ('a', 'b')
MODES = ('off', 'shared', 'per-region')
POOL = 'images'
DEBIAN_PACKAGES = ('ceph-mon', 'ceph-osd', 'ceph-common', 'python3-rbd',
                   'python3-rados')
SERVICES = tuple('ceph-%s-%s' % (c, k) for c in CLUSTERS
                 for k in ('mon', 'osd'))
#: cephx users of every cluster: name -> (mon caps, osd caps)
USERS = {
    'glance': ('profile rbd', 'profile rbd pool=%s' % POOL),
    'glance-clone-read': ('profile rbd',
                          'profile rbd-read-only pool=%s' % POOL),
    'glance-clone-write': ('profile rbd', 'profile rbd pool=%s' % POOL),
}
#: the Glance store id of an RBD region (multi-store: enabled_backends)
STORE_ID = 'ceph'
TIMEOUT = 30          # seconds for any admin command


class CephError(Exception):
    pass


def _env_int(name, default):
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise CephError('%s=%r is not a number' % (name, value))


def ports():
    """{service: port}: the monitors' ports (the OSDs' are Ceph's choice).

    Default: 16789/16790 for ZooKeeper's default port 12181, moved along
    with ``LOCALCLOUD_ZK_PORT`` (two per cloud).
    """
    zk = _env_int('LOCALCLOUD_ZK_PORT', 12181)
    base = 16789 + 2 * (zk - 12181)
    return {'ceph-a-mon': _env_int('LOCALCLOUD_CEPH_A_PORT', base),
            'ceph-b-mon': _env_int('LOCALCLOUD_CEPH_B_PORT', base + 1)}


class Settings:
    """What the environment asks for (``up``) or what is running (saved)."""

    def __init__(self, mode='off', regions=(), osd_gb=20):
        self.mode = mode
        self.regions = tuple(regions)
        self.osd_gb = osd_gb

    @classmethod
    def from_env(cls, all_regions):
        mode = os.environ.get('LOCALCLOUD_CEPH') or 'off'
        if mode not in MODES:
            raise CephError('LOCALCLOUD_CEPH=%r: one of %s'
                            % (mode, ', '.join(MODES)))
        regions = [r.strip() for r in os.environ.get(
            'LOCALCLOUD_CEPH_REGIONS', ','.join(all_regions)).split(',')
            if r.strip()]
        for r in regions:
            if r not in all_regions:
                raise CephError('LOCALCLOUD_CEPH_REGIONS: unknown region %r'
                                % r)
        return cls(mode=mode, regions=regions if mode != 'off' else (),
                   osd_gb=_env_int('LOCALCLOUD_CEPH_OSD_GB', 20))

    @classmethod
    def saved(cls, state):
        try:
            with open(os.path.join(state, 'ceph', 'settings.json')) as f:
                return cls(**json.load(f))
        except (FileNotFoundError, ValueError, TypeError):
            return cls()

    def save(self, state):
        d = os.path.join(state, 'ceph')
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'settings.json.tmp'), 'w') as f:
            json.dump(vars(self), f)
        os.replace(os.path.join(d, 'settings.json.tmp'),
                   os.path.join(d, 'settings.json'))

    @property
    def on(self):
        return self.mode != 'off'

    def cluster_of(self, region):
        """'a', 'b' or None (this region does not store in Ceph)."""
        if not self.on or region not in self.regions:
            return None
        if self.mode == 'shared':
            return 'a'
        return 'a' if region == 'RegionOne' else 'b'

    def clusters(self):
        return sorted({self.cluster_of(r) for r in self.regions} - {None})

    def services(self):
        out = []
        for c in self.clusters():
            out += ['ceph-%s-mon' % c, 'ceph-%s-osd' % c]
        return out


# --------------------------------------------------------------------------
# Installation


def ensure_packages(say):
    missing = [p for p in DEBIAN_PACKAGES if subprocess.run(
        ['dpkg', '-s', p], capture_output=True).returncode]
    if not missing:
        return
    if os.geteuid() != 0:
        raise CephError('Debian packages missing: %s, and this is not root: '
                        'run tools/bootstrap.sh as root once'
                        % ' '.join(missing))
    say('installing Debian packages %s (apt-get)' % ' '.join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    cmd = ['apt-get', '-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '-q']
    p = subprocess.run(cmd + missing, env=env, capture_output=True, text=True)
    if p.returncode:
        subprocess.run(['apt-get', 'update', '-q'], env=env,
                       capture_output=True)
        p = subprocess.run(cmd + missing, env=env, capture_output=True,
                           text=True)
    if p.returncode:
        raise CephError('apt-get install %s failed:\n%s'
                        % (' '.join(missing), p.stderr[-2000:]))


def binding_files():
    """The Debian python3-rbd / python3-rados extension modules."""
    out = []
    for d in ('/usr/lib/python3/dist-packages',):
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in sorted(os.listdir(d))
                    if n.startswith(('rbd.', 'rados.')) and n.endswith('.so')]
    return out


def link_bindings(python, say=None):
    """Symlinks the Debian ``rbd``/``rados`` modules (built for the system
    Python 3.11) into the site-packages of the virtualenv of ``python``:
    just those two modules, not the whole dist-packages.  Returns the
    site-packages directory.
    """
    site = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'], check=True, capture_output=True,
        text=True).stdout.strip()
    files = binding_files()
    if len(files) < 2:
        raise CephError('python3-rbd / python3-rados are not installed '
                        '(no rbd/rados modules in /usr/lib/python3/'
                        'dist-packages)')
    for f in files:
        link = os.path.join(site, os.path.basename(f))
        if os.path.realpath(link) != f:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(f, link)
    p = subprocess.run([python, '-c', 'import rbd, rados'],
                       capture_output=True, text=True)
    if p.returncode:
        raise CephError('the rbd/rados modules do not load in %s: %s'
                        % (python, p.stderr[-500:]))
    return site


# --------------------------------------------------------------------------
# Layout


def cluster_dir(cloud, c):
    return os.path.join(cloud.state, 'ceph', c)


def conf_path(cloud, c):
    return os.path.join(cluster_dir(cloud, c), 'ceph.conf')


def clone_conf_path(cloud, c):
    return os.path.join(cluster_dir(cloud, c), 'glance-clone.conf')


def keyring(cloud, c, name):
    return os.path.join(cluster_dir(cloud, c), 'keys',
                        'ceph.client.%s.keyring' % name)


def fsid(cloud, c):
    path = os.path.join(cluster_dir(cloud, c), 'fsid')
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def block_path(cloud, c):
    # outside the OSD data dir (bluestore's mkfs wants that dir to itself)
    return os.path.join(cluster_dir(cloud, c), 'osd-block')


def _conf_text(cloud, c, settings):
    d = cluster_dir(cloud, c)
    port = cloud.ports['ceph-%s-mon' % c]
    return """\
# written by tools/localcloud (LOCALCLOUD_CEPH); rewritten on every `up`
[global]
fsid = {fsid}
mon host = [v1:127.0.0.1:{port}]
mon initial members = a
public network = 127.0.0.0/8
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {d}/keys/$cluster.$name.keyring
run dir = {d}/run
admin socket = {d}/run/$cluster-$name.asok
log file = {d}/log/$name.log
log to stderr = false
err to stderr = true
pid file = {d}/run/$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
auth allow insecure global id reclaim = false
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
client mount timeout = 15
# the watch of a client that died (a killed conductor mid-copy) ends after
# this many seconds (default 30)
osd client watch timeout = 10
rados mon op timeout = 30
rados osd op timeout = 60

[mon]
mon data = {d}/mon
keyring = {d}/mon/keyring
mon cluster log file = {d}/log/cluster.log

[osd]
osd data = {d}/osd
keyring = {d}/osd/keyring
osd objectstore = bluestore
bluestore block path = {block}
bluestore block create = true
bluestore block size = {block_size}
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
osd op num shards = 2
osd op num threads per shard = 1
osd max object name len = 256
osd max object namespace len = 64
""".format(fsid=fsid(cloud, c), port=port, d=d, block=block_path(cloud, c),
           block_size=settings.osd_gb * 1024 ** 3)


def _clone_conf_text(cloud, c):
    """What the clone service reads: the monitor and its two users'
    keyrings (never Glance's or the admin's).
    """
    port = cloud.ports['ceph-%s-mon' % c]
    return """\
# the clone service's view of Ceph cluster {c} (tools/localcloud)
[global]
fsid = {fsid}
mon host = [v1:127.0.0.1:{port}]
ms bind msgr2 = false
auth client required = cephx
log to stderr = false
err to stderr = false

[client.glance-clone-read]
keyring = {read}

[client.glance-clone-write]
keyring = {write}
""".format(c=c, fsid=fsid(cloud, c), port=port,
           read=keyring(cloud, c, 'glance-clone-read'),
           write=keyring(cloud, c, 'glance-clone-write'))


def _run(cmd, what, timeout=TIMEOUT, **kw):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired:
        raise CephError('%s did not finish within %ds: %s'
                        % (what, timeout, ' '.join(cmd)))
    if p.returncode:
        raise CephError('%s failed (exit %d): %s'
                        % (what, p.returncode, (p.stderr or p.stdout)[-1500:]))
    return p.stdout


def configure(cloud, settings, write_if_changed, say):
    """Creates each cluster's identity (fsid, keys, monitor store) once and
    writes its configuration; {service: changed}.
    """
    changed = {svc: False for svc in SERVICES}
    for c in settings.clusters():
        d = cluster_dir(cloud, c)
        for sub in ('keys', 'run', 'log', 'osd'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chmod(os.path.join(d, 'keys'), 0o700)
        if fsid(cloud, c) is None:
            with open(os.path.join(d, 'fsid'), 'w') as f:
                f.write(str(uuid.uuid4()))
        conf = _conf_text(cloud, c, settings)
        if write_if_changed(conf_path(cloud, c), conf):
            changed['ceph-%s-mon' % c] = changed['ceph-%s-osd' % c] = True
        write_if_changed(clone_conf_path(cloud, c), _clone_conf_text(cloud, c))
        if not os.path.exists(os.path.join(d, 'mon', 'store.db')):
            _mkfs_mon(cloud, c)
    return changed


def _mkfs_mon(cloud, c):
    d = cluster_dir(cloud, c)
    conf = conf_path(cloud, c)
    mon_keyring = os.path.join(d, 'keys', 'ceph.mon.keyring')
    admin = os.path.join(d, 'keys', 'ceph.client.admin.keyring')
    for path, args in ((mon_keyring, ['-n', 'mon.', '--cap', 'mon',
                                      'allow *']),
                       (admin, ['-n', 'client.admin', '--cap', 'mon',
                                'allow *', '--cap', 'osd', 'allow *',
                                '--cap', 'mgr', 'allow *'])):
        if not os.path.exists(path):
            _run(['ceph-authtool', '--create-keyring', path, '--gen-key'] +
                 args, 'ceph-authtool')
            os.chmod(path, 0o600)
    seed = os.path.join(d, 'keys', 'mkfs.keyring')
    shutil.copyfile(mon_keyring, seed)
    os.chmod(seed, 0o600)
    _run(['ceph-authtool', seed, '--import-keyring', admin], 'ceph-authtool')
    monmap = os.path.join(d, 'monmap')
    _run(['monmaptool', '--create', '--clobber', '--fsid', fsid(cloud, c),
          '--addv', 'a', '[v1:127.0.0.1:%d]' % cloud.ports['ceph-%s-mon' % c],
          monmap], 'monmaptool')
    shutil.rmtree(os.path.join(d, 'mon'), ignore_errors=True)
    _run(['ceph-mon', '-c', conf, '--mkfs', '-i', 'a', '--monmap', monmap,
          '--keyring', seed], 'ceph-mon --mkfs')
    os.unlink(seed)
    # a new monitor store: the OSD made for the old one is void
    shutil.rmtree(os.path.join(d, 'osd'), ignore_errors=True)
    os.makedirs(os.path.join(d, 'osd'))
    for marker in ('.osd-created', '.pool-created'):
        if os.path.exists(os.path.join(d, marker)):
            os.unlink(os.path.join(d, marker))
    if os.path.exists(block_path(cloud, c)):
        os.unlink(block_path(cloud, c))


def ceph(cloud, c, *args, timeout=TIMEOUT):
    """An admin ``ceph`` command against cluster c; its stdout."""
    return _run(['ceph', '-c', conf_path(cloud, c), '--name', 'client.admin',
                 '--connect-timeout', str(timeout)] + list(args),
                'ceph ' + ' '.join(args[:3]), timeout=timeout + 5)


def prepare_osd(cloud, c):
    """Registers osd.0 with the monitor and makes its bluestore (once);
    needs the monitor up.
    """
    d = cluster_dir(cloud, c)
    marker = os.path.join(d, '.osd-created')
    if os.path.exists(marker):
        return
    osd_uuid = str(uuid.uuid4())
    osd_keyring = os.path.join(d, 'osd', 'keyring')
    secret = _run(['ceph-authtool', '--gen-print-key'], 'ceph-authtool')
    secrets = os.path.join(d, 'keys', 'osd-secret.json')
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        json.dump({'cephx_secret': secret.strip()}, f)
    osd_id = ceph(cloud, c, 'osd', 'new', osd_uuid, '-i', secrets).strip()
    os.unlink(secrets)
    if osd_id != '0':
        raise CephError('cluster %s: the new OSD got id %s, not 0'
                        % (c, osd_id))
    _run(['ceph-authtool', '--create-keyring', osd_keyring, '--name',
          'osd.0', '--add-key', secret.strip()], 'ceph-authtool')
    os.chmod(osd_keyring, 0o600)
    if os.path.exists(block_path(cloud, c)):
        os.unlink(block_path(cloud, c))
    _run(['ceph-osd', '-c', conf_path(cloud, c), '-i', '0', '--mkfs',
          '--osd-uuid', osd_uuid, '--keyring', osd_keyring],
         'ceph-osd --mkfs', timeout=120)
    with open(marker, 'w') as f:
        f.write(osd_uuid)


def prepare_pool_and_users(cloud, c):
    """The ``images`` pool (RBD application) and the users (once); needs
    the monitor up (not the OSD).
    """
    d = cluster_dir(cloud, c)
    marker = os.path.join(d, '.pool-created')
    if not os.path.exists(marker):
        ceph(cloud, c, 'osd', 'pool', 'create', POOL, '8', '8')
        ceph(cloud, c, 'osd', 'pool', 'application', 'enable', POOL, 'rbd')
        with open(marker, 'w') as f:
            f.write(POOL)
    for name, (mon, osd) in USERS.items():
        path = keyring(cloud, c, name)
        if os.path.exists(path):
            continue
        text = ceph(cloud, c, 'auth', 'get-or-create', 'client.' + name,
                    'mon', mon, 'osd', osd)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(text)


# --------------------------------------------------------------------------
# Services


def service_command(cloud, svc, env):
    c, kind = svc.split('-')[1:3]
    conf = conf_path(cloud, c)
    if kind == 'mon':
        return ['ceph-mon', '-f', '-c', conf, '-i', 'a'], env
    return ['ceph-osd', '-f', '-c', conf, '-i', '0'], env


def answers(cloud, svc, port_open):
    c, kind = svc.split('-')[1:3]
    if kind == 'mon':
        return port_open('127.0.0.1', cloud.ports[svc])
    try:
        out = ceph(cloud, c, 'osd', 'dump', '--format', 'json', timeout=5)
    except CephError:
        return False
    osds = json.loads(out).get('osds') or []
    return any(o.get('osd') == 0 and o.get('up') for o in osds)


def start_cluster(cloud, c, start_service):
    """Monitor, then (first time) the OSD's store, pool and users, then the
    OSD; waits until the pool takes writes.
    """
    start_service(cloud, 'ceph-%s-mon' % c)
    prepare_osd(cloud, c)
    prepare_pool_and_users(cloud, c)
    start_service(cloud, 'ceph-%s-osd' % c)


def describe(cloud, settings, regions):
    """The ``ceph`` part of cloud.json: no key, only paths to keyrings."""
    out = {'mode': settings.mode, 'regions': {}, 'clusters': {}}
    if not settings.on:
        return out
    for c in settings.clusters():
        out['clusters'][c] = {
            'fsid': fsid(cloud, c),
            'mon_host': '127.0.0.1:%d' % cloud.ports['ceph-%s-mon' % c],
            'pool': POOL,
            'admin_conf': conf_path(cloud, c),
            'clone_conf': clone_conf_path(cloud, c),
            'clone_read_user': 'glance-clone-read',
            'clone_write_user': 'glance-clone-write',
            'glance_user': 'glance',
            'osd_block': block_path(cloud, c),
            'osd_log': os.path.join(cluster_dir(cloud, c), 'log',
                                    'osd.0.log'),
        }
    for r in regions:
        c = settings.cluster_of(r)
        out['regions'][r] = None if c is None else {
            'cluster': c, 'pool': POOL, 'store': STORE_ID,
            'fsid': fsid(cloud, c)}
    return out


def glance_backend(cloud, settings, region):
    """The ``[ceph]`` section of a region's Glance (its RBD store), or
    None.
    """
    c = settings.cluster_of(region)
    if c is None:
        return None
    return """\
[{store}]
# Ceph cluster {c} (tools/localcloud, LOCALCLOUD_CEPH={mode})
rbd_store_pool = {pool}
rbd_store_user = glance
rbd_store_ceph_conf = {conf}
rbd_store_chunk_size = 8
# chunks of zeros are not written: sparse images stay sparse
rbd_thin_provisioning = true
rados_connect_timeout = 10
store_description = Ceph RBD, cluster {c}
""".format(store=STORE_ID, c=c, mode=settings.mode, pool=POOL,
           conf=conf_path(cloud, c))


def port_free(port):
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_writable(cloud, c, timeout=60):
    """Until the pool takes a write (its placement groups are active).
    Without a manager the monitor has no PG statistics: a small object is
    written and removed instead.
    """
    deadline = time.monotonic() + timeout
    base = ['rados', '-c', conf_path(cloud, c), '--name', 'client.admin',
            '-p', POOL]
    while time.monotonic() < deadline:
        try:
            _run(base + ['put', 'localcloud-ready', '/dev/null'],
                 'rados put', timeout=15)
            _run(base + ['rm', 'localcloud-ready'], 'rados rm', timeout=15)
            return
        except CephError:
            time.sleep(0.3)
    raise CephError('cluster %s: the pool %s did not take a write within '
                    '%ds' % (c, POOL, timeout))

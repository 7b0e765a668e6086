"""Real Swift for the local cloud: two one-replica clusters and memcached.

Opt-in with ``LOCALCLOUD_SWIFT``:

* ``off`` (default): Glance stores in files, no Swift process runs.
* ``shared``: one cluster (``a``) holds both regions' images.
* ``per-region``: RegionOne stores in cluster ``a``, RegionTwo in ``b``.

``LOCALCLOUD_SWIFT_REGIONS`` (default: both) limits which regions store in
Swift; the others keep the file store (mixed stores).  Each cluster is a
proxy (Keystone auth: keystonemiddleware + keystoneauth, memcached) plus
account, container and object servers on 127.0.0.1, one device under the
state dir, rings of part power 10.  Each cluster is in the catalog as
``object-store`` (cluster a in RegionOne, b in RegionTwo; in ``shared`` mode
RegionTwo's Glance uses RegionOne's endpoint).  Glance runs the multi-tenant
Swift store (see :func:`glance_store`): each project's images are in its own
account ``AUTH_<project id>``, which the project's members operate
(keystoneauth ``operator_roles``) and its readers read
(``project_reader_roles``).

Swift reads its hash suffix and policies only from /etc/swift/swift.conf: it
is written when missing, never changed (a different suffix would strand
objects already stored), and shared by every cluster on the machine.
"""
import json
import os
import pwd
import shutil
import subprocess

SWIFT_CONF = '/etc/swift/swift.conf'
CLUSTERS = ('a', 'b')
KINDS = ('object', 'container', 'account')
MODES = ('off', 'shared', 'per-region')
PACKAGES = ['swift~=2.38', 'python-swiftclient']

SERVICES = ('memcached',) + tuple(
    'swift-%s-%s' % (c, k) for c in CLUSTERS
    for k in ('account', 'container', 'object', 'proxy'))

# default ports; env overrides named in port_vars()
DEFAULT_PORTS = {'memcached': 11311,
                 'swift-a-proxy': 18080, 'swift-b-proxy': 18081,
                 'swift-a-backend': 18090, 'swift-b-backend': 18093}


class SwiftError(Exception):
    pass


def _env_int(name, default):
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SwiftError('%s=%r is not a number' % (name, value))


def ports():
    """{service: port} for every Swift service of both clusters."""
    out = {'memcached': _env_int('LOCALCLOUD_MEMCACHED_PORT',
                                 DEFAULT_PORTS['memcached'])}
    for c in CLUSTERS:
        up = c.upper()
        out['swift-%s-proxy' % c] = _env_int(
            'LOCALCLOUD_SWIFT_%s_PORT' % up,
            DEFAULT_PORTS['swift-%s-proxy' % c])
        base = _env_int('LOCALCLOUD_SWIFT_%s_BACKEND_PORT' % up,
                        DEFAULT_PORTS['swift-%s-backend' % c])
        for i, kind in enumerate(KINDS):
            out['swift-%s-%s' % (c, kind)] = base + i
    return out


class Settings:
    """What the environment asks for (``up``) or what is running (saved)."""

    def __init__(self, mode='off', regions=(), chunk_mb=64, large_mb=64,
                 workers=2, secure_hash=True):
        self.mode = mode
        self.regions = tuple(regions)
        self.chunk_mb = chunk_mb
        self.large_mb = large_mb
        self.workers = workers
        self.secure_hash = secure_hash

    @classmethod
    def from_env(cls, all_regions):
        mode = os.environ.get('LOCALCLOUD_SWIFT') or 'off'
        if mode not in MODES:
            raise SwiftError('LOCALCLOUD_SWIFT=%r: one of %s'
                             % (mode, ', '.join(MODES)))
        regions = [r.strip() for r in os.environ.get(
            'LOCALCLOUD_SWIFT_REGIONS', ','.join(all_regions)).split(',')
            if r.strip()]
        for r in regions:
            if r not in all_regions:
                raise SwiftError('LOCALCLOUD_SWIFT_REGIONS: unknown region %r'
                                 % r)
        return cls(mode=mode, regions=regions if mode != 'off' else (),
                   chunk_mb=_env_int('LOCALCLOUD_SWIFT_CHUNK_MB', 64),
                   large_mb=_env_int('LOCALCLOUD_SWIFT_LARGE_MB', 64),
                   workers=_env_int('LOCALCLOUD_SWIFT_WORKERS', 2),
                   secure_hash=os.environ.get(
                       'LOCALCLOUD_GLANCE_SECURE_HASH', '1') not in
                   ('0', 'false', 'no'))

    @classmethod
    def saved(cls, state):
        try:
            with open(os.path.join(state, 'swift', 'settings.json')) as f:
                return cls(**json.load(f))
        except (FileNotFoundError, ValueError, TypeError):
            return cls()

    def save(self, state):
        d = os.path.join(state, 'swift')
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'settings.json.tmp'), 'w') as f:
            json.dump(vars(self), f)
        os.replace(os.path.join(d, 'settings.json.tmp'),
                   os.path.join(d, 'settings.json'))

    @property
    def on(self):
        return self.mode != 'off'

    def cluster_of(self, region):
        """'a', 'b' or None (this region stores in files)."""
        if not self.on or region not in self.regions:
            return None
        if self.mode == 'shared':
            return 'a'
        return 'a' if region == 'RegionOne' else 'b'

    def clusters(self):
        return sorted({self.cluster_of(r) for r in self.regions} - {None})

    def services(self):
        """The Swift services this setting runs, in start order."""
        if not self.on:
            return []
        out = ['memcached']
        for c in self.clusters():
            out += ['swift-%s-%s' % (c, k)
                    for k in ('account', 'container', 'object', 'proxy')]
        return out


# --------------------------------------------------------------------------
# Installation


def ensure_memcached(say):
    if shutil.which('memcached'):
        return
    if os.geteuid() != 0:
        raise SwiftError('the Debian package "memcached" is not installed and '
                         'this is not root: run `sudo apt-get install -y '
                         'memcached` once')
    say('installing Debian package memcached (apt-get)')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    p = subprocess.run(['apt-get', 'install', '-y', '-q', 'memcached'],
                       env=env, capture_output=True, text=True)
    if p.returncode:
        subprocess.run(['apt-get', 'update', '-q'], env=env,
                       capture_output=True)
        p = subprocess.run(['apt-get', 'install', '-y', '-q', 'memcached'],
                           env=env, capture_output=True, text=True)
    if p.returncode or not shutil.which('memcached'):
        raise SwiftError('apt-get install memcached failed:\n%s'
                         % p.stderr[-2000:])


def ensure_packages(cloud, say):
    """swift + python-swiftclient in the cloud venv (own marker)."""
    marker = os.path.join(cloud.venv, '.localcloud-swift-packages')
    wanted = '\n'.join(PACKAGES)
    try:
        with open(marker) as f:
            if f.read() == wanted and os.path.exists(
                    cloud.vbin('swift-proxy-server')):
                return
    except FileNotFoundError:
        pass
    say('pip install %s into the cloud venv' % ' '.join(PACKAGES))
    log = os.path.join(cloud.log_dir, 'pip-install.log')
    with open(log, 'ab') as out:
        p = subprocess.run([cloud.vbin('python'), '-m', 'pip', 'install', '-q',
                            '--disable-pip-version-check'] + PACKAGES,
                           stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    if p.returncode:
        raise SwiftError('pip install %s failed; see %s'
                         % (' '.join(PACKAGES), log))
    with open(marker, 'w') as f:
        f.write(wanted)


# --------------------------------------------------------------------------
# Configuration


def cluster_dir(cloud, c):
    return os.path.join(cloud.state, 'swift', c)


def devices_dir(cloud, c):
    """Where cluster c keeps its objects: under the state dir, or under
    $LOCALCLOUD_SWIFT_DEVICES (e.g. a tmpfs: no disk writes, no fsync cost;
    tmpfs keeps user xattrs since Linux 6.6).
    """
    base = os.environ.get('LOCALCLOUD_SWIFT_DEVICES')
    if base:
        return os.path.join(os.path.abspath(base), c)
    return os.path.join(cluster_dir(cloud, c), 'devices')


def catalog_endpoints(cloud):
    """object-store endpoints: cluster a in RegionOne, b in RegionTwo."""
    out = {}
    for region, c in (('RegionOne', 'a'), ('RegionTwo', 'b')):
        url = 'http://127.0.0.1:%d/v1/AUTH_$(project_id)s' % cloud.ports[
            'swift-%s-proxy' % c]
        out[region] = {'public': url, 'internal': url}
    return out


def catalog_region(c):
    return {'a': 'RegionOne', 'b': 'RegionTwo'}[c]


SWIFT_CONF_TEXT = """\
# written by glance-clone's tools/localcloud (never rewritten: a new hash
# suffix would strand stored objects)
[swift-hash]
swift_hash_path_suffix = localcloud
swift_hash_path_prefix = localcloud

[storage-policy:0]
name = Policy-0
default = yes
"""


def ensure_swift_conf(say, path=SWIFT_CONF):
    """swift.conf: written if missing, never rewritten.

    Measured with Swift 2.38: a server whose config sets ``swift_dir`` reads
    ``<swift_dir>/swift.conf`` (hash suffix, policies); the module-level
    limits (constraints) are read at import from /etc/swift/swift.conf.  Both
    are written, the latter shared by every cluster on the machine.
    """
    if os.path.exists(path):
        return False
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + '.tmp', 'w') as f:
            f.write(SWIFT_CONF_TEXT)
        os.replace(path + '.tmp', path)
    except PermissionError:
        raise SwiftError('%s is missing and cannot be written here: run as '
                         'root once' % path)
    if path == SWIFT_CONF:
        say('wrote %s' % path)
    return True


def _server_conf(c, kind, port, d, workers, user, devices):
    app = {'object': 'object', 'container': 'container',
           'account': 'account'}[kind]
    return """\
# written by tools/localcloud
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = {workers}
user = {user}
swift_dir = {d}/etc
devices = {devices}
mount_check = false
disable_fallocate = true
log_name = swift-{c}-{kind}
log_level = WARNING

[pipeline:main]
pipeline = {app}-server

[app:{app}-server]
use = egg:swift#{app}
# 1 MiB instead of 64 KiB: fewer Python iterations per byte (CPU-bound here)
disk_chunk_size = 1048576
network_chunk_size = 1048576
""".format(port=port, workers=workers, user=user, d=d, c=c, kind=kind,
           app=app, devices=devices)


def _proxy_conf(c, port, d, workers, user, mc_port, auth_url, glance_pw):
    return """\
# written by tools/localcloud
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = {workers}
user = {user}
swift_dir = {d}/etc
log_name = swift-{c}-proxy
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache \
listing_formats bulk authtoken keystoneauth copy dlo slo proxy-logging \
proxy-server

[app:proxy-server]
use = egg:swift#proxy
# 1 MiB instead of 64 KiB: fewer Python iterations per byte (CPU-bound here)
object_chunk_size = 1048576
client_chunk_size = 1048576
account_autocreate = true
allow_account_management = true

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = {auth_url}
auth_url = {auth_url}
auth_type = password
username = glance
password = {glance_pw}
project_name = service
user_domain_name = Default
project_domain_name = Default
delay_auth_decision = true
# validated tokens cached through Swift's own memcache client
cache = swift.cache
service_token_roles_required = true

[filter:keystoneauth]
use = egg:swift#keystoneauth
# owners of a project's account AUTH_<project id>: its members (Glance's
# multi-tenant store writes an image into its owner's account with the
# uploading user's token)
operator_roles = admin, member, service
# a project's readers may read its account (Glance's multi-tenant store
# reads an image's data with the downloading user's token)
project_reader_roles = reader

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{mc_port}

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:dlo]
use = egg:swift#dlo

[filter:slo]
use = egg:swift#slo
""".format(port=port, workers=workers, user=user, d=d, c=c, mc_port=mc_port,
           auth_url=auth_url, glance_pw=glance_pw)


def configure(cloud, settings, glance_pw, write_if_changed, run, say):
    """Writes every cluster's configs and rings; {service: changed}."""
    changed = {svc: False for svc in SERVICES}
    if not settings.on:
        return changed
    ensure_swift_conf(say)
    p = cloud.ports
    user = pwd.getpwuid(os.getuid()).pw_name
    for c in settings.clusters():
        d = cluster_dir(cloud, c)
        os.makedirs(os.path.join(d, 'etc'), exist_ok=True)
        os.makedirs(os.path.join(devices_dir(cloud, c), 'd1'), exist_ok=True)
        ensure_swift_conf(say, os.path.join(d, 'etc', 'swift.conf'))
        ring_ports = [p['swift-%s-%s' % (c, kind)] for kind in KINDS]
        stamp = os.path.join(d, 'etc', 'rings.ports')
        spec = ' '.join(str(x) for x in ring_ports)
        if write_if_changed(stamp, spec) or not os.path.exists(
                os.path.join(d, 'etc', 'object.ring.gz')):
            run([cloud.vbin('python'),
                 os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              'swift_rings.py'), os.path.join(d, 'etc')] +
                [str(x) for x in ring_ports], what='swift ring build')
            for kind in KINDS:
                changed['swift-%s-%s' % (c, kind)] = True
            changed['swift-%s-proxy' % c] = True
        for kind in KINDS:
            svc = 'swift-%s-%s' % (c, kind)
            changed[svc] |= write_if_changed(
                os.path.join(d, 'etc', '%s-server.conf' % kind),
                # the data paths get the workers; listings need one
                _server_conf(c, kind, p[svc], d,
                             settings.workers if kind == 'object' else 1,
                             user, devices_dir(cloud, c)))
        svc = 'swift-%s-proxy' % c
        changed[svc] |= write_if_changed(
            os.path.join(d, 'etc', 'proxy-server.conf'),
            _proxy_conf(c, p[svc], d, settings.workers, user,
                        p['memcached'], cloud.auth_url, glance_pw), mode=0o600)
    return changed


def conf_file(cloud, svc):
    c, kind = svc.split('-')[1:3]
    name = 'proxy-server.conf' if kind == 'proxy' else '%s-server.conf' % kind
    return os.path.join(cluster_dir(cloud, c), 'etc', name)


def service_command(cloud, svc, env):
    """(argv, env) of a Swift service or memcached."""
    if svc == 'memcached':
        cmd = [shutil.which('memcached') or '/usr/bin/memcached',
               '-l', '127.0.0.1', '-p', str(cloud.ports[svc]), '-U', '0',
               '-m', '64']
        if os.geteuid() == 0:
            cmd += ['-u', 'root']
        return cmd, env
    kind = svc.split('-')[2]
    binary = cloud.vbin('swift-%s-server' % kind)
    # -v: log to the console too (the service log); there is no syslog here
    return [binary, conf_file(cloud, svc), '-v'], env


def answers(cloud, svc, port_open, http_ok):
    if svc.endswith('-proxy'):
        return http_ok('http://127.0.0.1:%d/healthcheck' % cloud.ports[svc])
    return port_open('127.0.0.1', cloud.ports[svc])


# --------------------------------------------------------------------------
# Glance


def glance_store(cloud, settings, region, glance_dir):
    """([DEFAULT] lines, [glance_store] body) of one region's Glance.

    A file-store region is multi-store (``enabled_backends``; its file
    store is ``[local]``).  A Swift region runs Glance's *multi-tenant* Swift
    store: an image's data lives in its owner project's account
    (``AUTH_<project id>``), container ``<swift_store_container>_<image
    id>``, and its location is the bare storage URL
    (``swift+http://127.0.0.1:PORT/v1/AUTH_x/glance_<id>/<id>``): no
    credential in it.  Glance reaches Swift with the request's own token
    (``swift_store_use_trusts = false``: a trust-scoped token, such as a
    clone's, may not create the trust Glance would otherwise make), so
    Glance holds no Swift credential at all.

    The Swift store is configured in ``[glance_store]`` (``stores`` /
    ``default_store``), not with ``enabled_backends``: measured with Glance
    33, a multi-store Glance refuses a multi-tenant location added through
    its location API ("Invalid location uri": the multi-tenant store's URL
    prefix never matches), the single-store configuration takes it.  The
    file store stays listed: images stored before the switch stay readable.
    """
    c = settings.cluster_of(region)
    if c is None:
        return 'enabled_backends = local:file', 'default_backend = local\n'
    body = """\
# Swift cluster {c} (tools/localcloud, LOCALCLOUD_SWIFT={mode}), multi-tenant
stores = file, swift
default_store = swift
filesystem_store_datadir = {d}/images/
swift_store_multi_tenant = true
swift_store_use_trusts = false
swift_store_container = {container}
# the catalog region whose object-store endpoint is cluster {c}
swift_store_region = {catalog_region}
swift_store_endpoint_type = publicURL
swift_store_create_container_on_put = true
swift_store_large_object_size = {large}
swift_store_large_object_chunk_size = {chunk}
""".format(c=c, mode=settings.mode, container=CONTAINER, d=glance_dir,
           catalog_region=catalog_region(c),
           large=settings.large_mb, chunk=settings.chunk_mb)
    # single-store Glance stages imports at node_staging_uri (default
    # /tmp/staging, shared by every local cloud on the machine)
    return 'node_staging_uri = file://%s/staging' % glance_dir, body


#: swift_store_container of every Swift region (multi-tenant: each image
#: gets its own container ``glance_<image id>`` in its owner's account)
CONTAINER = 'glance'


def describe(cloud, settings, regions):
    """The ``swift`` part of cloud.json.

    Multi-tenant stores: each project's images are in its own account, so a
    region gives the storage URL template of its cluster
    (``storage_url_template % {'project_id': ...}``) and its
    swift_store_container; no credential is involved.
    """
    out = {'mode': settings.mode, 'regions': {},
           'chunk_mb': settings.chunk_mb, 'large_object_mb': settings.large_mb,
           'do_secure_hash': settings.secure_hash, 'clusters': {}}
    if not settings.on:
        return out
    for c in settings.clusters():
        port = cloud.ports['swift-%s-proxy' % c]
        out['clusters'][c] = {
            'proxy_url': 'http://127.0.0.1:%d' % port,
            'storage_url_template':
                'http://127.0.0.1:%d/v1/AUTH_%%(project_id)s' % port,
            'catalog_region': catalog_region(c),
            'auth': 'keystone (operator roles admin, member, service; '
                    'project reader role reader)',
            'proxy_log': cloud.log_file('swift-%s-proxy' % c),
            'devices': devices_dir(cloud, c),
        }
    for r in regions:
        c = settings.cluster_of(r)
        out['regions'][r] = None if c is None else {
            'cluster': c, 'container': CONTAINER, 'store': 'swift',
            'multi_tenant': True,
            'storage_url_template':
                out['clusters'][c]['storage_url_template']}
    return out

"""localcloud: a local two-region OpenStack cloud (ZooKeeper, Keystone, two
Glance APIs) on 127.0.0.1 for development and tests.  Standard library only.

See `tools/localcloud --help`.
"""
import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from localcloud_lib import ceph_cluster
from localcloud_lib import glance_clone_filter
from localcloud_lib import glance_db
from localcloud_lib import swift_cluster

LIB_DIR = os.path.dirname(os.path.abspath(__file__))
TOOLS_DIR = os.path.dirname(LIB_DIR)
REPO_DIR = os.path.dirname(TOOLS_DIR)

REGIONS = ('RegionOne', 'RegionTwo')
SERVICES = ('zookeeper', 'keystone', 'glance-RegionOne', 'glance-RegionTwo')

# Python packages of the cloud virtualenv (kept apart from the product's).
VENV_PACKAGES = ['keystone~=30.0', 'glance~=33.0', 'gunicorn',
                 'python-keystoneclient', 'python-glanceclient',
                 'python-openstackclient', 'PyMySQL']

# users: name -> (project, roles)
USERS = {
    'admin': ('admin', ['admin']),
    'demo': ('demo', ['member']),
    'alt_demo': ('alt_demo', ['member']),
    'demo_reader': ('demo', ['reader']),
    'glance-clone': ('service', ['service']),
    # Glance's own service user (keystonemiddleware); not exported in
    # cloud.json's "users" but usable with `env --user glance`.
    'glance': ('service', ['service', 'admin']),
}
PUBLIC_USERS = ('admin', 'demo', 'alt_demo', 'demo_reader', 'glance-clone')
# ZooKeeper's digest user of glance-clone's services (not a Keystone user):
# the jobboard's znodes are readable and writable by it alone.
ZK_USER = 'glance-clone'
ZK_SECRET = 'zookeeper'          # its key in secrets.json
PROJECTS = ('admin', 'demo', 'alt_demo', 'service')

# netty-codec and netty-resolver: ZooKeeper's Netty connection factory (TLS
# client port) needs them and its jar's manifest does not list them.
ZK_JARS = ('zookeeper.jar', 'zookeeper-jute.jar', 'slf4j-api.jar',
           'slf4j-log4j12.jar', 'log4j-1.2.jar', 'netty-codec.jar',
           'netty-resolver.jar')

_print_lock = threading.Lock()
_T0 = time.monotonic()


def say(msg):
    with _print_lock:
        print('[localcloud %5.1fs] %s' % (time.monotonic() - _T0, msg),
              flush=True)


class CloudError(Exception):
    pass


# --------------------------------------------------------------------------
# Settings and paths


class Cloud:
    def __init__(self):
        self.state = os.path.abspath(
            os.environ.get('LOCALCLOUD_DIR') or
            os.path.join(REPO_DIR, '.localcloud'))
        self.host = '127.0.0.1'
        self.ports = {
            'zookeeper': self._port('LOCALCLOUD_ZK_PORT', 12181),
            'keystone': self._port('LOCALCLOUD_KEYSTONE_PORT', 15000),
            'glance-RegionOne': self._port('LOCALCLOUD_GLANCE_REGIONONE_PORT',
                                           19292),
            'glance-RegionTwo': self._port('LOCALCLOUD_GLANCE_REGIONTWO_PORT',
                                           19293),
        }
        # ZooKeeper's TLS client port (the plain one stays, for ruok)
        self.zk_tls_port = self._port('LOCALCLOUD_ZK_TLS_PORT',
                                      self.ports['zookeeper'] + 1)
        # Swift clusters and memcached (LOCALCLOUD_SWIFT_*_PORT...)
        self.ports.update(swift_cluster.ports())
        # Ceph monitors (LOCALCLOUD_CEPH_A_PORT / _B_PORT, default derived
        # from LOCALCLOUD_ZK_PORT)
        self.ports.update(ceph_cluster.ports())
        self.venv = os.path.join(self.state, 'venv-cloud')
        self.run_dir = os.path.join(self.state, 'run')
        self.log_dir = os.path.join(self.state, 'logs')

    @staticmethod
    def _port(var, default):
        value = os.environ.get(var)
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            raise CloudError('%s=%r is not a port number' % (var, value))

    # paths
    def vbin(self, name):
        return os.path.join(self.venv, 'bin', name)

    def svc_dir(self, svc):
        return os.path.join(self.state, svc)

    def pid_file(self, svc):
        return os.path.join(self.run_dir, svc + '.pid')

    def log_file(self, svc):
        return os.path.join(self.log_dir, svc + '.log')

    def glance_etc(self, region):
        return os.path.join(self.svc_dir('glance-' + region), 'etc')

    def glance_data(self, region):
        return os.path.join(self.svc_dir('glance-' + region), 'images')

    # urls
    def url(self, svc):
        if svc.endswith('-osd'):
            return '-'
        if svc == 'zookeeper' or svc.endswith('-mon'):
            return '%s:%d' % (self.host, self.ports[svc])
        return 'http://%s:%d' % (self.host, self.ports[svc])

    @property
    def auth_url(self):
        return self.url('keystone') + '/v3'

    # secrets
    @property
    def secrets_file(self):
        return os.path.join(self.state, 'secrets.json')

    def passwords(self, create=False):
        try:
            with open(self.secrets_file) as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {}
        changed = False
        for user in tuple(USERS) + (ZK_SECRET,):
            if user not in data:
                if not create:
                    raise CloudError('no passwords yet in %s: run '
                                     '`tools/localcloud up` first'
                                     % self.secrets_file)
                # distinctive, so tests can grep logs for leaks
                data[user] = 'lcpw-%s-%s' % (user.replace('_', '-'),
                                             secrets.token_hex(10))
                changed = True
        if changed:
            os.makedirs(self.state, exist_ok=True)
            tmp = self.secrets_file + '.tmp'
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'w') as f:
                json.dump(data, f, indent=2, sort_keys=True)
            os.replace(tmp, self.secrets_file)
        return data

    @property
    def cloud_json(self):
        return os.path.join(self.state, 'cloud.json')


# --------------------------------------------------------------------------
# Processes


def _read_pid(path):
    """(pid, start_time) from a pid file; start_time may be None."""
    try:
        with open(path) as f:
            parts = f.read().split()
        return int(parts[0]), (int(parts[1]) if len(parts) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


def _start_time(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
        return int(data[data.rindex(')') + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _proc_cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return None


def _proc_stat(pid):
    """(state, pgrp, rss_pages) or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(')') + 2:].split()
    # fields after comm: state(0) ppid(1) pgrp(2) ... rss is field 24 -> 21
    return rest[0], int(rest[2]), int(rest[21])


def service_pid(cloud, svc):
    """Pid of our running service, or None (stale pid files are ignored)."""
    pid, started = _read_pid(cloud.pid_file(svc))
    if not pid:
        return None
    st = _proc_stat(pid)
    if st is None or st[0] in ('Z', 'X'):
        return None
    # The pid file records the process start time too: guards against pid
    # reuse (gunicorn retitles itself, so the command line can't be used).
    if started is None or _start_time(pid) != started:
        return None
    return pid


def group_members(pgid):
    pids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        st = _proc_stat(int(name))
        if st and st[1] == pgid and st[0] not in ('Z', 'X'):
            pids.append(int(name))
    return pids


def group_rss(pgid):
    page = os.sysconf('SC_PAGE_SIZE')
    total = 0
    for pid in group_members(pgid):
        st = _proc_stat(pid)
        if st:
            total += st[2] * page
    return total


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_owner(port):
    """Best effort: 'pid N (cmd)' of the process listening on port."""
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if (state == '0A'
                            and int(local.rsplit(':', 1)[1], 16) == port):
                        inodes.add(inode)
        except OSError:
            pass
    if not inodes:
        return 'unknown process'
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        fd_dir = '/proc/%s/fd' % name
        try:
            for fd in os.listdir(fd_dir):
                link = os.readlink(os.path.join(fd_dir, fd))
                if link.startswith('socket:[') and link[8:-1] in inodes:
                    cmd = (_proc_cmdline(int(name)) or '?')[:100]
                    return 'pid %s (%s)' % (name, cmd)
        except OSError:
            continue
    return 'a process we cannot inspect'


def http_ok(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except (OSError, ValueError):
        return False


def zk_cmd(host, port, cmd, timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            chunks = []
            while True:
                data = s.recv(4096)
                if not data:
                    break
                chunks.append(data)
            return b''.join(chunks).decode(errors='replace')
    except OSError:
        return ''


def service_answers(cloud, svc):
    if svc in ceph_cluster.SERVICES:
        return ceph_cluster.answers(cloud, svc, port_open)
    if svc in swift_cluster.SERVICES:
        return swift_cluster.answers(cloud, svc, port_open, http_ok)
    if svc == 'zookeeper':
        return zk_cmd(cloud.host, cloud.ports[svc], 'ruok') == 'imok'
    if svc == 'keystone':
        return http_ok(cloud.url(svc) + '/v3')
    return http_ok(cloud.url(svc) + '/healthcheck')


def run(cmd, log=None, env=None, cwd=None, input=None, what=None):
    """Run a set-up command; its output goes to `log` (appended)."""
    what = what or os.path.basename(cmd[0])
    if log:
        with open(log, 'ab') as out:
            out.write(('\n+ %s\n' % ' '.join(shlex.quote(c) for c in cmd))
                      .encode())
            out.flush()
            p = subprocess.run(cmd, stdout=out, stderr=out, env=env, cwd=cwd,
                               stdin=subprocess.DEVNULL)
        if p.returncode:
            raise CloudError('%s failed (exit %d); see %s'
                             % (what, p.returncode, log))
        return None
    p = subprocess.run(cmd, env=env, cwd=cwd, input=input,
                       capture_output=True, text=True)
    if p.returncode:
        raise CloudError('%s failed (exit %d):\n%s%s'
                         % (what, p.returncode, p.stdout[-2000:],
                            p.stderr[-4000:]))
    return p.stdout


# --------------------------------------------------------------------------
# Installation


def ensure_zookeeper_package():
    if (os.path.exists('/usr/share/java/zookeeper.jar')
            and shutil.which('java')):
        return
    if os.geteuid() != 0:
        raise CloudError(
            'the Debian package "zookeeper" is not installed and this is not '
            'root: run `sudo apt-get update && sudo apt-get install -y '
            'zookeeper` once, then `tools/localcloud up` again')
    say('installing Debian package zookeeper (apt-get)')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    subprocess.run(['apt-get', 'update', '-q'], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run(['apt-get', 'install', '-y', '-q', 'zookeeper'],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    if not os.path.exists('/usr/share/java/zookeeper.jar'):
        raise CloudError('zookeeper installed but /usr/share/java/'
                         'zookeeper.jar is missing')


def system_python():
    for cand in (os.environ.get('LOCALCLOUD_PYTHON'), '/usr/bin/python3.11',
                 '/usr/bin/python3', shutil.which('python3.11'),
                 shutil.which('python3')):
        if cand and os.path.exists(cand):
            return cand
    raise CloudError('no python3 found to create the cloud virtualenv')


def venv_packages():
    extra = os.environ.get('LOCALCLOUD_PIP_EXTRA', '').split()
    return VENV_PACKAGES + extra


def ensure_venv(cloud):
    marker = os.path.join(cloud.venv, '.localcloud-packages')
    wanted = '\n'.join(venv_packages())
    try:
        with open(marker) as f:
            if f.read() == wanted and os.path.exists(cloud.vbin('gunicorn')):
                return False
    except FileNotFoundError:
        pass
    t = time.monotonic()
    py = system_python()
    if not os.path.exists(cloud.vbin('python')):
        say('creating virtualenv %s with %s' % (cloud.venv, py))
        run([py, '-m', 'venv', cloud.venv], what='python -m venv')
    say('pip install %s (about 20-40 s)' % ' '.join(venv_packages()))
    log = os.path.join(cloud.log_dir, 'pip-install.log')
    run([cloud.vbin('python'), '-m', 'pip', 'install', '-q',
         '--disable-pip-version-check'] + venv_packages(), log=log,
        what='pip install')
    with open(marker, 'w') as f:
        f.write(wanted)
    say('virtualenv ready in %.1fs' % (time.monotonic() - t))
    return True


# --------------------------------------------------------------------------
# Configuration files


def write_if_changed(path, text, mode=0o644):
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def zk_tls_files(cloud):
    """A CA, ZooKeeper's certificate (IP 127.0.0.1, localhost) and a client
    certificate for glance-clone (ZooKeeper requires one), made once with
    openssl.  {name: path}.
    """
    d = os.path.join(cloud.svc_dir('zookeeper'), 'tls')
    files = {n: os.path.join(d, n + '.pem') for n in
             ('ca', 'server', 'client-cert', 'client-key')}
    if all(os.path.exists(f) for f in files.values()):
        return files
    os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = os.path.join(d, 'work')
    os.makedirs(tmp, exist_ok=True)

    def openssl(*args):
        subprocess.run(['openssl', *args], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650',
            '-subj', '/CN=localcloud ZooKeeper CA', '-keyout', 'ca.key',
            '-out', 'ca.pem')
    with open(os.path.join(tmp, 'san.ext'), 'w') as f:
        f.write('subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    for name, cn in (('server', '127.0.0.1'), ('client', 'glance-clone')):
        openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=' + cn,
                '-keyout', name + '.key', '-out', name + '.csr')
        openssl('x509', '-req', '-in', name + '.csr', '-CA', 'ca.pem',
                '-CAkey', 'ca.key', '-CAcreateserial', '-days', '3650',
                '-extfile', 'san.ext', '-out', name + '.crt')

    def read(name):
        with open(os.path.join(tmp, name)) as f:
            return f.read()
    # ZooKeeper's PEM key store: the PKCS#8 key and the certificate together
    for name, text in (('ca', read('ca.pem')),
                       ('server', read('server.key') + read('server.crt')),
                       ('client-cert', read('client.crt')),
                       ('client-key', read('client.key'))):
        write_if_changed(files[name], text, mode=0o600)
    shutil.rmtree(tmp)
    return files


def zk_tls_description(cloud):
    """What a client needs to reach ZooKeeper over TLS."""
    tls = zk_tls_files(cloud)
    return {'hosts': '%s:%d' % (cloud.host, cloud.zk_tls_port),
            'ca_file': tls['ca'], 'cert_file': tls['client-cert'],
            'key_file': tls['client-key']}


def zk_config(cloud):
    d = cloud.svc_dir('zookeeper')
    os.makedirs(os.path.join(d, 'data'), exist_ok=True)
    tls = zk_tls_files(cloud)
    changed = write_if_changed(os.path.join(d, 'zoo.cfg'), """\
# written by tools/localcloud
# Sessions expire on tick boundaries: a dead client's ephemeral nodes go
# between its session timeout and that plus one tick.
tickTime=500
initLimit=20
syncLimit=10
dataDir={data}
clientPort={port}
clientPortAddress={host}
maxClientCnxns=0
minSessionTimeout=2000
maxSessionTimeout=60000
# The four-letter words localcloud (ruok) and kazoo (envi) use, and the
# harmless status ones; not cons/dump/wchp (session ids, znode paths).
4lw.commands.whitelist=ruok,srvr,stat,mntr,envi
# Digest authentication is built in: glance-clone's znodes carry an ACL for
# its digest user alone (cloud.json "zookeeper_auth", written into the
# clone conf by tools/write-clone-conf).
admin.enableServer=false
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
# TLS client port (Netty), client certificates required: glance-clone's
# services connect here (cloud.json "zookeeper_tls").
secureClientPort={tls_port}
secureClientPortAddress={host}
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location={server}
ssl.keyStore.type=PEM
ssl.trustStore.location={ca}
ssl.trustStore.type=PEM
ssl.clientAuth=need
""".format(data=os.path.join(d, 'data'), port=cloud.ports['zookeeper'],
           host=cloud.host, tls_port=cloud.zk_tls_port, server=tls['server'],
           ca=tls['ca']))
    changed |= write_if_changed(os.path.join(d, 'log4j.properties'), """\
# written by tools/localcloud: everything to the console (the service log)
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Threshold=INFO
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] \
- %-5p [%t:%C{1}@%L] - %m%n
""")
    return changed


def keystone_conf(cloud):
    d = cloud.svc_dir('keystone')
    for sub in ('fernet-keys', 'credential-keys'):
        os.makedirs(os.path.join(d, sub), mode=0o700, exist_ok=True)
    # glance-clone deletes each clone's trust with the service user's own
    # token when the clone ends: the trustee may revoke its trusts (see
    # doc/source/operator/policies.rst).
    policy_changed = write_if_changed(os.path.join(d, 'policy.yaml'), """\
# written by tools/localcloud
"identity:delete_trust": "rule:admin_required or \
user_id:%(target.trust.trustor_user_id)s or \
user_id:%(target.trust.trustee_user_id)s"
""")
    return write_if_changed(os.path.join(d, 'keystone.conf'), """\
# written by tools/localcloud
[DEFAULT]
debug = false
use_stderr = true
max_token_size = 255

[database]
# waits up to 30 s for another writer instead of sqlite's 5 (see
# keystone_init for the write-ahead log)
connection = sqlite:///{d}/keystone.db?timeout=30

[token]
provider = fernet
expiration = 3600

[fernet_tokens]
key_repository = {d}/fernet-keys/

[fernet_receipts]
key_repository = {d}/fernet-keys/

[credential]
key_repository = {d}/credential-keys/

[identity]
# bcrypt's default 12 rounds costs ~0.25 s per password check
password_hash_rounds = 4

[cache]
# in-process cache (one gunicorn worker): token validation drops from
# ~0.25 s to a few ms per request
enabled = true
backend = dogpile.cache.memory

[oslo_policy]
enforce_new_defaults = true
policy_file = {d}/policy.yaml
""".format(d=d)) or policy_changed


def glance_conf(cloud, region, pw):
    svc = 'glance-' + region
    d = cloud.svc_dir(svc)
    etc = cloud.glance_etc(region)
    for sub in ('etc', 'images', 'staging', 'tasks', 'locks', 'cache'):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    paste = os.path.join(etc, 'glance-api-paste.ini')
    if not os.path.exists(paste):
        # Copied once from the installed package; later changes (e.g. a
        # filter inserted into RegionTwo's pipeline) are kept across `up`.
        src = os.path.join(cloud.venv, 'etc', 'glance', 'glance-api-paste.ini')
        if not os.path.exists(src):
            raise CloudError('%s not found in the cloud venv' % src)
        shutil.copyfile(src, paste)
    ports = sorted({80, 443} | {cloud.ports['glance-' + r] for r in REGIONS})
    # LOCALCLOUD_SWIFT: this region's store (file, or a Swift cluster)
    swift_settings = swift_cluster.Settings.saved(cloud.state)
    stores_default, stores_section = swift_cluster.glance_store(
        cloud, swift_settings, region, d)
    # LOCALCLOUD_CEPH: or Glance's RBD store in a Ceph cluster (multi-store:
    # the file store stays, for images stored before the switch)
    ceph_settings = ceph_cluster.Settings.saved(cloud.state)
    ceph_section = ceph_cluster.glance_backend(cloud, ceph_settings, region)
    if ceph_section and swift_settings.cluster_of(region):
        raise CloudError('%s cannot store in both Swift (LOCALCLOUD_SWIFT) '
                         'and Ceph (LOCALCLOUD_CEPH): choose one' % region)
    if ceph_section:
        stores_default = 'enabled_backends = local:file, %s:rbd' % (
            ceph_cluster.STORE_ID)
        stores_section = 'default_backend = %s\n' % ceph_cluster.STORE_ID
    changed = write_if_changed(
        os.path.join(etc, 'glance-api.conf'), mode=0o600, text="""\
# written by tools/localcloud (rewritten on every `up`; edit cli.py instead)
[DEFAULT]
debug = true
use_stderr = true
{stores_default}
enabled_import_methods = ['glance-direct','web-download','copy-image',\
'glance-download']
# this API's own URL (staging / import proxying between workers)
worker_self_reference_url = {url}
public_endpoint = {url}
show_image_direct_url = false
image_size_cap = 1099511627776
# --- location API for the clone service user (role `service`) ---
# Glance 33 defaults: POST /v2/images/{{id}}/locations ("add_image_location")
# = rule:service_api or (member and owner); GET ("fetch_image_location")
# = rule:service_api; service_api = role:service or role:admin.  The image
# must be 'queued'; a caller without the `service` role (own or, via an
# X-Service-Token, in service_roles) may only add http-store URLs.
# Overrides go into policy.yaml next to this file; hashing of added
# locations: do_secure_hash / http_retries in this section.
# Added locations are read and hashed by Glance (do_secure_hash = true) unless
# LOCALCLOUD_GLANCE_SECURE_HASH=0 at `up`.
do_secure_hash = {secure_hash}

[database]
# MariaDB when it answers, else sqlite (see glance_db.py)
connection = {db_connection}

[paste_deploy]
flavor = keystone
config_file = {paste}

[glance_store]
{stores_section}

[local]
filesystem_store_datadir = {d}/images/
{ceph_section}
[os_glance_staging_store]
filesystem_store_datadir = {d}/staging/

[os_glance_tasks_store]
filesystem_store_datadir = {d}/tasks/

[keystone_authtoken]
www_authenticate_uri = {auth}
auth_url = {auth}
auth_type = password
username = glance
password = {pw}
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = {region}
service_token_roles_required = true
include_service_catalog = true

[import_filtering_opts]
# list options with bounds=True: values need the [ ]
allowed_schemes = [http,https]
allowed_hosts = [{host}]
allowed_ports = [{ports}]

[glance_download_properties]
extra_properties = [hw_,trait:,os_distro,os_secure_boot,os_type]

[oslo_policy]
enforce_new_defaults = true
enforce_scope = true
policy_file = {etc}/policy.yaml

[oslo_concurrency]
lock_path = {d}/locks

[wsgi]
task_pool_threads = 16
""".format(url=cloud.url(svc), d=d, paste=paste, auth=cloud.auth_url,
           pw=pw, region=region, host=cloud.host,
           ports=','.join(str(p) for p in ports), etc=etc,
           stores_default=stores_default, stores_section=stores_section,
           ceph_section=('\n' + ceph_section) if ceph_section else '',
           secure_hash=str(swift_settings.secure_hash).lower(),
           db_connection=glance_db.connection(cloud, region, d)))
    policy = os.path.join(etc, 'policy.yaml')
    if not os.path.exists(policy):
        write_if_changed(policy, """\
# Glance policy overrides for this region (Glance's new defaults apply to
# everything not listed).  Kept across `up`.
# Location API for the clone service user would go here, e.g.:
# "add_image_location": "role:service"
# "fetch_image_location": "role:service"
{}
""")
    changed |= glance_clone_filter.apply(cloud, region, paste)
    return changed


# --------------------------------------------------------------------------
# Service commands


def gunicorn_cmd(cloud, svc, app, threads):
    return [cloud.vbin('gunicorn'),
            '--worker-class', 'gthread', '--workers', '1',
            '--threads', str(threads),
            '--timeout', '3600', '--graceful-timeout', '5',
            '--keep-alive', '30',
            '--bind', '%s:%d' % (cloud.host, cloud.ports[svc]),
            '--pythonpath', TOOLS_DIR,
            '--chdir', cloud.svc_dir(svc),
            '--access-logfile', '-',
            '--error-logfile', '-',
            '--name', 'localcloud-' + svc,
            app]


def service_command(cloud, svc):
    """(argv, env) for a service."""
    env = dict(os.environ)
    for var in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV'):
        env.pop(var, None)
    env['PATH'] = os.path.join(cloud.venv, 'bin') + os.pathsep + env.get(
        'PATH', '/usr/bin:/bin')
    if svc in ceph_cluster.SERVICES:
        os.makedirs(cloud.svc_dir(svc), exist_ok=True)   # its cwd
        return ceph_cluster.service_command(cloud, svc, env)
    if svc in swift_cluster.SERVICES:
        os.makedirs(cloud.svc_dir(svc), exist_ok=True)   # its cwd
        return swift_cluster.service_command(cloud, svc, env)
    if svc == 'zookeeper':
        d = cloud.svc_dir(svc)
        cp = ':'.join(os.path.join('/usr/share/java', j) for j in ZK_JARS)
        cmd = [shutil.which('java') or 'java',
               '-Xms32m', '-Xmx256m', '-XX:+UseSerialGC',
               '-Djava.net.preferIPv4Stack=true',
               '-Dzookeeper.log.dir=' + cloud.log_dir,
               '-Dlog4j.configuration=file:' + os.path.join(
                   d, 'log4j.properties'),
               '-cp', cp,
               'org.apache.zookeeper.server.quorum.QuorumPeerMain',
               os.path.join(d, 'zoo.cfg')]
        return cmd, env
    if svc == 'keystone':
        env['OS_KEYSTONE_CONFIG_DIR'] = cloud.svc_dir(svc)
        return gunicorn_cmd(cloud, svc, 'localcloud_lib.keystone_wsgi:'
                            'application', 4), env
    region = svc.split('-', 1)[1]
    env['OS_GLANCE_CONFIG_DIR'] = cloud.glance_etc(region)
    env.update(glance_clone_filter.service_env(cloud, region))
    return gunicorn_cmd(cloud, svc, 'glance.wsgi.api:application', 16), env


def check_port_free(cloud, svc):
    port = cloud.ports.get(svc)
    if port is None:        # a Ceph OSD: Ceph picks a free port
        return
    if port_open(cloud.host, port):
        raise CloudError(
            '%s: port %s:%d is taken by %s, which tools/localcloud did not '
            'start (state dir %s). Stop it, or choose other ports with '
            'LOCALCLOUD_ZK_PORT / LOCALCLOUD_KEYSTONE_PORT / '
            'LOCALCLOUD_GLANCE_REGIONONE_PORT / '
            'LOCALCLOUD_GLANCE_REGIONTWO_PORT.'
            % (svc, cloud.host, port, port_owner(port), cloud.state))


def spawn(cloud, svc):
    """Start a service detached (own session / process group)."""
    pid = service_pid(cloud, svc)
    if pid:
        return pid
    check_port_free(cloud, svc)
    cmd, env = service_command(cloud, svc)
    os.makedirs(cloud.run_dir, exist_ok=True)
    log = cloud.log_file(svc)
    with open(log, 'ab') as out:
        out.write(('\n==== localcloud start %s %s\n+ %s\n' % (
            svc, time.strftime('%Y-%m-%d %H:%M:%S'),
            ' '.join(shlex.quote(c) for c in cmd))).encode())
        out.flush()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env,
                             cwd=cloud.svc_dir(svc), start_new_session=True,
                             close_fds=True)
    with open(cloud.pid_file(svc), 'w') as f:
        f.write('%d %d\n' % (p.pid, _start_time(p.pid) or 0))
    return p.pid


def wait_answers(cloud, svc, pid, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service_answers(cloud, svc):
            return
        st = _proc_stat(pid)
        if st is None or st[0] in ('Z', 'X'):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            raise CloudError('%s exited during start-up; last lines of %s:\n%s'
                             % (svc, cloud.log_file(svc),
                                tail(cloud.log_file(svc))))
        time.sleep(0.2)
    raise CloudError('%s did not answer within %ds; see %s'
                     % (svc, timeout, cloud.log_file(svc)))


def tail(path, n=25):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:])
    except OSError:
        return ''


def start_service(cloud, svc):
    pid = service_pid(cloud, svc)
    if pid and service_answers(cloud, svc):
        return pid, False
    t = time.monotonic()
    pid = spawn(cloud, svc)
    wait_answers(cloud, svc, pid)
    say('%s answers on %s (pid %d, %.1fs)'
        % (svc, cloud.url(svc), pid, time.monotonic() - t))
    return pid, True


def stop_service(cloud, svc, kill=False, timeout=15):
    pid = service_pid(cloud, svc)
    if not pid:
        _rm(cloud.pid_file(svc))
        return False
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    sig = signal.SIGKILL if kill else signal.SIGTERM
    # Only signal the group if the service leads it (we started it with
    # setsid, so pgid == pid); never signal our own group.
    if pgid == pid and pgid != os.getpgrp():
        targets = lambda: group_members(pgid)  # noqa: E731
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
    else:
        targets = lambda: [pid] if _proc_stat(pid) else []  # noqa: E731
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        left = [p for p in targets() if _proc_stat(p) and
                _proc_stat(p)[0] not in ('Z', 'X')]
        if not left:
            break
        time.sleep(0.1)
    else:
        for p in targets():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        _reap(pid)
    _rm(cloud.pid_file(svc))
    return True


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _rm(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------
# One-time initialisation steps (each guarded by a marker file)


def _marker(cloud, svc, name):
    return os.path.join(cloud.svc_dir(svc), '.done-' + name)


def _once(cloud, svc, name, fn):
    m = _marker(cloud, svc, name)
    if os.path.exists(m):
        return False
    fn()
    with open(m, 'w') as f:
        f.write(time.strftime('%Y-%m-%d %H:%M:%S\n'))
    return True


def keystone_init(cloud, pw):
    """db_sync, fernet/credential keys, bootstrap: one process, once."""
    conf = os.path.join(cloud.svc_dir('keystone'), 'keystone.conf')
    ids = '--keystone-user %d --keystone-group %d' % (os.getuid(),
                                                      os.getgid())
    url = cloud.auth_url
    t = time.monotonic()

    def init():
        env = dict(os.environ, OS_BOOTSTRAP_PASSWORD=pw['admin'])
        run([cloud.vbin('python'), os.path.join(LIB_DIR, 'keystone_init.py'),
             conf, 'db_sync', 'fernet_setup ' + ids, 'credential_setup ' + ids,
             'bootstrap --bootstrap-username admin '
             '--bootstrap-project-name admin --bootstrap-role-name admin '
             '--bootstrap-service-name keystone '
             '--bootstrap-region-id %s --bootstrap-admin-url %s '
             '--bootstrap-internal-url %s --bootstrap-public-url %s'
             % (REGIONS[0], url, url, url)],
            log=cloud.log_file('keystone-manage'), env=env,
            what='keystone-manage db_sync/fernet_setup/credential_setup/'
                 'bootstrap')

    if _once(cloud, 'keystone', 'init', init):
        say('keystone database, keys and admin ready (%.1fs)'
            % (time.monotonic() - t))
    # WAL: token and trust reads no longer block the writer (a trust made
    # or deleted while clones authenticate); kept by the file once set
    import sqlite3
    db = os.path.join(cloud.svc_dir('keystone'), 'keystone.db')
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            conn.execute('PRAGMA journal_mode=WAL')
    except sqlite3.OperationalError as e:   # a running keystone holds it
        say('keystone database left in its journal mode (%s)' % e)


_glance_template_lock = threading.Lock()


def glance_template_db(cloud):
    """An empty, migrated Glance database (glance-manage db_sync once).

    Both regions start from a copy of it: one db_sync (~4-6 s of CPU)
    instead of two.
    """
    with _glance_template_lock:
        d = os.path.join(cloud.state, 'glance-template')
        db = os.path.join(d, 'glance.db')
        done = os.path.join(d, '.done-db_sync')
        if os.path.exists(done) and os.path.exists(db):
            return db
        os.makedirs(d, exist_ok=True)
        _rm(db)
        override = os.path.join(d, 'template.conf')
        write_if_changed(override, '[database]\nconnection = sqlite:///%s\n'
                         % db)
        etc = cloud.glance_etc(REGIONS[0])
        t = time.monotonic()
        run([cloud.vbin('glance-manage'),
             '--config-file', os.path.join(etc, 'glance-api.conf'),
             '--config-file', override, 'db_sync'],
            log=cloud.log_file('glance-manage'),
            env=dict(os.environ, OS_GLANCE_CONFIG_DIR=etc),
            what='glance-manage db_sync')
        # WAL: readers no longer block the writer (many clones at once)
        import sqlite3
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute('PRAGMA journal_mode=WAL')
        with open(done, 'w') as f:
            f.write(time.strftime('%Y-%m-%d %H:%M:%S\n'))
        say('glance database schema ready (%.1fs)' % (time.monotonic() - t))
        return db


def glance_init(cloud, region):
    svc = 'glance-' + region

    def db_init():
        db = os.path.join(cloud.svc_dir(svc), 'glance.db')
        if not os.path.exists(db):
            shutil.copyfile(glance_template_db(cloud), db + '.tmp')
            os.replace(db + '.tmp', db)

    def mysql_init():
        etc = cloud.glance_etc(region)
        t = time.monotonic()
        glance_db.recreate_database(cloud, region, cloud.vbin('python'))
        run([cloud.vbin('glance-manage'), '--config-file',
             os.path.join(etc, 'glance-api.conf'), 'db_sync'],
            log=cloud.log_file('glance-manage'),
            env=dict(os.environ, OS_GLANCE_CONFIG_DIR=etc),
            what='glance-manage db_sync (%s)' % region)
        say('%s database ready in MariaDB (%.1fs)'
            % (svc, time.monotonic() - t))

    if glance_db.backend() == 'mysql':
        _once(cloud, svc, 'db_sync-mysql', mysql_init)
    else:
        _once(cloud, svc, 'db_sync', db_init)


def keystone_spec(cloud, pw):
    identity = {r: {i: cloud.auth_url for i in ('public', 'internal',
                                                'admin')}
                for r in REGIONS}
    image = {r: {i: cloud.url('glance-' + r) for i in ('public', 'internal')}
             for r in REGIONS}
    return {
        'auth_url': cloud.auth_url,
        'admin': {'password': pw['admin']},
        'regions': list(REGIONS),
        'services': [
            {'name': 'keystone', 'type': 'identity', 'endpoints': identity},
            {'name': 'glance', 'type': 'image', 'endpoints': image},
            # the local Swift clusters (running only with LOCALCLOUD_SWIFT)
            {'name': 'swift', 'type': 'object-store',
             'endpoints': swift_cluster.catalog_endpoints(cloud)},
        ],
        'projects': list(PROJECTS),
        'users': {name: {'password': pw[name], 'project': proj,
                         'roles': roles}
                  for name, (proj, roles) in USERS.items()},
    }


def keystone_setup(cloud, pw):
    """Catalog, projects, users; skipped when nothing changed."""
    spec = keystone_spec(cloud, pw)
    # a digest, so no password is written here
    fingerprint = hashlib.sha256(
        json.dumps(spec, sort_keys=True).encode()).hexdigest()
    done = os.path.join(cloud.svc_dir('keystone'), 'setup.json')
    try:
        with open(done) as f:
            saved = json.load(f)
        if saved.get('spec') == fingerprint:
            return saved['result']
    except (FileNotFoundError, ValueError, KeyError):
        pass
    t = time.monotonic()
    out = run([cloud.vbin('python'),
               os.path.join(LIB_DIR, 'keystone_setup.py')],
              input=json.dumps(spec), what='keystone set-up')
    result = json.loads(out)
    fd = os.open(done + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        json.dump({'spec': fingerprint, 'result': result}, f)
    os.replace(done + '.tmp', done)
    say('keystone regions, catalog, projects and users set up (%.1fs)'
        % (time.monotonic() - t))
    return result


# --------------------------------------------------------------------------
# cloud.json


def describe(cloud, pw, ids):
    users = {}
    for name in PUBLIC_USERS:
        proj = USERS[name][0]
        info = ids.get('users', {}).get(name, {})
        users[name] = {'password': pw[name], 'project': proj,
                       'user_id': info.get('user_id'),
                       'project_id': info.get('project_id')}
    services = {}
    swift_settings = swift_cluster.Settings.saved(cloud.state)
    ceph_settings = ceph_cluster.Settings.saved(cloud.state)
    for svc in SERVICES + tuple(swift_settings.services()) + tuple(
            ceph_settings.services()):
        services[svc] = {'pid': service_pid(cloud, svc),
                         'log': cloud.log_file(svc), 'url': cloud.url(svc)}
    return {
        'auth_url': cloud.auth_url,
        'zookeeper': cloud.url('zookeeper'),
        'zookeeper_auth': {'username': ZK_USER, 'password': pw[ZK_SECRET]},
        'zookeeper_tls': zk_tls_description(cloud),
        'regions': {r: {'glance_url': cloud.url('glance-' + r),
                        'data_dir': cloud.glance_data(r),
                        'log': cloud.log_file('glance-' + r)}
                    for r in REGIONS},
        'users': users,
        'services': services,
        'swift': swift_cluster.describe(cloud, swift_settings, REGIONS),
        'ceph': ceph_cluster.describe(cloud, ceph_settings, REGIONS),
        'state_dir': cloud.state,
        'venv': cloud.venv,
    }


def write_cloud_json(cloud, desc):
    fd = os.open(cloud.cloud_json + '.tmp',
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        json.dump(desc, f, indent=2)
        f.write('\n')
    os.replace(cloud.cloud_json + '.tmp', cloud.cloud_json)


def load_ids(cloud):
    try:
        with open(os.path.join(cloud.svc_dir('keystone'), 'setup.json')) as f:
            return json.load(f)['result']
    except (FileNotFoundError, ValueError, KeyError):
        return {}


def refresh_cloud_json(cloud):
    try:
        pw = cloud.passwords()
    except CloudError:
        return
    write_cloud_json(cloud, describe(cloud, pw, load_ids(cloud)))


# --------------------------------------------------------------------------
# Commands


def fmt_bytes(n):
    return '%.0f MiB' % (n / 1048576.0)


def swift_services_shown(cloud):
    """The Swift services the saved setting runs, and any still running."""
    wanted = swift_cluster.Settings.saved(cloud.state).services()
    return tuple(s for s in swift_cluster.SERVICES
                 if s in wanted or service_pid(cloud, s))


def ceph_services_shown(cloud):
    wanted = ceph_cluster.Settings.saved(cloud.state).services()
    return tuple(s for s in ceph_cluster.SERVICES
                 if s in wanted or service_pid(cloud, s))


def status_rows(cloud):
    rows = []
    for svc in SERVICES + swift_services_shown(cloud) + \
            ceph_services_shown(cloud):
        pid = service_pid(cloud, svc)
        up = bool(pid) and service_answers(cloud, svc)
        rss = group_rss(os.getpgid(pid)) if pid else 0
        state = 'up' if up else ('starting?' if pid else 'down')
        rows.append((svc, state, pid, cloud.url(svc), rss))
    return rows


def print_status(cloud):
    rows = status_rows(cloud)
    print('%-18s %-9s %-8s %-26s %s' % ('SERVICE', 'STATE', 'PID', 'URL',
                                        'RSS'))
    total = 0
    for svc, state, pid, url, rss in rows:
        total += rss
        print('%-18s %-9s %-8s %-26s %s' % (svc, state, pid or '-', url,
                                            fmt_bytes(rss) if pid else '-'))
    print('%-18s %-9s %-8s %-26s %s' % ('total', '', '', '', fmt_bytes(total)))
    print('state dir: %s' % cloud.state)
    return all(r[1] == 'up' for r in rows)


def cmd_up(cloud, args):
    t0 = time.monotonic()
    os.makedirs(cloud.state, exist_ok=True)
    os.makedirs(cloud.log_dir, exist_ok=True)
    os.makedirs(cloud.run_dir, exist_ok=True)
    ensure_zookeeper_package()
    t_install = time.monotonic()
    ensure_venv(cloud)
    t_install = time.monotonic() - t_install
    pw = cloud.passwords(create=True)
    # LOCALCLOUD_SWIFT: Swift clusters and which regions store in them
    swift_settings = swift_cluster.Settings.from_env(REGIONS)
    swift_services = swift_settings.services()
    if swift_settings.on:
        swift_cluster.ensure_memcached(say)
        swift_cluster.ensure_packages(cloud, say)
    swift_settings.save(cloud.state)
    # LOCALCLOUD_CEPH: Ceph clusters and which regions store in them
    ceph_settings = ceph_cluster.Settings.from_env(REGIONS)
    ceph_services = ceph_settings.services()
    clash = [r for r in REGIONS if ceph_settings.cluster_of(r) and
             swift_settings.cluster_of(r)]
    if clash:
        raise CloudError('%s cannot store in both Swift and Ceph: set '
                         'LOCALCLOUD_SWIFT_REGIONS / LOCALCLOUD_CEPH_REGIONS'
                         % ', '.join(clash))
    if ceph_settings.on:
        ceph_cluster.ensure_packages(say)
        # Glance's RBD store imports the Debian rbd/rados modules
        ceph_cluster.link_bindings(cloud.vbin('python'))
    ceph_settings.save(cloud.state)

    # refuse early, before starting anything, if a port is someone else's
    for svc in SERVICES + tuple(swift_services) + tuple(ceph_services):
        if not service_pid(cloud, svc):
            check_port_free(cloud, svc)

    glance_clone_filter.remember(cloud, args)
    changed = {'zookeeper': zk_config(cloud),
               'keystone': keystone_conf(cloud)}
    changed.update(swift_cluster.configure(cloud, swift_settings, pw['glance'],
                                           write_if_changed, run, say))
    for svc in swift_cluster.SERVICES:
        if svc not in swift_services and service_pid(cloud, svc):
            say('%s: not used by LOCALCLOUD_SWIFT=%s, stopping'
                % (svc, swift_settings.mode))
            stop_service(cloud, svc)
    changed.update(ceph_cluster.configure(cloud, ceph_settings,
                                          write_if_changed, say))
    for svc in ceph_cluster.SERVICES:
        if svc not in ceph_services and service_pid(cloud, svc):
            say('%s: not used by LOCALCLOUD_CEPH=%s, stopping'
                % (svc, ceph_settings.mode))
            stop_service(cloud, svc)
    for region in REGIONS:
        changed['glance-' + region] = glance_conf(cloud, region, pw['glance'])
    for svc in SERVICES + tuple(swift_services) + tuple(ceph_services):
        if changed[svc] and service_pid(cloud, svc):
            say('%s: configuration changed, restarting' % svc)
            stop_service(cloud, svc)

    def keystone_chain():
        keystone_init(cloud, pw)
        start_service(cloud, 'keystone')
        return keystone_setup(cloud, pw)

    ceph_ready = {c: threading.Event() for c in ceph_settings.clusters()}

    def glance_chain(region):
        glance_init(cloud, region)
        c = ceph_settings.cluster_of(region)
        if c:
            # Glance's RBD store connects to its cluster when it starts
            if not ceph_ready[c].wait(300):
                raise CloudError('glance-%s: Ceph cluster %s did not come up'
                                 % (region, c))
        start_service(cloud, 'glance-' + region)

    def swift_chain():
        # all at once: each is mostly Python start-up
        with concurrent.futures.ThreadPoolExecutor(
                max(1, len(swift_services))) as swift_pool:
            for f in [swift_pool.submit(start_service, cloud, s)
                      for s in swift_services]:
                f.result()

    def ceph_chain(c):
        t = time.monotonic()
        try:
            ceph_cluster.start_cluster(cloud, c, start_service)
            ceph_cluster.wait_writable(cloud, c)
        finally:
            ceph_ready[c].set()
        say('ceph cluster %s ready in %.1fs' % (c, time.monotonic() - t))

    with concurrent.futures.ThreadPoolExecutor(7) as pool:
        futs = [pool.submit(start_service, cloud, 'zookeeper'),
                pool.submit(keystone_chain)]
        futs += [pool.submit(ceph_chain, c) for c in ceph_settings.clusters()]
        futs += [pool.submit(glance_chain, r) for r in REGIONS]
        futs += [pool.submit(swift_chain)]
        errors = []
        for f in futs:
            try:
                f.result()
            except Exception as e:  # report all failures, not just the first
                errors.append(e)
        if errors:
            raise CloudError('\n'.join(str(e) for e in errors))
    ids = futs[1].result()
    write_cloud_json(cloud, describe(cloud, pw, ids))
    ok = print_status(cloud)
    took = time.monotonic() - t0
    print('up in %.1fs (%.1fs of it installing the virtualenv); '
          'cloud description: %s' % (took, t_install, cloud.cloud_json))
    print('use it: eval "$(%s env --user demo)"' % os.path.relpath(
        os.path.join(TOOLS_DIR, 'localcloud')))
    return 0 if ok else 3


def cmd_down(cloud, args):
    # Glance first (they talk to Keystone), ZooKeeper last.
    stopped = []
    for svc in reversed(SERVICES + swift_cluster.SERVICES +
                        ceph_cluster.SERVICES):
        if stop_service(cloud, svc, kill=args.kill):
            stopped.append(svc)
    say('stopped: %s' % (', '.join(stopped) or 'nothing was running'))
    if args.purge or args.purge_all:
        if not os.path.isdir(cloud.state):
            return 0
        for name in os.listdir(cloud.state):
            if name == 'venv-cloud' and not args.purge_all:
                continue
            path = os.path.join(cloud.state, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        if args.purge_all:
            try:
                os.rmdir(cloud.state)
            except OSError:
                pass
        say('purged %s%s' % (cloud.state, '' if args.purge_all
                             else ' (kept venv-cloud)'))
    else:
        refresh_cloud_json(cloud)
    return 0


def cmd_status(cloud, args):
    if args.json:
        rows = status_rows(cloud)
        print(json.dumps({svc: {'state': state, 'pid': pid, 'url': url,
                                'rss': rss}
                          for svc, state, pid, url, rss in rows}, indent=2))
        return 0 if all(r[1] == 'up' for r in rows) else 3
    return 0 if print_status(cloud) else 3


def cmd_env(cloud, args):
    pw = cloud.passwords()
    if args.json:
        print(json.dumps(describe(cloud, pw, load_ids(cloud)), indent=2))
        return 0
    if args.user not in USERS:
        raise CloudError('unknown user %r; one of: %s'
                         % (args.user, ', '.join(USERS)))
    if args.region not in REGIONS:
        raise CloudError('unknown region %r; one of: %s'
                         % (args.region, ', '.join(REGIONS)))
    values = [
        ('OS_AUTH_URL', cloud.auth_url),
        ('OS_USERNAME', args.user),
        ('OS_PASSWORD', pw[args.user]),
        ('OS_PROJECT_NAME', USERS[args.user][0]),
        ('OS_USER_DOMAIN_NAME', 'Default'),
        ('OS_PROJECT_DOMAIN_NAME', 'Default'),
        ('OS_REGION_NAME', args.region),
        ('OS_IDENTITY_API_VERSION', '3'),
        ('OS_INTERFACE', 'public'),
        ('OS_AUTH_TYPE', 'password'),
    ]
    for k, v in values:
        print('export %s=%s' % (k, shlex.quote(v)))
    return 0


def cmd_start(cloud, args):
    os.makedirs(cloud.log_dir, exist_ok=True)
    if (not os.path.exists(cloud.vbin('gunicorn'))
            and args.service != 'zookeeper'):
        raise CloudError('no cloud virtualenv yet: run `tools/localcloud up`')
    pw = cloud.passwords()
    db_step = 'db_sync-mysql' if glance_db.backend() == 'mysql' else 'db_sync'
    marker = {'keystone': _marker(cloud, 'keystone', 'init'),
              'glance-RegionOne': _marker(cloud, 'glance-RegionOne', db_step),
              'glance-RegionTwo': _marker(cloud, 'glance-RegionTwo',
                                          db_step)}.get(args.service)
    if marker and not os.path.exists(marker):
        raise CloudError('%s was never initialised: run `tools/localcloud up`'
                         % args.service)
    if args.service == 'zookeeper':
        zk_config(cloud)
    elif args.service == 'keystone':
        keystone_conf(cloud)
    elif args.service in ceph_cluster.SERVICES:
        c = args.service.split('-')[1]
        if not os.path.exists(ceph_cluster.conf_path(cloud, c)):
            raise CloudError('%s was never configured: run `LOCALCLOUD_CEPH='
                             '... tools/localcloud up`' % args.service)
    elif args.service in swift_cluster.SERVICES:
        if not os.path.exists(swift_cluster.conf_file(cloud, args.service)
                              if args.service != 'memcached' else '/'):
            raise CloudError('%s was never configured: run `LOCALCLOUD_SWIFT='
                             '... tools/localcloud up`' % args.service)
    else:
        glance_conf(cloud, args.service.split('-', 1)[1], pw['glance'])
    pid, started = start_service(cloud, args.service)
    if not started:
        say('%s already up (pid %d)' % (args.service, pid))
    refresh_cloud_json(cloud)
    return 0


def cmd_stop(cloud, args):
    if stop_service(cloud, args.service, kill=args.kill):
        say('%s stopped' % args.service)
    else:
        say('%s was not running' % args.service)
    refresh_cloud_json(cloud)
    return 0


def lock_state_dir(cloud):
    """One changing command at a time per state dir (held until exit)."""
    import fcntl
    os.makedirs(cloud.state, exist_ok=True)
    fd = os.open(os.path.join(cloud.state, '.lock'), os.O_RDWR | os.O_CREAT,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say('waiting for another localcloud command on %s' % cloud.state)
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd  # kept open (and locked) for the life of the process


def cmd_check(cloud, args):
    """Run the smoke test (smoke.py) against the running cloud."""
    if not os.path.exists(cloud.cloud_json):
        raise CloudError('no %s: run `tools/localcloud up`' % cloud.cloud_json)
    return subprocess.run([cloud.vbin('python'),
                           os.path.join(LIB_DIR, 'smoke.py'),
                           cloud.cloud_json]).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='localcloud',
        description='Local two-region OpenStack cloud (ZooKeeper, Keystone, '
                    'Glance RegionOne/RegionTwo) on 127.0.0.1. State dir: '
                    '$LOCALCLOUD_DIR (default <repo>/.localcloud).')
    sub = parser.add_subparsers(dest='cmd', required=True)
    glance_clone_filter.add_arguments(sub.add_parser(
        'up', help='install what is missing, start everything (idempotent)'))
    p = sub.add_parser('down', help='stop the services this tool started')
    p.add_argument('--purge', action='store_true',
                   help='also delete the state dir (keeps venv-cloud)')
    p.add_argument('--purge-all', action='store_true',
                   help='also delete the state dir including venv-cloud')
    p.add_argument('--kill', action='store_true', help='SIGKILL, no grace')
    p = sub.add_parser('status', help='service status; exit 3 unless all up')
    p.add_argument('--json', action='store_true')
    p = sub.add_parser('env', help='print openrc-style exports')
    p.add_argument('--user', default='demo')
    p.add_argument('--region', default=REGIONS[0])
    p.add_argument('--json', action='store_true',
                   help='print the whole cloud description')
    sub.add_parser('check', help='smoke test: upload, visibility, reader '
                   '403, glance-download RegionOne -> RegionTwo')
    p = sub.add_parser('start', help='start one service and wait for it')
    p.add_argument('service', choices=SERVICES + swift_cluster.SERVICES +
                   ceph_cluster.SERVICES)
    p = sub.add_parser('stop', help='stop one service')
    p.add_argument('service', choices=SERVICES + swift_cluster.SERVICES +
                   ceph_cluster.SERVICES)
    p.add_argument('--kill', action='store_true',
                   help='SIGKILL the process group (no graceful shutdown)')
    args = parser.parse_args(argv)
    cloud = Cloud()
    if args.cmd in ('up', 'down', 'start', 'stop'):
        lock_state_dir(cloud)
    handler = {'up': cmd_up, 'down': cmd_down, 'status': cmd_status,
               'env': cmd_env, 'start': cmd_start, 'stop': cmd_stop,
               'check': cmd_check}[args.cmd]
    try:
        return handler(cloud, args)
    except (CloudError, swift_cluster.SwiftError,
            ceph_cluster.CephError) as e:
        print('localcloud: error: %s' % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

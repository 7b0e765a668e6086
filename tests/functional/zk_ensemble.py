"""A 3-node ZooKeeper ensemble on loopback, for the failover test."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools'))
from localcloud_lib.cli import ZK_JARS  # noqa: E402


def _ruok(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1) as s:
            s.sendall(b'srvr')
            data = s.recv(4096).decode(errors='replace')
        for line in data.splitlines():
            if line.startswith('Mode:'):
                return line.split(':', 1)[1].strip()
    except OSError:
        return None
    return None


class Ensemble:
    def __init__(self, base_dir, client_base=22281, peer_base=22881,
                 election_base=23881):
        self.dir = pathlib.Path(base_dir)
        self.nodes = [1, 2, 3]
        self.client = {n: client_base + n for n in self.nodes}
        self.peer = {n: peer_base + n for n in self.nodes}
        self.election = {n: election_base + n for n in self.nodes}
        self.procs = {}

    @property
    def hosts(self):
        return ','.join(f'127.0.0.1:{self.client[n]}' for n in self.nodes)

    def _write(self, n):
        d = self.dir / f'zk{n}'
        (d / 'data').mkdir(parents=True, exist_ok=True)
        (d / 'data' / 'myid').write_text(f'{n}\n')
        servers = '\n'.join(
            f'server.{m}=127.0.0.1:{self.peer[m]}:{self.election[m]}'
            for m in self.nodes)
        (d / 'zoo.cfg').write_text(f"""tickTime=500
initLimit=10
syncLimit=5
dataDir={d / 'data'}
clientPort={self.client[n]}
clientPortAddress=127.0.0.1
minSessionTimeout=1000
maxSessionTimeout=60000
4lw.commands.whitelist=*
admin.enableServer=false
{servers}
""")
        return d

    def start(self, n):
        d = self._write(n)
        cp = ':'.join(os.path.join('/usr/share/java', j) for j in ZK_JARS)
        log = open(d / 'zk.log', 'ab')
        self.procs[n] = subprocess.Popen(
            [shutil.which('java') or 'java', '-Xmx128m', '-XX:+UseSerialGC',
             '-Djava.net.preferIPv4Stack=true', '-cp', cp,
             'org.apache.zookeeper.server.quorum.QuorumPeerMain',
             str(d / 'zoo.cfg')], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def start_all(self, timeout=60):
        for n in self.nodes:
            self.start(n)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            modes = [_ruok(self.client[n]) for n in self.nodes]
            if 'leader' in modes and modes.count('follower') == 2:
                return
            time.sleep(0.3)
        raise RuntimeError(f'ensemble did not form: {modes}')

    def leader(self):
        for n in self.nodes:
            if _ruok(self.client[n]) == 'leader':
                return n
        return None

    def kill(self, n):
        proc = self.procs.pop(n)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self):
        for n in list(self.procs):
            self.kill(n)

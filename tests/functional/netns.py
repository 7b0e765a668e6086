"""A process in its own network namespace whose links to this host's
services can be cut one group at a time: real partitions (packets dropped,
no connection refused), not SIGSTOP.

The local cloud's services listen on 127.0.0.1.  Inside the namespace, a
``socat`` on 127.0.0.1:<port> forwards each connection over a veth pair to
a ``socat`` on the host end, which connects to 127.0.0.1:<port>: a process
in the namespace is configured exactly as one on the host.  Each group of
ports (ZooKeeper, Glance, the rest) has a veth pair of its own; cutting a
group sets the host end of its pair down, so whatever the namespace sends
on it is dropped silently (and nothing comes back) until it is healed:
established connections stall.  (A connection made during a cut is
accepted by the namespace's forwarder, which closes it when it cannot reach
the host: the client sees the connection lost, not a connect timeout.)

Needs root, iproute2 (``ip netns``, veth) and ``socat``; ``tc``'s ``tbf``
slows a link when asked.
"""
import contextlib
import ipaddress
import os
import random
import subprocess
import time


def _ip(*args, ns=None, check=True):
    cmd = ['ip'] + (['netns', 'exec', ns, 'ip'] if ns else []) + list(args)
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def _used_networks():
    out = subprocess.run(['ip', '-o', '-4', 'addr'], capture_output=True,
                         text=True).stdout
    return {ipaddress.ip_interface(w).network for line in out.splitlines()
            for w in line.split() if '/' in w and w[0].isdigit()}


class Namespace:
    """``groups``: {name: [ports]}; every port is forwarded, each group on a
    link of its own.
    """

    def __init__(self, groups, tag=None):
        self.tag = tag or f'{os.getpid() % 1000:03d}{random.randrange(100)}'
        self.name = f'gcns{self.tag}'
        self.groups = {g: list(ports) for g, ports in groups.items()}
        self.links = {}        # group -> (host dev, ns dev, host ip)
        self._procs = []

    # -- setup ---------------------------------------------------------------
    def start(self):
        _ip('netns', 'add', self.name)
        _ip('link', 'set', 'lo', 'up', ns=self.name)
        used = _used_networks()
        for i, (group, ports) in enumerate(self.groups.items()):
            while True:
                net = ipaddress.ip_network(
                    f'10.{random.randrange(200, 250)}.'
                    f'{random.randrange(256)}.{4 * random.randrange(64)}/30')
                if net not in used:
                    used.add(net)
                    break
            host_ip, ns_ip = [str(a) for a in net.hosts()]
            host_dev, ns_dev = f'gh{self.tag}{i}', f'gn{self.tag}{i}'
            _ip('link', 'add', host_dev, 'type', 'veth', 'peer', 'name',
                ns_dev)
            _ip('link', 'set', ns_dev, 'netns', self.name)
            _ip('addr', 'add', f'{host_ip}/30', 'dev', host_dev)
            _ip('link', 'set', host_dev, 'up')
            _ip('addr', 'add', f'{ns_ip}/30', 'dev', ns_dev, ns=self.name)
            _ip('link', 'set', ns_dev, 'up', ns=self.name)
            self.links[group] = (host_dev, ns_dev, host_ip)
            for port in ports:
                self._forward(host_ip, port)
        self._wait_forwarders()
        return self

    def _forward(self, host_ip, port):
        devnull = subprocess.DEVNULL
        self._procs.append(subprocess.Popen(
            ['socat', f'TCP-LISTEN:{port},bind={host_ip},fork,reuseaddr',
             f'TCP:127.0.0.1:{port}'], stdout=devnull, stderr=devnull))
        self._procs.append(subprocess.Popen(
            ['ip', 'netns', 'exec', self.name, 'socat',
             f'TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr',
             f'TCP:{host_ip}:{port}'],
            stdout=devnull, stderr=devnull))

    def _wait_forwarders(self, timeout=20):
        ports = [p for ps in self.groups.values() for p in ps]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                ['ip', 'netns', 'exec', self.name, 'ss', '-ltnH'],
                capture_output=True, text=True).stdout
            if all(f'127.0.0.1:{p} ' in out for p in ports):
                return
            time.sleep(0.1)
        raise AssertionError(f'socat forwarders of {self.name} did not '
                             f'listen')

    def command(self, cmd):
        """``cmd`` run inside the namespace."""
        return ['ip', 'netns', 'exec', self.name] + list(cmd)

    # -- partitions ----------------------------------------------------------
    def cut(self, group):
        _ip('link', 'set', self.links[group][0], 'down')

    def heal(self, group):
        _ip('link', 'set', self.links[group][0], 'up')

    def throttle(self, group, rate='160mbit'):
        """Slow what the namespace sends on ``group`` (tc tbf)."""
        subprocess.run(['ip', 'netns', 'exec', self.name, 'tc', 'qdisc',
                        'add', 'dev', self.links[group][1], 'root', 'tbf',
                        'rate', rate, 'burst', '256kb', 'latency', '200ms'],
                       check=True, capture_output=True)

    def sent(self, group):
        """Bytes the namespace has sent on ``group``'s link."""
        out = _ip('-s', '-j', 'link', 'show', self.links[group][1],
                  ns=self.name).stdout
        import json
        return json.loads(out)[0]['stats64']['tx']['bytes']

    # -- teardown ------------------------------------------------------------
    def close(self):
        for proc in self._procs:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(5)
        # processes still inside (a conductor the test left) die with it
        pids = subprocess.run(['ip', 'netns', 'pids', self.name],
                              capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(Exception):
                os.kill(int(pid), 9)
        for host_dev, _ns_dev, _ip_ in self.links.values():
            _ip('link', 'del', host_dev, check=False)
        _ip('netns', 'del', self.name, check=False)

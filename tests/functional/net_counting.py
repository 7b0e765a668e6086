"""clone-manage with every socket byte counted, for tests only.

    python -m tests.functional.net_counting OUT.json -- clone-manage args

Counts the bytes this process sends and receives over any socket (Keystone,
Glance, Swift: everything) and writes {"sent": N, "received": N} to OUT.json
at exit.  Production code is unchanged: ``socket.socket`` is wrapped here.
"""
import atexit
import json
import socket
import sys
import threading

_lock = threading.Lock()
_counts = {'sent': 0, 'received': 0}


def _add(key, n):
    if n:
        with _lock:
            _counts[key] += n


def install():
    cls = socket.socket
    send, sendall, recv, recv_into = cls.send, cls.sendall, cls.recv, \
        cls.recv_into

    def counted_send(self, data, *a):
        n = send(self, data, *a)
        _add('sent', n)
        return n

    def counted_sendall(self, data, *a):
        r = sendall(self, data, *a)
        _add('sent', len(memoryview(data).cast('B')))
        return r

    def counted_recv(self, *a):
        data = recv(self, *a)
        _add('received', len(data))
        return data

    def counted_recv_into(self, buf, *a):
        n = recv_into(self, buf, *a)
        _add('received', n)
        return n

    cls.send, cls.sendall = counted_send, counted_sendall
    cls.recv, cls.recv_into = counted_recv, counted_recv_into


def main():
    out = sys.argv[1]
    rest = sys.argv[sys.argv.index('--') + 1:]
    install()

    def dump():
        with open(out, 'w') as f:
            json.dump(_counts, f)
    atexit.register(dump)
    from conductor.cmd import manage
    sys.exit(manage.main(rest))


if __name__ == '__main__':
    main()

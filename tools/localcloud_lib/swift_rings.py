"""Builds the three rings of a one-device, one-replica Swift cluster.

Run with the cloud venv's python (it imports swift):

    python swift_rings.py SWIFT_DIR OBJECT_PORT CONTAINER_PORT ACCOUNT_PORT

One process instead of nine swift-ring-builder calls (each pays Swift's
import time).  Part power 10: small rings, quick to build and load.
"""
import os
import sys

from swift.common.ring import RingBuilder


def build(swift_dir, ports):
    for kind, port in ports.items():
        builder = RingBuilder(10, 1, 1)
        builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1',
                         'port': port, 'device': 'd1', 'weight': 100,
                         'meta': ''})
        builder.rebalance()
        path = os.path.join(swift_dir, '%s.ring.gz' % kind)
        builder.get_ring().save(path + '.tmp')
        os.replace(path + '.tmp', path)


if __name__ == '__main__':
    d, obj, cont, acct = sys.argv[1:5]
    build(d, {'object': int(obj), 'container': int(cont),
              'account': int(acct)})

"""clone-conductor: runs TaskFlow conductors that claim clone jobs from the
ZooKeeper jobboard.

    clone-conductor --config-file /etc/glance-clone/glance-clone.conf
"""
import argparse
import sys

from conductor import opts
from conductor.worker import service


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='clone-conductor',
        description='Claim clone jobs from the ZooKeeper jobboard and run '
                    'them (SIGTERM stops gracefully: running clones are '
                    'handed over at once; SIGHUP reopens log files).')
    parser.add_argument('--config-file', action='append', default=[],
                        help='glance-clone configuration file (repeatable)')
    args = parser.parse_args(argv)
    conf_args = []
    for f in args.config_file:
        conf_args += ['--config-file', f]
    conf = opts.new_conf(conf_args)
    service.serve(conf)
    return 0


if __name__ == '__main__':
    sys.exit(main())

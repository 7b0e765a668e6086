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
    conf = opts.new_conf(config_files=args.config_file)
    service.serve(conf)
    return 0


if __name__ == '__main__':
    sys.exit(main())

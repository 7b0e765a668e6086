"""clone-conductor: not built yet.

It arrives with its issue (see the README's roadmap); until then it says so
and exits non-zero rather than pretend.
"""
import argparse
import sys

DESCRIPTION = {
    'api': 'Glance v2 tasks API with type "clone" (WSGI service).',
    'conductor': 'TaskFlow conductors that claim and run clone jobs from '
                 'the ZooKeeper jobboard.',
}['conductor']


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='clone-conductor', description=DESCRIPTION + ' NOT IMPLEMENTED YET: '
        'running it exits with status 2.')
    parser.add_argument('--config-file', action='append', default=[])
    parser.parse_args(argv)
    print('clone-conductor: not implemented yet; use "clone-manage clone" to run a '
          'clone in-process', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())

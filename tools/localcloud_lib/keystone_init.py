"""Run several keystone-manage commands in one process (runs in venv-cloud).

    python keystone_init.py CONFIG_FILE 'db_sync' \
'fernet_setup --keystone-user 0 ...' ...

Each keystone-manage process spends ~2.3 s importing Keystone; the four
first-run commands (db_sync, fernet_setup, credential_setup, bootstrap) in
one process save ~7 s.  The bootstrap password comes from
OS_BOOTSTRAP_PASSWORD in the environment, never from the command line.
"""
import shlex
import sys

from keystone.cmd import cli


def main():
    conf = sys.argv[1]
    for command in sys.argv[2:]:
        argv = (['keystone-manage', '--config-file', conf]
                + shlex.split(command))
        print('+ keystone-manage %s' % command, flush=True)
        cli.CONF.clear()  # allow the next parse and CLI-option registration
        cli.main(argv=argv)


if __name__ == '__main__':
    main()

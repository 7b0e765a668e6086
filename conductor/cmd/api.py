"""clone-api: the Glance v2 tasks API with type "clone", served by gunicorn.

    clone-api --config-file /etc/glance-clone/glance-clone.conf \
        [--bind 127.0.0.1:9393] [--workers N] [--threads N]

Brings the task tables up to date, then runs gunicorn (gthread workers) on
the paste pipeline of ``[api] paste_config``. Each worker loads the pipeline
itself (no connection crosses a fork).
"""
import argparse
import sys

DESCRIPTION = 'Glance v2 tasks API with type "clone" (WSGI service).'


def build_parser():
    p = argparse.ArgumentParser(prog='clone-api', description=DESCRIPTION)
    p.add_argument('--config-file', action='append', default=[],
                   help='glance-clone configuration file (repeatable)')
    p.add_argument('--bind', help='HOST:PORT to listen on (default: '
                                  '[api] bind_host and bind_port)')
    p.add_argument('--workers', type=int, help='gunicorn worker processes '
                                               '(default: [api] workers)')
    p.add_argument('--threads', type=int,
                   help='threads per worker (default: [api] threads)')
    return p


def gunicorn_application(config_files, options):
    from gunicorn.app import base

    from conductor.api import wsgi

    class CloneApi(base.BaseApplication):
        def load_config(self):
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return wsgi.init_application(config_files)

    return CloneApi()


def main(argv=None):
    args = build_parser().parse_args(argv)
    from conductor.api import wsgi
    from conductor.db import api as db_api
    conf = wsgi.load_conf(args.config_file)
    # Fail early (and in one process) on a bad paste file or database.
    wsgi.init_application(conf=conf)
    revision = db_api.sync(conf)
    db_api.dispose()
    bind = args.bind or f'{conf.api.bind_host}:{conf.api.bind_port}'
    options = {
        'bind': [bind],
        'workers': args.workers or conf.api.workers,
        'threads': args.threads or conf.api.threads,
        'worker_class': 'gthread',
        'proc_name': 'clone-api',
        'accesslog': None,
        'timeout': 120,
        'graceful_timeout': 10,
        'keepalive': 5,
        # gunicorn >= 23 opens a control socket in $HOME; one per host would
        # clash between several APIs (tests, two regions).
        'control_socket_disable': True,
    }
    print(f'clone-api: task tables at revision {revision}; serving on '
          f'http://{bind} ({options["workers"]} workers x '
          f'{options["threads"]} threads)', file=sys.stderr, flush=True)
    gunicorn_application(args.config_file, options).run()
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""The WSGI entry point gunicorn serves.

``init_application(config_files)`` reads glance-clone's configuration, sets
up oslo.log and returns the paste pipeline. ``application`` (for a plain
``gunicorn conductor.api.wsgi:application``) takes the files from
``GLANCE_CLONE_CONFIG_FILES`` (``os.pathsep``-separated).
"""
import os

from conductor.api import app as api_app
from conductor import opts

ENV_CONFIG_FILES = 'GLANCE_CLONE_CONFIG_FILES'


def load_conf(config_files, log=True):
    return opts.new_conf(config_files=config_files, log=log)


def init_application(config_files=None, conf=None):
    if conf is None:
        conf = load_conf(config_files or [])
    return api_app.load_app(conf)


def _files_from_env():
    value = os.environ.get(ENV_CONFIG_FILES, '')
    return [f for f in value.split(os.pathsep) if f]


class _LazyApplication:
    """Loads the pipeline in the worker, on the first request."""

    def __init__(self):
        self._app = None

    def __call__(self, environ, start_response):
        if self._app is None:
            self._app = init_application(_files_from_env())
        return self._app(environ, start_response)


application = _LazyApplication()

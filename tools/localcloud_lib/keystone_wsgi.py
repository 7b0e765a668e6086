"""WSGI entry point for Keystone under gunicorn (runs inside venv-cloud).

keystone.server.configure() calls oslo.config's CONF() without args, so it
parses sys.argv[1:] -- which under gunicorn holds gunicorn's own options and
makes Keystone exit.  Hide them while Keystone is imported.
The config file comes from OS_KEYSTONE_CONFIG_DIR / OS_KEYSTONE_CONFIG_FILES.
"""
import sys

_saved_argv = sys.argv
sys.argv = [_saved_argv[0] if _saved_argv else 'keystone-wsgi']
try:
    from keystone.wsgi.api import application  # noqa: F401
finally:
    sys.argv = _saved_argv

"""Helpers for tools/localcloud: a local two-region OpenStack cloud on \
127.0.0.1.

cli.py is stdlib-only and runs with any Python 3. keystone_wsgi.py and
keystone_setup.py run inside the cloud virtualenv (venv-cloud).
"""

"""Sphinx configuration of glance-clone's documentation.

Built by ``tools/docs.sh`` (``sphinx-build -W``): a warning fails the build.
The configuration reference is generated from the options the product
registers (``oslo.config.opts`` entry point ``glance-clone``) and the policy
reference from its policy defaults (``oslo.policy.policies``).
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

project = 'glance-clone'
copyright = 'glance-clone contributors'
author = 'glance-clone contributors'

extensions = [
    'oslo_config.sphinxext',
    'oslo_policy.sphinxext',
]

# The policy reference (configuration/policy.rst) reads the namespaces
# from the generator's own configuration file.
templates_path = []
exclude_patterns = []
source_suffix = {'.rst': 'restructuredtext'}
root_doc = 'index'

html_theme = 'alabaster'
html_theme_options = {'nosidebar': False}
html_static_path = []
html_title = 'glance-clone'

"""Every configuration option, registered in one place and listed for
``oslo-config-generator`` (entry point ``oslo.config.opts``).

Options are defined next to the code that reads them; this module only
gathers them.
"""
import itertools

from oslo_config import cfg
from oslo_log import log as oslo_logging

from clone_flows import auth
from clone_flows import flow
from clone_flows import metadata
from clone_flows.stores import http
from clone_flows.stores import swift
from conductor import jobboard
from conductor import persistence
from conductor import worker
from conductor.api import config as api_config
from conductor.db import api as db_api

_MODULES = (auth, flow, metadata, http, swift, persistence, jobboard, worker,
            api_config, db_api)

PROJECT = 'glance-clone'


def register_opts(conf):
    for module in _MODULES:
        module.register_opts(conf)


def list_opts():
    """[(group, [opts])] for the sample config generator, groups merged."""
    groups = {}
    for module in _MODULES:
        for group, opts in module.list_opts():
            groups.setdefault(group, [])
            names = {o.dest for o in groups[group]}
            groups[group].extend(o for o in opts if o.dest not in names)
    return sorted(groups.items(), key=lambda kv: (kv[0] != 'DEFAULT', kv[0]))


def new_conf(argv=None, default_config_files=None, log=True):
    """A fresh, parsed ConfigOpts with every option registered."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    oslo_logging.register_options(conf)
    conf(args=list(argv or []), project=PROJECT,
         default_config_files=default_config_files)
    if log:
        oslo_logging.setup(conf, PROJECT)
    return conf


def all_option_names():
    return sorted(itertools.chain.from_iterable(
        (f'{g}.{o.dest}' for o in opts) for g, opts in list_opts()))

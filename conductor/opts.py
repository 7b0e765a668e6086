"""Every configuration option, registered in one place and listed for
``oslo-config-generator`` (entry point ``oslo.config.opts``).

Options are defined next to the code that reads them; this module only
gathers them.
"""
import importlib
import itertools

from oslo_config import cfg
from oslo_log import log as oslo_logging

# What a clone run in-process reads: the flow, its tasks and strategies,
# and the persistence backend.
CLONE = ('clone_flows.auth', 'clone_flows.flow', 'clone_flows.glance',
         'clone_flows.metadata',
         'clone_flows.stores.http', 'clone_flows.stores.swift',
         'clone_flows.stores.rbd',
         'conductor.persistence_opts')
# The services add the jobboard, the conductor and the tasks API.
ALL = CLONE + ('conductor.jobboard', 'conductor.worker.conductor',
               'conductor.notifications',
               'conductor.purge',
               'conductor.api.config', 'conductor.db.api')

PROJECT = 'glance-clone'


def _modules(names):
    # Imported by name so that a command needing only CLONE does not pay
    # for kazoo, the jobboard, oslo.db and alembic at start-up (~0.3 s).
    return [importlib.import_module(n) for n in names]


def register_opts(conf, modules=ALL):
    """Register the options of ``modules``; registering again is harmless,
    so a command may add a module's options later (after parsing too).
    """
    for module in _modules(modules):
        module.register_opts(conf)


def list_opts():
    """[(group, [opts])] for the sample config generator, groups merged."""
    groups = {}
    for module in _modules(ALL):
        for group, opts in module.list_opts():
            groups.setdefault(group, [])
            names = {o.dest for o in groups[group]}
            groups[group].extend(o for o in opts if o.dest not in names)
    return sorted(groups.items(), key=lambda kv: (kv[0] != 'DEFAULT', kv[0]))


def new_conf(argv=None, default_config_files=None, log=True, modules=ALL,
             config_files=()):
    """A fresh, parsed ConfigOpts with the options of ``modules`` (all by
    default) registered; ``config_files`` are read in order (as repeated
    ``--config-file`` arguments), else oslo.config's default files.
    """
    argv = [arg for f in config_files for arg in ('--config-file', f)] + \
        list(argv or [])
    if config_files and default_config_files is None:
        default_config_files = []
    conf = cfg.ConfigOpts()
    register_opts(conf, modules)
    oslo_logging.register_options(conf)
    conf(args=list(argv or []), project=PROJECT,
         default_config_files=default_config_files)
    if log:
        oslo_logging.setup(conf, PROJECT)
    return conf


def all_option_names():
    return sorted(itertools.chain.from_iterable(
        (f'{g}.{o.dest}' for o in opts) for g, opts in list_opts()))

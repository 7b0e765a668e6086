"""The console scripts' entry points: import a command, then run it.

A command imports some 1,200 modules (TaskFlow, SQLAlchemy, networkx,
oslo.*, keystoneauth).  Left alone, the garbage collector walks that growing
heap again and again while it is imported, then walks all of it on every
full collection while the command runs, and once more when the interpreter
exits: a good part of a short ``clone-manage clone`` (figures:
doc/source/benchmarks.rst, "HTTP stream").  What the
imports build lives as long as the process, so the collector is paused
while they run and then told to leave them alone for good
(:func:`gc.freeze`); everything made afterwards is collected as usual.

A few modules that libraries import at module level but that a command
rarely runs are imported on first use instead (:data:`RARELY_USED`).
"""
import gc
import importlib
import importlib.util
import sys
import types

#: Imported at module level by the libraries, used only in the case noted.
RARELY_USED = (
    # TaskFlow's JSON-schema checks (jsonschema: ~0.05 s), which only the
    # worker-based engines use; clones run on serial or parallel engines.
    'taskflow.utils.schema_utils',
    # TaskFlow's SQLAlchemy backend: its alembic migrations (alembic, mako:
    # ~0.09 s) run only to upgrade a MariaDB/PostgreSQL schema; on sqlite
    # the backend creates its tables directly.
    'taskflow.persistence.backends.sqlalchemy.migration',
)


class _RunOnFirstUse(types.ModuleType):
    """A module whose code runs when a name it defines is first read.

    (Not :class:`importlib.util.LazyLoader`: on Python 3.11 the next
    ``import`` statement of the module reads its ``__spec__``, which makes
    a lazy module load at once.)
    """

    def __getattr__(self, name):      # only for names not defined (yet)
        namespace = self.__dict__
        if namespace.get('_ran_on_first_use') or name.startswith('__'):
            raise AttributeError(
                f"module '{self.__name__}' has no attribute '{name}'")
        namespace['_ran_on_first_use'] = True
        self.__spec__.loader.exec_module(self)
        return getattr(self, name)


def _import_on_first_use(name):
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _RunOnFirstUse
    sys.modules[name] = module
    parent, _, child = name.rpartition('.')
    setattr(sys.modules[parent], child, module)


def _run(module_name):
    gc.disable()
    try:
        for name in RARELY_USED:
            _import_on_first_use(name)
        module = importlib.import_module(module_name)
    finally:
        gc.freeze()
        gc.enable()
    return module.main()


def clone_manage():
    return _run('conductor.cmd.manage')


def clone_conductor():
    return _run('conductor.cmd.conductor')


def clone_api():
    return _run('conductor.cmd.api')

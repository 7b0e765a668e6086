"""What the clone graph's atoms share: their argument mapping, made once.

TaskFlow's ``Atom.__init__`` maps the arguments of ``execute`` and
``revert`` to the flow's values by inspecting their signatures: six
``inspect.signature`` calls per atom, most of the time it takes to build
the clone graph, which a conductor does for every clone it runs (figures:
doc/source/benchmarks.rst, "Persistence").  The
mapping depends only on the class's methods and on the arguments its
constructor passes on, so :class:`ArgMappingOnce` computes it with
TaskFlow's own code once per class and those arguments, and gives each new
atom a copy of its own.
"""
import collections

from taskflow import task
from taskflow.types import sets


def _frozen(value):
    """A hashable form of a constructor argument (``TypeError`` if none)."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(value)
    hash(value)
    return value


class ArgMappingOnce:
    """Mixin for a TaskFlow atom class (put it before ``Task``/``Retry``).

    Two threads building the same class's first atom at once may both
    compute its mapping (one result is kept): harmless, so no lock.
    """

    def _build_arg_mapping(self, executor, requires=None, rebind=None,
                           auto_extract=True, ignore_list=None):
        def build():
            return super(ArgMappingOnce, self)._build_arg_mapping(
                executor, requires=requires, rebind=rebind,
                auto_extract=auto_extract, ignore_list=ignore_list)
        try:
            key = (executor.__name__, _frozen(requires), _frozen(rebind),
                   auto_extract, _frozen(ignore_list), _frozen(self.inject))
        except TypeError:       # an argument with no hashable form
            return build()
        cls = type(self)
        mappings = cls.__dict__.get('_arg_mappings')
        if mappings is None:
            mappings = cls._arg_mappings = {}   # this class's, not a base's
        found = mappings.get(key)
        if found is None:
            found = mappings[key] = build()
        rebind_map, required, optional = found
        return (collections.OrderedDict(rebind_map),
                sets.OrderedSet(required), sets.OrderedSet(optional))


class Task(ArgMappingOnce, task.Task):
    """A task of the clone graph."""

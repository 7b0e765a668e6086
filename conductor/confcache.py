"""Values a process keeps per configuration object.

``oslo_config.cfg.ConfigOpts`` is a mapping, hence unhashable, and an
``id()`` alone may be reused by a new object once the old one is gone: an
entry here is keyed by ``id()`` and holds a weak reference that proves the
object is still the one it was made for.
"""
import threading
import weakref


class PerConf:
    """A cache of one value per live configuration object."""

    def __init__(self):
        self._entries = {}
        self._lock = threading.Lock()

    def get(self, conf, make):
        """The value made for ``conf``, made now (``make()``) if there is
        none; made once per object, also by concurrent callers.
        """
        with self._lock:
            entry = self._entries.get(id(conf))
            if entry is not None and entry[0]() is conf:
                return entry[1]
            value = make()
            self._entries = {k: e for k, e in self._entries.items()
                             if e[0]() is not None}
            self._entries[id(conf)] = (weakref.ref(conf), value)
            return value

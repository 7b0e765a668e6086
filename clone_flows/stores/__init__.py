"""Store strategies: how image data travels from the source to the target.

Each strategy is one module here, registered under the stevedore namespace
``glance_clone.stores``; :func:`load_strategies` finds them all.
"""
from stevedore import extension

NAMESPACE = 'glance_clone.stores'


def load_strategies(conf):
    """{name: strategy instance} for every installed strategy."""
    mgr = extension.ExtensionManager(
        NAMESPACE, invoke_on_load=True, invoke_args=(conf,),
        on_load_failure_callback=_load_failed)
    return {ext.name: ext.obj for ext in mgr}


def _load_failed(manager, entrypoint, exc):
    import logging
    logging.getLogger(__name__).warning(
        'Store strategy %s could not be loaded: %s', entrypoint, exc)

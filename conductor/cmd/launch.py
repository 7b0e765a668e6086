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
"""
import gc
import importlib


def _run(module_name):
    gc.disable()
    try:
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

"""A clone-conductor that freezes at one step, for kill tests only.

    python -m tests.functional.pausing_conductor STEP MARKER -- conductor args

STEP is an atom name (``clone-authorize``...) or ``clone-copy-data@0.5`` (at
half the bytes).  When the conductor reaches it, MARKER is written and the
step sleeps until the test kills the process.  With ``:sigstop`` after STEP
the conductor instead stops itself there (SIGSTOP, once), mid-step, and goes
on from that very point when the test sends SIGCONT: a pause that a fast
copy cannot outrun.  Production code is unchanged: the task class is
wrapped here.
"""
import importlib
import os
import pathlib
import signal
import sys
import time

from clone_flows import constants as c

MODULES = {
    c.HOLD_TRUST: ('clone_flows.tasks.hold_trust', 'HoldTrust'),
    c.AUTHORIZE: ('clone_flows.tasks.authorize', 'Authorize'),
    c.CLONE_DEPENDENCIES: ('clone_flows.tasks.clone_dependencies',
                           'CloneDependencies'),
    c.CHECK_METADATA: ('clone_flows.tasks.check_metadata', 'CheckMetadata'),
    c.PLAN_COPY: ('clone_flows.tasks.plan_copy', 'PlanCopy'),
    c.RESERVE_IMAGE: ('clone_flows.tasks.reserve_image', 'ReserveImage'),
    c.COPY_DATA: ('clone_flows.tasks.copy_data', 'CopyData'),
    c.VERIFY: ('clone_flows.tasks.verify', 'Verify'),
    c.SYNC_PROPERTIES: ('clone_flows.tasks.sync_properties', 'SyncProperties'),
    c.ACTIVATE: ('clone_flows.tasks.activate', 'Activate'),
    c.RELEASE_TRUST: ('clone_flows.tasks.release_trust', 'ReleaseTrust'),
}


def freeze(marker):
    pathlib.Path(marker).write_text('paused')
    while True:
        time.sleep(60)


def stopper():
    """A pause that stops the whole process (SIGSTOP) the first time only."""
    stopped = []

    def stop(marker):
        if not stopped:
            stopped.append(True)
            pathlib.Path(marker).write_text('stopped')
            os.kill(os.getpid(), signal.SIGSTOP)
    return stop


def install(step, marker):
    pause = freeze
    if step.endswith(':sigstop'):
        step, pause = step[:-len(':sigstop')], stopper()
    if '@' in step:
        step, fraction = step.split('@')
        fraction = float(fraction)
        from clone_flows.tasks import copy_data
        original = copy_data._Reporter.__call__

        def reporter_call(self, done, total, checkpoint=None):
            original(self, done, total, checkpoint)
            if total and done >= fraction * total:
                pause(marker)
        copy_data._Reporter.__call__ = reporter_call
        return
    module, cls_name = MODULES[step]
    cls = getattr(importlib.import_module(module), cls_name)
    original = cls.execute

    def execute(self, *args, **kwargs):
        result = original(self, *args, **kwargs)   # the step did its work...
        pause(marker)                            # ...and dies before saying so
        return result
    cls.execute = execute


def main():
    step, marker = sys.argv[1], sys.argv[2]
    rest = sys.argv[sys.argv.index('--') + 1:]
    install(step, marker)
    from conductor.cmd import conductor
    sys.exit(conductor.main(rest))


if __name__ == '__main__':
    main()

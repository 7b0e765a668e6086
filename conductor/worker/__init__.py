"""The conductor service: claims clone jobs from the jobboard and runs them.

* :mod:`conductor.worker.conductor` -- the TaskFlow conductor subclass;
* :mod:`conductor.worker.guards` -- claim and session guards, board watch;
* :mod:`conductor.worker.service` -- the ``clone-conductor`` process.
"""

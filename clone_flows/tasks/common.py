"""The base class of the clone graph's tasks."""
from taskflow import task


class Task(task.Task):
    """A task of the clone graph."""

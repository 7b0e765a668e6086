"""Domain code of glance-clone: the clone graph, its tasks and store \
strategies.

Nothing here imports the service side (``conductor``); services import this.
"""

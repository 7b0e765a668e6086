"""Task records: the user's view of each clone (status, message, result).

``conductor.db.api`` is the one module other code calls; the model and the
alembic migrations sit beside it.
"""

"""Alembic environment for the task records (run through \
conductor.db.api.sync).
"""
from alembic import context

from conductor.db import models

VERSION_TABLE = 'clone_tasks_alembic_version'


def run_migrations_online():
    connection = context.config.attributes.get('connection')
    if connection is None:
        import sqlalchemy as sa
        engine = sa.create_engine(
            context.config.get_main_option('sqlalchemy.url'))
        with engine.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection):
    context.configure(connection=connection,
                      target_metadata=models.Base.metadata,
                      version_table=VERSION_TABLE,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()

"""The ``clone_tasks`` table: one row per clone, keyed by the clone id.

Holds ids and plain values only; never a token or a password.
"""
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy import orm

# Microseconds everywhere (MySQL's DATETIME drops them unless told).
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')

TASK_STATUSES = ('pending', 'processing', 'success', 'failure')
FINISHED_STATUSES = ('success', 'failure')


class Base(orm.DeclarativeBase):
    pass


class CloneTask(Base):
    __tablename__ = 'clone_tasks'
    __table_args__ = (
        sa.UniqueConstraint('owner', 'client_token',
                            name='uniq_clone_tasks0owner0client_token'),
        sa.Index('ix_clone_tasks_owner_status', 'owner', 'status'),
        sa.Index('ix_clone_tasks_created_at', 'created_at'),
        sa.Index('ix_clone_tasks_expires_at', 'expires_at'),
        {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4'},
    )

    id = sa.Column(sa.String(36), primary_key=True)
    type = sa.Column(sa.String(30), nullable=False, default='clone')
    status = sa.Column(sa.String(30), nullable=False, default='pending')
    owner = sa.Column(sa.String(255), nullable=False)
    user_id = sa.Column(sa.String(255), nullable=True)
    input = sa.Column(sa.JSON, nullable=True)
    result = sa.Column(sa.JSON, nullable=True)
    message = sa.Column(sa.Text, nullable=False, default='')
    client_token = sa.Column(sa.String(255), nullable=True)
    trust_id = sa.Column(sa.String(64), nullable=True)
    request_id = sa.Column(sa.String(64), nullable=True)
    created_at = sa.Column(DATETIME, nullable=False)
    updated_at = sa.Column(DATETIME, nullable=False)
    expires_at = sa.Column(DATETIME, nullable=True)
    cancel_requested = sa.Column(sa.Boolean, nullable=False, default=False)
    job_id = sa.Column(sa.String(64), nullable=True)
    attempts = sa.Column(sa.Integer, nullable=False, default=0)


COLUMNS = tuple(c.name for c in CloneTask.__table__.columns)

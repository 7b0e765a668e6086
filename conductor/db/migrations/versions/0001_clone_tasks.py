"""clone_tasks: the user's view of each clone

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'clone_tasks',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('type', sa.String(30), nullable=False),
        sa.Column('status', sa.String(30), nullable=False),
        sa.Column('owner', sa.String(255), nullable=False),
        sa.Column('user_id', sa.String(255), nullable=True),
        sa.Column('input', sa.JSON, nullable=True),
        sa.Column('result', sa.JSON, nullable=True),
        sa.Column('message', sa.Text, nullable=False),
        sa.Column('client_token', sa.String(255), nullable=True),
        sa.Column('trust_id', sa.String(64), nullable=True),
        sa.Column('request_id', sa.String(64), nullable=True),
        sa.Column('created_at', DATETIME, nullable=False),
        sa.Column('updated_at', DATETIME, nullable=False),
        sa.Column('expires_at', DATETIME, nullable=True),
        sa.Column('cancel_requested', sa.Boolean, nullable=False),
        sa.Column('job_id', sa.String(64), nullable=True),
        sa.Column('attempts', sa.Integer, nullable=False),
        sa.UniqueConstraint('owner', 'client_token',
                            name='uniq_clone_tasks0owner0client_token'),
        mysql_engine='InnoDB', mysql_charset='utf8mb4',
    )
    op.create_index('ix_clone_tasks_owner_status', 'clone_tasks',
                    ['owner', 'status'])
    op.create_index('ix_clone_tasks_created_at', 'clone_tasks', ['created_at'])
    op.create_index('ix_clone_tasks_expires_at', 'clone_tasks', ['expires_at'])

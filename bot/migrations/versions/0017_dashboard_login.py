"""dashboard login: one-time sign-in links, browser sessions and passwords of the web dashboard

Revision ID: 0017_dashboard_login
Revises: 0016_surveys
Create Date: 2026-12-05 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.models

revision: str = '0017_dashboard_login'
down_revision: str | None = '0016_surveys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create dashboard_login, dashboard_session and dashboard_password."""
    op.create_table(
        'dashboard_login',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
        sa.Column('expires_at', bot.models.UTCDateTime(), nullable=False),
        sa.Column('used_at', bot.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_dashboard_login_person_id', 'dashboard_login', ['person_id'])
    op.create_table(
        'dashboard_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('locale', sa.String(length=8), nullable=False),
        sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', bot.models.UTCDateTime(), nullable=False),
        sa.Column('ended_at', bot.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_hash'),
    )
    op.create_index('ix_dashboard_session_person_id', 'dashboard_session', ['person_id'])
    op.create_table(
        'dashboard_password',
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('set_at', bot.models.UTCDateTime(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('locked_until', bot.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('person_id'),
    )


def downgrade() -> None:
    """Drop the dashboard's tables."""
    op.drop_table('dashboard_password')
    op.drop_index('ix_dashboard_session_person_id', table_name='dashboard_session')
    op.drop_table('dashboard_session')
    op.drop_index('ix_dashboard_login_person_id', table_name='dashboard_login')
    op.drop_table('dashboard_login')

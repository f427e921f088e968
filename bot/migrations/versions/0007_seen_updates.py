"""seen webhook updates (replays are handled once)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.models


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('seen_update',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('update_id', sa.String(length=64), nullable=False),
    sa.Column('received_at', bot.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'update_id')
    )
    with op.batch_alter_table('seen_update', schema=None) as batch_op:
        batch_op.create_index('ix_seen_update_received', ['received_at'], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('seen_update', schema=None) as batch_op:
        batch_op.drop_index('ix_seen_update_received')

    op.drop_table('seen_update')

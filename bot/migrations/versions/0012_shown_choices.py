"""shown choices: the list a chat without buttons (Zalo) saw last

Revision ID: 0012_shown_choices
Revises: 0011_preferred_channel
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.models

revision: str = '0012_shown_choices'
down_revision: str | None = '0011_preferred_channel'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create shown_choices."""
    op.create_table(
        'shown_choices',
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('chat_id', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('shown_at', bot.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('channel', 'chat_id'),
    )


def downgrade() -> None:
    """Drop shown_choices."""
    op.drop_table('shown_choices')

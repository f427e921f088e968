"""zalo official account token pair and refresh journal

Revision ID: 0010_zalo_oa_token
Revises: 0009
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from bot.models import UTCDateTime

revision: str = '0010_zalo_oa_token'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create zalo_oa_token: one row per Official Account."""
    op.create_table(
        'zalo_oa_token',
        sa.Column('oa_id', sa.String(length=64), nullable=False),
        sa.Column('access_token', sa.Text(), nullable=True),
        sa.Column('access_expires_at', UTCDateTime(), nullable=True),
        sa.Column('refresh_token', sa.Text(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('seed_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('refreshing_owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('refreshing_until', UTCDateTime(), nullable=True),
        sa.Column('last_answer', sa.Text(), nullable=True),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column('needs_reauth', sa.Boolean(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('oa_id'),
    )


def downgrade() -> None:
    """Drop zalo_oa_token (the stored pair is lost: the OA must be authorised again)."""
    op.drop_table('zalo_oa_token')

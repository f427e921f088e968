"""a person's preferred channel

Revision ID: 0011_preferred_channel
Revises: 0010_zalo_oa_token
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011_preferred_channel'
down_revision: str | None = '0010_zalo_oa_token'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add person.preferred_channel (NULL: deliver to the contact seen last)."""
    op.add_column(
        'person',
        sa.Column('preferred_channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    )


def downgrade() -> None:
    """Drop person.preferred_channel (in place: rebuilding `person` would trip its foreign keys)."""
    op.execute('ALTER TABLE person DROP COLUMN preferred_channel')

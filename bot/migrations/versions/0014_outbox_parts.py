"""outbox parts: how many parts of a long message went out, so a retry resumes after them

Revision ID: 0014_outbox_parts
Revises: 0013_report_indexes
Create Date: 2026-12-05 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_outbox_parts'
down_revision: str | None = '0013_report_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add outbox.parts_sent (0 for every row there is: none was sent in parts yet)."""
    op.add_column(
        'outbox',
        sa.Column('parts_sent', sa.Integer(), nullable=False, server_default='0'),
    )


def downgrade() -> None:
    """Drop outbox.parts_sent (in place: rebuilding `outbox` would trip its foreign keys)."""
    op.execute('ALTER TABLE outbox DROP COLUMN parts_sent')

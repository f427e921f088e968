"""apology slips numbered per year

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('apology', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('number_year', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint('uq_apology_number', ['number_year', 'number'])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('apology', schema=None) as batch_op:
        batch_op.drop_constraint('uq_apology_number', type_='unique')
        batch_op.drop_column('number_year')
        batch_op.drop_column('number')

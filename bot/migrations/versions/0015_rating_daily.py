"""rating daily: each unit's ratings added up per UTC day, and the dossiers rated unsatisfied

Revision ID: 0015_rating_daily
Revises: 0014_outbox_parts
Create Date: 2026-12-05 04:00:00

Fills the table from the ratings already stored, in one INSERT … SELECT … GROUP BY that both
SQLite and PostgreSQL run as written (date() of a naive UTC timestamp is its UTC day on both).
Adds ix_rating_dossier_bad, a partial index holding only the dossiers' unsatisfied ratings,
which the scoreboard's dossier indicator reads instead of fetching each dossier's rating.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015_rating_daily'
down_revision: str | None = '0014_outbox_parts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ELEMENTS = ('access', 'procedure', 'officer_score', 'result', 'feedback')
LEVELS = (1, 2, 3, 4, 5)
COUNTS = [f'level_{n}' for n in LEVELS] + [
    f'{name}_{part}' for name in ELEMENTS for part in ('count', 'sum')
]
BAD_DOSSIER_RATING = 'overall <= 2 AND dossier_id IS NOT NULL'
BACKFILL = (
    f"INSERT INTO rating_daily (day, unit_id, {', '.join(COUNTS)}) "
    "SELECT date(created_at), unit_id, "
    + ', '.join(f'SUM(CASE WHEN overall = {n} THEN 1 ELSE 0 END)' for n in LEVELS)
    + ', '
    + ', '.join(f'COUNT({name}), COALESCE(SUM({name}), 0)' for name in ELEMENTS)
    + " FROM rating GROUP BY date(created_at), unit_id"
)


def upgrade() -> None:
    """Create rating_daily and count the existing ratings into it."""
    op.create_table(
        'rating_daily',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('unit_id', sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.ForeignKeyConstraint(['unit_id'], ['unit.id']),
        sa.PrimaryKeyConstraint('day', 'unit_id'),
    )
    op.execute(BACKFILL)
    op.create_index(
        'ix_rating_dossier_bad',
        'rating',
        ['dossier_id'],
        unique=False,
        sqlite_where=sa.text(BAD_DOSSIER_RATING),
        postgresql_where=sa.text(BAD_DOSSIER_RATING),
    )


def downgrade() -> None:
    """Drop rating_daily and the index."""
    op.drop_index('ix_rating_dossier_bad', table_name='rating')
    op.drop_table('rating_daily')

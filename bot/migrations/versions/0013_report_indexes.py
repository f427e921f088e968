"""report indexes: the per-unit scoreboard reads each table through one index

Revision ID: 0013_report_indexes
Revises: 0012_shown_choices
Create Date: 2026-12-05 02:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0013_report_indexes'
down_revision: str | None = '0012_shown_choices'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    'ix_rating_report': (
        'rating',
        ['unit_id', 'created_at', 'overall', 'access', 'procedure', 'officer_score', 'result',
         'feedback'],
    ),
    'ix_assignment_report': ('task_assignment', ['unit_id', 'due_at', 'status', 'done_at']),
    'ix_case_report': ('followup_case', ['unit_id', 'opened_at', 'status', 'due_at', 'closed_at']),
    'ix_dossier_report': (
        'dossier', ['unit_id', 'received_on', 'status', 'appointment_at', 'returned_at']
    ),
    'ix_recipient_report': ('directive_recipient', ['directive_id', 'unit_id', 'acked_at']),
    'ix_directive_created': ('directive', ['created_at']),
}


def upgrade() -> None:
    """Create the scoreboard's indexes."""
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    """Drop the scoreboard's indexes."""
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)

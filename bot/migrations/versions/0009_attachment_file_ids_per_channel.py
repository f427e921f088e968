"""attachment file ids per channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Move attachment.telegram_file_id into attachment_file (one row per channel)."""
    op.create_table(
        'attachment_file',
        sa.Column('attachment_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('file_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.ForeignKeyConstraint(['attachment_id'], ['attachment.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('attachment_id', 'channel'),
    )
    op.execute(
        "INSERT INTO attachment_file (attachment_id, channel, file_id) "
        "SELECT id, 'telegram', telegram_file_id FROM attachment "
        "WHERE telegram_file_id IS NOT NULL AND telegram_file_id <> ''"
    )
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.drop_column('telegram_file_id')


def downgrade() -> None:
    """Put the Telegram file ids back on the attachment rows."""
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('telegram_file_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
    op.execute(
        "UPDATE attachment SET telegram_file_id = (SELECT file_id FROM attachment_file "
        "WHERE attachment_file.attachment_id = attachment.id AND channel = 'telegram')"
    )
    op.drop_table('attachment_file')

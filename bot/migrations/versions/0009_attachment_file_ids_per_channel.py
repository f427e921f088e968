"""attachment file ids per channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:00:00
"""

import logging
import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
log = logging.getLogger(__name__)


def _can_drop_column() -> bool:
    """Tell whether the column can be dropped in place.

    Batch mode would rebuild `attachment` on SQLite, and dropping the old table fails (foreign
    keys are on) as soon as a directive, broadcast or task refers to an attachment. SQLite has
    ALTER TABLE DROP COLUMN since 3.35; before that the unused column stays.
    """
    if op.get_bind().dialect.name != 'sqlite':
        return True
    return sqlite3.sqlite_version_info >= (3, 35)


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
    if _can_drop_column():
        op.execute('ALTER TABLE attachment DROP COLUMN telegram_file_id')
    else:
        log.warning('SQLite %s cannot drop a column: attachment.telegram_file_id stays, unused',
                    sqlite3.sqlite_version)


def downgrade() -> None:
    """Put the Telegram file ids back on the attachment rows (other channels' ids are lost)."""
    if _can_drop_column():
        op.add_column(
            'attachment',
            sa.Column('telegram_file_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        )
    op.execute(
        "UPDATE attachment SET telegram_file_id = (SELECT file_id FROM attachment_file "
        "WHERE attachment_file.attachment_id = attachment.id AND channel = 'telegram')"
    )
    op.drop_table('attachment_file')

"""surveys: questionnaires, campaigns, their recipients and (anonymous or named) answers

Revision ID: 0016_surveys
Revises: 0015_rating_daily
Create Date: 2026-12-05 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.models

revision: str = '0016_surveys'
down_revision: str | None = '0015_rating_daily'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the survey tables."""
    op.create_table('questionnaire',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('questions', sa.Integer(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('questionnaire', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_questionnaire_code'), ['code'], unique=True)

    op.create_table('survey_campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('questionnaire_id', sa.Integer(), nullable=True),
    sa.Column('material', sa.Text(), nullable=True),
    sa.Column('attachment_id', sa.Integer(), nullable=True),
    sa.Column('media', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('audience', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('audience_label', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('anonymous', sa.Boolean(), nullable=False),
    sa.Column('min_group', sa.Integer(), nullable=False),
    sa.Column('results_open', sa.Boolean(), nullable=False),
    sa.Column('opens_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('closes_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('reminders_max', sa.Integer(), nullable=False),
    sa.Column('remind_every_hours', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('salt', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('created_at', bot.models.UTCDateTime(), nullable=False),
    sa.Column('closed_at', bot.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachment.id'], ),
    sa.ForeignKeyConstraint(['questionnaire_id'], ['questionnaire.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('survey_response',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('voter_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('answers', sa.Text(), nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('answered_at', bot.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['survey_campaign.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'voter_hash', name='uq_survey_response_voter')
    )
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.create_index('ix_survey_response_unit', ['campaign_id', 'unit_id'], unique=False)

    op.create_table('survey_recipient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('sent', sa.Boolean(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('read', sa.Boolean(), nullable=False),
    sa.Column('reminders_sent', sa.Integer(), nullable=False),
    sa.Column('last_reminder_at', bot.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['survey_campaign.id'], ),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'contact_id', name='uq_survey_recipient_contact'),
    sa.UniqueConstraint('campaign_id', 'person_id', name='uq_survey_recipient_person')
    )
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_recipient_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_recipient_person_id'), ['person_id'], unique=False)
        batch_op.create_index('ix_survey_recipient_unit', ['campaign_id', 'unit_id', 'done'], unique=False)



def downgrade() -> None:
    """Drop the survey tables."""
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_recipient_unit')
        batch_op.drop_index(batch_op.f('ix_survey_recipient_person_id'))
        batch_op.drop_index(batch_op.f('ix_survey_recipient_contact_id'))

    op.drop_table('survey_recipient')
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_response_unit')

    op.drop_table('survey_response')
    op.drop_table('survey_campaign')
    with op.batch_alter_table('questionnaire', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_questionnaire_code'))

    op.drop_table('questionnaire')

"""study pages: what the researcher writes (texts, language, practice), platform settings
(link panels, Prolific), the participant's withdrawal, and the admin's audit log.

Revision ID: 0005_study_pages
Revises: 0004_sessions
"""
from alembic import op
import sqlalchemy as sa

revision = '0005_study_pages'
down_revision = '0004_sessions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('experiments') as batch:
        # JSON: title, researcher, contact, welcome, instructions, debriefing (Markdown).
        batch.add_column(sa.Column('texts', sa.Text(), nullable=False, server_default='{}'))
        # '' = the participant's browser chooses among the catalogue's languages.
        batch.add_column(sa.Column('language', sa.String(length=16), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('practice_trials', sa.Integer(), nullable=False,
                                   server_default='1'))
        batch.add_column(sa.Column('practice_feedback', sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        # JSON list of practice trials the researcher named (see server.practice).
        batch.add_column(sa.Column('practice_images', sa.Text(), nullable=False,
                                   server_default='[]'))
        batch.add_column(sa.Column('seconds_per_trial', sa.Float(), nullable=True))
        # JSON {platform: {setting: value}} (e.g. panel: id_param, redirect, code).
        batch.add_column(sa.Column('platform_settings', sa.Text(), nullable=False,
                                   server_default='{}'))
    with op.batch_alter_table('participants') as batch:
        batch.add_column(sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('experiment', sa.String(length=100), nullable=False, server_default=''),
        sa.Column('subject', sa.String(length=300), nullable=False, server_default=''),
        sa.Column('detail', sa.Text(), nullable=False, server_default=''),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )


def downgrade():
    op.drop_table('audit_log')
    with op.batch_alter_table('participants') as batch:
        batch.drop_column('withdrawn_at')
    with op.batch_alter_table('experiments') as batch:
        for c in ('platform_settings', 'seconds_per_trial', 'practice_images',
                  'practice_feedback', 'practice_trials', 'language', 'texts'):
            batch.drop_column(c)

"""prolific: the studies published on Prolific (one per experiment and API, so that a
rerun of `publish` finishes the same study) and the bonuses paid (once per submission).

Revision ID: 0006_prolific
Revises: 0005_study_pages
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_prolific'
down_revision = '0005_study_pages'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'prolific_studies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('environment', sa.String(length=20), nullable=False),
        sa.Column('api_url', sa.String(length=300), nullable=False),
        sa.Column('internal_name', sa.String(length=300), nullable=False),
        sa.Column('study_id', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=40), nullable=False),
        sa.Column('completion_url', sa.String(length=300), nullable=False),
        sa.Column('completion_code', sa.String(length=64), nullable=False),
        sa.Column('failed_code', sa.String(length=64), nullable=True),
        sa.Column('reward_cents', sa.Integer(), nullable=False),
        sa.Column('places', sa.Integer(), nullable=False),
        sa.Column('minutes', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'],
                                name=op.f('fk_prolific_studies_experiment_id_experiments'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_prolific_studies')),
        sa.UniqueConstraint('experiment_id', 'api_url',
                            name=op.f('uq_prolific_studies_experiment_id_api_url')),
        sa.UniqueConstraint('study_id', name=op.f('uq_prolific_studies_study_id')),
    )
    op.create_index(op.f('ix_prolific_studies_experiment_id'), 'prolific_studies',
                    ['experiment_id'], unique=False)
    op.create_table(
        'prolific_bonuses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_record_id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.String(length=64), nullable=False),
        sa.Column('participant_id', sa.String(length=64), nullable=False),
        sa.Column('amount_cents', sa.Integer(), nullable=False),
        sa.Column('bulk_id', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['study_record_id'], ['prolific_studies.id'],
                                name=op.f('fk_prolific_bonuses_study_record_id_prolific_studies'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_prolific_bonuses')),
        sa.UniqueConstraint('submission_id', name=op.f('uq_prolific_bonuses_submission_id')),
    )
    op.create_index(op.f('ix_prolific_bonuses_study_record_id'), 'prolific_bonuses',
                    ['study_record_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_prolific_bonuses_study_record_id'), table_name='prolific_bonuses')
    op.drop_table('prolific_bonuses')
    op.drop_index(op.f('ix_prolific_studies_experiment_id'), table_name='prolific_studies')
    op.drop_table('prolific_studies')

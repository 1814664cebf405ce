"""mturk: the exclusion qualification type of each experiment and environment

Revision ID: 0003_mturk
Revises: 0002_recruitment
Create Date: 2026-11-27 21:30:00

`publish` creates (or reuses) one MTurk qualification type per experiment and requester
environment; HITs require it DoesNotExist and the worker page grants it to workers who
start, so excluded workers never see the HITs. Nothing existing changes.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_mturk'
down_revision = '0002_recruitment'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'mturk_qualifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('experiment_id', sa.Integer(), nullable=False),
        sa.Column('environment', sa.String(length=20), nullable=False),
        sa.Column('qualification_type_id', sa.String(length=100), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'],
                                name=op.f('fk_mturk_qualifications_experiment_id_experiments'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_qualifications')),
        sa.UniqueConstraint('experiment_id', 'environment',
                            name=op.f('uq_mturk_qualifications_experiment_id_environment')))
    with op.batch_alter_table('mturk_qualifications') as batch_op:
        batch_op.create_index(batch_op.f('ix_mturk_qualifications_experiment_id'),
                              ['experiment_id'], unique=False)


def downgrade():
    with op.batch_alter_table('mturk_qualifications') as batch_op:
        batch_op.drop_index(batch_op.f('ix_mturk_qualifications_experiment_id'))
    op.drop_table('mturk_qualifications')

"""throttle: the counters of login throttling, shared by every worker and node
(server/throttle.py).

Revision ID: 0007_throttle
Revises: 0006_prolific
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_throttle'
down_revision = '0006_prolific'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'throttle_counters',
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_throttle_counters')),
    )


def downgrade():
    op.drop_table('throttle_counters')

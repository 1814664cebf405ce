"""sessions: admin session token (server-side revocation)

Revision ID: 0004_sessions
Revises: 0002_recruitment
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_sessions'
down_revision = '0002_recruitment'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admin_users') as batch:
        batch.add_column(sa.Column('session_token', sa.String(length=64), nullable=False,
                                   server_default=''))


def downgrade():
    with op.batch_alter_table('admin_users') as batch:
        batch.drop_column('session_token')

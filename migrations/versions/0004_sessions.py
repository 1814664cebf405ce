"""sessions: admin session token (server-side revocation), the per-experiment kiosk
setting, and lab/simulated participant codes stored normalised (upper case).

Revision ID: 0004_sessions
Revises: 0003_mturk
"""
from collections import defaultdict

from alembic import op
import sqlalchemy as sa

revision = '0004_sessions'
down_revision = '0003_mturk'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admin_users') as batch:
        batch.add_column(sa.Column('session_token', sa.String(length=64), nullable=False,
                                   server_default=''))
    with op.batch_alter_table('experiments') as batch:
        batch.add_column(sa.Column('kiosk', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    # Codes are compared case-insensitively from now on and stored in upper case. A code
    # whose upper-case form another participant of the experiment already has (e.g. "ab"
    # and "AB") is left as it is: renaming it would merge two people.
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, experiment_id, code, attempt, platform, external_participant_id, "
        "repeat_key FROM participants WHERE platform IN ('lab', 'simulated')")).fetchall()
    groups = defaultdict(set)
    for r in rows:
        groups[(r.experiment_id, r.code.upper())].add(r.code)
    for r in rows:
        upper = r.code.upper()
        if upper == r.code or len(groups[(r.experiment_id, upper)]) > 1:
            continue
        ext = r.external_participant_id.upper() if r.external_participant_id == r.code \
            else r.external_participant_id
        key = r.repeat_key
        if key is not None and r.code in key:
            key = key.replace(f"{r.platform}:{r.code}", f"{r.platform}:{upper}", 1)
        conn.execute(sa.text("UPDATE participants SET code = :c, external_participant_id = :e, "
                             "repeat_key = :k WHERE id = :id"),
                     {"c": upper, "e": ext, "k": key, "id": r.id})


def downgrade():
    with op.batch_alter_table('experiments') as batch:
        batch.drop_column('kiosk')
    with op.batch_alter_table('admin_users') as batch:
        batch.drop_column('session_token')

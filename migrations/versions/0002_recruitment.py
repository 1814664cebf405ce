"""recruitment: provenance on participants, repeat policy, screens, deployment identity

Revision ID: 0002_recruitment
Revises: 0001
Create Date: 2026-11-27 21:00:00

Participants gain platform, environment, external participant / session / study ids,
submission status and when it was last synced, the derived repeat key (unique per
experiment) and viewport / screen sizes. Existing rows are back-filled: MTurk rows from
their worker / assignment / HIT ids, the HIT's environment and the assignment's status;
simulated rows as simulated; every other row as lab. `experiments.allow_repeats` becomes
`experiments.repeats` (none | allow). A `settings` table holds the deployment id.
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = '0002_recruitment'
down_revision = '0001'
branch_labels = None
depends_on = None

# Frozen copies of server.recruitment's tables as they were at this revision: a migration
# must give the same result whatever the code becomes later.
HIT_ENVIRONMENTS = {"production": "production", "sandbox": "sandbox",
                    "local-sandbox": "local-sandbox", "local-production": "local-sandbox"}
ASSIGNMENT_STATUS = {"accepted": "accepted", "finished": "accepted", "submitted": "submitted",
                     "approved": "approved", "rejected": "rejected", "returned": "returned",
                     "abandoned": "abandoned"}


def _repeat_key(policy, platform, person, study):
    if policy == "allow" or not person:
        return None
    return f"{platform}:{person}" if policy == "none" else f"{platform}:{person}:{study or ''}"


def upgrade():
    op.create_table('settings',
                    sa.Column('key', sa.String(length=100), nullable=False),
                    sa.Column('value', sa.Text(), nullable=False),
                    sa.PrimaryKeyConstraint('key', name=op.f('pk_settings')))
    settings = sa.table('settings', sa.column('key', sa.String), sa.column('value', sa.Text))
    op.bulk_insert(settings, [{"key": "deployment_id", "value": secrets.token_hex(16)}])

    with op.batch_alter_table('experiments', schema=None) as b:
        b.add_column(sa.Column('repeats', sa.String(length=10), nullable=False,
                               server_default='none'))
        b.add_column(sa.Column('min_viewport_width', sa.Integer(), nullable=True))
        b.add_column(sa.Column('min_viewport_height', sa.Integer(), nullable=True))
    conn = op.get_bind()
    conn.execute(sa.text("UPDATE experiments SET repeats = 'allow' WHERE allow_repeats"))
    with op.batch_alter_table('experiments', schema=None) as b:
        b.drop_column('allow_repeats')

    with op.batch_alter_table('participants', schema=None) as b:
        b.add_column(sa.Column('platform', sa.String(length=20), nullable=False,
                               server_default='lab'))
        b.add_column(sa.Column('environment', sa.String(length=20), nullable=False,
                               server_default='lab'))
        b.add_column(sa.Column('external_participant_id', sa.String(length=200), nullable=True))
        b.add_column(sa.Column('external_session_id', sa.String(length=100), nullable=True))
        b.add_column(sa.Column('external_study_id', sa.String(length=100), nullable=True))
        b.add_column(sa.Column('submission_status', sa.String(length=20), nullable=False,
                               server_default='recorded'))
        b.add_column(sa.Column('status_synced_at', sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column('repeat_key', sa.String(length=300), nullable=True))
        b.add_column(sa.Column('viewport_width', sa.Integer(), nullable=True))
        b.add_column(sa.Column('viewport_height', sa.Integer(), nullable=True))
        b.add_column(sa.Column('screen_width', sa.Integer(), nullable=True))
        b.add_column(sa.Column('screen_height', sa.Integer(), nullable=True))

    rows = conn.execute(sa.text("""
        SELECT p.id, p.experiment_id, p.code, p.attempt, p.population, p.assignment_id,
               p.worker_id, p.hit_id, h.environment, a.status, e.repeats
        FROM participants p
        JOIN experiments e ON e.id = p.experiment_id
        LEFT JOIN hits h ON h.id = p.hit_record_id
        LEFT JOIN assignments a ON a.participant_id = p.id
        ORDER BY p.id""")).all()
    seen_keys = set()
    done = set()
    update = sa.text("""
        UPDATE participants SET platform = :platform, environment = :environment,
               external_participant_id = :person, external_session_id = :session,
               external_study_id = :study, submission_status = :status,
               repeat_key = :repeat_key
        WHERE id = :id""")
    for (pid, exp_id, code, attempt, population, aid, wid, hit_id, hit_env, a_status,
         repeats) in rows:
        if pid in done:  # several assignment rows: the first (lowest id) is enough
            continue
        done.add(pid)
        if population == "mturk" or (aid and wid):
            platform, person, session, study = "mturk", wid, aid, hit_id
            environment = HIT_ENVIRONMENTS.get(hit_env or "", "sandbox")
            status = ASSIGNMENT_STATUS.get(a_status or "accepted", "accepted")
        else:
            platform = "simulated" if population == "simulated" else "lab"
            environment, person, session, study, status = platform, code, None, None, "recorded"
        key = _repeat_key(repeats, platform, person, study)
        # Rows made before the policy was enforced may share a key: the first keeps it.
        if key is not None and (exp_id, key) in seen_keys:
            key = None
        if key is not None:
            seen_keys.add((exp_id, key))
        conn.execute(update, {"platform": platform, "environment": environment,
                              "person": person, "session": session, "study": study,
                              "status": status, "repeat_key": key, "id": pid})

    with op.batch_alter_table('participants', schema=None) as b:
        b.create_unique_constraint(op.f('uq_participants_experiment_id_repeat_key'),
                                   ['experiment_id', 'repeat_key'])


def downgrade():
    with op.batch_alter_table('participants', schema=None) as b:
        b.drop_constraint(op.f('uq_participants_experiment_id_repeat_key'), type_='unique')
        for col in ('screen_height', 'screen_width', 'viewport_height', 'viewport_width',
                    'repeat_key', 'status_synced_at', 'submission_status',
                    'external_study_id', 'external_session_id', 'external_participant_id',
                    'environment', 'platform'):
            b.drop_column(col)
    with op.batch_alter_table('experiments', schema=None) as b:
        b.add_column(sa.Column('allow_repeats', sa.Boolean(), nullable=False,
                               server_default=sa.false()))
    op.get_bind().execute(sa.text(
        "UPDATE experiments SET allow_repeats = (repeats = 'allow')"))
    with op.batch_alter_table('experiments', schema=None) as b:
        b.drop_column('min_viewport_height')
        b.drop_column('min_viewport_width')
        b.drop_column('repeats')
    op.drop_table('settings')

"""The 0002_recruitment migration carries a database made with the 0001 schema forward:
nothing is lost, and every participant gets its provenance (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

NOW = "2026-11-01 10:00:00"


def _old_database(app) -> None:
    """Fill a database at revision 0001 with an experiment, two HITs (production and a
    local endpoint), lab, simulated and MTurk participants and their answers."""
    from flask_migrate import upgrade

    from server.models import db

    upgrade(revision="0001")
    rows = [
        "INSERT INTO experiments (id, name, source_path, file_sha256, seed, design, feature_sets,"
        " image_width, image_height, consent_text, trial_order, allow_repeats, break_every,"
        " practice, created) VALUES (1, 'old', '', 'x', 0, '{}', '[]', 200, 245, '', 'fixed',"
        " :f, 0, :t, :now), (2, 'again', '', 'y', 0, '{}', '[]', 200, 245, '', 'fixed', :t,"
        " 0, :t, :now)",
        "INSERT INTO images (id, experiment_id, key, token, pair, side, source_path, sha256,"
        " mime, width, height) VALUES (1, 1, 'L1', 'tok1', '1', 'left', '', 's', 'image/jpeg',"
        " 200, 245), (2, 1, 'L2', 'tok2', '2', 'left', '', 's', 'image/jpeg', 200, 245)",
        "INSERT INTO trials (id, experiment_id, key, position, condition, subset, pair, catch,"
        " true_index, machine_choices, hit_key, query_image_id, candidate_image_ids) VALUES"
        " (1, 1, 't0001', 0, 'random', 'TLL_d', '1', :f, 1, '{}', 'h0001', 1, '[1,2,2,2,2]'),"
        " (2, 1, 't0002', 1, 'generic', 'TLL_d', '2', :f, 2, '{}', 'h0002', 2, '[2,1,1,1,1]')",
        "INSERT INTO hits (id, experiment_id, key, mturk_hit_id, environment, reward,"
        " max_assignments, status, created) VALUES (1, 1, 'h0001', 'HPROD', 'production', 0.05,"
        " 20, 'Assignable', :now), (2, 1, 'h0002', 'HLOCAL', 'local-sandbox', 0.05, 20,"
        " 'Assignable', :now)",
        "INSERT INTO participants (id, experiment_id, code, attempt, population, token,"
        " assignment_id, worker_id, hit_id, hit_record_id, sequence, created, completed_at,"
        " user_agent) VALUES"
        " (1, 1, 'LABCODE', 1, 'lab', 'p1', NULL, NULL, NULL, NULL, '[1,2]', :now, :now, 'ua'),"
        " (2, 1, 'SIM1', 1, 'simulated', 'p2', NULL, NULL, NULL, NULL, '[2,1]', :now, NULL, ''),"
        " (3, 1, 'mturk:A1:W1', 1, 'mturk', 'p3', 'A1', 'W1', 'HPROD', 1, '[1]', :now, :now, ''),"
        " (4, 1, 'mturk:A1:W2', 1, 'mturk', 'p4', 'A1', 'W2', 'HPROD', 1, '[1]', :now, NULL, ''),"
        " (5, 1, 'mturk:A2:W1', 1, 'mturk', 'p5', 'A2', 'W1', 'HLOCAL', 2, '[2]', :now, :now, '')",
        "INSERT INTO assignments (id, mturk_assignment_id, hit_id, worker_id, participant_id,"
        " status, accepted_at) VALUES (1, 'A1', 1, 'W1', 3, 'returned', :now),"
        " (2, 'A1', 1, 'W2', 4, 'accepted', :now), (3, 'A2', 2, 'W1', 5, 'approved', :now)",
        "INSERT INTO responses (participant_id, trial_id, trial_order, chosen_index, rt_ms,"
        " received_at) VALUES (1, 1, 1, 1, 900.5, :now), (1, 2, 2, 0, NULL, :now),"
        " (2, 2, 1, 2, 700, :now), (3, 1, 1, 3, 1200, :now), (5, 2, 1, 2, 800, :now)",
    ]
    for sql in rows:
        db.session.execute(text(sql), {"now": NOW, "t": True, "f": False})
    if db.engine.dialect.name == "postgresql":  # explicit ids leave the sequence behind
        db.session.execute(text("SELECT setval('participants_id_seq', 100)"))
    db.session.commit()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upgrade_keeps_answers_and_fills_provenance(backend, request, tmp_path):
    from flask_migrate import upgrade

    from server import create_app
    from server.models import db
    from server.recruitment.deployment import deployment_id

    url = (f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": url}, instance_path=tmp_path / "instance")
    with app.app_context():
        _old_database(app)
        before = db.session.execute(text(
            "SELECT participant_id, trial_id, trial_order, chosen_index, rt_ms FROM responses "
            "ORDER BY id")).all()
        upgrade()
        after = db.session.execute(text(
            "SELECT participant_id, trial_id, trial_order, chosen_index, rt_ms FROM responses "
            "ORDER BY id")).all()
        assert after == before and len(after) == 5
        prov = db.session.execute(text(
            "SELECT id, platform, environment, external_participant_id, external_session_id,"
            " external_study_id, submission_status, repeat_key, worker_id, population, code"
            " FROM participants ORDER BY id")).all()
        assert [tuple(r) for r in prov] == [
            (1, "lab", "lab", "LABCODE", None, None, "recorded", "lab:LABCODE", None, "lab",
             "LABCODE"),
            (2, "simulated", "simulated", "SIM1", None, None, "recorded", "simulated:SIM1",
             None, "simulated", "SIM1"),
            (3, "mturk", "production", "W1", "A1", "HPROD", "returned", "mturk:W1", "W1",
             "mturk", "mturk:A1:W1"),
            (4, "mturk", "production", "W2", "A1", "HPROD", "accepted", "mturk:W2", "W2",
             "mturk", "mturk:A1:W2"),
            # The same worker again: kept, but the first participant holds the repeat key.
            (5, "mturk", "local-sandbox", "W1", "A2", "HLOCAL", "approved", None, "W1",
             "mturk", "mturk:A2:W1"),
        ]
        repeats = dict(db.session.execute(text("SELECT name, repeats FROM experiments")).all())
        assert repeats == {"old": "none", "again": "allow"}
        ident = deployment_id()
        assert len(ident) == 32 and deployment_id() == ident
        # The upgraded schema is the models' schema: the app works on it.
        from server import recording as rec
        exp = rec.get_experiment("old")
        p, created = rec.start_participant(exp, code="NEW", consent=True)
        assert created and p.repeat_key == "lab:NEW" and p.environment == "lab"
        db.engine.dispose()

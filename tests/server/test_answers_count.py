"""Which answers the server takes: completion stamped exactly once whatever the
interleaving of the last answers, the repeat policy enforced by the database under
concurrent starts, and no answers after an assignment was returned (SQLite and
PostgreSQL, direct calls to the app from threads)."""
from __future__ import annotations

import threading

import pytest

from server import recording as rec

KEYS = ["t0001", "t0002", "t0003"]


def _together(app, n: int, fn) -> list:
    """Run fn(i) for i in 0..n-1 in n threads, each in its own app context, started at
    once; return the results (or the exceptions raised) in order."""
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i):
        with app.app_context():
            barrier.wait(timeout=30)
            try:
                out[i] = fn(i)
            except Exception as e:  # kept for the assertions
                out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return out


def _in_session(fn):
    return fn()


def _as_the_answer_routes(fn):
    # The answer routes' own connection: on PostgreSQL the pipelined write.
    from server import fastsql

    with fastsql.answer_scope():
        return fn()


@pytest.mark.parametrize("where", [_in_session, _as_the_answer_routes],
                         ids=["session", "answer-routes"])
def test_completion_stamped_once_whatever_the_interleaving(any_app, where):
    from server.models import Participant, Response, db

    postgres = "postgresql" in any_app.config["SQLALCHEMY_DATABASE_URI"]
    rounds = 100 if postgres else 30
    with any_app.app_context():
        exp = rec.get_experiment("small")
        exp.repeats = "allow"
        db.session.commit()
        tokens = [rec.start_participant(exp, code=f"race{i}", trial_keys=KEYS,
                                        consent=True)[0].token for i in range(rounds)]
    for token in tokens:
        # The last answers of one participant arrive at the same moment.
        results = _together(any_app, len(KEYS), lambda i, t=token: where(
            lambda: rec.record_answer(rec.participant_ref(t), i + 1, i % 5, 500.0)))
        assert all(isinstance(r, tuple) and r[1] for r in results), results
    with any_app.app_context():
        rows = db.session.execute(db.select(Participant).where(
            Participant.token.in_(tokens))).scalars().all()
        never = [p.code for p in rows if p.completed_at is None]
        assert never == [], f"{len(never)} of {rounds} participants never marked completed"
        for p in rows:
            last = max(r.received_at for r in db.session.execute(db.select(Response).where(
                Response.participant_id == p.id)).scalars())
            assert p.completed_at == last  # stamped by the answer that completed it


@pytest.mark.parametrize("policy, hits, allowed", [
    ("none", ["H1", "H2", "H3", "H4"], 1),      # once per experiment: one of four HITs
    ("per-hit", ["H1", "H1", "H1", "H2"], 2),   # once per HIT: one on H1, one on H2
    ("allow", ["H1", "H1", "H2", "H2"], 4),
])
def test_repeat_policy_holds_under_concurrent_starts(any_app, policy, hits, allowed):
    from server.models import Participant, db

    with any_app.app_context():
        exp = rec.get_experiment("small")
        exp.repeats = policy
        db.session.commit()

    def start(i):
        exp = rec.get_experiment("small")
        return rec.start_participant(exp, population="mturk", assignment_id=f"A{i}",
                                     worker_id="W1", hit_id=hits[i], trial_keys=["t0001"],
                                     consent=True, environment="sandbox")

    results = _together(any_app, len(hits), start)
    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, rec.RepeatRefused)]
    assert len(made) == allowed and len(made) + len(refused) == len(hits), results
    assert all(r.status == 409 and "already taken part" in r.reason for r in refused)
    with any_app.app_context():
        n = db.session.execute(db.select(db.func.count(Participant.id)).where(
            Participant.worker_id == "W1")).scalar_one()
        assert n == allowed


def _mturk_participant(assignment_id: str, worker_id: str):
    """Start (or resume) an MTurk participant of `small` on HIT H1; return (p, created)."""
    return rec.start_participant(rec.get_experiment("small"), population="mturk",
                                 assignment_id=assignment_id, worker_id=worker_id,
                                 hit_id="H1", trial_keys=KEYS, consent=True,
                                 environment="production")


def test_returned_assignment_refuses_answers(any_app):
    from server.models import db

    with any_app.app_context():
        p, _ = _mturk_participant("A1", "W1")
        rec.record_answer(p, 1, 2)
        rec.set_status(p, "returned", synced=True)
        db.session.commit()
        token = p.token
        with pytest.raises(rec.RecordingError) as e:
            rec.record_answer(rec.participant_ref(token), 2, 1)
        assert e.value.status == 409 and "returned" in e.value.reason
        with pytest.raises(Exception) as bad:
            rec.set_status(p, "finished")
        assert "unknown mturk status 'finished'" in str(bad.value)
    client = any_app.test_client()
    r = client.post(f"/api/v1/participants/{token}/answers", json={"n": 2, "choice": 1})
    assert r.status_code == 409 and "no longer recorded" in r.get_json()["error"]
    # Nothing stored changed: the answer before the return is kept, none after it.
    r = client.get(f"/api/v1/participants/{token}")
    assert r.get_json()["answered"] == 1
    with any_app.app_context():
        # The next worker on the reused assignment id is a fresh participant who answers.
        q, created = _mturk_participant("A1", "W2")
        assert created and q.submission_status == "accepted"
        assert rec.record_answer(q, 1, 0)[1]


@pytest.mark.parametrize("any_app", ["postgres"], indirect=True)
def test_a_return_between_reading_and_writing_refuses_the_answer(any_app):
    # PostgreSQL's pipelined write checks the platform status under the row lock: an
    # assignment returned after the answer's participant record was read still refuses it.
    from server import fastsql
    from server.models import Participant, Response, db

    with any_app.app_context():
        token = _mturk_participant("A9", "W9")[0].token
    with any_app.app_context(), fastsql.answer_scope():
        ref = rec.participant_ref(token)
        assert ref.submission_status == "accepted"
        with any_app.app_context():  # elsewhere, meanwhile: MTurk says it was returned
            q = db.session.execute(db.select(Participant).filter_by(token=token)).scalar_one()
            rec.set_status(q, "returned", synced=True)
            db.session.commit()
        with pytest.raises(rec.RecordingError) as e:
            rec.record_answer(ref, 1, 2)
        assert e.value.status == 409 and "returned" in e.value.reason
    with any_app.app_context():
        assert db.session.execute(db.select(db.func.count(Response.id))).scalar_one() == 0

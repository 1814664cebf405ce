"""The recording core and the JSON API over it, on SQLite and on a real PostgreSQL:
idempotent answers, resume, once-only codes, sequence and choice checks."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from server import recording as rec
from server.models import Participant, Response, db

pytestmark = pytest.mark.postgres


def _count(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count(Response.id))).scalar_one()


def _start(c, code=None, **kw):
    body = {"consent": True, **kw}
    if code:
        body["code"] = code
    r = c.post("/api/v1/experiments/small/participants", json=body)
    assert r.status_code in (200, 201), r.json
    return r


def test_same_answer_twice_is_one_row(any_app):
    c = any_app.test_client()
    tok = _start(c, "P1").json["participant"]
    first = c.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": 3, "rt_ms": 812.5})
    assert first.status_code == 201 and first.json["duplicate"] is False
    # A retry with a different choice (double click, back button) changes nothing.
    again = c.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": 0, "rt_ms": 5})
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert again.json["choice"] == 3 and again.json["rt_ms"] == 812.5
    assert again.json["received_at"] == first.json["received_at"]
    assert _count(any_app) == 1


def test_concurrent_duplicates_store_one_row(any_app):
    c = any_app.test_client()
    tok = _start(c, "P2").json["participant"]
    statuses = []

    def send():
        with any_app.test_client() as cc:
            statuses.append(cc.post(f"/api/v1/participants/{tok}/answers",
                                    json={"n": 1, "choice": 1}).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(statuses).count(201) == 1 and len(statuses) == 6
    assert all(s in (200, 201) for s in statuses)
    assert _count(any_app) == 1


def test_resume_at_first_unanswered_and_complete(any_app):
    c = any_app.test_client()
    tok = _start(c, "P3").json["participant"]
    # No trial beyond the next unanswered one: 2 before 1 is refused.
    r = c.post(f"/api/v1/participants/{tok}/answers", json={"n": 2, "choice": 0})
    assert r.status_code == 409 and "answer trial 1 first" in r.json["error"]
    for n in (1, 2):
        assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": n, "choice": 0}).status_code == 201
    again = _start(c, "P3")  # the same code again resumes the same participant
    assert again.status_code == 200 and again.json["participant"] == tok
    assert again.json["answered"] == 2
    nxt = c.get(f"/api/v1/participants/{tok}/next").json
    assert nxt["done"] is False and nxt["trial"]["n"] == 3
    for n in range(3, 7):
        c.post(f"/api/v1/participants/{tok}/answers", json={"n": n, "choice": 4})
    assert c.get(f"/api/v1/participants/{tok}/next").json == {"done": True}
    st = c.get(f"/api/v1/participants/{tok}").json
    assert st["completed"] is True and st["answered"] == st["total"] == 6
    # Once only: the finished code cannot start again.
    r = c.post("/api/v1/experiments/small/participants", json={"consent": True, "code": "P3"})
    assert r.status_code == 409 and "already taken part" in r.json["error"]
    assert _count(any_app) == 6


def test_repeats_when_allowed(any_app):
    c = any_app.test_client()
    with any_app.app_context():
        rec.get_experiment("small").allow_repeats = True
        db.session.commit()
    tok = _start(c, "R1").json["participant"]
    for n in range(1, 7):
        c.post(f"/api/v1/participants/{tok}/answers", json={"n": n, "choice": 1})
    r = _start(c, "R1")
    assert r.status_code == 201 and r.json["participant"] != tok and r.json["answered"] == 0
    with any_app.app_context():
        attempts = db.session.execute(select(Participant.attempt).where(
            Participant.code == "R1").order_by(Participant.attempt)).scalars().all()
    assert attempts == [1, 2]


def test_random_order_is_seeded_and_recorded(any_app):
    with any_app.app_context():
        exp = rec.get_experiment("small")
        exp.trial_order = "random"
        db.session.commit()
        seqs = set()
        for i in range(8):
            p, _ = rec.start_participant(exp, code=f"S{i}", consent=True)
            assert p.seed is not None
            import random
            ids = sorted(p.trial_ids())
            random.Random(p.seed).shuffle(ids)
            assert ids == p.trial_ids()  # the sequence is reproducible from the recorded seed
            seqs.add(tuple(p.trial_ids()))
        assert len(seqs) > 1


def test_mturk_participant_keyed_by_assignment_and_worker(any_app):
    with any_app.app_context():
        exp = rec.get_experiment("small")
        p, created = rec.start_participant(exp, assignment_id="A1", worker_id="W1",
                                           population="mturk", hit_id="H1",
                                           trial_keys=["t0003"], consent=True,
                                           environment="local-production")
        assert created and p.population == "mturk" and len(p.trial_ids()) == 1
        # Provenance: a local endpoint is a rehearsal whatever environment it emulates.
        assert (p.platform, p.environment, p.external_participant_id, p.external_session_id,
                p.external_study_id, p.submission_status) == (
            "mturk", "local-sandbox", "W1", "A1", "H1", "accepted")
        same, created2 = rec.start_participant(exp, assignment_id="A1", worker_id="W1",
                                               population="mturk", trial_keys=["t0003"])
        assert same.id == p.id and not created2
        # A returned assignment id reused by another worker is a new participant.
        other, created3 = rec.start_participant(exp, assignment_id="A1", worker_id="W2",
                                                population="mturk", trial_keys=["t0003"],
                                                consent=True, environment="sandbox")
        assert created3 and other.id != p.id
        resp, made = rec.record_answer(p, 1, 2, 1000)
        assert made and resp.trial.key == "t0003"
        with pytest.raises(rec.RecordingError) as e:
            rec.record_answer(p, 2, 0)
        assert e.value.status == 404


BAD_ANSWERS = [
    ({"n": 0, "choice": 1}, 404), ({"n": 7, "choice": 1}, 404), ({"n": -1, "choice": 1}, 404),
    ({"n": 1, "choice": 5}, 400), ({"n": 1, "choice": -1}, 400), ({"n": 1, "choice": "x"}, 400),
    ({"n": 1, "choice": 1.5}, 400), ({"n": 1, "choice": True}, 400), ({"n": "one", "choice": 1}, 400),
    ({"n": [1], "choice": 1}, 400), ({"n": 1, "choice": None}, 400), ({"n": 1}, 400), ({}, 400),
    ({"n": 1, "choice": 1, "rt_ms": "fast"}, 400), ({"n": 1, "choice": 1, "rt_ms": -3}, 400),
    ({"n": 1, "choice": 1, "rt_ms": 1e300}, 400),
]


def test_bad_answers_store_nothing(any_app):
    c = any_app.test_client()
    tok = _start(c, "B1").json["participant"]
    for body, status in BAD_ANSWERS:
        r = c.post(f"/api/v1/participants/{tok}/answers", json=body)
        assert r.status_code == status, (body, r.json)
        assert r.is_json and r.json["error"]
    assert _count(any_app) == 0

"""The answer path's shortcuts keep its behaviour: the three answer routes (JSON API, lab
form, MTurk worker form) run on a pooled DBAPI connection of their own, never through the
ORM Session, and give it back; the form answers get exactly the security headers Talisman
gives them (computed once per endpoint, then copied) while skipping Limiter's hooks."""
from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import select

from server import recording as rec
from server.models import Hit, Participant, Response, db
from tests.server.conftest import api_participant, lab_post, trial_token_from

SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                    "Referrer-Policy", "Permissions-Policy", "Strict-Transport-Security")


def _security(resp) -> dict:
    return {k: resp.headers.get(k) for k in SECURITY_HEADERS}


def _no_session(monkeypatch):
    """Make any use of the ORM Session's connection fail loudly."""
    from sqlalchemy.orm import Session

    def refuse(self, *a, **k):
        raise AssertionError("the answer path used the ORM Session")
    monkeypatch.setattr(Session, "connection", refuse)


def _pool_idle(app) -> int:
    with app.app_context():
        return db.engine.pool.checkedout()


def test_api_answers_without_the_session_and_give_the_connection_back(app, monkeypatch):
    c = app.test_client()
    tok = api_participant(c, "FAST1")
    before = _pool_idle(app)
    _no_session(monkeypatch)
    r = c.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": 3, "rt_ms": 812})
    assert r.status_code == 201, r.get_data(as_text=True)
    first = r.get_json()
    assert first["stored"] and not first["duplicate"] and first["answered"] == 1
    # The repeat returns the stored answer (read back over the same connection).
    again = c.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": 0})
    assert again.status_code == 200
    assert again.get_json()["duplicate"] and again.get_json()["choice"] == 3
    assert again.get_json()["received_at"] == first["received_at"]
    # Refused input and an answer ahead of the next open trial leave nothing borrowed.
    assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": 3, "choice": 1}
                  ).status_code == 409
    assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": 2, "choice": 9}
                  ).status_code == 400
    monkeypatch.undo()
    assert _pool_idle(app) == before
    with app.app_context():
        rows = db.session.execute(db.select(Response.trial_order, Response.chosen_index, Response.rt_ms)
                                  .join(Participant).where(Participant.token == tok)).all()
    assert [tuple(r) for r in rows] == [(1, 3, 812.0)]


def test_lab_form_answer_headers_are_talismans_and_skip_the_session(app, monkeypatch):
    c = app.test_client()
    assert lab_post(c, "/lab/small/start", {"code": "FAST2"}).status_code == 303
    lab_post(c, "/lab/small/consent", {"agree": "yes"})
    page = c.get("/lab/small/trial")
    assert page.status_code == 200, page.headers.get("Location")
    _no_session(monkeypatch)
    answers = [lab_post(c, "/lab/small/answer", {"n": str(n), "choice": "1"}) for n in (1, 2)]
    monkeypatch.undo()
    assert [a.status_code for a in answers] == [303, 303]
    # The same headers as Talisman sets on the lab's pages, on the first answer and the next.
    expected = _security(page)
    assert expected["Content-Security-Policy"] and expected["X-Frame-Options"] == "DENY"
    assert [_security(a) for a in answers] == [expected, expected]
    # CSRF still guards the lab form answer.
    assert c.post("/lab/small/answer", data={"n": "3", "choice": "1"}).status_code == 400
    with app.app_context():
        p = db.session.execute(db.select(Participant).where(Participant.code == "FAST2")).scalar_one()
        assert rec.progress(p)[0] == 2


def test_mturk_form_answer_keeps_the_worker_pages_frame_policy(app, monkeypatch):
    with app.app_context():
        exp = rec.get_experiment("small")
        db.session.add(Hit(experiment_id=exp.id, key="h0001", mturk_hit_id="H1",
                           environment="sandbox", max_assignments=5))
        db.session.commit()
    c = app.test_client()
    q = urlencode({"assignmentId": "A1", "hitId": "H1", "workerId": "W1",
                   "turkSubmitTo": "https://workersandbox.mturk.com"})
    page = c.get(f"/mturk/task/small/h0001?{q}")
    assert page.status_code == 200
    with app.app_context():
        tok = db.session.execute(db.select(Participant.token).where(
            Participant.assignment_id == "A1")).scalar_one()
    _no_session(monkeypatch)
    # The HIT's first trial, then the same again (a repeat: stored once, same reply).
    answers = [c.post(f"/mturk/task/small/h0001/answer?p={tok}&{q}",
                      data={"n": "1", "choice": "2",
                            "trial_token": trial_token_from(page.get_data(as_text=True))})
               for _ in range(2)]
    monkeypatch.undo()
    assert [a.status_code for a in answers] == [303, 303]
    for a in answers:
        h = _security(a)
        assert "https://workersandbox.mturk.com" in h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" not in h["Content-Security-Policy"]
        assert h["X-Frame-Options"] is None and h["X-Content-Type-Options"] == "nosniff"
    assert _security(answers[0]) == _security(answers[1])


def _slowed_batches(monkeypatch, sizes: list, fail: bool = False):
    """Record each group commit's size; hold each batch a moment (so that answers sent
    together queue behind it) and, with `fail`, make its commit fail."""
    import sqlite3
    import time

    from server import fastsql
    real_batch, real_commit = rec._write_batch, fastsql.commit

    def batch(jobs):
        sizes.append(len(jobs))
        time.sleep(0.05)
        real_batch(jobs)

    def commit():
        if fail:
            raise sqlite3.OperationalError("disk I/O error")
        real_commit()
    monkeypatch.setattr(rec, "_write_batch", batch)
    monkeypatch.setattr(fastsql, "commit", commit)


def _post_all(url: str, jobs: list[tuple[str, dict]]) -> list:
    import threading

    import requests

    out = [None] * len(jobs)
    go = threading.Barrier(len(jobs))

    def one(i, path, body):
        go.wait()
        r = requests.post(url + path, json=body, timeout=60)
        out[i] = (r.status_code, r.json())
    threads = [threading.Thread(target=one, args=(i, p, b)) for i, (p, b) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return out


def _tokens(app, n: int, tag: str) -> list[str]:
    c = app.test_client()
    return [api_participant(c, f"{tag}{i}") for i in range(n)]


def test_sqlite_answers_sent_together_share_a_commit_and_each_is_stored_once(app, monkeypatch):
    from tests.server.conftest import serving

    tokens = _tokens(app, 4, "GROUP")
    with app.app_context():
        total = rec.progress(rec.participant_ref(tokens[0]))[1]
    sizes: list[int] = []
    _slowed_batches(monkeypatch, sizes)
    with serving(app) as url:
        # Round 1: everyone's first answer, and a second, different answer to the same
        # trial by participant 0 (a double click): stored once, the repeat told so.
        first = [(f"/api/v1/participants/{t}/answers", {"n": 1, "choice": i % 5})
                 for i, t in enumerate(tokens)]
        first.append((f"/api/v1/participants/{tokens[0]}/answers", {"n": 1, "choice": 4}))
        replies = _post_all(url, first)
        # Then every remaining answer, one round per trial, all participants at once.
        for n in range(2, total + 1):
            replies += _post_all(url, [(f"/api/v1/participants/{t}/answers",
                                        {"n": n, "choice": n % 5}) for t in tokens])
    statuses = [s for s, _ in replies]
    assert statuses.count(200) == 1 and statuses.count(201) == len(tokens) * total
    repeat = next(b for s, b in replies if s == 200)
    assert repeat["duplicate"] and repeat["choice"] in (0, 4)
    assert max(sizes) > 1, sizes  # answers sent together did share a commit
    with app.app_context():
        for i, t in enumerate(tokens):
            p = db.session.execute(db.select(Participant).where(Participant.token == t)).scalar_one()
            rows = db.session.execute(db.select(Response).where(Response.participant_id == p.id)
                                      .order_by(Response.trial_order)).scalars().all()
            assert [r.trial_order for r in rows] == list(range(1, total + 1))
            # Completion stamped once, at the time of the last answer stored.
            assert p.completed_at is not None
            assert p.completed_at.replace(tzinfo=None) == max(r.received_at for r in rows
                                                              ).replace(tzinfo=None)
            if i == 0:
                assert rows[0].chosen_index == repeat["choice"]
    assert sum(b["done"] for s, b in replies if s == 201) == len(tokens)


def test_a_failed_group_commit_acknowledges_none_of_its_answers(app, monkeypatch):
    from tests.server.conftest import serving

    tokens = _tokens(app, 5, "FAIL")
    sizes: list[int] = []
    _slowed_batches(monkeypatch, sizes, fail=True)
    with serving(app) as url:
        replies = _post_all(url, [(f"/api/v1/participants/{t}/answers", {"n": 1, "choice": 2})
                                  for t in tokens])
    assert max(sizes) > 1, sizes
    assert [s for s, _ in replies] == [503] * len(tokens), replies
    monkeypatch.undo()
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Response.id))).scalar() == 0
    # The same answers go through once the database works again.
    c = app.test_client()
    for t in tokens:
        assert c.post(f"/api/v1/participants/{t}/answers", json={"n": 1, "choice": 2}
                      ).status_code == 201


def test_group_commit_can_be_turned_off(app, monkeypatch):
    app.config["SQLITE_GROUP_COMMIT"] = False
    sizes: list[int] = []
    _slowed_batches(monkeypatch, sizes)
    tok = _tokens(app, 1, "SINGLE")[0]
    c = app.test_client()
    assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": 2}
                  ).status_code == 201
    assert sizes == []  # committed on its own
    app.config["SQLITE_GROUP_COMMIT"] = True
    assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": 2, "choice": 2}
                  ).status_code == 201
    assert sizes == [1]


def test_a_repeat_inside_a_batch_fails_alone(app):
    from server import groupcommit

    a, b = _tokens(app, 2, "BATCH")
    with app.test_request_context(f"/api/v1/participants/{a}/answers", method="POST"):
        pa, pb = rec.participant_ref(a), rec.participant_ref(b)
        total = len(pa.trial_ids())

        def job(p, choice):
            return groupcommit.Job(lambda cur: rec._insert(cur, p.id, p.trial_ids()[0], 1, choice,
                                                           None, total, None))
        jobs = [job(pa, 1), job(pa, 3), job(pb, 2)]
        rec._write_batch(jobs)
        from server import fastsql
        fastsql.release()
    assert jobs[1].result is None  # the repeat
    assert jobs[0].result[1] == 1 and jobs[2].result[1] == 1  # each counted its own row
    with app.app_context():
        rows = db.session.execute(db.select(Participant.token, Response.chosen_index)
                                  .join(Response).order_by(Response.id)).all()
    assert [tuple(r) for r in rows] == [(a, 1), (b, 2)]


def test_a_batch_counts_and_completes_as_if_written_one_after_the_other(app):
    """One participant's answers in one batch each get the count they would have had
    alone, and only the answer that completes the sequence stamps the completion; an
    answer that cannot be stored (its participant is gone) fails alone, the others are
    stored."""
    from server import fastsql, groupcommit

    def job(*args):
        return groupcommit.Job(lambda cur: rec._insert(cur, *args))

    a, b = _tokens(app, 2, "ORDER")
    with app.test_request_context(f"/api/v1/participants/{a}/answers", method="POST"):
        pa, pb = rec.participant_ref(a), rec.participant_ref(b)
        ta, tb = pa.trial_ids(), pb.trial_ids()
        # A sequence of 3 here, so that the batch's second answer of `a` completes it.
        jobs = [job(pa.id, ta[0], 1, 0, None, 3, None),
                job(pb.id, tb[0], 1, 4, 900.0, 3, None),
                job(pa.id, ta[1], 2, 1, None, 3, None),
                job(pa.id, ta[2], 3, 2, None, 3, None)]
        rec._write_batch(jobs)
        fastsql.release()
        assert [(j.result[1], j.result[2]) for j in jobs] == [(1, False), (1, False),
                                                             (2, False), (3, True)]
        assert [j.result[3] for j in jobs] == sorted(j.result[3] for j in jobs)
        ghost = job(10**6, tb[1], 2, 0, None, 3, None)  # no such participant
        last = job(pb.id, tb[1], 2, 3, None, 3, None)
        rec._write_batch([ghost, last])
        fastsql.release()
    assert ghost.result is None and last.result[1] == 2 and last.result[2] is False
    with app.app_context():
        rows = db.session.execute(select(Participant.token, Response.trial_order,
                                         Response.chosen_index, Response.id)
                                  .join(Response).order_by(Response.id)).all()
        done = dict(db.session.execute(select(Participant.token, Participant.completed_at)).all())
    assert [tuple(r[:3]) for r in rows] == [(a, 1, 0), (b, 1, 4), (a, 2, 1), (a, 3, 2), (b, 2, 3)]
    assert [r[3] for r in rows][:4] == [j.result[0] for j in jobs]
    assert done[a] is not None and done[b] is None


def test_no_answer_after_withdrawal_from_another_tab(any_app):
    """A participant who withdrew in one tab cannot add an answer from another one that
    still shows a trial (the light record of the answer path knows the withdrawal)."""
    c = any_app.test_client()
    tok = api_participant(c, "TABS1")
    assert c.post(f"/api/v1/participants/{tok}/answers",
                  json={"n": 1, "choice": 3}).status_code == 201
    with any_app.app_context():
        rec.withdraw(db.session.execute(select(Participant).where(
            Participant.token == tok)).scalar_one())
    r = c.post(f"/api/v1/participants/{tok}/answers", json={"n": 2, "choice": 1})
    assert r.status_code == 409 and "withdrew" in r.get_json()["error"]
    with any_app.app_context():
        assert db.session.execute(select(db.func.count(Response.id))).scalar_one() == 1

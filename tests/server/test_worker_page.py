"""The MTurk worker page over plain HTTP (Flask test client) with HIT records in the
database: provenance from the URL and the HIT, the repeat policy on the page, and a
returned assignment whose page and answers are refused while the next worker on the
reused assignment id starts afresh."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest

from server import recording as rec

SUBMIT_TO = "https://workersandbox.mturk.com"


@pytest.fixture
def hits(app):
    from server.models import Hit, db
    with app.app_context():
        exp = rec.get_experiment("small")
        for key, hid in (("h0001", "H1"), ("h0002", "H2")):
            db.session.add(Hit(experiment_id=exp.id, key=key, mturk_hit_id=hid,
                               environment="production", max_assignments=20))
        db.session.commit()
    return app


def _task(client, hit_key, hit_id, aid, wid):
    q = urlencode({"assignmentId": aid, "hitId": hit_id, "workerId": wid,
                   "turkSubmitTo": SUBMIT_TO})
    return client.get(f"/mturk/task/small/{hit_key}?{q}"), q


def _answer(client, hit_key, q, token, choice=1):
    from server.recording import trial_token_for

    # The trial token that the worker's page of trial 1 carries.
    return client.post(f"/mturk/task/small/{hit_key}/answer?p={token}&{q}",
                       data={"n": "1", "choice": str(choice),
                             "trial_token": trial_token_for(token, 1)},
                       headers={"Accept": "application/json"})


def _participant(app, aid, wid):
    from server.models import Participant, db
    with app.app_context():
        return db.session.execute(db.select(Participant).where(
            Participant.assignment_id == aid, Participant.worker_id == wid)).scalar_one()


@pytest.mark.parametrize("policy", ["none", "per-hit"])
def test_repeat_policy_on_the_worker_page(hits, policy):
    from server.models import db
    with hits.app_context():
        rec.get_experiment("small").repeats = policy
        db.session.commit()
    c = hits.test_client()
    r, _ = _task(c, "h0001", "H1", "A1", "W1")
    assert r.status_code == 200
    p = _participant(hits, "A1", "W1")
    assert (p.platform, p.environment, p.external_participant_id, p.external_session_id,
            p.external_study_id, p.submission_status) == (
        "mturk", "production", "W1", "A1", "H1", "accepted")
    # Another HIT of the experiment, opened before answering the first.
    r, _ = _task(c, "h0002", "H2", "A2", "W1")
    if policy == "none":
        assert r.status_code == 409 and "already taken part in this study" in r.text
    else:
        assert r.status_code == 200 and "Trial 1 of 1" in r.text
    # The same HIT again under another assignment: refused under both policies.
    r, _ = _task(c, "h0001", "H1", "A3", "W1")
    assert r.status_code == 409 and "already taken part" in r.text


def test_returned_assignment_page_and_answers_refused(hits):
    from server.models import db
    c = hits.test_client()
    r, q = _task(c, "h0001", "H1", "A1", "W1")
    p = _participant(hits, "A1", "W1")
    with hits.app_context():
        row = db.session.get(type(p), p.id)
        rec.set_status(row, "returned", synced=True)
        db.session.commit()
    r = _answer(c, "h0001", q, p.token)
    assert r.status_code == 409 and "no longer recorded" in r.get_json()["error"]
    r, _ = _task(c, "h0001", "H1", "A1", "W1")
    assert r.status_code == 409 and "returned" in r.text
    # MTurk gives the assignment id to the next worker: a fresh participant who answers,
    # and whose finish form posts to MTurk's externalSubmit.
    r, q2 = _task(c, "h0001", "H1", "A1", "W2")
    assert r.status_code == 200
    fresh = _participant(hits, "A1", "W2")
    assert fresh.id != p.id and fresh.submission_status == "accepted"
    assert _answer(c, "h0001", q2, fresh.token).status_code == 201
    r, _ = _task(c, "h0001", "H1", "A1", "W2")
    assert f'action="{SUBMIT_TO}/mturk/externalSubmit"' in r.text
    assert 'name="assignmentId" value="A1"' in r.text
    assert _participant(hits, "A1", "W1").submission_status == "returned"


def test_worker_withdraws_on_the_task_page(hits):
    """The worker page carries the withdraw link (token in the URL, as the answers: the
    iframe blocks cookies); withdrawing marks the participant, logs it, refuses further
    answers and the task page, and still offers the HIT's submit form."""
    import html as html_mod
    import re

    from server.models import AuditEntry, db

    c = hits.test_client()
    r, q = _task(c, "h0001", "H1", "AW", "WW")
    p = _participant(hits, "AW", "WW")
    assert _answer(c, "h0001", q, p.token).status_code == 201
    page = c.get(f"/mturk/task/small/h0001?{q}").get_data(as_text=True)
    link = html_mod.unescape(re.search(r'id="withdraw-link" href="([^"]+)"', page).group(1))
    assert link.startswith("/mturk/task/small/h0001/withdraw?p=" + p.token)
    confirm = c.get(link)
    assert confirm.status_code == 200 and "(1 so far)" in confirm.get_data(as_text=True)
    # Another worker's ids with this token, or a preview, withdraw nothing.
    assert c.post(link.replace("workerId=WW", "workerId=W2")).status_code == 403
    assert c.post(link.replace("assignmentId=AW", "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")
                  ).status_code == 403
    assert _participant(hits, "AW", "WW").withdrawn_at is None
    done = c.post(link)
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and 'id="withdrawn"' in body
    assert f'action="{SUBMIT_TO}/mturk/externalSubmit"' in body
    assert 'name="withdrawn" value="yes"' in body and 'name="assignmentId" value="AW"' in body
    assert _participant(hits, "AW", "WW").withdrawn_at is not None
    with hits.app_context():
        [entry] = db.session.execute(db.select(AuditEntry)).scalars().all()
        assert (entry.actor, entry.action, entry.subject) == ("participant", "withdraw", p.code)
    assert _answer(c, "h0001", q, p.token, choice=2).status_code == 409
    again = c.get(f"/mturk/task/small/h0001?{q}")
    assert again.status_code == 409 and "You withdrew" in again.get_data(as_text=True)

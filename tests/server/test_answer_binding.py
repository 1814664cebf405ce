"""Answers are bound to the page that showed the trial: each trial page carries a trial
token issued for its participant and trial, and a form answer whose token belongs to
another participant (a stale tab of a shared browser) or another trial is refused with a
message, storing nothing; the form path refuses trials past the next open one, as the
JSON API does. On SQLite and PostgreSQL."""
from __future__ import annotations

from urllib.parse import urlencode

from server import recording as rec
from server.models import Hit, Participant, Response, db
from tests.server.conftest import lab_post, trial_token_from


def _answers(app, code: str) -> list[tuple[int, int]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            db.select(Response.trial_order, Response.chosen_index).join(Participant)
            .where(Participant.code == code).order_by(Response.trial_order)).all()]


def _start(c, code: str) -> None:
    assert lab_post(c, "/lab/small/start", {"code": code}).status_code == 303
    assert lab_post(c, "/lab/small/consent", {"agree": "yes"}).status_code == 303


def _trial_page(c) -> tuple[str, str]:
    """Return (n, trial token) of the trial page this browser is shown now."""
    page = c.get("/lab/small/trial")
    assert page.status_code == 200, page.headers.get("Location")
    html = page.get_data(as_text=True)
    n = html.split('name="n" value="', 1)[1].split('"', 1)[0]
    return n, trial_token_from(html)


def test_stale_tab_of_another_participant_is_refused(any_app):
    c = any_app.test_client()
    _start(c, "ALICE")
    n, alice_page = _trial_page(c)
    # Bob takes over the browser ("I am someone else") and answers his first trial.
    assert lab_post(c, "/lab/small/forget").status_code == 303
    _start(c, "BOB")
    assert lab_post(c, "/lab/small/answer", {"n": "1", "choice": "4"}).status_code == 303
    # Alice's old tab answers her trial 1, and then trial 2 (Bob's next open one).
    for pos, as_json in (("1", False), ("2", True)):
        headers = {"Accept": "application/json"} if as_json else {}
        r = lab_post(c, "/lab/small/answer", {"n": pos, "choice": "2",
                                              "trial_token": alice_page}, headers=headers)
        assert r.status_code == 409
        reason = r.get_json()["error"] if as_json else r.get_data(as_text=True)
        assert "shown to another participant or for another trial" in reason
        assert "not recorded" in reason
    assert _answers(any_app, "BOB") == [(1, 4)]
    assert _answers(any_app, "ALICE") == []
    assert n == "1"


def test_a_page_of_another_trial_is_refused(any_app):
    c = any_app.test_client()
    _start(c, "CAROL")
    n1, first = _trial_page(c)
    r = lab_post(c, "/lab/small/answer", {"n": "1", "choice": "0", "trial_token": first})
    assert r.status_code == 303
    # Trial 1's page cannot answer trial 2; trial 2's own page can.
    r = lab_post(c, "/lab/small/answer", {"n": "2", "choice": "1", "trial_token": first})
    assert r.status_code == 409 and "another trial" in r.get_data(as_text=True)
    n2, second = _trial_page(c)
    assert (n1, n2) == ("1", "2") and second != first
    # A retry of trial 1 from its own page is the idempotent repeat it always was.
    r = lab_post(c, "/lab/small/answer", {"n": "1", "choice": "3", "trial_token": first},
                 headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.get_json()["duplicate"] and r.get_json()["choice"] == 0
    assert lab_post(c, "/lab/small/answer", {"n": "2", "choice": "1",
                                             "trial_token": second}).status_code == 303
    assert _answers(any_app, "CAROL") == [(1, 0), (2, 1)]


def test_an_answer_without_a_trial_token_is_refused(any_app):
    c = any_app.test_client()
    _start(c, "DAVE")
    r = lab_post(c, "/lab/small/answer", {"n": "1", "choice": "1", "trial_token": "0" * 32})
    assert r.status_code == 409 and "another participant" in r.get_data(as_text=True)
    r = lab_post(c, "/lab/small/answer", {"n": "1", "choice": "1", "trial_token": ""})
    assert r.status_code == 400 and "no trial token" in r.get_data(as_text=True)
    r = c.post("/lab/small/answer", data={"n": "1", "choice": "1",
                                          "csrf_token": c._tll_csrf})
    assert r.status_code == 400 and "no trial token" in r.get_data(as_text=True)
    assert _answers(any_app, "DAVE") == []


def test_the_form_refuses_trials_past_the_next_open_one(any_app):
    c = any_app.test_client()
    _start(c, "ERIN")
    with any_app.app_context():
        token = db.session.execute(db.select(Participant.token).where(
            Participant.code == "ERIN")).scalar_one()
    # Even with the token of trial 3's page (never shown), trial 3 is not open yet.
    r = lab_post(c, "/lab/small/answer", {"n": "3", "choice": "1",
                                          "trial_token": rec.trial_token_for(token, 3)})
    assert r.status_code == 409 and "trial 3 is not open yet: answer trial 1 first" in \
        r.get_data(as_text=True)
    # The same words as the JSON API's refusal.
    api = c.post(f"/api/v1/participants/{token}/answers", json={"n": 3, "choice": 1})
    assert api.status_code == 409 and "trial 3 is not open yet" in api.get_json()["error"]
    assert _answers(any_app, "ERIN") == []


def test_the_worker_page_binds_its_answers_too(any_app):
    with any_app.app_context():
        exp = rec.get_experiment("small")
        db.session.add(Hit(experiment_id=exp.id, key="h0001", mturk_hit_id="H1",
                           environment="sandbox", max_assignments=5))
        db.session.commit()
    c = any_app.test_client()
    q = urlencode({"assignmentId": "A1", "hitId": "H1", "workerId": "W1",
                   "turkSubmitTo": "https://workersandbox.mturk.com"})
    page = c.get(f"/mturk/task/small/h0001?{q}").get_data(as_text=True)
    first = trial_token_from(page)
    with any_app.app_context():
        p = db.session.execute(db.select(Participant).where(
            Participant.assignment_id == "A1")).scalar_one()
        tok = p.token
    url = f"/mturk/task/small/h0001/answer?p={tok}&{q}"
    for wrong in ("f" * 32, rec.trial_token_for(tok, 2)):
        r = c.post(url, data={"n": "1", "choice": "0", "trial_token": wrong})
        assert r.status_code == 409 and "not recorded" in r.get_data(as_text=True)
    assert c.post(url, data={"n": "1", "choice": "0", "trial_token": first}).status_code == 303
    with any_app.app_context():
        assert rec.progress(rec.participant_by_token(tok))[0] == 1

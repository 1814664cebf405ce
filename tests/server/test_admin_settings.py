"""The experiment's settings in the web admin, on SQLite and PostgreSQL: a valid change
is stored (and logged), bad input is a 4xx with the reason on the form and changes
nothing, the settings that change what was measured are refused once the experiment has
answers, and every POST needs the CSRF token."""
from __future__ import annotations

import json

from sqlalchemy import select

from server import recording as rec
from server.loader import SETTING_NAMES

from .conftest import login

PAGE = "/manage/experiments/small/settings"


def snapshot(app) -> dict:
    """Every setting of `small` as stored."""
    from server.models import Experiment, db
    with app.app_context():
        exp = db.session.execute(select(Experiment).where(Experiment.name == "small")).scalar_one()
        return {k: getattr(exp, k) for k in SETTING_NAMES}


def audit(app) -> list[tuple]:
    from server.models import AuditEntry, db
    with app.app_context():
        return [(e.actor, e.action, e.experiment, e.subject, e.detail)
                for e in db.session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]


def answer_once(app) -> None:
    """Give the experiment its first answer."""
    with app.app_context():
        exp = rec.get_experiment("small")
        p, _ = rec.start_participant(exp, code="ANS1", consent=True)
        rec.record_answer(p, 1, 0)


def test_valid_change_is_stored_and_logged(any_app):
    c = any_app.test_client()
    token = login(c)
    page = c.get(PAGE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for field in ("title", "consent_text", "instructions", "trial_order", "repeats",
                  "break_every", "practice", "practice_trials", "min_viewport_width", "kiosk",
                  "platform__panel__id_param", "platform__panel__redirect",
                  "platform__panel__code", "platform__panel__name"):
        assert f'name="{field}"' in html, field
    before = snapshot(any_app)
    r = c.post(PAGE, data={
        "csrf_token": token, "title": "Look-alikes", "welcome": "Hello\r\n\r\n*there*",
        "trial_order": "random", "break_every": "3", "practice": "no", "kiosk": "yes",
        "min_viewport_width": "1000", "seconds_per_trial": "7.5",
        "platform__panel__id_param": "SONA_ID", "platform__panel__code": "DONE-42",
        "platform__panel__redirect": "https://pool.example/done?code={code}"})
    assert r.status_code == 303 and r.headers["Location"].endswith("settings?saved=1")
    after = snapshot(any_app)
    texts = json.loads(after["texts"])
    assert texts["title"] == "Look-alikes" and texts["welcome"] == "Hello\n\n*there*"
    assert (after["trial_order"], after["break_every"], after["practice"], after["kiosk"]) == \
        ("random", 3, False, True)
    assert (after["min_viewport_width"], after["seconds_per_trial"]) == (1000, 7.5)
    assert json.loads(after["platform_settings"])["panel"] == {
        "id_param": "SONA_ID", "code": "DONE-42",
        "redirect": "https://pool.example/done?code={code}"}
    # Untouched settings keep their values.
    assert after["repeats"] == before["repeats"] and after["consent_text"] == before["consent_text"]
    log = audit(any_app)
    assert len(log) == 1 and log[0][:3] == ("admin", "settings", "small")
    assert "platform__panel__code" in log[0][3] and "trial_order" in log[0][3]
    assert "Settings saved." in c.get(r.headers["Location"]).get_data(as_text=True)
    # Clearing a panel setting removes it; clearing a text removes it.
    r = c.post(PAGE, data={"csrf_token": token, "platform__panel__redirect": "", "title": ""})
    assert r.status_code == 303
    after = snapshot(any_app)
    assert "redirect" not in json.loads(after["platform_settings"])["panel"]
    assert "title" not in json.loads(after["texts"])


def test_bad_input_is_a_4xx_with_the_reason_and_changes_nothing(any_app):
    c = any_app.test_client()
    token = login(c)
    before = snapshot(any_app)
    cases = [
        ({"break_every": "-1"}, "break every must be an integer"),
        ({"practice_trials": "many"}, "Not a valid integer"),
        ({"practice_trials": "11"}, "practice trials must be a number 0..10"),
        ({"min_viewport_width": "50"}, "min viewport width must be a number of CSS pixels"),
        ({"seconds_per_trial": "0"}, "seconds per trial must be"),
        ({"trial_order": "sideways"}, "Not a valid choice"),
        ({"platform__panel__redirect": "ftp://pool.example/{code}"}, "must be an http(s) URL"),
        ({"platform__panel__redirect": "https://pool.example/{who}"}, "unknown field {who}"),
        ({"platform__panel__id_param": "a b"}, "panel id param"),
    ]
    for data, reason in cases:
        # A valid change beside the bad one is not stored either.
        r = c.post(PAGE, data={"csrf_token": token, "title": "Changed", **data})
        assert r.status_code == 400, data
        html = r.get_data(as_text=True)
        assert 'id="problems"' in html and reason in html.replace("&#39;", "'"), (data, html[:3000])
        assert snapshot(any_app) == before, data
    assert audit(any_app) == []


def test_csrf_is_required(any_app):
    c = any_app.test_client()
    login(c)
    before = snapshot(any_app)
    r = c.post(PAGE, data={"title": "No token", "kiosk": "yes"})
    assert r.status_code == 400
    r = c.post(PAGE, data={"csrf_token": "forged", "title": "No token"})
    assert r.status_code == 400
    assert snapshot(any_app) == before
    # Logged out: the login page, nothing stored.
    anon = any_app.test_client()
    r = anon.get(PAGE)
    assert r.status_code == 303 and "/manage/login" in r.headers["Location"]


def test_locked_settings_are_refused_once_answers_exist(any_app):
    c = any_app.test_client()
    token = login(c)
    # Before any answer, the order may change.
    assert c.post(PAGE, data={"csrf_token": token, "trial_order": "random"}).status_code == 303
    answer_once(any_app)
    before = snapshot(any_app)
    html = c.get(PAGE).get_data(as_text=True)
    assert 'id="locked-note"' in html
    row = html.split('id="row-trial_order"', 1)[1].split("</tr>", 1)[0]
    assert "disabled" in row and "Locked" in row and "order effects" in row
    row = html.split('id="row-title"', 1)[1].split("</tr>", 1)[0]
    assert "disabled" not in row
    for data, name in [({"trial_order": "fixed"}, "Trial order"),
                       ({"repeats": "allow"}, "Repeats"),
                       ({"practice_trials": "3"}, "Practice trials"),
                       ({"instructions": "Pick the same picture."}, "Instructions"),
                       ({"min_viewport_width": "900"}, "Minimum screen width"),
                       ({"break_every": "2", "title": "Also changed"}, "Break every")]:
        r = c.post(PAGE, data={"csrf_token": token, **data})
        assert r.status_code == 409, data
        text = r.get_data(as_text=True)
        assert f"{name}" in text and "is locked: the experiment has answers" in text, data
        assert snapshot(any_app) == before, data
    # The same value again is no change, and texts around the task stay editable.
    r = c.post(PAGE, data={"csrf_token": token, "trial_order": "random",
                           "debriefing": "Thank you. The study was about look-alikes.",
                           "platform__panel__code": "LATE-1", "kiosk": "yes"})
    assert r.status_code == 303
    after = snapshot(any_app)
    assert json.loads(after["texts"])["debriefing"].startswith("Thank you.")
    assert after["kiosk"] is True and after["trial_order"] == "random"
    assert json.loads(after["platform_settings"])["panel"]["code"] == "LATE-1"

"""A participant code is no secret: where codes are not trusted (TRUST_CODES off, the
production default), a code typed in another browser resumes nobody, the resume link
that the participant's pages show does; the JSON API generates every code itself; and
its participants are their own platform, `api`, which the analysis counts only when
named. The shared computer keeps its "Are you CODE?" and kiosk behaviour."""
from __future__ import annotations

import re

import pandas as pd

from analysis.counting import count_answers
from server.models import Participant, db
from tests.server.conftest import csrf_from, lab_post, login, set_settings


def _untrusted(app):
    app.config["TRUST_CODES"] = False
    return app


def _participant(app, code: str) -> Participant:
    with app.app_context():
        p = db.session.execute(db.select(Participant).where(Participant.code == code)).scalar_one()
        db.session.expunge(p)
        return p


def _resume_link(client) -> str:
    html = client.get("/lab/small/instructions").get_data(as_text=True)
    m = re.search(r'id="resume-link" href="([^"]+)"', html)
    assert m, "the instructions page shows no resume link"
    return m.group(1)


def test_a_typed_code_resumes_nobody_elsewhere_the_resume_link_does(any_app):
    app = _untrusted(any_app)
    first = app.test_client()
    assert lab_post(first, "/lab/small/start", {"code": "P01"}).status_code == 303
    assert lab_post(first, "/lab/small/consent", {"agree": "yes"}).status_code == 303
    assert lab_post(first, "/lab/small/answer", {"n": "1", "choice": "2"}).status_code == 303
    link = _resume_link(first)
    # Every lab page of the participant carries it too, beside "Withdraw".
    assert f'id="resume-footer" href="{link}"' in first.get("/lab/small/trial").get_data(
        as_text=True)
    # Someone else types P01 (a code the researcher hands out in order) elsewhere.
    other = app.test_client()
    r = lab_post(other, "/lab/small/start", {"code": "p01"})
    assert r.status_code == 409
    assert "has already started" in r.get_data(as_text=True)
    assert other.get("/lab/small/trial").headers["Location"].endswith("/lab/small/")
    # The same browser still holds P01: "Are you P01?", and Continue goes on.
    page = first.get("/lab/small/").get_data(as_text=True)
    assert 'id="returning-code">P01<' in page
    # The participant's resume link, in a third browser, brings P01 back.
    third = app.test_client()
    path = link.split("://", 1)[1].split("/", 1)[1]
    r = third.get("/" + path)
    assert r.status_code == 303 and r.headers["Location"].endswith("/lab/small/go")
    page = third.get("/lab/small/trial").get_data(as_text=True)
    assert 'name="n" value="2"' in page
    assert third.get("/lab/small/resume/" + "x" * 32).status_code == 404
    assert _participant(app, "P01").completed_at is None


def test_codes_are_trusted_in_development_by_default(app):
    assert app.config["TRUST_CODES"] is True
    first, other = app.test_client(), app.test_client()
    assert lab_post(first, "/lab/small/start", {"code": "DEV1"}).status_code == 303
    assert lab_post(other, "/lab/small/start", {"code": "DEV1"}).status_code == 303
    with app.app_context():
        assert db.session.query(Participant).filter_by(code="DEV1").count() == 1


def test_resume_link_of_a_withdrawn_or_other_studys_participant_is_refused(app):
    c = app.test_client()
    lab_post(c, "/lab/small/start", {"code": "GONE"})
    lab_post(c, "/lab/small/consent", {"agree": "yes"})
    link = _resume_link(c)
    assert lab_post(c, "/lab/small/withdraw").status_code == 200
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    r = app.test_client().get(path)
    assert r.status_code == 409 and "withdrew" in r.get_data(as_text=True)


def test_the_api_generates_codes_and_its_participants_are_their_own_platform(any_app):
    app = _untrusted(any_app)
    c = app.test_client()
    r = c.post("/api/v1/experiments/small/participants", json={"consent": True, "code": "P02"})
    assert r.status_code == 400 and "generates participant codes" in r.get_json()["error"]
    r = c.post("/api/v1/experiments/small/participants", json={"consent": True})
    assert r.status_code == 201
    made = r.get_json()
    p = _participant(app, made["code"])
    assert (p.platform, p.environment, p.population) == ("api", "api", "api")
    # Nothing the client named: a lab participant typing that code later is refused too.
    lab = app.test_client()
    assert lab_post(lab, "/lab/small/start", {"code": made["code"]}).status_code == 409
    r = c.post("/api/v1/experiments/small/participants",
               json={"consent": True, "population": "lab"})
    assert r.status_code == 400
    sim = c.post("/api/v1/experiments/small/participants",
                 json={"consent": True, "population": "simulated"}).get_json()
    assert _participant(app, sim["code"]).platform == "simulated"


def test_api_participants_count_only_when_named():
    rows = pd.DataFrame({
        "participant": ["a", "b", "c"], "trial": ["t1", "t1", "t1"],
        "platform": ["lab", "api", "api"], "environment": ["lab", "api", "api"],
        "submission_status": ["recorded"] * 3, "population": ["lab", "api", "api"]})
    kept, counting = count_answers(rows)
    assert list(kept["participant"]) == ["a"]
    assert counting.excluded["environment"] == 2
    assert "rule api: environment none (counted only when named), any status" in counting.lines()
    kept, _ = count_answers(rows, environments=["api"])
    assert sorted(kept["participant"]) == ["a", "b", "c"]


def test_the_landing_page_still_asks_are_you_code(app):
    app.config["TRUST_CODES"] = False
    c = app.test_client()
    lab_post(c, "/lab/small/start", {"code": "KIOSK1"})
    page = c.get("/lab/small/").get_data(as_text=True)
    assert 'id="returning-code">KIOSK1<' in page
    token = csrf_from(page)
    assert c.post("/lab/small/forget", data={"csrf_token": token}).status_code == 303
    assert 'id="code"' in c.get("/lab/small/").get_data(as_text=True)


def test_the_experiment_may_count_its_api_participants_as_lab(app):
    from server.loader import validate_settings

    assert validate_settings({"platform_settings": {"api": {"counts_as": "mturk"}}}) == [
        "api counts as 'mturk' must be one of api, lab"]
    assert validate_settings({"platform_settings": {"api": {"colour": "red"}}}) == [
        "unknown api setting 'colour' (one of counts_as)"]
    c = app.test_client()
    before = c.post("/api/v1/experiments/small/participants", json={"consent": True}).get_json()
    set_settings(app, "small", platform_settings={"api": {"counts_as": "lab"}})
    after = c.post("/api/v1/experiments/small/participants", json={"consent": True}).get_json()
    assert (_participant(app, before["code"]).platform, _participant(app, after["code"]).platform,
            _participant(app, after["code"]).environment) == ("api", "lab", "lab")
    # The admin's settings page offers it with the platforms' other settings.
    login(c)
    page = c.get("/manage/experiments/small/settings").get_data(as_text=True)
    assert 'name="platform__api__counts_as"' in page

"""Participant sessions on a shared lab computer: a cookie of bounded size holding the
current participant only, "Are you CODE?", kiosk mode, case-insensitive codes, and the
participant API's limits; then the same in a real Chromium (one browser profile)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.models import Experiment, Participant, Response, db
from tests.server.conftest import lab_post, make_app, serving, write_experiment


def _cookie_len(client) -> int:
    c = next(c for c in client._cookies.values() if c.key == "tll_session")
    return len(c.value)


def _play(client, code, trials=6, exp="small"):
    r = lab_post(client, f"/lab/{exp}/start", {"code": code})
    assert r.status_code == 303, r.get_data(as_text=True)
    lab_post(client, f"/lab/{exp}/consent", {"agree": "yes"})
    for n in range(1, trials + 1):
        assert lab_post(client, f"/lab/{exp}/answer", {"n": str(n), "choice": "1"}).status_code == 303


def _set(app, **settings):
    with app.app_context():
        exp = db.session.execute(select(Experiment).where(Experiment.name == "small")).scalar_one()
        for k, v in settings.items():
            setattr(exp, k, v)
        db.session.commit()


def test_cookie_holds_the_current_participant_only(app):
    app.config["PARTICIPANT_RATE"] = "1000 per minute"  # 150 starts back to back
    c = app.test_client()
    sizes = []
    for k in range(150):
        page = c.get("/lab/small/").get_data(as_text=True)
        if k:
            # The browser remembers the previous person, and asks instead of continuing.
            assert f"Are you <strong id=\"returning-code\">P{k - 1:03d}</strong>?" in page
            assert 'id="code"' not in page
            assert lab_post(c, "/lab/small/forget").status_code == 303
            assert 'id="code"' in c.get("/lab/small/").get_data(as_text=True)
        _play(c, f"p{k:03d}", trials=1)
        sizes.append(_cookie_len(c))
    # Random tokens make the signed value vary by a few bytes; it never grows.
    assert max(sizes) - min(sizes) <= 24 and max(sizes) < 400, (min(sizes), max(sizes))
    with app.app_context():
        counts = dict(db.session.execute(
            select(Participant.code, func.count(Response.id)).join(Response)
            .group_by(Participant.code)).all())
    # Every answer under its own participant, codes stored in upper case.
    assert counts == {f"P{k:03d}": 1 for k in range(150)}


def test_codes_are_case_insensitive(app):
    c = app.test_client()
    _play(c, "mixedCase")
    lab_post(c, "/lab/small/forget")
    r = lab_post(c, "/lab/small/start", {"code": "MIXEDcase"})
    assert r.status_code == 409 and "already taken part" in r.get_data(as_text=True)
    other = app.test_client()
    r = lab_post(other, "/lab/small/start", {"code": "resume-me"})
    again = app.test_client()
    assert lab_post(again, "/lab/small/start", {"code": "RESUME-ME"}).status_code == 303
    with app.app_context():
        assert db.session.execute(select(func.count(Participant.id))).scalar_one() == 2
        assert {p.code for p in db.session.query(Participant)} == {"MIXEDCASE", "RESUME-ME"}


def test_kiosk_forgets_at_completion_and_after_inactivity(app, monkeypatch):
    import server.lab as lab

    _set(app, kiosk=True, practice=False)
    c = app.test_client()
    _play(c, "KIOSK1")
    assert "Thank you" in c.get("/lab/small/done").get_data(as_text=True)
    page = c.get("/lab/small/").get_data(as_text=True)
    assert "Are you" not in page and 'id="code"' in page
    # Inactivity: the next page after the idle time starts afresh.
    app.config["KIOSK_IDLE_S"] = 600
    now = [lab.time.time()]
    monkeypatch.setattr(lab.time, "time", lambda: now[0])
    lab_post(c, "/lab/small/start", {"code": "KIOSK2"})
    lab_post(c, "/lab/small/consent", {"agree": "yes"})
    now[0] += 300
    assert c.get("/lab/small/go").headers["Location"].endswith("/lab/small/trial")
    now[0] += 599  # active 299 s ago at most: still there
    assert c.get("/lab/small/go").headers["Location"].endswith("/lab/small/trial")
    now[0] += 601
    assert c.get("/lab/small/go").headers["Location"].endswith("/lab/small/")
    assert "Are you" not in c.get("/lab/small/").get_data(as_text=True)
    # Not kiosk: the browser keeps the participant (asking "Are you ...?").
    _set(app, kiosk=False)
    d = app.test_client()
    _play(d, "NOKIOSK")
    c.get("/lab/small/done")
    assert "Are you" in d.get("/lab/small/").get_data(as_text=True)


def test_participant_api_limits(tmp_path, sqlite_template):
    import shutil

    from server import create_app

    shutil.copy(sqlite_template, tmp_path / "server.sqlite3")
    url = f"sqlite:///{tmp_path / 'server.sqlite3'}"
    prod = create_app({"SQLALCHEMY_DATABASE_URI": url, "TLL_ENV": "production",
                       "SECRET_KEY": "x" * 32, "SESSION_COOKIE_SECURE": False},
                      instance_path=tmp_path / "i1")
    c = prod.test_client()
    r = c.post("/api/v1/experiments/small/participants", json={"consent": True,
                                                                "population": "simulated"})
    assert r.status_code == 201
    tok, code = r.json["participant"], r.json["code"]
    # No code -> token lookup in production, nor a participant under a chosen code.
    for chosen in (code, code.lower(), "SIM2"):
        r = c.post("/api/v1/experiments/small/participants",
                   json={"consent": True, "code": chosen, "population": "simulated"})
        assert r.status_code == 400 and "participant" not in r.json
    # Nothing beyond the next unanswered trial; the next one's images still come along.
    nxt = c.get(f"/api/v1/participants/{tok}/next").json["trial"]
    assert nxt["n"] == 1 and nxt["next"]["n"] == 2 and len(nxt["next"]["candidates"]) == 5
    assert c.get(f"/api/v1/participants/{tok}/trials/2").status_code == 409
    assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": 3, "choice": 1}).status_code == 409
    assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": 1}).status_code == 201
    assert c.get(f"/api/v1/participants/{tok}/trials/2").status_code == 200
    # The switch: the API answers 404 with a reason; the pages work without it.
    off = create_app({"SQLALCHEMY_DATABASE_URI": url, "PARTICIPANT_API": False},
                     instance_path=tmp_path / "i2")
    o = off.test_client()
    for r in (o.post("/api/v1/experiments/small/participants", json={"consent": True}),
              o.get(f"/api/v1/participants/{tok}/next"),
              o.post(f"/api/v1/participants/{tok}/answers", json={"n": 2, "choice": 1})):
        assert r.status_code == 404 and "turned off" in r.json["error"]
    _play(o, "PAGESONLY")
    with off.app_context():
        assert db.session.query(Response).count() == 7


def test_migration_normalises_codes(tmp_path):
    from flask_migrate import downgrade, upgrade

    app = make_app(tmp_path)
    with app.app_context():
        downgrade(revision="0002_recruitment")
        db.session.execute(db.text("INSERT INTO experiments (id, name, source_path, file_sha256, "
                                   "design, feature_sets, image_width, image_height, consent_text, "
                                   "trial_order, repeats, break_every, practice, created) VALUES "
                                   "(1, 'e', '', '', '{}', '[]', 1, 1, '', 'fixed', 'none', 0, 1, "
                                   "CURRENT_TIMESTAMP)"))
        for i, code in enumerate(["abc", "Dup", "DUP", "mturk:a:w"], start=1):
            platform = "mturk" if code.startswith("mturk") else "lab"
            db.session.execute(db.text(
                "INSERT INTO participants (id, experiment_id, code, attempt, population, token, "
                "sequence, created, user_agent, platform, environment, external_participant_id, "
                "submission_status, repeat_key) VALUES (:i, 1, :c, 1, 'lab', :t, '[]', "
                "CURRENT_TIMESTAMP, '', :p, :p, :c, 'recorded', :k)"),
                {"i": i, "c": code, "t": f"tok{i}", "p": platform, "k": f"{platform}:{code}"})
        db.session.commit()
        upgrade()
        rows = dict(db.session.execute(db.text("SELECT id, code FROM participants")).all())
        keys = dict(db.session.execute(db.text("SELECT id, repeat_key FROM participants")).all())
    assert rows == {1: "ABC", 2: "Dup", 3: "DUP", 4: "mturk:a:w"}
    assert keys[1] == "lab:ABC"


# ------------------------------------------------------------------ Chromium
N_PARTICIPANTS = 200  # a lab day on one shared computer
@pytest.fixture
def tiny_app(tmp_path):
    """An app with a one-trial experiment `tiny` (no practice): many short participants."""
    from server.loader import load_experiment
    from server.manage import set_password

    exp = write_experiment(tmp_path / "study", n_trials=1, catch=False)
    # One browser starts its participants back to back, far faster than any lab: above
    # the per-address start limit (tests/server/test_participant_rate.py).
    app = make_app(tmp_path, PARTICIPANT_RATE="1000 per minute")
    with app.app_context():
        load_experiment(exp, name="tiny", settings={"trial_order": "fixed", "practice": False})
        set_password("correct horse")
    return app


@pytest.fixture
def tiny_server(tiny_app):
    with serving(tiny_app) as url:
        yield url


@pytest.mark.browser
def test_200_participants_in_one_browser_profile(tiny_app, tiny_server, page):
    base = tiny_server
    fast = {"wait_until": "domcontentloaded"}  # images need not finish loading
    page.set_default_timeout(15000)
    for k in range(N_PARTICIPANTS):
        page.goto(f"{base}/lab/tiny/", **fast)
        if k:
            assert page.inner_text("#returning-code") == f"B{k - 1:03d}"
            page.click("#someone-else", no_wait_after=True)
            page.wait_for_selector("#code")
        page.fill("#code", f"b{k:03d}")
        page.click("#start", no_wait_after=True)
        page.wait_for_url("**/consent", **fast)
        page.check("#agree")
        page.click("#consent", no_wait_after=True)
        page.wait_for_url("**/trial", **fast)
        page.click(f"button.candidate >> nth={k % 5}", no_wait_after=True)
        page.wait_for_url("**/done", **fast)
    cookie = next(c for c in page.context.cookies() if c["name"] == "tll_session")
    assert len(cookie["value"]) < 400
    with tiny_app.app_context():
        rows = db.session.execute(select(Participant.code, Response.chosen_index)
                                  .join(Response)).all()
    assert sorted(rows) == [(f"B{k:03d}", k % 5) for k in range(N_PARTICIPANTS)]


@pytest.mark.browser
def test_participant_and_admin_in_one_browser(tiny_app, tiny_server, page):
    base = tiny_server

    def admin_login():
        page.goto(f"{base}/manage/login")
        page.fill("#password", "correct horse")
        page.click("#login")
        page.wait_for_url(f"{base}/manage/")

    def admin_logout():
        page.goto(f"{base}/manage/")
        page.click("nav.manage button")
        page.wait_for_url("**/manage/login")

    # Participant, then admin: the admin login keeps the participant's session.
    page.goto(f"{base}/lab/tiny/")
    page.fill("#code", "FIRST")
    page.click("#start")
    page.wait_for_url("**/consent")
    admin_login()
    page.goto(f"{base}/lab/tiny/")
    assert page.inner_text("#returning-code") == "FIRST"
    admin_logout()
    page.goto(f"{base}/lab/tiny/go")
    page.wait_for_url("**/consent")
    page.goto(f"{base}/manage/experiments/tiny/answers.csv")
    assert "/manage/login" in page.url  # the participant cannot reach the admin area

    # Admin, then participant: a participant's start in this browser ends the admin
    # session, so the participant cannot get in (no logout needed).
    admin_login()
    admin = next(c for c in page.context.cookies() if c["name"] == "tll_admin")
    assert admin["expires"] == -1 and admin["path"] == "/manage" and admin["httpOnly"]
    page.goto(f"{base}/lab/tiny/")
    page.click("#someone-else")
    page.fill("#code", "SECOND")
    page.click("#start")
    page.wait_for_url("**/consent")
    page.check("#agree")
    page.click("#consent")
    page.wait_for_url("**/trial")
    page.click("button.candidate >> nth=2")
    page.wait_for_url("**/done")
    assert not any(c["name"] == "tll_admin" for c in page.context.cookies())
    for url in ("/manage/", "/manage/experiments/tiny", "/manage/experiments/tiny/answers.csv",
                "/manage/experiments/tiny/answers.csv?ids=raw"):
        page.goto(base + url)
        assert "/manage/login" in page.url, url
    r = page.request.get(f"{base}/manage/api/experiments/tiny/stats")
    assert r.status == 401
    with tiny_app.app_context():
        assert db.session.execute(select(func.count(Response.id))).scalar_one() == 1

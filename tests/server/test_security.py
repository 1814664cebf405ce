"""The hardened server: separate admin and participant cookies, revocable admin sessions,
login throttling, constant-time login, security headers, CSRF, a database outage as 503."""
from __future__ import annotations

import re
from pathlib import Path

from server.models import Participant, db
from server.security import REFERRER_POLICY
from tests.server.conftest import csrf_from, lab_post

ROOT = Path(__file__).resolve().parents[2]


def _cookie(client, name):
    return next((c for c in client._cookies.values() if c.key == name), None)


def _login(client, password="correct horse", next_=None):
    tok = csrf_from(client.get("/manage/login").get_data(as_text=True))
    url = "/manage/login" + (f"?next={next_}" if next_ is not None else "")
    return client.post(url, data={"csrf_token": tok, "username": "admin", "password": password})


def _start_participant(client, code):
    r = lab_post(client, "/lab/small/start", {"code": code})
    assert r.status_code == 303
    lab_post(client, "/lab/small/consent", {"agree": "yes"})


def test_admin_and_participant_cookies_never_touch(app):
    c = app.test_client()
    _start_participant(c, "SHARED1")
    part = _cookie(c, "tll_session")
    assert part is not None and part.path == "/"
    assert _login(c).status_code == 303
    admin = _cookie(c, "tll_admin")
    assert admin is not None and admin.path == "/manage" and admin.http_only
    # The admin login left the participant's cookie exactly as it was.
    assert _cookie(c, "tll_session").value == part.value
    assert "Continue" in c.get("/lab/small/").get_data(as_text=True)
    # Logging out of the admin area keeps the participant.
    tok = csrf_from(c.get("/manage/").get_data(as_text=True))
    assert c.post("/manage/logout", data={"csrf_token": tok}).status_code == 303
    assert c.get("/lab/small/go").headers["Location"].endswith("/lab/small/instructions")


def test_a_participant_starting_in_the_admins_browser_ends_the_admin_session(app):
    c = app.test_client()
    assert _login(c).status_code == 303
    assert c.get("/manage/experiments/small/answers.csv?ids=raw").status_code == 200
    _start_participant(c, "SHARED2")
    assert _cookie(c, "tll_admin") is None
    r = c.get("/manage/experiments/small/answers.csv?ids=raw")
    assert r.status_code == 303 and "/manage/login" in r.headers["Location"]
    assert c.get("/manage/").status_code == 303
    # The participant carries on.
    assert c.get("/lab/small/go").headers["Location"].endswith("/lab/small/instructions")


def test_an_idle_admin_is_sent_to_login(app, monkeypatch):
    import time as real_time

    import server.security as security

    class Clock:
        offset = 0.0

        def time(self):
            return real_time.time() + self.offset

    clock = Clock()
    monkeypatch.setattr(security, "time", clock)
    c = app.test_client()
    assert _login(c).status_code == 303
    assert app.config["ADMIN_IDLE_MIN"] == 30
    clock.offset = 20 * 60  # active again after 20 minutes: the session goes on
    assert c.get("/manage/").status_code == 200
    clock.offset = 45 * 60  # 25 idle minutes after that: still on
    assert c.get("/manage/").status_code == 200
    clock.offset = 76 * 60  # 31 idle minutes: over
    r = c.get("/manage/experiments/small/answers.csv?ids=raw")
    assert r.status_code == 303 and "/manage/login" in r.headers["Location"]
    assert c.get("/manage/").status_code == 303
    assert _login(c).status_code == 303 and c.get("/manage/").status_code == 200


def test_participant_cookie_is_no_admin_cookie(app):
    c = app.test_client()
    _start_participant(c, "NOADMIN")
    value = _cookie(c, "tll_session").value
    attacker = app.test_client()
    # The participant cookie's value replayed as the admin cookie: wrong salt, refused.
    attacker.set_cookie("tll_admin", value, path="/manage")
    r = attacker.get("/manage/")
    assert r.status_code == 303 and "/manage/login" in r.headers["Location"]
    assert attacker.get("/manage/experiments/small/answers.csv").status_code == 303


def test_logout_and_password_change_revoke_every_copy(app):
    a = app.test_client()
    assert _login(a).status_code == 303
    stolen = _cookie(a, "tll_admin").value
    b = app.test_client()
    b.set_cookie("tll_admin", stolen, path="/manage")
    assert b.get("/manage/").status_code == 200  # a copy works while the session lives
    tok = csrf_from(a.get("/manage/").get_data(as_text=True))
    assert a.post("/manage/logout", data={"csrf_token": tok}).status_code == 303
    assert b.get("/manage/").status_code == 303  # and stops working at logout
    assert _login(a).status_code == 303
    copy = _cookie(a, "tll_admin").value
    with app.app_context():
        from server.manage import set_password
        set_password("new password now")
    c = app.test_client()
    c.set_cookie("tll_admin", copy, path="/manage")
    assert c.get("/manage/").status_code == 303
    assert a.get("/manage/").status_code == 303
    assert _login(a, "new password now").status_code == 303


def test_login_throttled_per_address_with_a_clear_message(app):
    c = app.test_client()
    # Five wrong passwords for one user from one address, then that pair waits.
    statuses = [_login(c, "wrong").status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    r = _login(c, "correct horse")
    assert r.status_code == 429 and "Too many failed logins" in r.get_data(as_text=True)
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # Other user names from the same address: the address's own limit (10) ends them.
    names = []
    for k in range(6):
        tok = csrf_from(c.get("/manage/login").get_data(as_text=True))
        names.append(c.post("/manage/login", data={"csrf_token": tok, "username": f"u{k}",
                                                   "password": "x"}).status_code)
    assert names == [401] * 5 + [429]
    # Another address is not blocked by this one's failures.
    other = app.test_client()
    tok = csrf_from(other.get("/manage/login", environ_base={"REMOTE_ADDR": "10.0.0.9"})
                    .get_data(as_text=True))
    r = other.post("/manage/login", data={"csrf_token": tok, "username": "admin",
                                          "password": "correct horse"},
                   environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert r.status_code == 303


def test_login_delayed_per_user_across_addresses(app):
    statuses = []
    for k in range(21):
        c = app.test_client()
        env = {"REMOTE_ADDR": f"10.1.0.{k + 1}"}
        tok = csrf_from(c.get("/manage/login", environ_base=env).get_data(as_text=True))
        statuses.append(c.post("/manage/login", environ_base=env, data={
            "csrf_token": tok, "username": "admin", "password": "guess"}))
    assert [r.status_code for r in statuses[:20]] == [401] * 20
    # The 21st address waits a short, growing delay (not an hour's lock).
    assert statuses[20].status_code == 429
    assert 1 <= int(statuses[20].headers["Retry-After"]) <= 2


def test_unknown_user_costs_the_same_hashing(app, monkeypatch):
    import server.manage as m

    calls = []
    real = m.check_password_hash
    monkeypatch.setattr(m, "check_password_hash", lambda h, p: calls.append(h) or real(h, p))
    with app.app_context():
        assert m.authenticate("nobody", "x") is None
        assert m.authenticate("admin", "x") is None
        assert m.authenticate("admin", "correct horse") is not None
    assert len(calls) == 3
    # The dummy hash uses the same method and cost as a real one.
    assert calls[0].split("$")[0] == calls[1].split("$")[0]


def test_login_redirect_target_validated(app):
    for bad in ("https://evil.example/", "//evil.example", "/manage/%0d%0aSet-Cookie:x=1",
                "/manage\\..\\x", "/lab/small/", "https://[", "/manage/\r\nX: y"):
        c = app.test_client()
        r = _login(c, next_=bad)
        assert r.status_code == 303, bad
        assert r.headers["Location"] in ("/manage/", "http://localhost/manage/") or \
            r.headers["Location"].startswith("/manage/"), bad
        assert "\n" not in r.headers["Location"] and "evil" not in r.headers["Location"]
    c = app.test_client()
    assert _login(c, next_="/manage/experiments/small").headers["Location"] == \
        "/manage/experiments/small"


def test_security_headers_on_every_kind_of_page(app):
    c = app.test_client()
    pages = ["/", "/lab/small/", "/manage/login", "/lab/nope/", "/manage/experiments/small"]
    for url in pages:
        r = c.get(url)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, url
        assert "unsafe-inline" not in csp, url
        assert r.headers.get("X-Content-Type-Options") == "nosniff", url
        assert r.headers.get("Referrer-Policy") == REFERRER_POLICY == "same-origin", url
        assert r.headers.get("X-Frame-Options") == "DENY", url
        assert "Strict-Transport-Security" not in r.headers  # no forced HTTPS in the lab
    # The JSON API and the images are no pages (and the hot path): the two headers that
    # matter to them, without Talisman's and Limiter's per-request work.
    for url in ("/api/v1/participants/x/next", "/i/" + "a" * 32):
        r = c.get(url)
        assert r.status_code == 404
        assert r.headers.get("X-Content-Type-Options") == "nosniff", url
        assert r.headers.get("Referrer-Policy") == REFERRER_POLICY == "same-origin", url
    # The MTurk worker page is framed by MTurk: its hosts only, and no DENY.
    r = c.get("/mturk/task/small/h0001?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    csp = r.headers["Content-Security-Policy"]
    ancestors = re.search(r"frame-ancestors ([^;]*)", csp).group(1).split()
    assert set(ancestors) == {"https://worker.mturk.com", "https://www.mturk.com",
                              "https://workersandbox.mturk.com"}
    assert "script-src 'self'" in csp and "X-Frame-Options" not in r.headers


def test_no_inline_script_or_handler_in_templates():
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert "style=" not in text, path


def test_csrf_on_the_lab_forms(app):
    c = app.test_client()
    r = c.post("/lab/small/start", data={"code": "NOCSRF"})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Participant).count() == 0
    _start_participant(c, "WITHCSRF")
    assert c.post("/lab/small/answer", data={"n": "1", "choice": "1"}).status_code == 400
    assert lab_post(c, "/lab/small/answer", {"n": "1", "choice": "1"}).status_code == 303


def test_https_forms_need_and_get_a_same_origin_referer(app):
    """Over HTTPS the CSRF check wants a Referer of this site: the policy every page
    states (header and meta tag, one value) sends one to this origin and none elsewhere."""
    assert app.config["WTF_CSRF_SSL_STRICT"] is True
    c = app.test_client()
    https = {"base_url": "https://study.test"}
    page = c.get("/lab/small/", **https)
    html = page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == REFERRER_POLICY == "same-origin"
    assert f'<meta name="referrer" content="{REFERRER_POLICY}">' in html
    data = {"csrf_token": csrf_from(html), "code": "HTTPSFORM"}
    r = c.post("/lab/small/start", data=data, **https)
    assert r.status_code == 400 and "referrer header is missing" in r.get_data(as_text=True)
    r = c.post("/lab/small/start", data=data, headers={"Referer": "https://evil.test/"}, **https)
    assert r.status_code == 400 and "does not match" in r.get_data(as_text=True)
    r = c.post("/lab/small/start", data=data,
               headers={"Referer": "https://study.test/lab/small/"}, **https)
    assert r.status_code == 303
    with app.app_context():
        assert db.session.query(Participant).filter_by(code="HTTPSFORM").count() == 1


def test_database_outage_is_503_with_retry_after(tmp_path):
    from server import create_app

    gone = tmp_path / "missing-dir" / "db.sqlite3"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{gone}"},
                     instance_path=tmp_path / "instance")
    c = app.test_client()
    r = c.post("/api/v1/participants/abcdefabcdefabcdef/answers", json={"n": 1, "choice": 1})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.is_json and r.json["status"] == 503
    r = c.get("/lab/small/")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.mimetype == "text/html" and "database" in r.get_data(as_text=True)


def test_database_outage_on_postgres_is_503(tmp_path):
    from server import create_app
    from tests.conftest import free_port

    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url}, instance_path=tmp_path / "instance")
    r = app.test_client().get("/api/v1/participants/abcdefabcdefabcdef/next")
    assert r.status_code == 503 and r.is_json and r.headers["Retry-After"]


def test_export_neutralises_formulas_and_analysis_reads_them_back(app, tmp_path):
    import csv
    import io

    from analysis.load import load_answers

    api = app.test_client()
    # A code cannot start a formula (letters and digits first, tests/server/
    # test_input_forms.py); the population label can, and is neutralised.
    for code in ["=SUM(1+1)", "+CMD", "-2+3", "@A1"]:
        assert api.post("/api/v1/experiments/small/participants",
                        json={"consent": True, "code": code}).status_code == 400
    codes = ["PLAIN", "2-3"]
    for code in codes:
        tok = api.post("/api/v1/experiments/small/participants",
                       json={"consent": True, "code": code, "population": "-pop"}).json["participant"]
        assert api.post(f"/api/v1/participants/{tok}/answers",
                        json={"n": 1, "choice": 2, "rt_ms": 5.5}).status_code == 201
    admin = app.test_client()
    assert _login(admin).status_code == 303
    text = admin.get("/manage/experiments/small/answers.csv?ids=raw").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["participant"] for r in rows) == sorted(
        ("'" + c if c[0] in "=+-@\t" else c) for c in codes)
    assert {r["population"] for r in rows} == {"'-pop"}
    for r in rows:  # numeric columns untouched
        assert r["chosen_position"] == "3" and r["rt_ms"] == "5.5" and r["trial_order"] == "1"
    path = tmp_path / "answers.csv"
    path.write_text(text)
    answers = load_answers(csv=path, environments=["api"])  # the API's participants
    assert sorted(answers.df["participant"].astype(str)) == sorted(codes)
    assert set(answers.df["population"]) == {"-pop"}

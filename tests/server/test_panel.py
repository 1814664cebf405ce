"""Link-based panels (SONA, Connect, any pool): the participant's id from a named URL
parameter, the flow of the lab, and at the end a redirect to the researcher's URL
template with the completion code (or the code on the page when there is no redirect)."""
from __future__ import annotations

import http.server
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from server.loader import validate_settings
from server.models import Participant, db
from server.recruitment import panel as panel_mod
from tests.server.conftest import flask_cli, lab_post, server_env, set_settings, walk_study


def _set_panel(app, **conf):
    set_settings(app, "small", platform_settings={"panel": conf})


def _answer_all(client, name="small"):
    for n in range(1, 7):
        r = lab_post(client, f"/lab/{name}/answer", {"n": str(n), "choice": str(n % 5)})
        assert r.status_code == 303, r.get_data(as_text=True)


def test_panel_settings_are_checked():
    check = panel_mod.PANEL.check_settings
    assert check({"id_param": "id", "redirect": "https://x.org/c?code={code}&p={participant}",
                  "code": "ABC-1", "name": "SONA"}) == []
    bad = check({"id_param": "a b", "redirect": "https://x.org/?c={cod}", "code": "no spaces",
                 "colour": "red"})
    assert any("unknown panel setting 'colour'" in p for p in bad)
    assert any("id param" in p for p in bad)
    assert any("unknown field {cod}" in p for p in bad)
    assert any("panel code" in p for p in bad)
    assert check({"redirect": "javascript:alert(1)"}) == \
        ["redirect template 'javascript:alert(1)' must be an http(s) URL"]
    assert check({"redirect": "https://x.org/{"})[0].startswith("redirect template")
    [moon] = validate_settings({"platform_settings": {"moon": {}}})
    assert moon.startswith("unknown platform 'moon' (one of lab, simulated, api, mturk, panel")
    assert validate_settings({"platform_settings": {"lab": {}}}) == \
        ["platform 'lab' has no settings"]
    # Ids and codes are quoted into the redirect, so no id can change where it goes.
    assert panel_mod.fill_redirect("https://x.org/done?c={code}&id={participant}", "C 1",
                                   "a&b=/c") == "https://x.org/done?c=C%201&id=a%26b%3D%2Fc"


def test_panel_participant_over_http(app):
    _set_panel(app, id_param="survey_id", code="PANEL42", name="SONA",
               redirect="https://panel.example/credit?code={code}&id={participant}")
    c = app.test_client()
    # A link without the id, or to an experiment without that platform, is refused.
    r = c.get("/lab/small/via/panel")
    assert r.status_code == 400 and "survey_id" in r.get_data(as_text=True)
    assert c.get("/lab/small/via/mturk?workerId=W").status_code == 404
    assert c.get("/lab/small/via/moon").status_code == 404
    r = c.get("/lab/small/via/panel?survey_id=s-123")
    assert r.status_code == 303 and r.headers["Location"].endswith("/lab/small/go")
    assert c.get("/lab/small/go").headers["Location"].endswith("/consent")
    lab_post(c, "/lab/small/consent", {"agree": "yes"})
    _answer_all(c)
    html = c.get("/lab/small/done").get_data(as_text=True)
    assert 'id="completion-code">PANEL42<' in html
    assert 'href="https://panel.example/credit?code=PANEL42&amp;id=s-123"' in html
    with app.app_context():
        p = db.session.execute(select(Participant).where(
            Participant.platform == "panel")).scalar_one()
        assert (p.external_participant_id, p.external_study_id, p.environment,
                p.submission_status, p.code) == ("s-123", "SONA", "production", "recorded",
                                                 "panel:s-123")
        assert p.completed_at is not None and len(p.responses) == 6
    # The same panel id again (once per person, the default repeat policy): no second
    # participant; the link brings back the completion page with the code.
    c2 = app.test_client()
    r = c2.get("/lab/small/via/panel?survey_id=s-123", follow_redirects=True)
    assert r.status_code == 200 and 'id="completion-code">PANEL42<' in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(db.func.count(Participant.id)).where(
            Participant.platform == "panel")).scalar_one() == 1
    # Without a redirect the page shows the code and sends nowhere.
    _set_panel(app, redirect=None)
    c3 = app.test_client()
    c3.get("/lab/small/via/panel?survey_id=s-999")
    lab_post(c3, "/lab/small/consent", {"agree": "yes"})
    _answer_all(c3)
    html = c3.get("/lab/small/done").get_data(as_text=True)
    assert "PANEL42" in html and 'id="exit-link"' not in html


def test_panel_settings_cli(tmp_path, small_experiment):
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    flask_cli(env, "db", "upgrade")
    flask_cli(env, "load-experiment", str(small_experiment), "--name", "s")
    r = flask_cli(env, "experiment-settings", "s", "--panel-param", "id",
                  "--panel-redirect", "https://x.org/c?code={code}")
    line = next(x for x in r.stdout.splitlines() if x.startswith("panel:"))
    assert "/lab/s/via/panel?id=<id>" in line and "redirect https://x.org/c?code={code}" in line
    code = line.split("code ")[1].split(",")[0]
    assert len(code) == 10
    # Settings again keep the generated code; "-" clears the redirect.
    r = flask_cli(env, "experiment-settings", "s", "--panel-redirect", "-")
    assert f"code {code}, redirect none" in r.stdout
    r = flask_cli(env, "experiment-settings", "s", "--panel-redirect", "ftp://x/{code}",
                  check=False)
    assert r.returncode == 2 and "must be an http(s) URL" in r.stderr
    assert "Traceback" not in r.stderr


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append(self.path)
        body = b"<html><body><h1 id='credited'>credited</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.browser
def test_panel_participant_in_chromium_ends_on_the_redirect(app, live_server, page,
                                                            artifacts_dir):
    panel_site = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=panel_site.serve_forever, daemon=True).start()
    try:
        back = f"http://127.0.0.1:{panel_site.server_port}/credit?code={{code}}&id={{participant}}"
        _set_panel(app, id_param="PID", code="SONA-77", name="SONA", redirect=back)
        shots = artifacts_dir / "server"
        shots.mkdir(exist_ok=True)
        page.goto(f"{live_server}/lab/small/via/panel?PID=sona%20user%201")
        page.wait_for_url("**/consent")
        walk_study(page, [str(n % 5 + 1) for n in range(1, 7)])
        assert page.inner_text("#completion-code") == "SONA-77"
        page.screenshot(path=str(shots / "panel-done.png"))
        page.click("#exit-link")
        page.wait_for_selector("#credited")
        url = urlsplit(page.url)
        assert url.path == "/credit"
        assert parse_qs(url.query) == {"code": ["SONA-77"], "id": ["sona user 1"]}
        assert "/credit?code=SONA-77&id=sona%20user%201" in _Recorder.seen
    finally:
        panel_site.shutdown()
    with app.app_context():
        p = db.session.execute(select(Participant).where(
            Participant.platform == "panel")).scalar_one()
        assert p.external_participant_id == "sona user 1" and len(p.responses) == 6

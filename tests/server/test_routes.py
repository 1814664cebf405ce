"""Every route through the Flask test client: the lab flow as plain forms, the admin
area (login, CSRF, dashboard, export), images, and every kind of bad input (a 4xx with a
reason, nothing stored, never a 500)."""
from __future__ import annotations

import base64
import csv
import io
import json
import re

from sqlalchemy import func, select

from server.export import COLUMNS, pseudonym
from server.models import Participant, Response, db
from tests.server.conftest import lab_post, login

AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:correct horse").decode()}


def _rows(app):
    with app.app_context():
        return db.session.execute(select(func.count(Response.id))).scalar_one()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def lab_participant(client, code="LAB1"):
    """Start, consent and do the practice trial as a plain form; return the trial page."""
    r = lab_post(client, "/lab/small/start", {"code": code})
    assert r.status_code == 303
    r = client.get(r.headers["Location"])
    assert r.status_code == 303 and r.headers["Location"].endswith("/lab/small/consent")
    page = client.get("/lab/small/consent").get_data(as_text=True)
    assert "study on how people judge" in page and code in page
    assert lab_post(client, "/lab/small/consent", {}).status_code == 400  # box not ticked
    r = lab_post(client, "/lab/small/consent", {"agree": "yes"})
    r = client.get(r.headers["Location"])
    assert r.headers["Location"].endswith("/lab/small/instructions")
    page = client.get("/lab/small/instructions").get_data(as_text=True)
    assert page.count('name="choice"') == 5
    r = lab_post(client, "/lab/small/instructions", {"choice": "2"})
    assert r.status_code == 200 and 'id="feedback"' in r.get_data(as_text=True)
    return client.get("/lab/small/trial")


def test_lab_flow_as_plain_forms(app, client):
    page = lab_participant(client)
    assert page.status_code == 200
    for n in range(1, 7):
        html = page.get_data(as_text=True)
        assert f'name="n" value="{n}"' in html and f"{n - 1} of 6 answered" in html
        assert html.count('<button type="submit" name="choice"') == 5
        r = lab_post(client, "/lab/small/answer", {"n": str(n), "choice": str(n % 5), "rt_ms": ""})
        assert r.status_code == 303 and r.headers["Location"].endswith("/lab/small/trial")
        # The back button and a resend: nothing new is stored.
        r2 = lab_post(client, "/lab/small/answer", {"n": str(n), "choice": "0"})
        assert r2.status_code == 303
        page = client.get("/lab/small/trial")
    assert page.status_code == 303 and page.headers["Location"].endswith("/lab/small/done")
    assert "Thank you" in client.get("/lab/small/done").get_data(as_text=True)
    with app.app_context():
        p = db.session.execute(select(Participant)).scalar_one()
        assert p.completed_at is not None and p.population == "lab"
        chosen = [r.chosen_index for r in p.responses]
        assert chosen == [n % 5 for n in range(1, 7)]
        assert all(r.rt_ms is None for r in p.responses)
    # The same code again, from another browser: already took part.
    other = app.test_client()
    r = lab_post(other, "/lab/small/start", {"code": "LAB1"})
    assert r.status_code == 409 and "already taken part" in r.get_data(as_text=True)


def test_lab_resume_with_code_in_new_browser(app, client):
    lab_participant(client, "RES")
    lab_post(client, "/lab/small/answer", {"n": "1", "choice": "1", "rt_ms": "900.5"})
    lab_post(client, "/lab/small/answer", {"n": "2", "choice": "1", "rt_ms": "900.5"})
    other = app.test_client()
    r = lab_post(other, "/lab/small/start", {"code": "RES"})
    r = other.get(r.headers["Location"])
    assert r.headers["Location"].endswith("/lab/small/trial")
    assert 'name="n" value="3"' in other.get("/lab/small/trial").get_data(as_text=True)
    assert _rows(app) == 2


def test_generated_code_and_breaks(app, client):
    with app.app_context():
        from server.recording import get_experiment
        exp = get_experiment("small")
        exp.break_every, exp.practice = 2, False
        db.session.commit()
    lab_post(client, "/lab/small/start", {"generate": "1"})
    lab_post(client, "/lab/small/consent", {"agree": "yes"})
    with app.app_context():
        code = db.session.execute(select(Participant.code)).scalar_one()
    assert re.fullmatch(r"[A-Z2-9]{8}", code)
    assert client.get("/lab/small/go").headers["Location"].endswith("/lab/small/trial")
    for n in (1, 2):
        lab_post(client, "/lab/small/answer", {"n": str(n), "choice": "0"})
    page = client.get("/lab/small/trial").get_data(as_text=True)
    assert "break" in page and "2 of 6" in page
    resume = re.search(r'id="resume" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert 'name="n" value="3"' in client.get(resume).get_data(as_text=True)
    assert 'name="n" value="3"' in client.get("/lab/small/trial").get_data(as_text=True)


def test_lab_bad_input(app, client):
    assert client.get("/lab/nope/").status_code == 404
    assert lab_post(client, "/lab/small/start", {"code": "   "}).status_code == 400
    assert lab_post(client, "/lab/small/start", {"code": "x" * 65}).status_code == 400
    assert lab_post(client, "/lab/small/start", {"code": "a\x00b"}).status_code == 400
    # No participant in this browser: answers are refused.
    r = lab_post(client, "/lab/small/answer", {"n": "1", "choice": "1"})
    assert r.status_code == 403
    lab_participant(client, "BAD")
    for data, status in [({"n": "9", "choice": "1"}, 404), ({"n": "1", "choice": "7"}, 400),
                         ({"n": "x", "choice": "1"}, 400), ({"n": "1"}, 400),
                         ({"n": "1", "choice": "1", "rt_ms": "nan"}, 400)]:
        r = lab_post(client, "/lab/small/answer", data)
        assert r.status_code == status, data
        assert "error" in r.get_data(as_text=True)
    r = lab_post(client, "/lab/small/answer", {"n": "1", "choice": "9"},
                    headers={"Accept": "application/json"})
    assert r.status_code == 400 and "five candidates" in r.json["error"]
    assert lab_post(client, "/lab/small/instructions", {"choice": "8"}).status_code == 400
    assert _rows(app) == 0


def test_api_bad_input(app, client):
    assert client.post("/api/v1/experiments/nope/participants", json={"consent": True}).status_code == 404
    assert client.post("/api/v1/experiments/small/participants", data="x").status_code == 415
    assert client.post("/api/v1/experiments/small/participants", data="{bad",
                       content_type="application/json").status_code == 400
    assert client.post("/api/v1/experiments/small/participants", json=[1]).status_code == 400
    assert client.post("/api/v1/experiments/small/participants", json={}).status_code == 400
    assert client.post("/api/v1/experiments/small/participants",
                       json={"consent": True, "code": 5}).status_code == 400
    assert client.post("/api/v1/experiments/small/participants",
                       json={"consent": True, "population": "mturk"}).status_code == 400
    big = {"consent": True, "code": "x" * (70 * 1024)}
    r = client.post("/api/v1/experiments/small/participants", json=big)
    assert r.status_code == 413 and r.json["error"]
    for url in ("/api/v1/participants/nope/next", "/api/v1/participants/nope",
                "/api/v1/participants/" + "x" * 200 + "/next"):
        r = client.get(url)
        assert r.status_code == 404 and r.json["error"] == "unknown participant"
    assert client.post("/api/v1/participants/nope/answers", json={"n": 1, "choice": 1}).status_code == 404
    tok = client.post("/api/v1/experiments/small/participants",
                      json={"consent": True}).json["participant"]
    assert client.get(f"/api/v1/participants/{tok}/trials/99").status_code == 404
    assert client.get(f"/api/v1/participants/{tok}/trials/abc").status_code == 400
    assert client.get(f"/api/v1/participants/{tok}/trials/1").json["trial"]["n"] == 1
    assert client.get(f"/api/v1/participants/{tok}/trials/2").status_code == 409  # not open yet
    assert client.post(f"/api/v1/participants/{tok}/answers", data="n=1&choice=1",
                       content_type="application/x-www-form-urlencoded").status_code == 415
    assert client.get(f"/api/v1/participants/{tok}/answers").status_code == 405
    assert client.get("/api/v1/nothing").status_code == 404
    assert _rows(app) == 0


def test_images_served_by_token_without_metadata(app, client):
    tok = client.post("/api/v1/experiments/small/participants",
                      json={"consent": True}).json["participant"]
    trial = client.get(f"/api/v1/participants/{tok}/next").json["trial"]
    from PIL import Image
    headers = []
    for url in [trial["query"], *trial["candidates"]]:
        assert re.fullmatch(r"/i/[A-Za-z0-9_-]{32}", url)
        r = client.get(url)
        assert r.status_code == 200 and r.mimetype == "image/jpeg"
        im = Image.open(io.BytesIO(r.data))
        assert im.size == (200, 245) and not im.info.get("exif") and "comment" not in im.info
        headers.append(sorted((k, v) for k, v in r.headers.items() if k != "Content-Length"))
        assert "immutable" in r.headers["Cache-Control"]
    assert all(h == headers[0] for h in headers)
    for bad in ("/i/nope", "/i/" + "A" * 32, "/i/../../etc/passwd", "/i/%2e%2e%2fserver.sqlite3",
                "/static/../server/config.py", "/i/" + "A" * 300, "/lab/small/../../etc/passwd"):
        r = client.get(bad)
        assert r.status_code in (404, 400), bad
        assert b"root:" not in r.data and b"SECRET" not in r.data


def _login(client):
    token = _csrf(client.get("/manage/login").get_data(as_text=True))
    new = login(client)
    # Logging in starts a new session with a new CSRF token.
    assert new != token
    return new


def test_admin_login_csrf_and_dashboard(app, client):
    assert client.get("/manage/").status_code == 303
    assert client.get("/manage/api/experiments/small/key").status_code == 401
    # A POST without the session's CSRF token is refused.
    client.get("/manage/login")
    r = client.post("/manage/login", data={"username": "admin", "password": "correct horse"})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    token = _csrf(client.get("/manage/login").get_data(as_text=True))
    r = client.post("/manage/login", data={"csrf_token": token, "password": "wrong"})
    assert r.status_code == 401
    token = _login(client)
    # Some answers so that the live share shows.
    api = app.test_client()
    tok = api.post("/api/v1/experiments/small/participants",
                   json={"consent": True, "code": "Z"}).json["participant"]
    with app.app_context():
        from server.recording import get_experiment
        true = [t.true_index for t in get_experiment("small").trials]
    api.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": true[0]})
    api.post(f"/api/v1/participants/{tok}/answers", json={"n": 2, "choice": (true[1] + 1) % 5})
    dash = client.get("/manage/").get_data(as_text=True)
    assert "small" in dash and "/lab/small/" in dash
    page = client.get("/manage/experiments/small").get_data(as_text=True)
    assert "100.0 %" in page and "0.0 %" in page and "1 / 6" not in page and "2 / 6" in page
    stats = client.get("/manage/api/experiments/small/stats").json
    assert {c["condition"]: c["share"] for c in stats["conditions"]} == {"random": 1.0, "generic": 0.0}
    assert client.post("/manage/logout", data={}).status_code == 400  # no CSRF token
    assert client.post("/manage/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/manage/").status_code == 303
    assert client.get("/manage/experiments/nope", headers=AUTH).status_code in (303, 404)


def test_export_csv_and_json(app, client):
    _login(client)
    api = app.test_client()
    tok = api.post("/api/v1/experiments/small/participants",
                   json={"consent": True, "code": "alice", "population": "pilot"}).json["participant"]
    for n in (1, 2, 3):
        api.post(f"/api/v1/participants/{tok}/answers", json={"n": n, "choice": n, "rt_ms": 100.0 * n})
    text = client.get("/manage/experiments/small/answers.csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    assert header == COLUMNS + ["machine:face/dlib_hog", "machine:generic/efficientnet_lite0"]
    assert len(rows) == 3
    with app.app_context():
        from server.recording import get_experiment
        trials = get_experiment("small").trials
        # Codes are stored normalised (upper case).
        assert rows[0]["participant"] == pseudonym("ALICE") != "ALICE"
    for n, row in enumerate(rows, start=1):
        t = trials[n - 1]  # order is fixed in this fixture
        assert row["trial"] == t.key and row["trial_order"] == str(n)
        assert row["chosen_position"] == str(n + 1) and row["true_position"] == str(t.true_index + 1)
        assert row["correct"] == str(int(n == t.true_index)) and row["population"] == "pilot"
        assert float(row["rt_ms"]) == 100.0 * n and row["received_at"].endswith("Z")
        mc = json.loads(t.machine_choices)
        want = "" if mc["face/dlib_hog"] is None else str(mc["face/dlib_hog"] + 1)
        assert row["machine:face/dlib_hog"] == want
        assert row["catch"] == "0" and row["hit_id"] == ""
        # Provenance: whatever its population label, a participant the JSON API created
        # is its own platform (counted by the analysis only when named).
        assert (row["platform"], row["environment"], row["submission_status"]) == (
            "api", "api", "recorded")
        assert row["external_participant_id"] == rows[0]["participant"]
        assert row["external_session_id"] == row["status_synced_at"] == row["viewport"] == ""
    raw = list(csv.DictReader(io.StringIO(
        client.get("/manage/experiments/small/answers.csv?ids=raw").get_data(as_text=True))))
    assert raw[0]["participant"] == "ALICE" == raw[0]["external_participant_id"]
    js = client.get("/manage/experiments/small/answers.json").json
    assert set(js) == {"experiment", "trials", "answers"} and len(js["answers"]) == 3
    ints = ("trial_order", "chosen_position", "true_position", "correct", "catch")
    machines = ("machine:face/dlib_hog", "machine:generic/efficientnet_lite0")
    assert js["answers"][0] == {k: (int(v) if k in ints else v) for k, v in rows[0].items()} | {
        "rt_ms": 100.0, **{m: js["answers"][0][m] for m in machines}}
    assert len(js["trials"]) == 6
    # The answer key endpoint for the simulator (HTTP Basic auth, no session).
    key = app.test_client().get("/manage/api/experiments/small/key", headers=AUTH).json
    assert [t["true_index"] for t in key["trials"]] == [t.true_index for t in trials]


def test_index_and_error_pages(app, client):
    # `/` names no study: participants come with their own link.
    index = client.get("/").get_data(as_text=True)
    assert index and "small" not in index and "/lab/" not in index
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "Sorry" in r.get_data(as_text=True)
    r = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.json["error"]
    assert client.put("/lab/small/answer").status_code == 405
    # No participant-facing path contains "ad" (ad blockers, psiTurk #369).
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/manage", "/mturk")):
            assert "ad" not in rule.rule.lower(), rule.rule

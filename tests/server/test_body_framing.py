"""Bodies that do not match their framing are refused before anything is processed
(straight to gunicorn as deployed: a Content-Length longer than the bytes sent, a chunked
body cut short or with a chunk longer than its size, a chunked body past the limit), and
the body limit fits the researcher's longest texts while participant routes stay tight."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request

from tests.conftest import free_port
from tests.server.conftest import ROOT, login, server_env, stop, wait_http


def _raw(port: int, head: bytes, body: bytes) -> tuple[int, dict]:
    """Send one request as raw bytes, close our side, return (status, JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, json.loads(reply.split(b"\r\n\r\n", 1)[1] or b"{}")


def test_bodies_that_do_not_match_their_framing_are_refused_by_gunicorn(
        tmp_path, sqlite_template):
    shutil.copy(sqlite_template, tmp_path / "server.sqlite3")
    port = free_port()
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'server.sqlite3'}")
    env.update({"TLL_BIND": f"127.0.0.1:{port}", "TLL_WORKERS": "2"})
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             str(ROOT / "deploy" / "gunicorn.conf.py"), "server:create_app()"],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/", proc=proc)
        req = urllib.request.Request(base + "/api/v1/experiments/small/participants",
                                     data=b'{"consent": true, "code": "FRAMING"}',
                                     headers={"Content-Type": "application/json"})
        token = json.loads(urllib.request.urlopen(req, timeout=20).read())["participant"]

        def head(path: str, extra: str) -> bytes:
            return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Connection: close\r\n{extra}\r\n").encode()

        answer = f"/api/v1/participants/{token}/answers"
        body = b'{"n": 1, "choice": 2}'
        cases = [
            # a Content-Length longer than the bytes sent: the fast path and Flask's route
            (head(answer, f"Content-Length: {len(body) + 10}\r\n"), body, 400),
            (head(answer + "?via=flask", f"Content-Length: {len(body) + 10}\r\n"), body, 400),
            # chunked: no last chunk; a chunk longer than its size; ends inside a chunk
            (head(answer, "Transfer-Encoding: chunked\r\n"),
             b"%x\r\n%s\r\n" % (len(body), body), 400),
            (head(answer, "Transfer-Encoding: chunked\r\n"),
             b"5\r\n%s\r\n0\r\n\r\n" % body, 400),
            (head(answer, "Transfer-Encoding: chunked\r\n"),
             b"%x\r\n%s" % (len(body), body[:5]), 400),
            # chunked and past the participant routes' limit (64 KB)
            (head(answer, "Transfer-Encoding: chunked\r\n"),
             b"%x\r\n%s\r\n0\r\n\r\n" % (70_000 + len(body), body[:-1] + b' "x": "' +
                                         b"a" * 69_992 + b'"}'), 413),
        ]
        for h, b, want in cases:
            status, reply = _raw(port, h, b)
            assert status == want, (h, b[:40], status, reply)
            assert set(reply) == {"error", "status"} and reply["status"] == want
        # A well-framed chunked answer is taken.
        status, reply = _raw(port, head(answer, "Transfer-Encoding: chunked\r\n"),
                             b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        assert status == 201 and reply["n"] == 1
        # Nothing of the refused requests was stored.
        with urllib.request.urlopen(f"{base}/api/v1/participants/{token}", timeout=20) as r:
            assert json.loads(r.read())["answered"] == 1
    finally:
        stop(proc)


def test_a_20000_character_text_in_any_language_fits_and_participant_routes_stay_tight(app):
    admin = app.test_client()
    csrf = login(admin, "/manage/experiments/small/settings")
    texts = {"welcome": "实验欢迎" * 5000, "instructions": ("निर्देश" * 3000)[:20_000],
             "debriefing": "😀" * 20_000, "consent_text": "同意" * 10_000}
    assert all(len(t) == 20_000 for t in texts.values())
    r = admin.post("/manage/experiments/small/settings", data={"csrf_token": csrf, **texts})
    assert r.status_code == 303, r.get_data(as_text=True)[:300]
    with app.app_context():
        from server.models import Experiment, db
        exp = db.session.query(Experiment).filter_by(name="small").one()
        assert exp.text("welcome") == texts["welcome"]
        assert exp.consent_text == texts["consent_text"]
    # 20,001 characters is a clear 400, not a 413 or a 500.
    r = admin.post("/manage/experiments/small/settings",
                   data={"csrf_token": csrf, "welcome": "实" * 20_001})
    assert r.status_code == 400
    # A participant route keeps the 64 KB limit.
    r = app.test_client().post("/lab/small/start", data={"code": "X" * 10, "pad": "a" * 70_000})
    assert r.status_code == 413

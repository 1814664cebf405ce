"""A real server process killed with SIGKILL in the middle of a participant's session and
started again: every acknowledged answer is there, nothing is doubled, the participant
resumes at the first unanswered trial."""
from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

from tests.conftest import free_port

from .conftest import ROOT, server_env, stop, wait_http


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _serve(env, port):
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "server", "run",
                             "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def test_sigkill_mid_session_loses_and_doubles_nothing(tmp_path, sqlite_template):
    db = tmp_path / "crash.sqlite3"
    shutil.copy(sqlite_template, db)
    env = server_env(tmp_path, f"sqlite:///{db}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(env, port)
    try:
        wait_http(base + "/", 60, proc)
        _, start = _post(f"{base}/api/v1/experiments/small/participants",
                         {"consent": True, "code": "CRASH"})
        tok = start["participant"]
        acked: dict[int, int] = {}

        def answer_all():
            for n in range(1, 7):
                try:
                    status, body = _post(f"{base}/api/v1/participants/{tok}/answers",
                                         {"n": n, "choice": (n + 2) % 5, "rt_ms": 500 + n})
                except OSError:
                    return  # the server is gone
                assert status == 201
                acked[n] = body["choice"]
                time.sleep(0.05)

        t = threading.Thread(target=answer_all)
        t.start()
        deadline = time.time() + 30
        while len(acked) < 3 and time.time() < deadline:
            time.sleep(0.005)
        stop(proc, signal.SIGKILL)
        t.join(timeout=30)
        assert 3 <= len(acked) < 6, acked
        assert proc.returncode == -signal.SIGKILL

        con = sqlite3.connect(db)
        rows = con.execute("select r.trial_order, r.chosen_index, count(*) from responses r "
                           "group by r.participant_id, r.trial_id").fetchall()
        con.close()
        stored = {n: c for n, c, k in rows}
        assert all(k == 1 for *_, k in rows)
        assert all(stored.get(n) == c for n, c in acked.items())  # every acknowledged answer

        port2 = free_port()
        base2 = f"http://127.0.0.1:{port2}"
        proc = _serve(env, port2)
        wait_http(base2 + "/", 60, proc)
        nxt = _get(f"{base2}/api/v1/participants/{tok}/next")
        first_missing = min(set(range(1, 7)) - set(stored))
        assert nxt["trial"]["n"] == first_missing
        # Resending an acknowledged answer (the page's retry after the crash) doubles nothing.
        last = max(acked)
        status, body = _post(f"{base2}/api/v1/participants/{tok}/answers",
                             {"n": last, "choice": 0})
        assert status == 200 and body["duplicate"] and body["choice"] == acked[last]
        for n in range(first_missing, 7):
            _post(f"{base2}/api/v1/participants/{tok}/answers", {"n": n, "choice": 1})
        assert _get(f"{base2}/api/v1/participants/{tok}")["completed"] is True
    finally:
        stop(proc)
    con = sqlite3.connect(db)
    assert con.execute("select count(*), count(distinct trial_id) from responses").fetchone() == (6, 6)

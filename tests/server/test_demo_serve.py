"""The demo's server start as `make demo` runs it (scripts/demo-serve.sh, here on a free
port with a small study): links printed, the participant link answered over HTTP, the
admin password works, Ctrl-C (SIGINT) stops it cleanly; a second start reuses everything."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import requests

from tests.conftest import free_port
from tests.server.conftest import csrf_from, trial_token_from

from .conftest import ROOT, write_experiment


def _start(demo, port):
    env = dict(os.environ, DEMO=str(demo), HOST="127.0.0.1", PORT=str(port), PY=sys.executable)
    env.pop("DATABASE_URL", None)
    env.pop("TLL_INSTANCE", None)
    proc = subprocess.Popen(["sh", "scripts/demo-serve.sh"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out: list[str] = []
    ready = threading.Event()

    def drain():  # keep reading so the server never blocks on a full pipe
        for line in proc.stdout:
            out.append(line)
            if "Booting worker" in line or "Listening at" in line:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(120)
    text = "".join(out)
    assert "Participant link" in text, text
    return proc, text


def _stop(proc):
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("demo server did not stop on SIGINT") from None
    return rc


def _wait(url):
    for _ in range(200):
        try:
            return requests.get(url, timeout=60)
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_demo_serve_script(tmp_path):
    demo = tmp_path / "demo"
    f = write_experiment(demo, n_trials=3, catch=False)
    shutil.move(f, demo / "experiments" / "demo.json")
    port = free_port()
    proc, text = _start(demo, port)
    try:
        link = re.search(r"Participant link: (\S+)", text).group(1)
        admin = re.search(r"Admin link: +(\S+)", text).group(1)
        password = re.search(r"password: (\S+)", text).group(1)
        assert link == f"http://127.0.0.1:{port}/lab/demo/"
        assert admin == f"http://127.0.0.1:{port}/manage/"
        assert _wait(link).status_code == 200
        s = requests.Session()
        tok = csrf_from(s.get(link, timeout=10).text)
        r = s.post(link + "start", data={"code": "DEMO1", "csrf_token": tok})
        r = s.post(f"http://127.0.0.1:{port}/lab/demo/consent", data={"agree": "yes", "csrf_token": tok})
        s.post(f"http://127.0.0.1:{port}/lab/demo/instructions", data={"choice": "0", "csrf_token": tok})
        r = s.get(f"http://127.0.0.1:{port}/lab/demo/trial", timeout=10)
        for n in (1, 2, 3):
            # Each answer goes with the trial token of the page it answers (the last one).
            r = s.post(f"http://127.0.0.1:{port}/lab/demo/answer",
                       data={"n": str(n), "choice": "1", "csrf_token": tok,
                             "trial_token": trial_token_from(r.text)})
            assert r.status_code == 200, r.text
        assert r.url.endswith("/lab/demo/done") and "Thank you" in r.text
        key = requests.get(f"http://127.0.0.1:{port}/manage/api/experiments/demo/key",
                           auth=("admin", password), timeout=10)
        assert key.status_code == 200 and len(key.json()["trials"]) == 3
    finally:
        rc = _stop(proc)
    assert rc == 0
    assert (demo / "server.sqlite3").exists()
    assert (demo / "instance" / "admin_password").read_text().strip() == password
    # A second start: same password, the experiment unchanged, the answers kept.
    proc, text = _start(demo, port)
    try:
        assert "unchanged" in text and f"password: {password}" in text
        _wait(link)
        csv = requests.get(f"http://127.0.0.1:{port}/manage/experiments/demo/answers.csv",
                           auth=("admin", password), timeout=10)
        assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == 1 + 3
    finally:
        assert _stop(proc) == 0
    import sqlite3
    assert sqlite3.connect(demo / "server.sqlite3").execute(
        "select count(*) from responses").fetchone() == (3,)

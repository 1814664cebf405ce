"""`make demo SIMULATE=N` (scripts/demo-serve.sh): once gunicorn is up, N simulated
participants answer through the HTTP API, the researcher's home shows them, and Ctrl-C
still stops the server cleanly; a bad SIMULATE is one clear line and exit 2."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import requests

from tests.conftest import free_port

from .conftest import ROOT, write_experiment


def _env(demo, port, simulate):
    env = dict(os.environ, DEMO=str(demo), HOST="127.0.0.1", PORT=str(port),
               PY=sys.executable, SIMULATE=simulate)
    env.pop("DATABASE_URL", None)
    env.pop("TLL_INSTANCE", None)
    return env


def test_demo_serve_simulates(tmp_path):
    demo = tmp_path / "demo"
    f = write_experiment(demo, n_trials=4, catch=False)
    shutil.move(f, demo / "experiments" / "demo.json")
    port = free_port()
    proc = subprocess.Popen(["sh", "scripts/demo-serve.sh"], cwd=ROOT,
                            env=_env(demo, port, "3"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out: list[str] = []
    done = threading.Event()

    def drain():  # keep reading so the server never blocks on a full pipe
        for line in proc.stdout:
            out.append(line)
            if "Done: press" in line or "warning:" in line or "error:" in line:
                done.set()
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert done.wait(180), "".join(out)
        text = "".join(out)
        assert "3 simulated participants gave 12" in text, text
        assert f"http://127.0.0.1:{port}/manage/home/demo#report" in text
        password = (demo / "instance" / "admin_password").read_text().strip()
        js = requests.get(f"http://127.0.0.1:{port}/manage/api/experiments/demo/progress",
                          auth=("admin", password), timeout=10).json()
        assert js["participants"] == [{"platform": "simulated", "environment": "simulated",
                                       "started": 3, "completed": 3, "withdrawn": 0,
                                       "excluded": 0}]
        assert js["answers"] == 12
        assert proc.poll() is None  # the server keeps serving after the simulation
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("demo server did not stop on SIGINT") from None
    assert rc == 0
    time.sleep(0.2)
    # Nothing is left listening on the port.
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
        raise AssertionError("the server still answers after Ctrl-C")
    except requests.ConnectionError:
        pass


def test_demo_serve_bad_simulate(tmp_path):
    r = subprocess.run(["sh", "scripts/demo-serve.sh"], cwd=ROOT,
                       env=_env(tmp_path / "demo", free_port(), "many"),
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: SIMULATE must be a number of participants (0 or "
                                "more), got 'many'")
    assert not (tmp_path / "demo").exists()

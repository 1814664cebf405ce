"""Builders of answers in the CSV export format (docs/contracts.md §6) for the analysis
tests, and fixtures that write them to files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPORT_COLUMNS = ["experiment", "participant", "population", "trial", "trial_order",
                  "condition", "subset", "pair", "catch", "chosen_position", "true_position",
                  "correct", "rt_ms", "received_at", "hit_id", "assignment_id", "worker_id"]


def answer_rows(trial: str, counts, true_position: int, population: str = "mturk",
                condition: str = "random", subset: str = "TLL_d", catch: bool = False,
                machine: dict[str, int | None] | None = None, experiment: str = "exp",
                participant_prefix: str = "w", rt_ms: float = 1500.0) -> list[dict]:
    """Return export rows for one trial: counts[i] participants chose position i+1."""
    rows = []
    j = 0
    for pos, c in enumerate(counts, start=1):
        for _ in range(int(c)):
            row = {"experiment": experiment, "participant": f"{participant_prefix}{j:03d}",
                   "population": population, "trial": trial, "trial_order": 1,
                   "condition": condition, "subset": subset, "pair": trial.lstrip("t"),
                   "catch": int(catch), "chosen_position": pos,
                   "true_position": true_position, "correct": int(pos == true_position),
                   "rt_ms": rt_ms + 10 * j, "received_at": "2026-11-27T12:00:00+00:00",
                   "hit_id": "", "assignment_id": "", "worker_id": ""}
            for key, val in sorted((machine or {}).items()):
                row[f"machine:{key}"] = "" if val is None else val
            rows.append(row)
            j += 1
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    """Write rows as an answers export (base columns first, then machine columns)."""
    df = pd.DataFrame(rows)
    machine = sorted(c for c in df.columns if c.startswith("machine:"))
    df[EXPORT_COLUMNS + machine].to_csv(path, index=False)
    return path


def run_analysis(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m analysis <args>` in a subprocess; return the completed process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "analysis", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def kit():
    """The builders above, for test modules (conftest cannot be imported directly)."""
    return SimpleNamespace(answer_rows=answer_rows, write_csv=write_csv,
                           run_analysis=run_analysis, start_server=start_server,
                           server_helpers=server_helpers)


@pytest.fixture
def small_export(tmp_path) -> Path:
    """A small export: two populations, two conditions, a catch trial, two machines."""
    rows = []
    # lab: 4 participants on 4 trials; mturk: 6 on the same trials.
    spec = [("t0001", "random", "TLL_obj", [3, 0, 1, 0, 0], 1, {"face/dlib_hog": None, "generic/g": 1}),
            ("t0002", "random", "TLL_obj", [0, 4, 0, 0, 0], 2, {"face/dlib_hog": 3, "generic/g": 1}),
            ("t0003", "generic", "TLL_d", [1, 1, 1, 1, 0], 4, {"face/dlib_hog": 4, "generic/g": 2}),
            ("t0004", "generic", "TLL_d", [0, 0, 2, 0, 2], 5, {"face/dlib_hog": 5, "generic/g": 5})]
    for trial, cond, subset, counts, true, machine in spec:
        rows += answer_rows(trial, counts, true, population="lab", condition=cond,
                            subset=subset, machine=machine, participant_prefix="L")
        six = [c + c // 2 for c in counts]
        six[true - 1] += 6 - sum(six)
        rows += answer_rows(trial, six, true, population="mturk", condition=cond,
                            subset=subset, machine=machine, participant_prefix="M")
    rows += answer_rows("t0099", [0, 0, 3, 1, 0], 3, population="lab", condition="catch",
                        subset="catch", catch=True,
                        machine={"face/dlib_hog": None, "generic/g": 3}, participant_prefix="L")
    return write_csv(rows, tmp_path / "answers.csv")


@pytest.fixture
def free_port_here() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (a moment ago)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- a real server
def server_helpers():
    """The server tests' helpers (write_experiment, make_app, server_env, wait_http, stop),
    loaded from tests/server/conftest.py by path: reused, not copied."""
    import importlib.util
    name = "_tll_server_test_helpers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "server" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


ADMIN_PASSWORD = "analysis-pw-123"


def start_server(folder: Path, db_url: str, n_trials: int) -> SimpleNamespace:
    """Create the schema (Alembic), load a small experiment (n_trials, the last a catch
    trial) as `small` in fixed order and again as `empty`, set the admin password, and
    start `flask --app server run` on a free 127.0.0.1 port; return url, db_url, study,
    stop."""
    import socket
    h = server_helpers()
    study = h.write_experiment(folder / "study", n_trials=n_trials)
    # Schema, experiments and password in this process (each `flask` CLI call would cost
    # seconds of start-up); the server then runs as its own process on the same database.
    from server.loader import load_experiment
    from server.manage import set_password
    from server.models import db

    app = h.make_app(folder, db_url)
    with app.app_context():
        load_experiment(study, name="small", settings={"trial_order": "fixed",
                                                        "practice": False})
        # A second copy that never gets answers: the "no answers yet" case.
        load_experiment(study, name="empty")
        set_password(ADMIN_PASSWORD)
        db.engine.dispose()
    env = h.server_env(folder, db_url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "server", "run",
                             "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        h.wait_http(url + "/", timeout=60, proc=proc)
    except AssertionError:
        h.stop(proc)
        raise AssertionError((folder / "server.log").read_text()[-3000:]) from None

    def stop():
        h.stop(proc)
        log.close()

    return SimpleNamespace(url=url, db_url=db_url, study=study, proc=proc, stop=stop)


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory):
    """A real server on SQLite (10 trials, the last a catch trial), for the session."""
    folder = tmp_path_factory.mktemp("analysis-server")
    srv = start_server(folder, f"sqlite:///{folder / 'server.sqlite3'}", n_trials=10)
    yield srv
    srv.stop()

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
                           run_analysis=run_analysis)


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

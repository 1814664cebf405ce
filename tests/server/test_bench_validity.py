"""The server benchmark's validity check: a level whose floor run spent more than 25 %
of its CPU in the load generator is reported NOT VALID instead of a ratio, so a
slow client can never pass for a fast server. A deliberately slowed client (it burns CPU
on every request) must be caught; the ordinary lean client must not be."""
from __future__ import annotations

import csv
import importlib.util

from .conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_server", ROOT / "benchmarks" / "bench_server.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_verdict_and_client_share():
    assert bench.client_share(1.0, 3.0) == 0.25
    assert bench.verdict(0.25) and not bench.verdict(0.2501)
    assert bench.client_share(0.0, 0.0) == 1.0  # a run that used no CPU proves nothing


def _floor_run(tmp_path, capsys, name: str, *extra: str) -> tuple[dict, str]:
    out = tmp_path / name
    rc = bench.main(["--floor-only", "--paths", "api", "--modes", "keepalive", "--levels", "10",
                     "--trials", "30", "--out", str(out), *extra])
    assert rc == 0
    printed = capsys.readouterr().out
    with open(out / "bench_server.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    return rows[0], printed


def _table_rows(printed: str) -> str:
    return "\n".join(line for line in printed.splitlines() if line.startswith("| api "))


def test_slowed_client_is_not_valid_and_lean_client_is(tmp_path, capsys):
    slow, printed = _floor_run(tmp_path, capsys, "slow", "--burn-us", "4000")
    assert slow["valid"] == "False", slow
    assert float(slow["floor_client_share"]) > bench.MAX_CLIENT_SHARE
    assert "NOT VALID" in _table_rows(printed)
    assert int(slow["errors"]) == 0

    lean, printed = _floor_run(tmp_path, capsys, "lean")
    assert lean["valid"] == "True", lean
    assert float(lean["floor_client_share"]) <= bench.MAX_CLIENT_SHARE
    assert "NOT VALID" not in _table_rows(printed) and int(lean["errors"]) == 0


def test_median_rows_take_the_median_of_each_cells_runs():
    def run(rep, per_s, floor, ratio, conn="keepalive"):
        return {"path": "api", "connections": conn, "via": "gunicorn", "database": "sqlite",
                "participants": 50, "repeat": rep, "floor_req_per_s": floor,
                "answers_per_s": per_s, "cpu_ms": 1.0 + rep, "floor_cpu_ms": 0.5,
                "db_cpu_ms": 0.0, "p50_ms": 10.0 * rep, "p99_ms": 50.0 + rep, "ratio": ratio,
                "errors": rep - 1}
    rows = [run(1, 1000, 2000, 0.5), run(2, 1500, 2000, 0.75), run(3, 900, 3000, 0.3),
            run(1, 800, 2000, None, conn="new"), run(2, 900, 2000, 0.45, conn="new")]
    keep, new = bench.median_rows(rows)
    assert (keep["connections"], keep["runs"]) == ("keepalive", 3)
    assert (keep["answers_per_s"], keep["floor_req_per_s"], keep["ratio"]) == (1000, 2000, 0.5)
    assert (keep["ratio_min"], keep["ratio_max"], keep["errors"]) == (0.3, 0.75, 3)
    assert keep["cpu_ms"] == 3.0 and keep["p99_ms"] == 52.0
    # A cell with any run not valid gets no ratio at all.
    assert new["runs"] == 2 and new["ratio"] is None and new["answers_per_s"] == 850

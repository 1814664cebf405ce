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

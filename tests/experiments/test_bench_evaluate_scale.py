"""The evaluate scale benchmark at a small N: its table rows, its ratios to the product
and the projection's arithmetic, as printed and written to the CSV."""
from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "bench_evaluate_scale", ROOT / "benchmarks" / "bench_evaluate_scale.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_whole_evaluation_rows_and_ratios(tmp_path, capsys):
    rows = bench.main(["--pairs", "600", "--csv", str(tmp_path / "a.csv")])
    assert [r["step"] for r in rows] == ["product N x N x 1280"] + [
        f"evaluate {k}" for k in bench.SETS] + ["evaluate (all three sets)"]
    prod, sets, total = rows[0], rows[1:4], rows[4]
    assert [r["d"] for r in sets] == [1280, 128, 1280]
    for r in sets + [total]:
        assert math.isclose(r["wall_ratio"], r["wall_s"] / prod["wall_s"])
        assert math.isclose(r["cpu_ratio"], r["cpu_s"] / prod["cpu_s"])
        assert r["peak_rss_mb"] > 50
    assert math.isclose(total["cpu_s"], sum(r["cpu_s"] for r in sets))
    assert all(r["R@1"] > 100 / 600 * 5 for r in sets)   # the true match is findable
    with open(tmp_path / "a.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 5
    assert "x product" in capsys.readouterr().out


def test_sharded_run_and_projection(tmp_path, capsys):
    rows = bench.main(["--pairs", "2100", "--shards", "3", "--project", "21000",
                       "--csv", str(tmp_path / "b.csv")])
    tasks = [r for r in rows if r["step"].startswith("task")]
    assert [r["step"] for r in tasks] == ["task 1/3", "task 2/3", "task 3/3"]
    assert rows[3]["step"] == "finalize (merge)"
    proj = rows[-1]
    cpu = sum(r["cpu_s"] for r in tasks)
    peak, fixed = max(r["peak_rss_mb"] for r in tasks), max(r["start_rss_mb"] for r in tasks)
    assert proj["tasks"] == 30 and math.isclose(proj["cpu_s"], cpu * 100)
    assert math.isclose(proj["peak_rss_mb"], fixed + (peak - fixed) * 10)
    out = capsys.readouterr().out
    assert "x f^2" in out and "CPU hours" in out

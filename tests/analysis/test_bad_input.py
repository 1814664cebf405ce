"""Bad input gives one clear line per problem and exit status 2, never a traceback, and
never a half-written report."""
from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from analysis import report as report_mod
from analysis.cli import main

FAST = ["--dpi", "60", "--bootstrap", "100"]  # small figures, few resamples: tests stay quick
# the report also skips the mixed model's likelihood profile (seconds of R per run)
FAST_REPORT = [*FAST, "--model-intervals", "wald"]


def _err(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_csv_missing_columns_are_named_in_a_subprocess(tmp_path, kit, small_export):
    df = pd.read_csv(small_export).drop(columns=["chosen_position", "true_position"])
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    proc = kit.run_analysis("accuracy", "--csv", bad)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "missing columns chosen_position, true_position" in proc.stderr
    assert proc.stderr.count("\n") == 1  # one problem, one line


def test_missing_sqlite_file_is_reported_and_not_created(tmp_path, capsys):
    db = tmp_path / "nope.sqlite3"
    assert main(["report", "--db", f"sqlite:///{db}", "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "database file not found" in err and str(db) in err
    assert not db.exists() and not (tmp_path / "r").exists()


def test_empty_database(tmp_path, capsys):
    db = tmp_path / "empty.sqlite3"
    sqlite3.connect(db).close()
    assert db.exists()
    assert main(["accuracy", "--db", f"sqlite:///{db}"]) == 2
    assert "is empty: no experiment tables" in _err(capsys)


def test_database_with_other_tables_names_the_missing_ones(tmp_path, capsys):
    db = tmp_path / "partial.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT)")
    assert main(["accuracy", "--db", f"sqlite:///{db}"]) == 2
    assert "lacks table(s) trials, participants, responses" in _err(capsys)


def test_not_a_database_url(capsys):
    assert main(["accuracy", "--db", "not a url"]) == 2
    assert "not a database URL" in _err(capsys)


def test_unknown_experiment_lists_the_ones_that_exist(small_export, capsys):
    assert main(["accuracy", "--csv", str(small_export), "--experiment", "nope"]) == 2
    err = _err(capsys)
    assert "no experiment named 'nope'" in err and "experiments there: exp" in err


def test_several_experiments_need_a_choice(tmp_path, kit, capsys):
    rows = (kit.answer_rows("t0001", [1, 1, 0, 0, 0], 1, experiment="one")
            + kit.answer_rows("t0001", [2, 0, 0, 0, 0], 1, experiment="two"))
    path = kit.write_csv(rows, tmp_path / "two.csv")
    assert main(["position", "--csv", str(path)]) == 2
    assert "choose one with --experiment: one, two" in _err(capsys)
    assert main(["position", "--csv", str(path), "--experiment", "two"]) == 0
    out = capsys.readouterr().out
    assert "experiment two" in out


def test_unknown_population(small_export, capsys):
    assert main(["accuracy", "--csv", str(small_export), "--population", "mturk,martians"]) == 2
    err = _err(capsys)
    assert "unknown population 'martians'" in err and "lab, mturk" in err


def test_header_only_csv_has_no_answers(tmp_path, small_export, capsys):
    empty = tmp_path / "header.csv"
    empty.write_text(small_export.read_text().splitlines()[0] + "\n")
    assert main(["report", "--csv", str(empty), "--out", str(tmp_path / "r")]) == 2
    assert "no answers" in _err(capsys)
    assert not (tmp_path / "r").exists()


def test_empty_file_and_missing_file(tmp_path, capsys):
    (tmp_path / "zero.csv").write_text("")
    assert main(["accuracy", "--csv", str(tmp_path / "zero.csv")]) == 2
    assert "the file is empty" in _err(capsys)
    assert main(["accuracy", "--csv", str(tmp_path / "absent.csv")]) == 2
    assert "CSV file not found" in _err(capsys)


def test_positions_out_of_range(tmp_path, small_export, capsys):
    df = pd.read_csv(small_export, dtype=str)
    df.loc[3, "chosen_position"] = "7"
    df.loc[5, "catch"] = "maybe"
    bad = tmp_path / "range.csv"
    df.to_csv(bad, index=False)
    assert main(["accuracy", "--csv", str(bad)]) == 2
    err = _err(capsys)
    assert "column chosen_position: 1 row(s)" in err and "row 5, '7'" in err
    assert "column catch: 1 row(s) not 0/1" in err
    assert len(err.strip().splitlines()) == 2


def test_source_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["accuracy"])
    assert exc.value.code == 2
    assert "one of the options --db --csv --json is required" in capsys.readouterr().err


def test_out_that_is_not_a_report_is_left_alone(tmp_path, small_export, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert main(["report", "--csv", str(small_export), "--out", str(out)]) == 2
    assert "is not an earlier report" in _err(capsys)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_a_failing_report_leaves_the_earlier_one_intact(tmp_path, small_export, monkeypatch,
                                                         capsys):
    out = tmp_path / "report"
    assert main(["report", "--csv", str(small_export), "--out", str(out), *FAST_REPORT]) == 0
    before = sorted(p.name for p in out.iterdir())
    html = (out / "report.html").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_mod.plots, "accuracy_plot", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["report", "--csv", str(small_export), "--out", str(out), *FAST_REPORT])
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "report.html").read_bytes() == html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv", "report"]  # no temp

    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        main(["report", "--csv", str(small_export), "--out", str(fresh), *FAST_REPORT])
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv", "report"]


@pytest.mark.parametrize("extra,message", [
    (["--position-bias", "1,2,3,4"], "--position-bias needs 5 weights, got 4"),
    (["--position-bias", "1,a,3,4,5"], "--position-bias: not numbers"),
    (["--accuracy", "1.5"], "--accuracy must be a probability in [0, 1], got 1.5"),
    (["--participants", "0"], "--participants must be between 1 and"),
])
def test_simulate_bad_arguments(extra, message, capsys):
    args = ["simulate", "--server", "http://127.0.0.1:9", "--experiment", "demo",
            "--participants", "3", "--admin-password", "x"]
    for i in range(0, len(extra), 2):
        if extra[i] in args:
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += extra[i:i + 2]
    assert main(args) == 2
    assert message in _err(capsys)


def test_simulate_without_password_or_server(free_port_here, monkeypatch, capsys):
    monkeypatch.delenv("TLL_ADMIN_PASSWORD", raising=False)
    base = ["simulate", "--server", f"http://127.0.0.1:{free_port_here}", "--experiment",
            "demo", "--participants", "2"]
    assert main(base) == 2
    assert "admin password is needed" in _err(capsys)
    assert main(base + ["--admin-password", "pw"]) == 2
    err = _err(capsys)
    assert "cannot reach the server" in err and "Connection refused" in err

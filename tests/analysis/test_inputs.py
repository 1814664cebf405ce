"""Inputs an analyst brings: the JSON export, every database URL the server accepts, and
inconsistent answers, each rejected with one clear line per problem."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.cli import main
from analysis.load import load_answers
from analysis.plots import slug


def _err(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def _json_export(csv_path, path, design=None):
    """The server's JSON export shape built from a CSV export's rows (numbers as numbers,
    empty machine choices as "")."""
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    rows = []
    for r in df.to_dict("records"):
        for k in ("chosen_position", "true_position", "correct", "catch", "trial_order"):
            r[k] = int(r[k])
        r["rt_ms"] = float(r["rt_ms"]) if r["rt_ms"] else ""
        rows.append(r)
    keys = sorted(c[len("machine:"):] for c in df.columns if c.startswith("machine:"))
    doc = {"experiment": {"name": "exp", "feature_sets": keys,
                          "design": {"feature_sets": design or {}}},
           "trials": [], "answers": rows}
    path.write_text(json.dumps(doc))
    return path


def test_json_export_gives_the_same_answers_as_the_csv(tmp_path, small_export, capsys):
    js = _json_export(small_export, tmp_path / "answers.json",
                      design={"generic": "generic/g", "face": "face/dlib_hog"})
    a, b = load_answers(csv=small_export), load_answers(json_export=js)
    pd.testing.assert_frame_equal(a.df, b.df)
    assert b.machine_keys == a.machine_keys and b.source.startswith("JSON")
    assert b.condition_features == {"generic": "generic/g", "face": "face/dlib_hog"}
    assert main(["accuracy", "--json", str(js)]) == 0
    assert "machine: the condition's own features" in capsys.readouterr().out


@pytest.mark.parametrize("prefix", ["postgres://", "postgresql://"])
def test_every_postgres_url_the_server_accepts(postgres_url, prefix, capsys):
    # The database is empty: reaching "is empty" proves the URL was accepted and used.
    rest = postgres_url.split("://", 1)[1]
    assert main(["accuracy", "--db", prefix + rest]) == 2
    err = _err(capsys)
    assert "is empty: no experiment tables" in err and "cannot use" not in err


@pytest.mark.parametrize("edit,message", [
    (lambda df: df.assign(chosen_position=df["chosen_position"].astype(str).where(
        df.index != 3, "2.5")), ("column chosen_position: 1 row(s) with a value that is not a "
                                 "position 1..5 (first: row 5, '2.5')")),
    (lambda df: df.assign(rt_ms=df["rt_ms"].where(df.index != 0, -5.0)),
     "column rt_ms: 1 negative response time(s) (first: participant L000, trial t0001, -5 ms)"),
    (lambda df: pd.concat([df, df.iloc[[2]]]),
     ("1 duplicate answer row(s): the same participant answered the same trial twice "
      "(first: participant L002, trial t0001)")),
    (lambda df: df.assign(true_position=df["true_position"].where(df.index != 1, 3)),
     "1 trial(s) whose rows disagree on true_position (first: trial t0001 has 1, 3)"),
])
def test_inconsistent_answers_are_refused_with_one_line(tmp_path, small_export, capsys, edit,
                                                         message):
    bad = tmp_path / "bad.csv"
    edit(pd.read_csv(small_export)).to_csv(bad, index=False)
    assert main(["accuracy", "--csv", str(bad)]) == 2
    err = _err(capsys)
    assert message in err, err
    assert err.count("\n") == 1


def test_catch_only_answers_say_so_and_exit_non_zero(tmp_path, kit, capsys):
    rows = kit.answer_rows("t0099", [0, 0, 3, 1, 0], 3, condition="catch", subset="catch",
                           catch=True)
    path = kit.write_csv(rows, tmp_path / "catch.csv")
    assert main(["report", "--csv", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "only catch-trial answers (4" in _err(capsys)
    assert not (tmp_path / "r").exists()
    assert main(["accuracy", "--csv", str(path)]) == 2
    assert main(["accuracy", "--csv", str(path), "--include-catch"]) == 0


def test_an_unusable_out_is_a_clear_message(tmp_path, small_export, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["report", "--csv", str(small_export), "--out", str(blocker / "r")]) == 2
    err = _err(capsys)
    assert "cannot write the report to" in err and str(blocker) in err


def test_figure_names_of_different_labels_never_collide():
    assert slug("AMT/US") != slug("AMT_US")
    assert slug("AMT_US") == "AMT_US" and slug("lab") == "lab"
    assert len({slug(x) for x in ["a b", "a_b", "a/b", "a.b"]}) == 4

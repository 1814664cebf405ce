"""Counting rule "withdrawn": the answers of participants who withdrew leave every table
by default, applied before the other rules, shown in the counting table and in the
report's "What was counted"; --include-withdrawn brings them back; exports without the
column (made before withdrawal existed) count as before."""
from __future__ import annotations

import pandas as pd

from analysis.cli import main
from analysis.counting import count_answers
from analysis.load import load_answers

GONE_AT = "2026-11-27T12:30:00.000Z"


def export_with_withdrawals(kit, path, provenance: bool = True):
    """Lab answers on four trials; the participants L000 and L001 withdrew, and L001 was
    also a rehearsal (environment sandbox on mturk) so both rules would exclude it."""
    rows = []
    for trial, counts, true in (("t0001", [3, 1, 0, 0, 0], 1), ("t0002", [0, 4, 0, 0, 0], 2),
                                ("t0003", [1, 1, 1, 1, 0], 4), ("t0004", [0, 0, 2, 0, 2], 5)):
        rows += kit.answer_rows(trial, counts, true, population="lab", participant_prefix="L")
    df = pd.DataFrame(rows)
    if provenance:
        df["platform"], df["environment"], df["submission_status"] = "lab", "lab", "recorded"
        df.loc[df["participant"] == "L001", ["platform", "environment", "submission_status"]] = \
            ["mturk", "sandbox", "submitted"]
    df["withdrawn_at"] = ""
    df.loc[df["participant"].isin(["L000", "L001"]), "withdrawn_at"] = GONE_AT
    df.to_csv(path, index=False)
    return path


def test_withdrawn_rule_first_in_counting(kit, tmp_path):
    path = export_with_withdrawals(kit, tmp_path / "answers.csv")
    a = load_answers(csv=path)
    c = a.counting
    assert (c.total, c.counted) == (16, 8)
    # L001 is excluded by the first rule it fails: withdrawn, not environment.
    assert c.excluded == {"withdrawn": 8, "environment": 0, "status": 0}
    assert set(a.df["participant"]) == {"L002", "L003"}
    table = c.table.set_index(["platform", "environment", "submission_status"])
    assert table.loc[("mturk", "sandbox", "submitted"), "decision"] == "excluded: withdrawn"
    assert c.lines()[1] == ("excluded 8 answer(s): the participant withdrew their answers "
                            "(counted only when asked for)")
    both = load_answers(csv=path, include_withdrawn=True)
    assert both.counting.counted == 12  # L001 stays out as a rehearsal
    assert both.counting.excluded == {"withdrawn": 0, "environment": 4, "status": 0}


def test_without_provenance_and_without_the_column(kit, tmp_path):
    path = export_with_withdrawals(kit, tmp_path / "answers.csv", provenance=False)
    a = load_answers(csv=path)
    assert (a.counting.total, a.counting.counted, a.counting.provenance) == (16, 8, False)
    assert a.counting.excluded == {"withdrawn": 8}
    old = kit.write_csv(pd.read_csv(path).drop(columns="withdrawn_at").to_dict("records"),
                        tmp_path / "old.csv")
    b = load_answers(csv=old)
    assert b.counting.counted == 16 and b.counting.excluded == {"withdrawn": 0}
    kept, counting = count_answers(pd.read_csv(path, keep_default_na=False))
    assert len(kept) == 8 and counting.excluded["withdrawn"] == 8


def test_cli_and_report_say_what_was_withdrawn(kit, tmp_path, capsys):
    path = export_with_withdrawals(kit, tmp_path / "answers.csv")
    assert main(["accuracy", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "counted 8 of 16 answers" in out and "excluded 8 answer(s): the participant withdrew" in out
    assert main(["accuracy", "--csv", str(path), "--include-withdrawn"]) == 0
    out = capsys.readouterr().out
    assert "counted 12 of 16 answers" in out and "included (asked for)" in out
    report = tmp_path / "report"
    assert main(["report", "--csv", str(path), "--out", str(report), "--dpi", "50",
                 "--bootstrap", "50", "--model-intervals", "wald"]) == 0
    counting = pd.read_csv(report / "counting.csv")
    assert int(counting.loc[counting["decision"] == "excluded: withdrawn", "answers"].sum()) == 8
    html = (report / "report.html").read_text()
    section = html.split('<section id="counting">', 1)[1].split("</section>", 1)[0]
    assert "the participant withdrew their answers" in section
    assert "excluded: withdrawn" in section

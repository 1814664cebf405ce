"""Declared participant exclusions: off unless named, counted in what was counted, and a
clear message for an unknown rule."""
from __future__ import annotations

from analysis.cli import main
from analysis.exclusions import exclude_participants
from analysis.load import load_answers


def test_failed_catch_and_fast_exclusions_are_counted(small_export):
    answers = load_answers(csv=small_export)
    assert exclude_participants(answers, None) is answers  # off unless named
    out = exclude_participants(answers, ["failed-catch"])
    gone = set(answers.df["participant"]) - set(out.df["participant"])
    assert gone == {"L003"}  # the one who failed the catch trial (conftest)
    removed = int((answers.df["participant"] == "L003").sum())
    assert len(out.df) == len(answers.df) - removed
    assert out.counting.counted == answers.counting.counted - removed
    assert (f"declared exclusion 'failed-catch' (participants who failed a catch trial): "
            f"1 participant(s), {removed} answer(s) removed") in out.counting.lines()
    # every response time in the export is 1.5-1.6 s: a 2 s threshold drops everyone left
    fast = exclude_participants(answers, ["failed-catch", "fast"], fast_ms=2000)
    assert fast.df.empty
    assert any(line.startswith("declared exclusion 'fast'") and "9 participant(s)" in line
               for line in fast.counting.lines())


def test_cli_exclusion_and_unknown_rule(small_export, capsys):
    assert main(["participants", "--csv", str(small_export), "--exclude", "failed-catch"]) == 0
    out = capsys.readouterr().out
    assert "declared exclusion 'failed-catch'" in out and "L003" not in out.split("== part")[1]
    assert main(["accuracy", "--csv", str(small_export), "--exclude", "nervous"]) == 2
    err = capsys.readouterr().err
    assert "unknown exclusion 'nervous' (one of failed-catch, position-bias, fast)" in err
    assert "Traceback" not in err

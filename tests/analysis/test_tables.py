"""Accuracy (Table 2b with machine rows), Wilson intervals, catch trials, participants
and response times on small answer sets whose right values are known by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import accuracy, participants, response_times
from analysis.cli import main
from analysis.load import load_answers
from analysis.stats import wilson_interval


@pytest.mark.parametrize("k,n", [(0, 20), (3, 20), (17, 20), (20, 20), (627, 2400), (1, 1)])
def test_wilson_interval_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12)
    assert hi == pytest.approx(ci.high, abs=1e-12)
    assert lo <= k / n <= hi


def test_wilson_interval_of_nothing_is_nan():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_accuracy_by_cell_population_and_machine_rows(small_export):
    answers = load_answers(csv=small_export)
    assert answers.machine_keys == ["face/dlib_hog", "generic/g"]
    long = accuracy.accuracy_long(answers.without_catch())
    got = {(r, s, c): (k, n) for r, s, c, k, n in
           long[["row", "subset", "condition", "correct", "n"]].itertuples(index=False)}
    assert got[("lab", "TLL_obj", "random")] == (7, 8)
    assert got[("lab", "TLL_d", "generic")] == (3, 8)
    assert got[("mturk", "TLL_obj", "random")] == (11, 12)
    assert got[("mturk", "TLL_d", "generic")] == (6, 12)
    assert got[("lab", *accuracy.POOLED)] == (10, 16)  # the catch trial is left out
    # Machine rows count each trial once; no choice (no face) counts as wrong.
    assert got[("machine: face/dlib_hog", "TLL_obj", "random")] == (0, 2)
    assert got[("machine: face/dlib_hog", "TLL_d", "generic")] == (2, 2)
    assert got[("machine: generic/g", "TLL_obj", "random")] == (1, 2)
    assert got[("machine: generic/g", "TLL_d", "generic")] == (1, 2)
    face = long[(long["row"] == "machine: face/dlib_hog") & (long["subset"] == "TLL_obj")]
    assert face["no_choice"].iloc[0] == 1
    lab = long[(long["row"] == "lab") & (long["subset"] == "TLL_obj")].iloc[0]
    ci = stats.binomtest(7, 8).proportion_ci(method="wilson")
    assert (lab["ci_low"], lab["ci_high"]) == pytest.approx((ci.low, ci.high))

    table = accuracy.accuracy_table(long)  # the paper's Table 2b layout
    assert table.index.tolist() == ["lab", "mturk", "machine: face/dlib_hog",
                                    "machine: generic/g"]
    assert table.columns.tolist() == [("TLL_obj", "random"), ("TLL_d", "generic"),
                                      ("all subsets", "all conditions")]
    assert table.loc["lab", ("TLL_obj", "random")] == 87.5
    assert table.loc["machine: face/dlib_hog", ("TLL_d", "generic")] == 100.0
    text = accuracy.accuracy_table(long, "text")
    assert text.loc["mturk", ("TLL_d", "generic")].startswith("50.00 [") and \
        text.loc["mturk", ("TLL_d", "generic")].endswith("n=12")


@pytest.mark.parametrize("mapping,random_k,generic_k", [
    ({"generic": "face/dlib_hog"}, 0, 2),                      # random uses generic's
    ({"random": "generic/g", "generic": "face/dlib_hog"}, 1, 2),
])
def test_the_papers_machine_row_uses_each_conditions_own_features(small_export, mapping,
                                                                   random_k, generic_k):
    answers = load_answers(csv=small_export)
    long = accuracy.accuracy_long(answers.without_catch(), mapping)
    row = long[long["row"] == accuracy.PAPER_MACHINE_ROW].set_index("condition")
    assert row.loc["random", ["correct", "n"]].tolist() == [random_k, 2]
    assert row.loc["generic", ["correct", "n"]].tolist() == [generic_k, 2]
    assert row.loc["all conditions", "correct"] == random_k + generic_k
    assert row.loc["random", "no_choice"] == (1 if mapping.get("random") is None else 0)
    assert accuracy.PAPER_MACHINE_ROW not in set(accuracy.accuracy_long(answers.df)["row"])


def test_a_subset_named_all_is_a_subset_like_any_other(tmp_path, kit):
    # The demo builds every condition on subset "all" (every pair, contracts §4): its
    # cells must not be mistaken for the pooled cell.
    rows = (kit.answer_rows("t0001", [4, 0, 0, 0, 0], 1, subset="all", condition="random",
                            machine={"g": 1})
            + kit.answer_rows("t0002", [0, 4, 0, 0, 0], 1, subset="all", condition="face",
                              machine={"g": 2}))
    long = accuracy.accuracy_long(load_answers(csv=kit.write_csv(rows, tmp_path / "a.csv")).df)
    got = {(r, s, c): (k, n) for r, s, c, k, n in
           long[["row", "subset", "condition", "correct", "n"]].itertuples(index=False)}
    assert got[("mturk", "all", "random")] == (4, 4)
    assert got[("mturk", "all", "face")] == (0, 4)
    assert got[("mturk", *accuracy.POOLED)] == (4, 8)
    assert got[("machine: g", "all", "random")] == (1, 1)
    assert got[("machine: g", "all", "face")] == (0, 1)
    assert got[("machine: g", *accuracy.POOLED)] == (1, 2)


def test_paper_column_order():
    rows = []
    for s, c in [("TLL_d", "generic"), ("mine", "x"), ("TLL_d", "face"), ("TLL_obj", "generic"),
                 ("TLL_d", "random"), ("TLL_obj", "random"), ("TLL_d", "face_generic")]:
        rows.append({"subset": s, "condition": c})
    assert accuracy.cells(pd.DataFrame(rows)) == [
        ("TLL_obj", "random"), ("TLL_obj", "generic"), ("TLL_d", "random"), ("TLL_d", "face"),
        ("TLL_d", "face_generic"), ("TLL_d", "generic"), ("mine", "x")]


def test_catch_trials_reported_separately(small_export):
    answers = load_answers(csv=small_export)
    cs = accuracy.catch_summary(answers.catch_only())
    assert cs.to_dict("records")[0] | {} == {
        "population": "lab", "answers": 4, "correct": 3, "accuracy": 0.75,
        "ci_low": pytest.approx(wilson_interval(3, 4)[0]),
        "ci_high": pytest.approx(wilson_interval(3, 4)[1]),
        "participants": 4, "participants_failed": 1}
    with_catch = accuracy.accuracy_long(answers.df)
    lab_all = with_catch[(with_catch["row"] == "lab")
                         & (with_catch["subset"] == accuracy.POOLED[0])]
    assert lab_all["n"].iloc[0] == 20


def test_participant_flags(tmp_path, kit, small_export):
    answers = load_answers(csv=small_export)
    table = participants.participant_table(answers.df).set_index("participant")
    assert table.loc["L003", "failed_catch"] and table.loc["L003", "catch_failed"] == 1
    assert not table.loc["L000", "failed_catch"]
    assert table.loc["L000", "answers"] == 4  # ordinary trials only
    assert table.loc["L000", "accuracy"] == 0.5  # L000 chose 1, 2, 1, 3 against 1, 2, 4, 5

    # A participant who always clicks position 1 on 30 trials is flagged; one who
    # spreads answers evenly is not.
    rows = []
    for t in range(30):
        true = t % 5 + 1
        rows += kit.answer_rows(f"t{t:04d}", [1, 0, 0, 0, 0], true, participant_prefix="one")
        even = [0] * 5
        even[t % 5] = 1
        rows += kit.answer_rows(f"t{t:04d}", even, true, participant_prefix="even")
    table = participants.participant_table(
        load_answers(csv=kit.write_csv(rows, tmp_path / "p.csv")).df).set_index("participant")
    one = table.loc["one000"]
    assert one["position_bias"] and one["top_position"] == 1 and one["top_share"] == 1.0
    assert one["position_p"] == pytest.approx(
        5 * stats.binomtest(30, 30, 0.2, alternative="greater").pvalue)
    assert not table.loc["even000", "position_bias"]
    assert table.loc["even000", "position_p"] == 1.0
    assert table.loc["even000", "accuracy"] == 1.0


def test_response_times_by_condition(small_export):
    answers = load_answers(csv=small_export)
    rt = response_times.rt_table(answers.without_catch())
    lab = rt[rt["population"] == "lab"].set_index("condition")
    assert lab.index.tolist() == ["random", "generic"]
    # answer_rows gives participant j of a trial 1500 + 10 j ms; 4 lab answers per trial.
    assert lab.loc["random", "median_ms"] == np.median([1500, 1510, 1520, 1530] * 2)
    assert lab.loc["random", "timed"] == 8


def test_accuracy_command_prints_table_2b(small_export, capsys):
    assert main(["accuracy", "--csv", str(small_export)]) == 0
    out = capsys.readouterr().out
    assert "machine: face/dlib_hog" in out and "TLL_obj" in out and "87.5" in out
    assert "catch trials" in out


def test_population_filter(small_export, capsys):
    assert main(["position", "--csv", str(small_export), "--population", "mturk"]) == 0
    out = capsys.readouterr().out
    assert "mturk" in out and "lab" not in out
    assert main(["agreement", "--csv", str(small_export), "--population", "lab,mturk"]) == 0
    out = capsys.readouterr().out
    assert "population lab" in out and "population mturk" in out

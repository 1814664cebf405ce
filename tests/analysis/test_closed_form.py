"""Statistics whose right values are known in closed form: clustered intervals, Fleiss'
kappa, the majority rule, position bias with unevenly shown true matches, the
participant flag, Holm-corrected tests, the mixed model and human-likeness."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import (
    accuracy,
    agreement,
    comparisons,
    intervals,
    items,
    likeness,
    participants,
    position,
)
from analysis.stats import (
    cohen_h,
    format_p,
    wilson_interval,
)


def _frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as the analysis reads them: through a CSV export and load_answers."""
    import tempfile
    from pathlib import Path

    from analysis.load import load_answers
    sys_path = Path(__file__).resolve().parent
    import importlib.util
    spec = importlib.util.spec_from_file_location("_kit", sys_path / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with tempfile.TemporaryDirectory() as d:
        path = mod.write_csv(rows, Path(d) / "answers.csv")
        return load_answers(csv=path).without_catch()


def _answers(kit, spec, population="mturk", prefix="w") -> list[dict]:
    rows = []
    for trial, counts, true, cond, machine in spec:
        rows += kit.answer_rows(trial, counts, true, population=population, condition=cond,
                                machine=machine, participant_prefix=prefix)
    return rows


# --------------------------------------------------------------------------- intervals
def _trial_answers(right: np.ndarray) -> pd.DataFrame:
    """Answers from a (trials x answers) 0/1 array, each answer by its own worker."""
    t, n = right.shape
    return pd.DataFrame({"trial": np.repeat(np.arange(t), n),
                         "participant": np.arange(t * n), "correct": right.ravel()})


def test_trial_bootstrap_is_sqrt_n_wider_than_wilson_when_trials_are_all_or_nothing():
    # 40 trials of 16 answers: 20 trials all right, 20 all wrong (intra-trial correlation 1).
    # Resampling trials gives sd sqrt(.25/40); Wilson assumes 640 independent answers,
    # sd sqrt(.25/640): the widths differ by sqrt(16) = 4 (t on 39 df adds 3 %).
    right = np.repeat(np.r_[np.ones(20), np.zeros(20)][:, None], 16, axis=1)
    lo, hi, design = intervals.share_interval(_trial_answers(right), 4000, seed=1)
    wlo, whi = wilson_interval(320, 640)
    assert design == intervals.TRIAL
    assert lo < 0.5 < hi
    assert 3.4 < (hi - lo) / (whi - wlo) < 4.6


def test_trial_bootstrap_matches_wilson_when_answers_are_independent():
    # Independent answers (no trial effect): the one-stage trial bootstrap must not count
    # the binomial noise twice; the two-stage one was about sqrt(2) times wider.
    right = np.random.default_rng(3).random((40, 16)) < 0.5
    lo, hi, design = intervals.share_interval(_trial_answers(right), 4000, seed=1)
    wlo, whi = wilson_interval(int(right.sum()), right.size)
    assert design == intervals.TRIAL
    assert 0.85 < (hi - lo) / (whi - wlo) < 1.2


def test_accuracy_long_carries_both_intervals_and_the_default_follows_the_design(kit):
    spec = [(f"t{i:03d}", [10, 0, 0, 0, 0] if i % 2 else [0, 10, 0, 0, 0], 1, "random", None)
            for i in range(20)]
    df = _frame(_answers(kit, spec))
    long = accuracy.accuracy_long(df, n_resamples=1000, seed=0)
    cell = long[(long["row"] == "mturk") & (long["condition"] == "random")].iloc[0]
    assert cell["accuracy"] == 0.5 and cell["trials"] == 20 and cell["n"] == 200
    # the same ten workers answered every trial: participants and trials both cluster
    assert cell["interval"] == intervals.CROSSED
    assert (cell["high"] - cell["low"]) > 2.5 * (cell["ci_high"] - cell["ci_low"])
    text = accuracy.accuracy_table(long, "text").loc["mturk", ("TLL_d", "random")]
    assert text == (f"50.00 [{100 * cell['low']:.2f}, {100 * cell['high']:.2f}] "
                    f"n=200")
    assert "mturk: two-way cluster-robust" in accuracy.intervals_used(long)


def test_two_decimals_and_a_dash_for_a_machine_without_any_choice(kit):
    # 400 answers, 273 right: 68.25 % must not print as 68.2
    spec = [("t001", [273, 127, 0, 0, 0], 1, "generic", {"face/x": None, "generic/g": 1})]
    df = _frame(_answers(kit, spec))
    long = accuracy.accuracy_long(df, n_resamples=50)
    pct = accuracy.accuracy_table(long, "percent")
    assert pct.loc["mturk", ("TLL_d", "generic")] == 68.25
    assert math.isnan(pct.loc["machine: face/x", ("TLL_d", "generic")])
    assert pct.loc["machine: generic/g", ("TLL_d", "generic")] == 100.0
    assert accuracy.accuracy_table(long, "text").loc["machine: face/x", ("TLL_d", "generic")] == "—"


def test_p_values_and_effect_sizes_print_as_a_paper_wants():
    assert format_p(1e-12) == "< 0.001" and format_p(0.0123) == "0.012"
    assert format_p(float("nan")) == "—"
    from analysis.stats import format_p_columns
    t = format_p_columns(pd.DataFrame({"p": [1e-9], "p_holm": [0.5], "bias_p": [2e-4],
                                       "population": ["lab"], "chi2": [1e-9]}))
    assert t.iloc[0].tolist() == ["< 0.001", "0.500", "< 0.001", "lab", 1e-9]
    assert cohen_h(0.5, 0.5) == 0.0
    assert cohen_h(1.0, 0.0) == pytest.approx(math.pi)


# --------------------------------------------------------------------------- agreement
def test_fleiss_kappa_known_values_and_statsmodels():
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_kappa
    # every trial unanimous, on positions used equally often: kappa = 1
    total = np.array([[4, 0, 0, 0, 0], [0, 4, 0, 0, 0], [0, 0, 4, 0, 0], [0, 0, 0, 4, 0]])
    assert agreement.fleiss_kappa(total) == pytest.approx(1.0)
    # two raters who always split 1-1 over two positions: P_t = 0, Pe = 1/2 -> kappa = -1
    split = np.array([[1, 1, 0, 0, 0]] * 6)
    assert agreement.fleiss_kappa(split) == pytest.approx(-1.0)
    rng = np.random.default_rng(3)
    table = rng.multinomial(20, [0.4, 0.3, 0.1, 0.1, 0.1], size=25)
    assert agreement.fleiss_kappa(table) == pytest.approx(sm_kappa(table))
    lo, hi = agreement.fleiss_kappa_interval(table, n_resamples=300, seed=0)
    assert lo < agreement.fleiss_kappa(table) < hi


def test_majority_half_or_strict(kit):
    df = _frame(_answers(kit, [("t1", [10, 5, 5, 0, 0], 1, "random", None),
                               ("t2", [11, 9, 0, 0, 0], 1, "random", None)]))
    strict = agreement.trial_distribution(df, majority="strict").set_index("trial")
    half = agreement.trial_distribution(df, majority="half").set_index("trial")
    assert list(strict["majority"]) == [False, True]
    assert list(half["majority"]) == [True, True]
    from analysis.errors import AnalysisError
    with pytest.raises(AnalysisError, match="unknown majority rule 'most'"):
        agreement.trial_distribution(df, majority="most")


# --------------------------------------------------------------------------- position
def test_position_figure_data_follows_preference_not_where_the_true_match_was(kit):
    # The true match is shown at position 2 on 8 trials and at 3 on 2 (unevenly). People
    # are right 6 of 10 times and put every wrong answer on position 1: the plain counts
    # are highest at 2 (true matches), the wrong-answer ratio highest at 1: expected
    # there (40 wrong answers, none with the true match at 1) / 4 = 10, so
    # observed / expected = 40 / (40 / 4) = 4.
    spec = [(f"t{i}", [4, 6, 0, 0, 0], 2, "random", None) for i in range(8)]
    spec += [(f"u{i}", [4, 0, 6, 0, 0], 3, "random", None) for i in range(2)]
    df = _frame(_answers(kit, spec))
    per_pos, _ = position.position_table(df)
    assert list(per_pos["chosen"]) == [40, 48, 12, 0, 0]
    assert per_pos["chosen"].idxmax() == 1  # position 2 in the plain counts
    assert list(per_pos["wrong_chosen"]) == [40, 0, 0, 0, 0]
    assert list(per_pos["wrong_expected"]) == [10.0, 2.0, 8.0, 10.0, 10.0]
    assert per_pos.loc[0, "wrong_ratio"] == pytest.approx(4.0)
    assert per_pos["wrong_ratio"].idxmax() == 0
    assert per_pos.loc[0, "wrong_low"] < 4.0 <= per_pos.loc[0, "wrong_high"]
    plain = position.plain_counts(per_pos)
    assert list(plain.loc["mturk"]) == [40, 48, 12, 0, 0]


def test_wrong_answers_clustered_in_trials_are_not_a_preference():
    # 100 trials, true match at 1, 6 right and 10 wrong answers each; a trial's wrong
    # answers all fall on one distractor drawn at random: no position is preferred, but
    # the chi-square over answers treats 1,000 clustered answers as independent.
    rng = np.random.default_rng(5)
    rows = []
    for t in range(100):
        d = int(rng.integers(2, 6))
        rows += [{"trial": f"t{t}", "participant": f"w{t}_{j}", "population": "mturk",
                  "true_position": 1, "chosen_position": 1 if j < 6 else d} for j in range(16)]
    df = pd.DataFrame(rows)
    per_pos, tests = position.position_table(df, n_resamples=2000, seed=0)
    row = tests.iloc[0]
    assert row["p_wrong"] < 0.01 < row["p_wrong_trials"]
    w = per_pos.set_index("position").loc[2:5]
    assert ((w["wrong_high"] - w["wrong_low"])
            > 2.5 * (w["wilson_high"] - w["wilson_low"])).all()
    assert ((w["wrong_low"] < 1) & (1 < w["wrong_high"])).all()


def test_within_trial_permutation_finds_a_real_preference():
    # the same design, but each trial's wrong answers go to position 2 with chance 0.55
    # (else to any of 3, 4, 5): a trial-level preference the permutation test must see
    rng = np.random.default_rng(6)
    rows = []
    for t in range(100):
        d = 2 if rng.random() < 0.55 else int(rng.integers(3, 6))
        rows += [{"trial": f"t{t}", "participant": f"w{t}_{j}", "population": "mturk",
                  "true_position": 1, "chosen_position": 1 if j < 6 else d} for j in range(16)]
    per_pos, tests = position.position_table(pd.DataFrame(rows), n_resamples=2000, seed=0)
    assert tests.iloc[0]["p_wrong_trials"] < 0.01
    assert per_pos.set_index("position").loc[2, "wrong_low"] > 1


def test_participant_flag_compares_with_what_the_true_positions_predict(kit):
    rows = []
    # always right, the true match always at position 1: not biased, never flagged
    for i in range(20):
        rows += kit.answer_rows(f"t{i:02d}", [1, 0, 0, 0, 0], 1, participant_prefix="right")
    # always position 1 while the true match is spread evenly: flagged
    for i in range(20):
        true = i % 5 + 1
        rows += kit.answer_rows(f"s{i:02d}", [1, 0, 0, 0, 0], true, participant_prefix="one")
    df = _frame(rows)
    table = participants.participant_table(df).set_index("participant")
    assert table.loc["right000", "top_share"] == 1.0  # the old flag's evidence
    assert not table.loc["right000", "position_bias"] and table.loc["right000", "bias_p"] == 1.0
    assert table.loc["one000", "position_bias"] and table.loc["one000", "bias_position"] == 1
    # 16 wrong answers, all on position 1, expected share there 1/4: p = (1/4)^16 * 5
    assert table.loc["one000", "bias_p"] == pytest.approx(5 * 0.25 ** 16)


# --------------------------------------------------------------------------- tests
def test_comparison_table_tests_by_trial_and_corrects_with_holm(kit):
    # random trials: 4 trials at 1.0; generic: 4 trials at 0.5, 0.5, 0.25, 0.75.
    rows = []
    for i in range(4):
        rows += kit.answer_rows(f"r{i}", [4, 0, 0, 0, 0], 1, condition="random",
                                machine={"g/a": 1})
    for i, k in enumerate([2, 2, 1, 3]):
        rows += kit.answer_rows(f"g{i}", [k, 4 - k, 0, 0, 0], 1, condition="generic",
                                machine={"g/a": 2})
    df = _frame(rows)
    t = comparisons.comparison_table(df)
    cond = t[t["family"] == "conditions"].iloc[0]
    assert (cond["a"], cond["b"]) == ("random", "generic")
    assert cond["difference_pp"] == pytest.approx(50.0)
    # Welch with one constant group: t = 0.5 / (sd(generic) / 2), sd = sqrt(1/24)
    assert cond["statistic"] == pytest.approx(0.5 / (math.sqrt(1 / 24) / 2))
    assert cond["cohen_h"] == pytest.approx(2 * math.asin(1) - 2 * math.asin(math.sqrt(0.5)))
    hm = t[t["family"] == "human vs machine"].set_index("condition")
    # machine right on every random trial, humans too: no difference, p = 1
    assert hm.loc["random", "difference_pp"] == 0 and hm.loc["random", "p"] == 1.0
    # machine wrong on every generic trial: humans 50 pp better
    assert hm.loc["generic", "difference_pp"] == pytest.approx(50.0)
    # every difference has its interval around it
    assert (t["low_pp"] <= t["difference_pp"]).all() and (t["difference_pp"] <= t["high_pp"]).all()
    # 4 trials: t on 3 df, a wide interval, but inside what a difference can be
    assert -100 <= hm.loc["generic", "low_pp"] < 50 < hm.loc["generic", "high_pp"] <= 100
    # Holm within each declared family (question | population)
    assert set(t["holm_family"]) == {"conditions | mturk", "human vs machine | mturk"}
    for _, fam in t.groupby("holm_family"):
        p = fam["p"].to_numpy(float)
        order = np.argsort(p)
        m = len(p)
        holm = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        assert np.allclose(fam["p_holm"].to_numpy(float)[order], holm)


def test_pilot_is_in_no_family_and_a_machine_without_choices_is_left_out(kit):
    rows = []
    for pop in ("mturk", "pilot"):
        for i, k in enumerate([4, 3, 4, 2]):
            rows += kit.answer_rows(f"r{i}", [k, 4 - k, 0, 0, 0], 1, condition="random",
                                    population=pop, participant_prefix=pop,
                                    machine={"g/a": 1, "face/x": None})
        for i, k in enumerate([2, 2, 1, 3]):
            rows += kit.answer_rows(f"g{i}", [k, 4 - k, 0, 0, 0], 1, condition="generic",
                                    population=pop, participant_prefix=pop,
                                    machine={"g/a": 2, "face/x": 2})
    t = comparisons.comparison_table(_frame(rows), n_resamples=200)
    pilot = t[(t["population"].str.contains("pilot"))]
    assert len(pilot) and (pilot["holm_family"] == comparisons.NO_FAMILY).all()
    assert pilot["p_holm"].isna().all() and not pilot["significant"].any()
    assert t.loc[t["population"] == "mturk", "p_holm"].notna().any()
    # face/x chose nothing on random trials: no row there, and a note says so
    fx = t[t["b"] == "machine: face/x"]
    assert set(fx["condition"]) == {"generic"}
    assert any("face/x against mturk on TLL_d/random left out" in n for n in t.attrs["notes"])
    with_pilot = comparisons.comparison_table(_frame(rows), include_pilot=True, n_resamples=200)
    assert "human vs machine | pilot" in set(with_pilot["holm_family"])


def test_mixed_model_finds_a_strong_condition_effect(kit):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        for cond, p in (("random", 0.9), ("face", 0.3)):
            k = int(rng.binomial(12, p))
            trial = kit.answer_rows(f"{cond}{i}", [k, 12 - k, 0, 0, 0], 1, condition=cond,
                                    participant_prefix="w")
            # who gave which answer is random: no participant effect to confound it
            for row, who in zip(trial, rng.permutation([r["participant"] for r in trial])):
                row["participant"] = who
            rows += trial
    effects, note = comparisons.mixed_model(_frame(rows), intervals="wald")
    assert "(1 | trial) + (1 | participant)" in note and "Reference: cell TLL_d/random" in note
    row = effects.set_index("term").loc["cell TLL_d/face vs TLL_d/random"]
    # log odds ratio of 0.3 against 0.9 is -(log(9) + log(7/3)) ≈ -3.0
    assert row["high"] < -1.0 and -4.5 < row["estimate"] < -2.0


# --------------------------------------------------------------------------- items
def test_item_table_and_human_likeness(kit):
    # t1: people choose 1 (true 1); t2: people choose 3 (true 2, a distractor);
    # t3: split 2-2 (tie). Machine "near" always picks the people's choice.
    spec = [("t1", [6, 1, 1, 0, 0], 1, "generic", {"near": 1, "far": 5}),
            ("t2", [0, 2, 6, 0, 0], 2, "generic", {"near": 3, "far": None}),
            ("t3", [2, 2, 0, 0, 0], 1, "generic", {"near": 1, "far": 4})]
    df = _frame(_answers(kit, spec))
    table = items.item_table(df, majority="strict").set_index("trial")
    assert list(table["human_choice"]) == [1, 3, 1]
    assert list(table["tied"]) == [False, False, True]
    assert bool(table.loc["t2", "near = human"]) and not bool(table.loc["t2", "near = true"])
    assert pd.isna(table.loc["t2", "far"]) and pd.isna(table.loc["t2", "far = human"])
    assert list(items.agreed_on_distractor(table.reset_index())["trial"]) == ["t2"]
    assert list(items.machine_disagrees(table.reset_index(), "far")["trial"]) == ["t1"]
    hi, lo = items.agreement_extremes(table.reset_index(), 1)
    assert list(hi["trial"]) == ["t1"] and list(lo["trial"]) == ["t3"]

    shares = {"t1": [6, 1, 1, 0, 0], "t2": [0, 2, 6, 0, 0], "t3": [2, 2, 0, 0, 0]}
    # distances ordering the candidates exactly as the votes (ties aside): rho = +1 / -1
    dist = {"near": {"t1": [0.1, 0.5, 0.5, 0.9, 0.9], "t2": [0.9, 0.5, 0.1, 0.9, 0.9],
                     "t3": [0.1, 0.1, 0.9, 0.9, 0.9]},
            # the most chosen candidate is the farthest
            "far": {t: [float(x) for x in v] for t, v in shares.items()}}
    lk = likeness.likeness_table(table.reset_index(), ["far", "near"], dist,
                                 n_resamples=100).set_index("feature_set")
    assert list(lk.index) == ["near", "far"] and lk.loc["near", "rank"] == 1
    # t3 ties two candidates for most chosen: half credit (the score-humans definition)
    assert lk.loc["near", "same_as_human"] == pytest.approx(2.5 / 3)
    assert lk.loc["near", "choice_trials"] == 3
    assert lk.loc["far", "same_as_human"] == 0.0 and lk.loc["far", "no_choice"] == 1
    assert lk.loc["near", "spearman_mean"] == pytest.approx(1.0)
    assert lk.loc["far", "spearman_mean"] == pytest.approx(-1.0)

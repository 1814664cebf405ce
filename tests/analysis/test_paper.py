"""Checks against the paper's own numbers and against values computed independently."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import agreement, position
from analysis.load import load_answers

AMT_COUNTS = [627, 522, 465, 395, 391]  # paper §4.3, 2,400 AMT answers


def test_amt_position_counts_give_the_papers_ratio_and_chi_square(tmp_path, kit):
    # 120 trials x 20 answers whose chosen positions add up to the paper's counts.
    chosen = np.repeat(np.arange(1, 6), AMT_COUNTS)
    rng = np.random.default_rng(3)
    rng.shuffle(chosen)
    rows = []
    for t in range(120):
        counts = np.bincount(chosen[20 * t:20 * t + 20] - 1, minlength=5)
        rows += kit.answer_rows(f"t{t:04d}", counts, true_position=t % 5 + 1)
    answers = load_answers(csv=kit.write_csv(rows, tmp_path / "amt.csv"))
    per_pos, tests = position.position_table(answers.without_catch())

    assert per_pos["chosen"].tolist() == AMT_COUNTS
    assert per_pos["expected"].tolist() == [480.0] * 5
    assert per_pos["ratio"].iloc[0] == pytest.approx(627 / 480)
    assert round(per_pos["ratio"].iloc[0], 3) == 1.306
    e = 2400 / 5
    chi2_by_hand = sum((o - e) ** 2 / e for o in AMT_COUNTS)
    assert chi2_by_hand == pytest.approx(38744 / 480)
    row = tests.iloc[0]
    assert row["answers"] == 2400 and row["dof"] == 4
    assert row["chi2"] == pytest.approx(chi2_by_hand, rel=1e-12)
    assert row["p"] == pytest.approx(stats.chi2.sf(chi2_by_hand, 4), rel=1e-9)
    assert row["p"] < 1e-15  # the paper's bias is far from chance
    # The true match was shown evenly (24 trials x 20 answers per position): the bias is
    # the participants', not the layout's.
    assert per_pos["true"].tolist() == [480] * 5


def _known_trials(seed: int = 7):
    """120 trials x 20 answers: per trial the answer counts per display position and the
    true position, drawn so that every top count 4..20 occurs."""
    rng = np.random.default_rng(seed)
    trials = []
    for t in range(120):
        k = 4 + t % 17  # top count, 4..20
        while True:
            rest = rng.multinomial(20 - k, np.ones(4) / 4)
            if rest.max() <= k:
                break
        counts = np.concatenate([[k], rest])
        perm = rng.permutation(5)
        counts = counts[perm]
        true = int(rng.integers(1, 6)) if t % 3 else int(np.argmax(counts)) + 1
        trials.append((counts, true))
    return trials


def test_agreement_on_120_trials_of_20_answers(tmp_path, kit):
    trials = _known_trials()
    rows = []
    for t, (counts, true) in enumerate(trials):
        rows += kit.answer_rows(f"t{t:04d}", counts, true)
    answers = load_answers(csv=kit.write_csv(rows, tmp_path / "agree.csv"))
    per_trial = agreement.trial_distribution(answers.without_catch())
    summary = agreement.summarize(per_trial)
    hist = agreement.agreement_histogram(per_trial)

    # Expected values, computed straight from the count vectors.
    tops = np.array([c.max() for c, _ in trials])
    correct = np.array([c[true - 1] for c, true in trials])
    assert summary.trials == 120 and summary.answers == 2400
    assert summary.answers_per_trial == {20: 120}
    assert summary.majority_share == pytest.approx(np.sum(tops >= 11) / 120)
    assert summary.total_share == pytest.approx(np.sum(tops == 20) / 120)
    a, c = tops / 20, correct / 20
    r_by_hand = np.sum((a - a.mean()) * (c - c.mean())) / np.sqrt(
        np.sum((a - a.mean()) ** 2) * np.sum((c - c.mean()) ** 2))
    assert summary.pearson_r == pytest.approx(r_by_hand, rel=1e-12)
    assert summary.pearson_p == pytest.approx(stats.pearsonr(a, c).pvalue, rel=1e-9)
    assert 0 < summary.pearson_r < 1

    assert hist["n"].unique().tolist() == [20]
    assert hist["k"].tolist() == list(range(4, 21))
    assert hist["trials"].tolist() == [int(np.sum(tops == k)) for k in range(4, 21)]
    assert hist["trials"].sum() == 120
    assert hist["share"].sum() == pytest.approx(1.0)

    by_trial = per_trial.set_index("trial")
    for t in (0, 16, 77):
        counts, true = trials[t]
        got = by_trial.loc[f"t{t:04d}", [f"count_{p}" for p in range(1, 6)]].tolist()
        assert got == counts.tolist()
        assert by_trial.loc[f"t{t:04d}", "share_correct"] == counts[true - 1] / 20


def test_trials_with_different_numbers_of_answers_are_handled_and_reported(tmp_path, kit):
    rows = (kit.answer_rows("t0001", [20, 0, 0, 0, 0], 1)          # 20 of 20
            + kit.answer_rows("t0002", [10, 10, 0, 0, 0], 1)       # 10 of 20: no majority
            + kit.answer_rows("t0003", [0, 7, 3, 2, 0], 2)         # 7 of 12: majority
            + kit.answer_rows("t0004", [0, 0, 6, 6, 0], 3))        # 6 of 12: no majority
    answers = load_answers(csv=kit.write_csv(rows, tmp_path / "mixed.csv"))
    per_trial = agreement.trial_distribution(answers.without_catch())
    s = agreement.summarize(per_trial)
    assert s.answers_per_trial == {12: 2, 20: 2}
    assert s.majority_share == 0.5
    assert s.total_share == 0.25
    assert "different numbers of answers" in s.note
    hist = agreement.agreement_histogram(per_trial)
    h = {(n, k): t for n, k, t in hist[["n", "k", "trials"]].itertuples(index=False)}
    assert h[(20, 20)] == 1 and h[(20, 10)] == 1 and h[(12, 7)] == 1 and h[(12, 6)] == 1
    assert hist.loc[hist["n"] == 12, "k"].min() == 3  # ceil(12 / 5)
    assert sum(h.values()) == 4
    assert s.pearson_r == pytest.approx(stats.pearsonr(per_trial["agreement"],
                                                       per_trial["share_correct"]).statistic)


def test_wrong_answer_test_separates_layout_from_bias(tmp_path, kit):
    # The true match always at position 1, half the answers right, wrong answers spread
    # evenly over 2..5: position 1 is chosen far above 1/5, yet nobody prefers a position.
    rows = []
    for t in range(40):
        rows += kit.answer_rows(f"t{t:04d}", [4, 1, 1, 1, 1], true_position=1)
    df = load_answers(csv=kit.write_csv(rows, tmp_path / "layout.csv")).df
    per_pos, tests = position.position_table(df)
    row = tests.iloc[0]
    assert row["p"] < 1e-10  # against uniform: "biased"
    assert per_pos["wrong_chosen"].tolist() == [0, 40, 40, 40, 40]
    assert per_pos["wrong_expected"].tolist() == [0.0, 40.0, 40.0, 40.0, 40.0]
    assert row["wrong_answers"] == 160 and row["dof_wrong"] == 3
    assert row["chi2_wrong"] == 0.0 and row["p_wrong"] == 1.0

    # Wrong answers that favour position 2: the wrong-answer test sees it; by hand.
    rows = []
    for t in range(40):
        rows += kit.answer_rows(f"t{t:04d}", [0, 3, 1, 0, 0], true_position=(4 if t % 2 else 5))
    df = load_answers(csv=kit.write_csv(rows, tmp_path / "bias.csv")).df
    per_pos, tests = position.position_table(df)
    obs = np.array([0, 120, 40, 0, 0], float)   # all 160 answers are wrong
    exp = np.array([160, 160, 160, 80, 80], float) / 4
    assert per_pos["wrong_chosen"].tolist() == obs.tolist()
    assert per_pos["wrong_expected"].tolist() == exp.tolist()
    assert tests.iloc[0]["chi2_wrong"] == pytest.approx(np.sum((obs - exp) ** 2 / exp))
    assert tests.iloc[0]["dof_wrong"] == 4

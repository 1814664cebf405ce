"""Agreement on errors: kappa among wrong answers and error consistency (Geirhos et al.
2020), with the values known in closed form."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import error_agreement as ea


def _answers(spec) -> pd.DataFrame:
    """spec: (trial, true_position, [chosen positions]) -> one answer per position."""
    return pd.DataFrame([{"trial": t, "participant": f"{t}-{j}", "population": "mturk",
                          "true_position": true, "chosen_position": c, "correct": c == true}
                         for t, true, chosen in spec for j, c in enumerate(chosen)])


def test_wrong_answers_on_one_distractor_per_trial_give_kappa_one():
    # each trial's wrong answers all name one distractor, a different one per trial
    spec = [(f"t{i}", 1, [1, 1] + [2 + i % 4] * 4) for i in range(20)]
    r = ea.kappa_among_wrong(_answers(spec), n_resamples=200)
    assert r["observed"] == 1.0 and r["chance"] == pytest.approx(0.25)
    assert r["kappa"] == pytest.approx(1.0) and r["trials"] == 20 and r["answers"] == 80


def test_wrong_answers_spread_evenly_give_kappa_below_zero_as_computed():
    # 4 wrong answers per trial, one on each distractor: two of them never agree
    spec = [(f"t{i}", 1, [2, 3, 4, 5]) for i in range(20)]
    r = ea.kappa_among_wrong(_answers(spec), n_resamples=200)
    assert r["observed"] == 0.0 and r["kappa"] == pytest.approx((0 - 0.25) / 0.75)


def test_error_consistency_between_people_and_a_machine():
    # 40 trials, 10 answers each; trials 0-19 people 9/10 right, 20-39 1/10 right.
    rows = []
    for i in range(40):
        k = 9 if i < 20 else 1
        rows += [(f"t{i}", 1, [1] * k + [2] * (10 - k))]
    d = _answers(rows)
    # the machine right exactly where people mostly are
    same = pd.Series([1.0 if i < 20 else 0.0 for i in range(40)],
                     index=[f"t{i}" for i in range(40)])
    r = ea.error_consistency(d, same, n_resamples=500)
    # c_obs = 0.9; p_h = 0.5, p_m = 0.5: c_exp = 0.5, kappa = 0.8
    assert r["observed"] == pytest.approx(0.9) and r["chance"] == pytest.approx(0.5)
    # kappa is largest at this even mix of trials: resamples reach it, none exceed it
    assert r["kappa"] == pytest.approx(0.8) and r["low"] < 0.8 <= r["high"] + 1e-12
    # a machine that chose nothing on 4 trials: they are left out and counted
    partial = same.copy()
    partial.iloc[:4] = np.nan
    assert ea.error_consistency(d, partial, n_resamples=100)["trials_left_out"] == 4
    # people with people: pairs on a trial agree 1 - 2·0.9·0.1·10/9 = 0.8 of the time
    p = ea.error_consistency(d, None, n_resamples=100)
    assert p["observed"] == pytest.approx(1 - 2 * 9 * 1 / (10 * 9) * 1)
    assert p["kappa"] > 0.5


def test_table_has_people_and_each_feature_set_per_population():
    d = _answers([(f"t{i}", 1, [1, 1, 2, 2, 3]) for i in range(10)])
    d["machine:g/a"] = 1
    d["machine:f/x"] = np.nan
    t = ea.error_agreement_table(d, n_resamples=100)
    assert list(t["compared"]) == ["people", "people", "machine: f/x", "machine: g/a"]
    assert t.iloc[2]["trials_left_out"] == 10 and np.isnan(t.iloc[2]["kappa"])

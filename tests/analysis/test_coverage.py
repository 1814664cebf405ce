"""Coverage of the default 95 % intervals (analysis/intervals.py) on generated studies in
the three designs the project meets, and their edges (0 of 20, 390 of 400).

Each study has two conditions (true log odds 1.2 and 0.4), a normal trial intercept
(SD 1.0) and a normal participant intercept (SD 0.7). The target is the share a new trial
answered by a new participant is answered right: E[expit(mu + u + v)], computed once by
Monte Carlo (10^6 draws, error ~ 4e-4). An interval whose coverage is 0.92-0.98 over 200
seeded studies passes; 0.95 is inside that band with about 2 binomial SDs either side."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import intervals
from analysis.stats import wilson_interval

MU = {"random": 1.2, "generic": 0.4}
SD_TRIAL, SD_PERSON = 1.0, 0.7
STUDIES, RESAMPLES = 200, 200


def _expit(x):
    return 1 / (1 + np.exp(-x))


def _truth() -> dict[str, float]:
    z = np.random.default_rng(123).normal(size=(2, 1_000_000))
    return {c: float(_expit(mu + SD_TRIAL * z[0] + SD_PERSON * z[1]).mean())
            for c, mu in MU.items()}


def _study(design: str, rng) -> list[pd.DataFrame]:
    """One study's answers per condition.

    independent: 60 trials per condition, each answered once by its own participant;
    mturk: 30 trials per condition, 10 answers each, one answer per worker;
    lab: 16 participants answer all 30 trials of both conditions."""
    trials, per = {"independent": (60, 1), "mturk": (30, 10), "lab": (30, 16)}[design]
    person = rng.normal(0, SD_PERSON, per)
    frames = []
    for cond, mu in MU.items():
        u = rng.normal(0, SD_TRIAL, trials)[:, None]
        v = person[None, :] if design == "lab" else rng.normal(0, SD_PERSON, (trials, per))
        right = rng.random((trials, per)) < _expit(mu + u + v)
        who = (np.tile(np.arange(per), trials).astype(str) if design == "lab"
               else np.char.add(cond, np.arange(trials * per).astype(str)))
        frames.append(pd.DataFrame({"trial": np.char.add(cond, np.repeat(
            np.arange(trials), per).astype(str)), "participant": who,
            "correct": right.ravel()}))
    return frames


@pytest.mark.parametrize("design, expected", [
    ("independent", intervals.WILSON), ("mturk", intervals.TRIAL),
    ("lab", intervals.CROSSED)])
def test_cells_and_differences_cover_the_truth(design, expected):
    truth = _truth()
    rng = np.random.default_rng(0)
    cell_hits = diff_hits = 0
    for s in range(STUDIES):
        a, b = _study(design, rng)
        sh = intervals.design_shares([a, b], RESAMPLES, seed=s)
        assert sh.design == expected
        lo, hi = intervals.share_intervals(sh)[0]
        cell_hits += lo <= truth["random"] <= hi
        _, dlo, dhi, _ = intervals.difference_interval(a, b, RESAMPLES, seed=s)
        diff_hits += dlo <= truth["random"] - truth["generic"] <= dhi
    assert 0.92 <= cell_hits / STUDIES <= 0.98
    assert 0.92 <= diff_hits / STUDIES <= 0.98


def _one_each(right: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"trial": np.arange(n), "participant": np.arange(n),
                         "correct": np.arange(n) < right})


def test_none_of_20_is_not_a_point():
    lo, hi, design = intervals.share_interval(_one_each(0, 20))
    assert design == intervals.WILSON
    assert lo == 0 and hi == pytest.approx(wilson_interval(0, 20)[1]) and 0.15 < hi < 0.17


def test_none_of_20_answered_by_5_workers_each_on_4_trials():
    # every resample is 0: a percentile bootstrap says [0, 0]
    d = pd.DataFrame({"trial": np.repeat(np.arange(4), 5), "participant": np.arange(20),
                      "correct": False})
    lo, hi, design = intervals.share_interval(d)
    assert design == intervals.TRIAL and lo == 0 and hi > 0.15


@pytest.mark.parametrize("wrong_trials, per_trial", [(10, 1), (39, 1)])
def test_few_wrong_of_400_stays_below_100(wrong_trials, per_trial):
    # 40 trials x 10 workers: `wrong_trials` answers wrong, one per trial (390 and 361 of 400)
    rows = np.ones((40, 10), bool)
    rows.ravel()[np.arange(wrong_trials) * 10] = False
    d = pd.DataFrame({"trial": np.repeat(np.arange(40), 10), "participant": np.arange(400),
                      "correct": rows.ravel()})
    p = d["correct"].mean()
    lo, hi, design = intervals.share_interval(d, 500, seed=0)
    assert design == intervals.TRIAL
    assert lo < p < hi < 1.0
    # contains Wilson's point (its centre) and nothing impossible
    wlo, whi = wilson_interval(int(d["correct"].sum()), 400)
    assert lo < (wlo + whi) / 2 < hi and lo > 0.8


def test_a_difference_of_two_empty_cells_is_not_a_point():
    a, b = _one_each(0, 20), _one_each(0, 20).assign(trial=lambda x: x["trial"] + 100,
                                                       participant=lambda x: x["trial"])
    d, lo, hi, _ = intervals.difference_interval(a, b)
    assert d == 0 and lo < -0.1 and hi > 0.1 and lo >= -1 and hi <= 1


def _position_study(rng, trials: int, per_trial: int = 10) -> pd.DataFrame:
    """60 % right; wrong answers prefer position 1 twice over the others, times a gamma(1)
    weight per trial and distractor: a trial's wrong answers cluster on its distractors."""
    w = np.array([2.0, 1, 1, 1, 1])
    true = rng.integers(1, 6, trials)
    right = rng.random((trials, per_trial)) < 0.6
    pref = w[None, :] * rng.gamma(1.0, 1.0, (trials, 5))
    pref[np.arange(trials), true - 1] = 0
    pref /= pref.sum(axis=1, keepdims=True)
    wrong = (rng.random((trials, per_trial, 1)) > np.cumsum(pref, 1)[:, None, :]).sum(-1) + 1
    return pd.DataFrame({"trial": np.repeat(np.arange(trials), per_trial),
                         "participant": np.arange(trials * per_trial), "population": "mturk",
                         "true_position": np.repeat(true, per_trial),
                         "chosen_position": np.where(right, true[:, None], wrong).ravel()})


def test_position_ratios_cover_the_truth():
    from analysis import position
    # the ratios of a study of 200,000 trials stand for the truth (SE ~ 0.003)
    truth = position.position_table(_position_study(np.random.default_rng(99), 200_000),
                                    n_resamples=10)[0]["wrong_ratio"].to_numpy()
    assert truth[0] > 1.3 and (abs(truth[1:] - 0.89) < 0.02).all()
    rng = np.random.default_rng(0)
    hits = wilson = np.zeros(5)
    for s in range(STUDIES):
        pp = position.position_table(_position_study(rng, 60), n_resamples=RESAMPLES,
                                     seed=s)[0]
        hits = hits + ((pp["wrong_low"] <= truth) & (truth <= pp["wrong_high"])).to_numpy()
        wilson = wilson + ((pp["wilson_low"] <= truth)
                           & (truth <= pp["wilson_high"])).to_numpy()
    assert ((0.92 <= hits / STUDIES) & (hits / STUDIES <= 0.98)).all(), hits / STUDIES
    # answers as units (Wilson) undercover: the clustering matters here
    assert (wilson / STUDIES < 0.92).any()

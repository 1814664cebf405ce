"""Position bias: how often each display position was chosen, against the count expected
when position does not matter (n / K each), with a chi-square goodness-of-fit test
(paper §4.3: AMT chose option 1 627 times of 2,400, ~30 % above 480).

Wrong answers to one trial cluster on the same distractor, so the default inference is by
trial: the observed/expected ratios have trial-bootstrap intervals, and the test of "no
preference" permutes, within each trial, which display position each distractor was
shown at (the same permutation for all of the trial's answers). The chi-square tests over
answers, which assume independent answers, are kept beside them, labelled so."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import N_CANDIDATES
from analysis.load import order_populations
from analysis.stats import wilson_interval


def position_counts(chosen_positions, n_candidates: int = N_CANDIDATES) -> np.ndarray:
    """Return the number of answers per display position 1..K as an int array."""
    pos = np.asarray(chosen_positions, dtype=int)
    return np.bincount(pos - 1, minlength=n_candidates)[:n_candidates]


def position_test(observed) -> dict:
    """Return expected counts under no bias (uniform), the ratio observed/expected per
    position, and scipy's chi-square goodness-of-fit statistic, p-value and degrees of
    freedom for the observed counts per position."""
    obs = np.asarray(observed, dtype=float)
    n = obs.sum()
    expected = np.full(len(obs), n / len(obs))
    if n == 0:
        return {"expected": expected, "ratio": np.full(len(obs), np.nan),
                "chi2": np.nan, "p": np.nan, "dof": len(obs) - 1}
    res = stats.chisquare(obs, expected)
    return {"expected": expected, "ratio": obs / expected, "chi2": float(res.statistic),
            "p": float(res.pvalue), "dof": len(obs) - 1}


def wrong_answer_test(chosen, true, n_candidates: int = N_CANDIDATES) -> dict:
    """Position bias among wrong answers only, which does not depend on where the true
    match was shown: without bias a wrong answer is any of the K-1 other positions alike,
    so position p expects (wrong answers whose true match is not at p) / (K-1).
    Returns observed and expected counts per position and scipy's chi-square over the
    positions that can receive a wrong answer."""
    chosen = np.asarray(chosen, dtype=int)
    true = np.asarray(true, dtype=int)
    wrong = chosen != true
    obs = position_counts(chosen[wrong], n_candidates).astype(float)
    true_w = position_counts(true[wrong], n_candidates)
    expected = (wrong.sum() - true_w) / (n_candidates - 1)
    usable = expected > 0  # a position that always held the true match gets no wrong answer
    if usable.sum() < 2:
        return {"observed": obs, "expected": expected, "chi2": np.nan, "p": np.nan,
                "dof": 0, "answers": int(wrong.sum())}
    res = stats.chisquare(obs[usable], expected[usable])
    return {"observed": obs, "expected": expected, "chi2": float(res.statistic),
            "p": float(res.pvalue), "dof": int(usable.sum()) - 1, "answers": int(wrong.sum())}


def _wrong_by_trial(d: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per trial: wrong answers per position (T, K) and the positions not holding the
    true match (T, K) as 0/1."""
    wrong = d[d["chosen_position"] != d["true_position"]]
    codes, trials = pd.factorize(d["trial"])
    obs = np.zeros((len(trials), k))
    wc = pd.Index(trials).get_indexer(wrong["trial"])
    np.add.at(obs, (wc, wrong["chosen_position"].to_numpy(int) - 1), 1.0)
    true = d.groupby(codes)["true_position"].first().to_numpy(int)
    other = np.ones((len(trials), k))
    other[np.arange(len(trials)), true - 1] = 0.0
    return obs, other


def _chi2(obs: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """Chi-square statistic over the last axis, positions with expectation 0 left out."""
    safe = np.where(exp > 0, exp, 1.0)
    return np.where(exp > 0, (obs - exp) ** 2 / safe, 0.0).sum(-1)


def trial_position_inference(d: pd.DataFrame, n_candidates: int = N_CANDIDATES,
                             n_resamples: int = 2000, seed: int = 0
                             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Trial-level inference on wrong answers per display position.

    Returns
    -------
    (low, high, p) : ndarray (K,), ndarray (K,), float
        The 95 % interval of observed / expected wrong answers per position: log ratio ±
        t(trials - 1) × the SD of the log ratio over resamples of trials (with all their
        answers); and the within-trial permutation p-value
        of the chi-square statistic (each trial's wrong-answer counts on its K - 1
        distractor positions shuffled among those positions, n_resamples permutations,
        p = (1 + as extreme) / (1 + n_resamples)). NaN where there are no wrong answers.
    """
    k = n_candidates
    obs, other = _wrong_by_trial(d, k)
    n_t = obs.sum(axis=1)
    exp_t = other * (n_t / (k - 1))[:, None]
    if n_t.sum() == 0:
        return np.full(k, np.nan), np.full(k, np.nan), np.nan
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(n_t), np.full(len(n_t), 1 / len(n_t)), size=n_resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (w @ obs) / (w @ exp_t)
    ratio[~np.isfinite(ratio)] = np.nan
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    # on the log scale, with Student's t on trials - 1 degrees of freedom: on studies of
    # 60 trials a percentile interval covered 0.915-0.955, this one 0.945-0.97
    # (tests/analysis/test_coverage.py)
    with np.errstate(divide="ignore", invalid="ignore"):
        logr = np.log(ratio)
        point = np.log((obs.sum(axis=0)) / exp_t.sum(axis=0))
    ok = np.isfinite(point) & (np.isfinite(logr).sum(axis=0) > 1)
    sd = np.array([np.std(c[np.isfinite(c)], ddof=1) if o else np.nan
                   for c, o in zip(logr.T, ok)])
    q = stats.t.ppf(0.975, max(1, len(n_t) - 1))
    low[ok] = np.exp(point[ok] - q * sd[ok])
    high[ok] = np.exp(point[ok] + q * sd[ok])
    # permutation: each trial's counts shuffled over its own distractor positions
    pos = np.argsort(other == 0, axis=1, kind="stable")[:, : k - 1]  # (T, K-1)
    counts = np.take_along_axis(obs, pos, axis=1)                     # (T, K-1)
    perm = np.argsort(rng.random((n_resamples, len(n_t), k - 1)), axis=2)
    shuffled = np.take_along_axis(np.broadcast_to(counts, perm.shape), perm, axis=2)
    onehot = np.zeros((len(n_t), k - 1, k))
    onehot[np.arange(len(n_t))[:, None], np.arange(k - 1)[None, :], pos] = 1.0
    totals = np.einsum("btj,tjk->bk", shuffled, onehot)
    exp = exp_t.sum(axis=0)
    observed = _chi2(obs.sum(axis=0), exp)
    p = (1 + int((_chi2(totals, exp) >= observed - 1e-9).sum())) / (1 + n_resamples)
    return low, high, float(p)


def position_table(df: pd.DataFrame, n_candidates: int = N_CANDIDATES,
                   n_resamples: int = 2000, seed: int = 0
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Answers per display position, per population, and the tests of position bias.

    Parameters
    ----------
    df : DataFrame
        Answers without catch trials.
    n_candidates : int
        Positions per trial (5).
    n_resamples, seed : int
        Trial bootstrap resamples and within-trial permutations, and their seed.

    Returns
    -------
    per_position : DataFrame
        population, position, chosen (all answers there: the paper's plain counts),
        expected (n / K), ratio, true (how often the true match was shown there),
        wrong_chosen, wrong_expected (wrong answers observed and expected given where each
        trial's true match was: see wrong_answer_test), wrong_ratio (observed / expected,
        1 = no bias: what the position figure shows) and its 95 % interval wrong_low,
        wrong_high (trials resampled: the default; never narrower than Wilson's),
        wilson_low, wilson_high (Wilson's
        interval of the observed share over the expected share, assuming independent
        answers).
    tests : DataFrame
        population, answers, chi2, dof, p (all answers against uniform), wrong_answers,
        chi2_wrong, dof_wrong, p_wrong (wrong answers against their expectation, answers
        as units), p_wrong_trials (within-trial permutation test: the default).

    Examples
    --------
    >>> per_position, tests = position_table(answers.without_catch())  # doctest: +SKIP
    """
    rows, tests = [], []
    for pop in order_populations(df["population"].unique()):
        d = df[df["population"] == pop]
        obs = position_counts(d["chosen_position"], n_candidates)
        true = position_counts(d["true_position"], n_candidates)
        t = position_test(obs)
        w = wrong_answer_test(d["chosen_position"], d["true_position"], n_candidates)
        n_wrong = w["answers"]
        blo, bhi, p_perm = trial_position_inference(d, n_candidates, n_resamples, seed)
        for i in range(n_candidates):
            e = float(w["expected"][i])
            lo, hi = wilson_interval(int(w["observed"][i]), n_wrong)
            share_e = e / n_wrong if n_wrong else np.nan
            ok = n_wrong and e > 0
            rows.append({"population": pop, "position": i + 1, "chosen": int(obs[i]),
                         "expected": float(t["expected"][i]), "ratio": float(t["ratio"][i]),
                         "true": int(true[i]), "wrong_chosen": int(w["observed"][i]),
                         "wrong_expected": e,
                         "wrong_ratio": float(w["observed"][i]) / e if ok else np.nan,
                         # clustering can only widen Wilson's interval: a bootstrap over
                         # identical trials has no width
                         "wrong_low": float(np.fmin(blo[i], lo / share_e)) if ok else np.nan,
                         "wrong_high": float(np.fmax(bhi[i], hi / share_e)) if ok else np.nan,
                         "wilson_low": lo / share_e if ok else np.nan,
                         "wilson_high": hi / share_e if ok else np.nan})
        tests.append({"population": pop, "answers": int(obs.sum()), "chi2": t["chi2"],
                      "dof": t["dof"], "p": t["p"], "wrong_answers": w["answers"],
                      "chi2_wrong": w["chi2"], "dof_wrong": w["dof"], "p_wrong": w["p"],
                      "p_wrong_trials": p_perm})
    return (pd.DataFrame(rows, columns=["population", "position", "chosen", "expected",
                                        "ratio", "true", "wrong_chosen", "wrong_expected",
                                        "wrong_ratio", "wrong_low", "wrong_high",
                                        "wilson_low", "wilson_high"]),
            pd.DataFrame(tests, columns=["population", "answers", "chi2", "dof", "p",
                                         "wrong_answers", "chi2_wrong", "dof_wrong",
                                         "p_wrong", "p_wrong_trials"]))


def plain_counts(per_position: pd.DataFrame) -> pd.DataFrame:
    """The paper's plain counts: all answers per display position.

    Parameters
    ----------
    per_position : DataFrame
        From position_table.

    Returns
    -------
    DataFrame
        Rows = populations, columns "position 1" .. "position 5". These mirror where the
        true match was shown as much as any preference (the figure uses wrong answers).

    Examples
    --------
    >>> plain_counts(position_table(df)[0])  # doctest: +SKIP
    """
    if per_position.empty:
        return pd.DataFrame()
    t = per_position.pivot(index="population", columns="position", values="chosen")
    t = t.reindex(list(dict.fromkeys(per_position["population"])))
    t.columns = [f"position {c}" for c in t.columns]
    return t.rename_axis(index=None)

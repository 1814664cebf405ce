"""Agreement on errors: do people (and feature sets) go wrong on the same trials, and do
wrong answers fall on the same distractor?

Fleiss' kappa over the five positions mostly restates accuracy (answers agree because most
are right). Two measures that do not:
- **kappa among wrong answers**: per trial, only the wrong answers, over the trial's four
  distractor positions. Observed: the chance two wrong answers to one trial name the same
  distractor; chance: the same from the positions' overall shares of wrong answers
  (renormalised over each trial's distractors). 0 = wrong answers scatter as position
  preference alone predicts; 1 = every trial's wrong answers name one distractor.
- **error consistency** (Geirhos, Meding & Wichmann 2020): Cohen's kappa on right/wrong,
  kappa = (c_obs - c_exp) / (1 - c_exp), c_obs the share of (answer, trial) pairs where
  both sides are right or both wrong, c_exp = p1 p2 + (1 - p1)(1 - p2) what their
  accuracies alone give. Between people: pairs of answers to the same trial (the people's
  own ceiling); between people and a feature set: every answer against the feature set's
  top candidate on that trial (trials it could not rank are left out and counted).
Intervals: 95 % percentile, trials resampled with all their answers.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import N_CANDIDATES
from analysis.load import MACHINE_PREFIX, machine_columns, order_populations

COLUMNS = ["population", "measure", "compared", "trials", "answers", "observed", "chance",
           "kappa", "low", "high", "trials_left_out"]


def _weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1 / n), size=n_resamples).astype(float)


def _interval(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) < 2:
        return math.nan, math.nan
    lo, hi = np.quantile(v, [0.025, 0.975])
    return float(lo), float(hi)


def kappa_among_wrong(d: pd.DataFrame, n_resamples: int = 2000, seed: int = 0,
                      k: int = N_CANDIDATES) -> dict:
    """Return kappa among wrong answers (module docstring) for answers ``d`` (columns
    trial, chosen_position, true_position): trials (with two or more wrong answers),
    answers (wrong ones on them), observed, chance, kappa, low, high."""
    wrong = d[d["chosen_position"] != d["true_position"]]
    counts = pd.crosstab(wrong["trial"], wrong["chosen_position"]).reindex(
        columns=range(1, k + 1), fill_value=0)
    true = wrong.groupby("trial")["true_position"].first().reindex(counts.index)
    c = counts.to_numpy(float)
    n = c.sum(axis=1)
    keep = n >= 2
    c, n, true = c[keep], n[keep], true.to_numpy(int)[keep]
    out = {"trials": int(len(c)), "answers": int(n.sum())}
    if len(c) < 2:
        return {**out, "observed": math.nan, "chance": math.nan, "kappa": math.nan,
                "low": math.nan, "high": math.nan}
    p_t = (c * (c - 1)).sum(axis=1) / (n * (n - 1))
    q = c.sum(axis=0) / c.sum()
    open_ = np.ones_like(c)
    open_[np.arange(len(c)), true - 1] = 0.0
    qq = q * open_
    with np.errstate(invalid="ignore", divide="ignore"):
        pe_t = (qq ** 2).sum(axis=1) / qq.sum(axis=1) ** 2
    pe_t = np.nan_to_num(pe_t, nan=1.0)

    def kappa(po, pe):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (po - pe) / (1 - pe)

    po, pe = float(p_t.mean()), float(pe_t.mean())
    w = _weights(len(c), n_resamples, seed)
    boot = kappa(w @ p_t / len(c), w @ pe_t / len(c))
    lo, hi = _interval(boot)
    return {**out, "observed": po, "chance": pe, "kappa": float(kappa(po, pe)),
            "low": lo, "high": hi}


def _cohen(agree: np.ndarray, pairs: np.ndarray, right1: np.ndarray, right2: np.ndarray,
           w: np.ndarray | None = None):
    """Error consistency from per-trial sums (pairs agreeing, pairs, side-1 and side-2
    right counts over the same pairs); with weights w (B, T), one value per resample."""
    if w is not None:
        agree, pairs, right1, right2 = (w @ x for x in (agree, pairs, right1, right2))
    else:
        agree, pairs, right1, right2 = (x.sum() for x in (agree, pairs, right1, right2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = right1 / pairs, right2 / pairs
        obs = agree / pairs
        exp = p1 * p2 + (1 - p1) * (1 - p2)
        return obs, exp, (obs - exp) / (1 - exp)


def error_consistency(d: pd.DataFrame, machine: pd.Series | None = None,
                      n_resamples: int = 2000, seed: int = 0) -> dict:
    """Return error consistency (module docstring) of answers ``d`` (columns trial,
    correct) between people, or, with ``machine`` (per trial: the feature set right,
    True/False, NaN where it chose nothing), between people and the feature set: trials,
    answers, observed, chance, kappa, low, high, trials_left_out."""
    per = d.groupby("trial")["correct"].agg(["sum", "size"]).astype(float)
    left_out = 0
    if machine is None:
        kk, nn = per["sum"].to_numpy(), per["size"].to_numpy()
        keep = nn >= 2
        kk, nn = kk[keep], nn[keep]
        pairs = nn * (nn - 1)
        agree = kk * (kk - 1) + (nn - kk) * (nn - kk - 1)
        r1 = r2 = kk * (nn - 1)
    else:
        m = machine.reindex(per.index)
        left_out = int(m.isna().sum())
        per, m = per[m.notna()], m[m.notna()].astype(float).to_numpy()
        kk, nn = per["sum"].to_numpy(), per["size"].to_numpy()
        pairs = nn
        agree = m * kk + (1 - m) * (nn - kk)
        r1, r2 = kk, m * nn
    out = {"trials": int(len(kk)), "answers": int(nn.sum()), "trials_left_out": left_out}
    if len(kk) < 2:
        return {**out, "observed": math.nan, "chance": math.nan, "kappa": math.nan,
                "low": math.nan, "high": math.nan}
    obs, exp, kap = _cohen(agree, pairs, r1, r2)
    lo, hi = _interval(_cohen(agree, pairs, r1, r2,
                              _weights(len(kk), n_resamples, seed))[2])
    return {**out, "observed": float(obs), "chance": float(exp), "kappa": float(kap),
            "low": lo, "high": hi}


def error_agreement_table(df: pd.DataFrame, n_resamples: int = 2000, seed: int = 0
                          ) -> pd.DataFrame:
    """Agreement on errors per population (module docstring).

    Parameters
    ----------
    df : DataFrame
        Answers without catch trials (``Answers.without_catch()``).
    n_resamples, seed : int
        Trial bootstrap resamples and seed.

    Returns
    -------
    DataFrame
        COLUMNS, per population: "kappa among wrong answers" (compared "people"), "error
        consistency" between people, then against each feature set ("machine: <key>").

    Examples
    --------
    >>> error_agreement_table(answers.without_catch(), n_resamples=2000)  # doctest: +SKIP
    """
    rows = []
    trials = df.drop_duplicates("trial").set_index("trial")
    for pop in order_populations(df["population"].unique()):
        d = df[df["population"] == pop]
        rows.append({"population": pop, "measure": "kappa among wrong answers",
                     "compared": "people", "trials_left_out": 0,
                     **kappa_among_wrong(d, n_resamples, seed)})
        rows.append({"population": pop, "measure": "error consistency",
                     "compared": "people", **error_consistency(d, None, n_resamples, seed)})
        for col in machine_columns(df):
            choice = trials[col]
            right = (choice == trials["true_position"]).astype(float).where(choice.notna())
            rows.append({"population": pop, "measure": "error consistency",
                         "compared": "machine: " + col[len(MACHINE_PREFIX):],
                         **error_consistency(d, right, n_resamples, seed)})
    return pd.DataFrame(rows, columns=COLUMNS)

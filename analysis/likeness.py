"""How human-like is each model: for every feature set, how often its choice is the
people's majority choice, and how well its distances order the five candidates the way
people's votes do (the question the paper opens: how humans compare, compared to
machines)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis import N_CANDIDATES
from analysis.stats import majority_credit

COLUMNS = ["rank", "feature_set", "trials", "no_choice", "choice_trials", "same_as_human",
           "same_low", "same_high", "accuracy", "spearman_trials", "spearman_mean",
           "spearman_low", "spearman_high"]


def trial_spearman(distances, shares) -> float:
    """Return Spearman's rank correlation, over one trial's candidates, between the
    negated distances (nearer = higher) and the share of people choosing each candidate;
    NaN when a distance is not finite or either side is constant."""
    d = np.asarray(distances, dtype=float)
    s = np.asarray(shares, dtype=float)
    if not np.all(np.isfinite(d)) or np.ptp(d) == 0 or np.ptp(s) == 0:
        return math.nan
    return float(stats.spearmanr(-d, s).statistic)


def likeness_table(items: pd.DataFrame, machine_keys: list[str],
                   distances: dict[str, dict[str, list[float]]] | None = None,
                   n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Return one row per feature set, most human-like first.

    Parameters
    ----------
    items : DataFrame
        analysis.items.item_table (one row per trial).
    machine_keys : list of str
        The experiment's feature sets.
    distances : dict, optional
        feature set -> trial id -> the five candidates' distances to the query (display
        order; inf where the feature set has none). Without it the Spearman columns are
        NaN.

    Returns
    -------
    DataFrame
        rank, feature_set, trials, no_choice (trials it could not rank), choice_trials
        (trials where it had a choice), same_as_human (mean over those of
        analysis.stats.majority_credit: 1 where it chose the people's most chosen
        candidate, 1 / k where k candidates tie for most chosen; the definition
        score-humans uses) with a 95 % percentile bootstrap interval over trials
        (same_low, same_high),
        accuracy (share of trials where it chose the true match), spearman_trials,
        spearman_mean (mean over trials of trial_spearman) and its percentile bootstrap
        interval over trials. Sorted by spearman_mean when distances are given, else by
        same_as_human.

    Examples
    --------
    >>> dist = trial_distances("demo.json")[0]  # doctest: +SKIP
    >>> likeness_table(item_table(df, images), answers.machine_keys, dist)  # doctest: +SKIP
    """
    rows = []
    shares = items[[f"count_{p}" for p in range(1, N_CANDIDATES + 1)]].to_numpy(float)
    shares = shares / np.maximum(1, shares.sum(axis=1, keepdims=True))
    rng = np.random.default_rng(seed)
    for key in machine_keys:
        if key not in items.columns:
            continue
        choice = items[key]
        has = choice.notna().to_numpy()
        credit = majority_credit(choice.astype("Float64").to_numpy(float, na_value=np.nan) - 1,
                                 shares)[has]
        n = len(credit)
        if n > 1:
            boots = credit[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
            lo, hi = (float(x) for x in np.quantile(boots, [0.025, 0.975]))
        else:
            lo = hi = math.nan
        acc = float((choice == items["true_position"]).fillna(False).mean()) if len(items) else math.nan
        rho = np.array([trial_spearman(distances[key][t], shares[i])
                        if distances and key in distances and t in distances[key] else math.nan
                        for i, t in enumerate(items["trial"])])
        rho = rho[~np.isnan(rho)]
        if len(rho):
            boots = rho[rng.integers(0, len(rho), size=(n_resamples, len(rho)))].mean(axis=1)
            r_lo, r_hi = (float(x) for x in np.quantile(boots, [0.025, 0.975]))
        else:
            r_lo = r_hi = math.nan
        rows.append({"feature_set": key, "trials": len(items), "no_choice": int((~has).sum()),
                     "choice_trials": n,
                     "same_as_human": float(credit.mean()) if n else math.nan,
                     "same_low": lo, "same_high": hi, "accuracy": acc,
                     "spearman_trials": len(rho),
                     "spearman_mean": float(rho.mean()) if len(rho) else math.nan,
                     "spearman_low": r_lo, "spearman_high": r_hi})
    out = pd.DataFrame(rows, columns=COLUMNS[1:])
    by = "spearman_mean" if out["spearman_mean"].notna().any() else "same_as_human"
    out = out.sort_values([by, "feature_set"], ascending=[False, True], na_position="last",
                          ignore_index=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    out.attrs["ordered_by"] = by
    return out

"""Agreement between participants (paper §4.3, Fig. 5a/5b).

Per trial: how the answers spread over the five candidates; agreement = the share
choosing the most chosen candidate ("k of n agreed" with k the top count). Summaries:
the share of trials with a majority (``strict``: k > n/2, the default; ``half``: k >= n/2,
which may be how the paper counted its 87 %), with total agreement (k == n), the histogram
of k for each n, Pearson's r between agreement and the share choosing the true match, and
Fleiss' kappa (agreement beyond chance) with a bootstrap interval over trials.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import N_CANDIDATES

MAJORITY_RULES = {"strict": "more than half (k > n/2)", "half": "half or more (k ≥ n/2)"}


def check_majority(rule: str) -> str:
    """Return ``rule`` if it is a known majority rule, else raise AnalysisError."""
    if rule not in MAJORITY_RULES:
        from analysis.errors import AnalysisError
        raise AnalysisError(f"unknown majority rule {rule!r}: use one of "
                            f"{', '.join(MAJORITY_RULES)}")
    return rule


def trial_distribution(df: pd.DataFrame, n_candidates: int = N_CANDIDATES,
                       majority: str = "strict") -> pd.DataFrame:
    """Return one row per trial (sorted by trial id).

    Columns: trial, subset, condition, true_position, n (answers), count_1..count_K
    (answers per display position), top (largest count), top_position (the most chosen
    position; the lowest one on ties), tied (several positions share the top count),
    agreement (top / n), share_correct (share choosing the true match), majority
    (``strict``: top > n/2; ``half``: top >= n/2), total (top == n).

    Examples
    --------
    >>> trial_distribution(answers.without_catch(), majority="half")  # doctest: +SKIP
    """
    check_majority(majority)
    cols = [f"count_{p}" for p in range(1, n_candidates + 1)]
    if df.empty:
        return pd.DataFrame(columns=["trial", "subset", "condition", "true_position", "n",
                                     *cols, "top", "top_position", "tied", "agreement",
                                     "share_correct",
                                     "majority", "total"])
    counts = (pd.crosstab(df["trial"], df["chosen_position"])
              .reindex(columns=range(1, n_candidates + 1), fill_value=0))
    counts.columns = cols
    info = df.drop_duplicates("trial").set_index("trial")[["subset", "condition",
                                                            "true_position"]]
    out = info.join(counts, how="right")
    m = counts.to_numpy()
    n = m.sum(axis=1)
    top = m.max(axis=1)
    true_counts = m[np.arange(len(m)), out["true_position"].to_numpy() - 1]
    out.insert(3, "n", n)
    out["top"] = top
    out["top_position"] = m.argmax(axis=1) + 1
    out["tied"] = (m == top[:, None]).sum(axis=1) > 1
    out["agreement"] = top / n
    out["share_correct"] = true_counts / n
    out["majority"] = 2 * top > n if majority == "strict" else 2 * top >= n
    out["total"] = top == n
    return out.reset_index().rename(columns={"index": "trial"}).sort_values("trial",
                                                                            ignore_index=True)


def agreement_histogram(per_trial: pd.DataFrame) -> pd.DataFrame:
    """The "k of n agreed" histogram (Fig. 5a).

    Parameters
    ----------
    per_trial : DataFrame
        From trial_distribution.

    Returns
    -------
    DataFrame
        One row per (n, k), k from ceil(n / 5) to n: n, k, trials (with that top count),
        share (among the trials with n answers).

    Examples
    --------
    >>> agreement_histogram(trial_distribution(df))  # doctest: +SKIP
    """
    rows = []
    for n, group in per_trial.groupby("n"):
        n = int(n)
        k_min = math.ceil(n / N_CANDIDATES)
        counts = group["top"].value_counts()
        for k in range(k_min, n + 1):
            c = int(counts.get(k, 0))
            rows.append({"n": n, "k": k, "trials": c, "share": c / len(group)})
    return pd.DataFrame(rows, columns=["n", "k", "trials", "share"])


@dataclass
class AgreementSummary:
    """Summary of the agreement between participants on one set of trials."""

    trials: int
    answers: int
    answers_per_trial: dict[int, int]  # n -> number of trials with n answers
    majority_share: float
    total_share: float
    mean_agreement: float
    pearson_r: float
    pearson_p: float
    note: str = ""

    def as_dict(self) -> dict:
        """Return the summary as a flat dict (answers_per_trial as "n:trials; ...")."""
        d = dict(self.__dict__)
        d["answers_per_trial"] = "; ".join(f"{n} answers: {t} trials"
                                           for n, t in sorted(self.answers_per_trial.items()))
        return d


def summarize(per_trial: pd.DataFrame) -> AgreementSummary:
    """Majority and total-agreement shares and Pearson's r between agreement and correctness.

    Parameters
    ----------
    per_trial : DataFrame
        From trial_distribution (its ``majority`` column carries the rule chosen there).

    Returns
    -------
    AgreementSummary
        trials, answers, answers_per_trial, majority_share, total_share, mean_agreement,
        pearson_r, pearson_p (NaN, with a note, when fewer than 3 trials or a variable is
        constant), note.

    Examples
    --------
    >>> summarize(trial_distribution(df, majority="half")).majority_share  # doctest: +SKIP
    """
    t = len(per_trial)
    if t == 0:
        return AgreementSummary(0, 0, {}, math.nan, math.nan, math.nan, math.nan, math.nan,
                                "no answers")
    per_n = {int(k): int(v) for k, v in per_trial["n"].value_counts().sort_index().items()}
    a = per_trial["agreement"].to_numpy(float)
    c = per_trial["share_correct"].to_numpy(float)
    notes = []
    if len(per_n) > 1:
        notes.append(f"trials have different numbers of answers ({', '.join(map(str, per_n))})")
    if t < 3:
        r, p = math.nan, math.nan
        notes.append("Pearson's r needs at least 3 trials")
    elif np.ptp(a) == 0 or np.ptp(c) == 0:
        r, p = math.nan, math.nan
        notes.append("Pearson's r undefined: agreement or correctness is the same on every trial")
    else:
        res = stats.pearsonr(a, c)
        r, p = float(res.statistic), float(res.pvalue)
    return AgreementSummary(
        trials=t, answers=int(per_trial["n"].sum()), answers_per_trial=per_n,
        majority_share=float(per_trial["majority"].mean()),
        total_share=float(per_trial["total"].mean()),
        mean_agreement=float(a.mean()), pearson_r=r, pearson_p=p, note="; ".join(notes))


def by_population(df: pd.DataFrame, majority: str = "strict") -> dict[str, pd.DataFrame]:
    """Return {population: trial_distribution of that population's answers}; agreement is
    measured within a population (the paper's Fig. 5 is the AMT workers)."""
    from analysis.load import order_populations
    return {pop: trial_distribution(df[df["population"] == pop], majority=majority)
            for pop in order_populations(df["population"].unique())}


def fleiss_kappa(counts) -> float:
    """Return Fleiss' kappa of a trials x categories table of answer counts.

    Parameters
    ----------
    counts : array_like, shape (T, K)
        counts[t, j]: answers on trial t choosing display position j + 1. Trials may have
        different numbers of answers (the per-trial agreement uses each trial's own n);
        trials with fewer than two answers are left out.

    Returns
    -------
    float
        (P̄ − P̄e) / (1 − P̄e), with P_t = Σ_j c_tj (c_tj − 1) / (n_t (n_t − 1)) and
        P̄e = Σ_j p_j², p_j the share of all answers on position j. 1 = total agreement,
        0 = what chance alone gives, NaN when undefined (no trial with two answers, or
        every answer on one position).
        With equal n this is statsmodels.stats.inter_rater.fleiss_kappa.

    Examples
    --------
    >>> fleiss_kappa([[20, 0, 0, 0, 0], [0, 10, 10, 0, 0]])  # doctest: +SKIP
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2:
        return math.nan
    n = c.sum(axis=1)
    c = c[n >= 2]
    n = n[n >= 2]
    if len(c) == 0:
        return math.nan
    p_t = (c * (c - 1)).sum(axis=1) / (n * (n - 1))
    p_j = c.sum(axis=0) / n.sum()
    pe = float((p_j ** 2).sum())
    if pe >= 1.0:
        return math.nan
    return float((p_t.mean() - pe) / (1 - pe))


def fleiss_kappa_interval(counts, n_resamples: int = 2000, seed: int = 0,
                          level: float = 0.95) -> tuple[float, float]:
    """Return the percentile bootstrap interval (low, high) of Fleiss' kappa, trials
    resampled with replacement (the trial is the unit whose answers agree)."""
    c = np.asarray(counts, dtype=float)
    c = c[c.sum(axis=1) >= 2]
    if len(c) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    ks = np.array([fleiss_kappa(c[rng.integers(0, len(c), len(c))])
                   for _ in range(n_resamples)])
    ks = ks[~np.isnan(ks)]
    if len(ks) == 0:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(ks, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def kappa_table(per_trials: dict[str, pd.DataFrame], n_resamples: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Fleiss' kappa per population with a bootstrap interval over trials.

    Parameters
    ----------
    per_trials : dict of str to DataFrame
        population -> trial_distribution (as by_population returns).
    n_resamples, seed : int
        Bootstrap resamples and seed.

    Returns
    -------
    DataFrame
        population, trials, answers, kappa, kappa_low, kappa_high (95 %).

    Examples
    --------
    >>> kappa_table(by_population(df), n_resamples=2000)  # doctest: +SKIP
    """
    rows = []
    for pop, per_trial in per_trials.items():
        counts = per_trial[[c for c in per_trial.columns if c.startswith("count_")]]
        k = fleiss_kappa(counts.to_numpy())
        lo, hi = fleiss_kappa_interval(counts.to_numpy(), n_resamples, seed)
        rows.append({"population": pop, "trials": len(per_trial),
                     "answers": int(per_trial["n"].sum()), "kappa": k,
                     "kappa_low": lo, "kappa_high": hi})
    return pd.DataFrame(rows, columns=["population", "trials", "answers", "kappa",
                                       "kappa_low", "kappa_high"])

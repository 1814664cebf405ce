"""Agreement between participants (paper §4.3, Fig. 5a/5b).

Per trial: how the answers spread over the five candidates; agreement = the share
choosing the most chosen candidate ("k of n agreed" with k the top count). Summaries:
the share of trials with a majority (k > n/2, strictly), with total agreement (k == n),
the histogram of k for each n, and Pearson's r between agreement and the share choosing
the true match.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import N_CANDIDATES


def trial_distribution(df: pd.DataFrame, n_candidates: int = N_CANDIDATES) -> pd.DataFrame:
    """Return one row per trial: trial, subset, condition, n (answers), count_1..count_K
    (answers per display position), top (largest count), agreement (top / n),
    share_correct (share choosing the true match), majority (top > n/2),
    total (top == n)."""
    cols = [f"count_{p}" for p in range(1, n_candidates + 1)]
    if df.empty:
        return pd.DataFrame(columns=["trial", "subset", "condition", "true_position", "n",
                                     *cols, "top", "agreement", "share_correct",
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
    out["agreement"] = top / n
    out["share_correct"] = true_counts / n
    out["majority"] = 2 * top > n
    out["total"] = top == n
    return out.reset_index().rename(columns={"index": "trial"}).sort_values("trial",
                                                                            ignore_index=True)


def agreement_histogram(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Return the "k of n agreed" histogram: one row per (n, k) with k from the smallest
    possible top count (ceil(n / K)) to n, the number of trials and their share among the
    trials with that n (Fig. 5a)."""
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
    """Return the majority and total-agreement shares and Pearson's r (with its p-value)
    between agreement and the share choosing the true match across trials.

    r is NaN, with a note, when fewer than 3 trials or when either variable is constant.
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


def by_population(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Return {population: trial_distribution of that population's answers}; agreement is
    measured within a population (the paper's Fig. 5 is the AMT workers)."""
    from analysis.load import order_populations
    return {pop: trial_distribution(df[df["population"] == pop])
            for pop in order_populations(df["population"].unique())}

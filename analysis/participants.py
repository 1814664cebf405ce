"""Per-participant checks: accuracy, median response time, failed catch trials, and
answering one display position far more often than chance."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import N_CANDIDATES
from analysis.load import order_populations

# A participant is flagged for position preference when a one-sided binomial test of
# "their most chosen position is chosen more often than 1/K", Bonferroni-corrected for
# the K positions (the most chosen one is picked after looking), gives p < POSITION_ALPHA.
POSITION_ALPHA = 0.01


def position_preference_p(counts, n_candidates: int = N_CANDIDATES) -> float:
    """Return the Bonferroni-corrected one-sided binomial p-value that the most chosen
    position (counts per position) is chosen more often than 1/K."""
    counts = np.asarray(counts, dtype=int)
    n = int(counts.sum())
    if n == 0:
        return float("nan")
    p = stats.binomtest(int(counts.max()), n, 1.0 / n_candidates, alternative="greater").pvalue
    return float(min(1.0, p * n_candidates))


def participant_table(df: pd.DataFrame, alpha: float = POSITION_ALPHA,
                      n_candidates: int = N_CANDIDATES) -> pd.DataFrame:
    """Return one row per participant: population, answers (ordinary trials), accuracy,
    median_rt_ms, catch_answers, catch_failed, top_position (most chosen), top_share,
    position_p (see position_preference_p), and the flags failed_catch
    (at least one catch trial wrong) and position_bias (position_p < alpha)."""
    rows = []
    for (pop, who), d in df.groupby(["population", "participant"], sort=False):
        ordinary, catch = d[~d["catch"]], d[d["catch"]]
        counts = np.bincount(ordinary["chosen_position"].to_numpy(int) - 1,
                             minlength=n_candidates)[:n_candidates]
        n = len(ordinary)
        p = position_preference_p(counts, n_candidates)
        failed = int((~catch["correct"]).sum())
        rows.append({
            "participant": who, "population": pop, "answers": n,
            "accuracy": float(ordinary["correct"].mean()) if n else np.nan,
            "median_rt_ms": float(d["rt_ms"].median()) if d["rt_ms"].notna().any() else np.nan,
            "catch_answers": len(catch), "catch_failed": failed,
            "top_position": int(counts.argmax()) + 1 if n else pd.NA,
            "top_share": float(counts.max() / n) if n else np.nan,
            "position_p": p,
            "failed_catch": failed > 0,
            "position_bias": bool(p < alpha) if n else False,
        })
    out = pd.DataFrame(rows, columns=["participant", "population", "answers", "accuracy",
                                      "median_rt_ms", "catch_answers", "catch_failed",
                                      "top_position", "top_share", "position_p",
                                      "failed_catch", "position_bias"])
    order = {p: i for i, p in enumerate(order_populations(out["population"].unique()))}
    return out.sort_values(["population", "participant"], key=lambda s: s.map(order)
                           if s.name == "population" else s, ignore_index=True)

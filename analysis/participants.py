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


def wrong_position_p(chosen, true, n_candidates: int = N_CANDIDATES) -> tuple[float, int]:
    """Return (p, position): the Bonferroni-corrected one-sided binomial p-value that a
    participant's wrong answers land on one display position more often than their trials'
    true positions predict, and that position (1-based; 0 when no wrong answer).

    Without a preference, a wrong answer on a trial whose true match is at position t is
    any of the other K-1 positions alike, so position p expects the share
    q_p = (wrong answers with t != p) / ((K-1) * wrong answers). Each position's count is
    tested against q_p (binomial, greater), the smallest p-value times K is returned.
    A participant who is always right has no wrong answer and p = 1: being right is no bias.
    """
    chosen = np.asarray(chosen, dtype=int)
    true = np.asarray(true, dtype=int)
    wrong = chosen != true
    m = int(wrong.sum())
    if m == 0:
        return 1.0, 0
    obs = np.bincount(chosen[wrong] - 1, minlength=n_candidates)[:n_candidates]
    at_true = np.bincount(true[wrong] - 1, minlength=n_candidates)[:n_candidates]
    q = (m - at_true) / ((n_candidates - 1) * m)
    best, where = 1.0, 0
    for i in range(n_candidates):
        if obs[i] == 0 or q[i] <= 0:
            continue
        p = stats.binomtest(int(obs[i]), m, float(q[i]), alternative="greater").pvalue
        if p < best:
            best, where = float(p), i + 1
    return min(1.0, best * n_candidates), where


def participant_table(df: pd.DataFrame, alpha: float = POSITION_ALPHA,
                      n_candidates: int = N_CANDIDATES) -> pd.DataFrame:
    """One row per participant: accuracy, response time, catch trials and position bias.

    Parameters
    ----------
    df : DataFrame
        All answers of the participants (catch trials included: they count for the
        failed_catch flag only).
    alpha : float
        Threshold of the position flag (0.01).
    n_candidates : int
        Positions per trial (5).

    Returns
    -------
    DataFrame
        participant, population, answers (ordinary trials), accuracy, median_rt_ms,
        catch_answers, catch_failed, top_position (most chosen), top_share, position_p (the
        most chosen position against 1/K: kept for reference, it ignores where the true
        match was), wrong_answers, bias_position, bias_p (wrong answers against what the
        participant's trials' true positions predict, see wrong_position_p), failed_catch
        (at least one catch trial wrong), position_bias (bias_p < alpha).

    Examples
    --------
    >>> participant_table(answers.df).query("position_bias")  # doctest: +SKIP
    """
    rows = []
    for (pop, who), d in df.groupby(["population", "participant"], sort=False):
        ordinary, catch = d[~d["catch"]], d[d["catch"]]
        counts = np.bincount(ordinary["chosen_position"].to_numpy(int) - 1,
                             minlength=n_candidates)[:n_candidates]
        n = len(ordinary)
        p = position_preference_p(counts, n_candidates)
        bias_p, bias_pos = wrong_position_p(ordinary["chosen_position"],
                                            ordinary["true_position"], n_candidates)
        failed = int((~catch["correct"]).sum())
        rows.append({
            "participant": who, "population": pop, "answers": n,
            "accuracy": float(ordinary["correct"].mean()) if n else np.nan,
            "median_rt_ms": float(d["rt_ms"].median()) if d["rt_ms"].notna().any() else np.nan,
            "catch_answers": len(catch), "catch_failed": failed,
            "top_position": int(counts.argmax()) + 1 if n else pd.NA,
            "top_share": float(counts.max() / n) if n else np.nan,
            "position_p": p,
            "wrong_answers": int((~ordinary["correct"]).sum()),
            "bias_position": bias_pos, "bias_p": bias_p,
            "failed_catch": failed > 0,
            "position_bias": bool(bias_p < alpha) if n else False,
        })
    out = pd.DataFrame(rows, columns=["participant", "population", "answers", "accuracy",
                                      "median_rt_ms", "catch_answers", "catch_failed",
                                      "top_position", "top_share", "position_p",
                                      "wrong_answers", "bias_position", "bias_p",
                                      "failed_catch", "position_bias"])
    order = {p: i for i, p in enumerate(order_populations(out["population"].unique()))}
    return out.sort_values(["population", "participant"], key=lambda s: s.map(order)
                           if s.name == "population" else s, ignore_index=True)

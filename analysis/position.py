"""Position bias: how often each display position was chosen, against the count expected
when position does not matter (n / K each), with a chi-square goodness-of-fit test
(paper §4.3: AMT chose option 1 627 times of 2,400, ~30 % above 480)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import N_CANDIDATES
from analysis.load import order_populations


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


def position_table(df: pd.DataFrame, n_candidates: int = N_CANDIDATES
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (per_position, tests) for each population.

    per_position: population, position, chosen (answers choosing it), expected (n / K),
    ratio (chosen / expected), true (how often the true match was shown there: if it is
    itself unbalanced, accurate answers alone look biased).
    tests: population, answers, chi2, dof, p.
    """
    rows, tests = [], []
    for pop in order_populations(df["population"].unique()):
        d = df[df["population"] == pop]
        obs = position_counts(d["chosen_position"], n_candidates)
        true = position_counts(d["true_position"], n_candidates)
        t = position_test(obs)
        for i in range(n_candidates):
            rows.append({"population": pop, "position": i + 1, "chosen": int(obs[i]),
                         "expected": float(t["expected"][i]), "ratio": float(t["ratio"][i]),
                         "true": int(true[i])})
        tests.append({"population": pop, "answers": int(obs.sum()), "chi2": t["chi2"],
                      "dof": t["dof"], "p": t["p"]})
    return (pd.DataFrame(rows, columns=["population", "position", "chosen", "expected",
                                        "ratio", "true"]),
            pd.DataFrame(tests, columns=["population", "answers", "chi2", "dof", "p"]))

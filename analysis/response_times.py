"""Response times by condition (as measured in the participant's page)."""
from __future__ import annotations

import pandas as pd

from analysis.accuracy import CONDITION_ORDER, _order
from analysis.load import order_populations


def rt_table(df: pd.DataFrame) -> pd.DataFrame:
    """Response times per population and condition.

    Parameters
    ----------
    df : DataFrame
        Answers (rt_ms may be NaN where the page measured none).

    Returns
    -------
    DataFrame
        population, condition, answers, timed (answers with a time), median_ms, mean_ms,
        q25_ms, q75_ms.

    Examples
    --------
    >>> rt_table(answers.without_catch())  # doctest: +SKIP
    """
    rows = []
    for pop in order_populations(df["population"].unique()):
        d = df[df["population"] == pop]
        for cond in _order(d["condition"].unique(), CONDITION_ORDER):
            rt = d.loc[d["condition"] == cond, "rt_ms"]
            t = rt.dropna()
            rows.append({"population": pop, "condition": cond, "answers": len(rt),
                         "timed": len(t),
                         "median_ms": t.median() if len(t) else float("nan"),
                         "mean_ms": t.mean() if len(t) else float("nan"),
                         "q25_ms": t.quantile(0.25) if len(t) else float("nan"),
                         "q75_ms": t.quantile(0.75) if len(t) else float("nan")})
    return pd.DataFrame(rows, columns=["population", "condition", "answers", "timed",
                                       "median_ms", "mean_ms", "q25_ms", "q75_ms"])

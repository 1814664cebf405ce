"""Small pure statistics helpers (numbers in, numbers out)."""
from __future__ import annotations

import math

import pandas as pd
from scipy import stats as _st

Z95 = float(_st.norm.ppf(0.975))


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Return the Wilson score interval (low, high) for k successes in n trials.

    Wilson rather than the normal approximation because shares near 0 or 1 with small n
    (20 answers per cell, machine rows of 0 %) are common here. n == 0 gives (nan, nan).
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def majority_credit(choice, counts):
    """Return per trial how far candidate ``choice`` (0-based index; negative or NaN = no
    choice) is the people's most chosen one: 1, or 1 / k when k candidates tie for most
    chosen, 0 otherwise, NaN without a choice. The one definition of "nearest = majority"
    of the project (analysis likeness, experiments score-humans)."""
    import numpy as np

    counts = np.asarray(counts, dtype=float)
    choice = np.asarray(choice, dtype=float)
    top = counts == counts.max(axis=1, keepdims=True)
    has = np.isfinite(choice) & (choice >= 0)
    idx = np.where(has, choice, 0).astype(int)
    credit = top[np.arange(len(counts)), idx] / top.sum(axis=1)
    return np.where(has, credit, np.nan)


def cohen_h(p1: float, p2: float) -> float:
    """Return Cohen's h, 2·asin(√p1) − 2·asin(√p2): the effect size of a difference
    between two proportions (0.2 small, 0.5 medium, 0.8 large)."""
    if any(math.isnan(x) for x in (p1, p2)):
        return math.nan
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def format_p(p: float) -> str:
    """Return a p-value as text: "< 0.001" below 0.001, three decimals otherwise, "—"
    when undefined."""
    if p is None or p is pd.NA or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def is_p_column(name: str) -> bool:
    """Return whether a table column holds p-values (p, p_holm, p_wrong, bias_p, …)."""
    name = str(name)
    return name == "p" or name.startswith("p_") or name.endswith("_p")


def format_p_columns(table):
    """Return a copy of a DataFrame with every p-value column as text (format_p), so
    that no p-value prints as 0.000."""
    out = table.copy()
    for col in out.columns:
        if is_p_column(col) and pd.api.types.is_numeric_dtype(out[col]) \
                and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].map(format_p)
    return out

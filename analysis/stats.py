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


def cluster_bootstrap_interval(correct, n_answers, n_resamples: int = 2000, seed: int = 0,
                               level: float = 0.95) -> tuple[float, float]:
    """Return the percentile interval (low, high) of the share correct when trials, and
    the answers within each trial, are resampled with replacement.

    Parameters
    ----------
    correct, n_answers : array_like of int, shape (T,)
        Per trial: answers choosing the true match and all answers.
    n_resamples : int
        Bootstrap resamples (B).
    seed : int
        Seed of numpy's default generator, so that a report is reproducible.

    Returns
    -------
    (low, high) : tuple of float
        (nan, nan) when there are no answers.

    Notes
    -----
    Two stages: T trials drawn with replacement, then each drawn trial's n answers drawn
    with replacement from that trial's answers (a binomial draw with the trial's share).
    Answers to one trial are correlated (the same five images), so the interval widens
    with the between-trial spread: when every trial is all right or all wrong it is about
    sqrt(n) times the width of Wilson's, which assumes independent answers.

    Examples
    --------
    >>> cluster_bootstrap_interval([16, 0, 16, 0], [16, 16, 16, 16], n_resamples=2000)  # doctest: +SKIP
    """
    import numpy as np

    k = np.asarray(correct, dtype=float)
    n = np.asarray(n_answers, dtype=float)
    keep = n > 0
    k, n = k[keep], n[keep]
    if n.sum() == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), size=(n_resamples, len(n)))
    nn = n[idx].astype(np.int64)
    kk = rng.binomial(nn, k[idx] / n[idx])
    shares = kk.sum(axis=1) / nn.sum(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(shares, [alpha, 1 - alpha])
    return (float(lo), float(hi))


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

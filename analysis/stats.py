"""Small pure statistics helpers (numbers in, numbers out)."""
from __future__ import annotations

import math

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

"""Intervals for shares of correct answers that match how the answers were collected.

Answers to one trial share its five images; answers by one participant share that
person. Which of the two makes answers depend on each other is read from the data:
- ``wilson``: every trial has one answer and every participant gave one answer: the
  answers are independent, and Wilson's score interval is exact enough;
- ``trial bootstrap``: trials have several answers, each participant gave one (MTurk with
  one answer per worker): trials are resampled with all their answers (one stage: the
  answers within a trial are not resampled again, which would count their binomial noise
  twice);
- ``participant bootstrap``: participants answered several trials, each trial once;
- ``two-way cluster-robust``: participants answered many trials and trials have several
  answers (the lab): the variance of the share is the trial-clustered plus the
  participant-clustered sandwich variance minus the answer-level one (Cameron, Gelbach &
  Miller 2011), each with its G / (G - 1) factor. The pigeonhole bootstrap, which resamples
  participants and trials at once, counts the answers' binomial noise up to three times:
  on lab-like studies its intervals for differences covered 0.98.
Each variance gives a design effect, deff = variance / binomial variance, and the interval
is Wilson's at the effective number of answers n / deff (Korn & Graubard 1998), with
Student's t on (fewest clusters - 1) degrees of freedom under a clustered design. Wilson's
interval keeps its bounds inside [0, 1] and is never empty: 0 of 20 gives [0, 16.1 %],
361 of 400 an upper bound below 100 %; a plain percentile bootstrap gives [0, 0] for 0 of
20, since every resample is 0.
Differences between two shares use Newcombe's hybrid score interval built from the two
intervals, with the correlation of the two shares across the same resamples (positive
when the same people answered both cells, Newcombe 1998, method 10).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

from analysis.stats import Z95, wilson_interval

WILSON = "wilson"
TRIAL = "trial bootstrap"
PARTICIPANT = "participant bootstrap"
CROSSED = "two-way cluster-robust"
DESIGNS = (WILSON, TRIAL, PARTICIPANT, CROSSED)
DESCRIPTIONS = {
    WILSON: "Wilson score interval (each trial and each participant has one answer: "
            "independent answers)",
    TRIAL: "trial bootstrap (several answers per trial, one per participant: trials "
           "resampled with their answers), Wilson at the effective n",
    PARTICIPANT: "participant bootstrap (participants answered several trials, each trial "
                 "once: participants resampled), Wilson at the effective n",
    CROSSED: "two-way cluster-robust (participants answered many trials, trials have "
             "several answers: trial + participant - answer sandwich variances), Wilson at "
             "the effective n",
}


def design_of(d: pd.DataFrame) -> str:
    """Return the design of answers (columns trial, participant): one of DESIGNS, read
    from whether trials and participants have more than one answer."""
    if d.empty:
        return WILSON
    by_trial = d.groupby("trial").size().max() > 1
    by_person = d.groupby("participant").size().max() > 1
    if by_trial and by_person:
        return CROSSED
    return TRIAL if by_trial else (PARTICIPANT if by_person else WILSON)


@dataclass
class Shares:
    """The shares correct of several groups of answers and their covariance under the
    design (from the same resamples, or the same sandwich, so that correlation is kept)."""

    estimate: np.ndarray   # (G,) observed shares
    n: np.ndarray          # (G,) answers
    cov: np.ndarray        # (G, G) covariance of the shares under the design
    design: str
    clusters: float = math.inf  # fewest independent units (trials, participants) of a group

    @property
    def z(self) -> float:
        """The 97.5 % quantile: Student's t on clusters - 1 degrees of freedom under a
        clustered design (few clusters make sandwich and bootstrap variances too small),
        the normal one under Wilson."""
        if not math.isfinite(self.clusters):
            return Z95
        return float(_st.t.ppf(0.975, max(1.0, self.clusters - 1)))


def _weights(strata: np.ndarray, size: int, rng) -> np.ndarray:
    """(size, len(strata)) multiplicities: each stratum's units drawn with replacement."""
    w = np.zeros((size, len(strata)))
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        w[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1 / len(idx)), size=size)
    return w


def design_shares(groups: list[pd.DataFrame], n_resamples: int = 2000, seed: int = 0,
                  design: str | None = None) -> Shares:
    """The shares correct of several groups of answers with their covariance under the
    design.

    Parameters
    ----------
    groups : list of DataFrame
        Columns trial, participant, correct; e.g. two conditions of one population (trials
        differ, participants may be shared) or two populations on one cell (trials shared).
    n_resamples, seed : int
        The bootstrap's resamples and numpy seed (trial and participant bootstraps).
    design : str, optional
        One of DESIGNS; read from all groups together (design_of) when not given.

    Returns
    -------
    Shares
        Under a bootstrap, trials (or participants) are resampled within the set of groups
        they belong to (a trial in several groups is one unit shared by them), and every
        group's share comes from the same multiplicities; ``cov`` is the covariance of the
        resampled shares. Under Wilson, the binomial variances (no covariance).
    """
    allans = pd.concat([g[["trial", "participant", "correct"]].assign(_g=i)
                        for i, g in enumerate(groups)], ignore_index=True)
    allans["correct"] = allans["correct"].astype(float)
    design = design or design_of(allans)
    G = len(groups)
    k = allans.groupby("_g")["correct"].sum().reindex(range(G), fill_value=0).to_numpy()
    n = allans.groupby("_g").size().reindex(range(G), fill_value=0).to_numpy()
    est = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    if design == WILSON or allans.empty:
        var = np.where(n > 0, est * (1 - est) / np.maximum(n, 1), np.nan)
        return Shares(est, n, np.diag(var), WILSON)
    g = allans["_g"].to_numpy()
    per_group = allans.groupby("_g")[["trial", "participant"]].nunique()
    if design == CROSSED:
        return Shares(est, n, _two_way_cov(allans, est, n), CROSSED,
                      float(per_group.to_numpy().min()))
    unit = allans["trial"] if design == TRIAL else allans["participant"]
    codes, units = pd.factorize(unit)
    # the stratum of a unit: the set of groups it appears in
    strata = pd.factorize(allans.groupby(codes)["_g"].agg(lambda x: tuple(sorted(set(x)))))[0]
    w = _weights(strata, n_resamples, np.random.default_rng(seed))
    draws = np.full((n_resamples, G), np.nan)
    y = allans["correct"].to_numpy()
    for gi in range(G):
        m = g == gi
        if m.any():
            num = w @ np.bincount(codes[m], weights=y[m], minlength=len(units))
            den = w @ np.bincount(codes[m], minlength=len(units)).astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                draws[:, gi] = num / den
    ok = np.isfinite(draws).all(axis=1)
    cov = np.cov(draws[ok].T, ddof=1).reshape(G, G) if ok.sum() > 2 else \
        np.full((G, G), np.nan)
    return Shares(est, n, cov, design,
                  float(per_group["trial" if design == TRIAL else "participant"].min()))


def _two_way_cov(allans: pd.DataFrame, est: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Covariance of the groups' shares, clustered on trials and on participants."""
    G = len(est)
    g = allans["_g"].to_numpy()
    # each answer's linearised contribution to its group's share
    z = np.zeros((len(allans), G))
    z[np.arange(len(allans)), g] = (allans["correct"].to_numpy() - est[g]) / n[g]
    out = -(z.T @ z)
    for col in ("trial", "participant"):
        codes, units = pd.factorize(allans[col])
        sums = np.zeros((len(units), G))
        np.add.at(sums, codes, z)
        c = len(units) / (len(units) - 1) if len(units) > 1 else 1.0
        out += c * sums.T @ sums
    # the difference of two positive semi-definite parts can come out slightly negative
    # on the diagonal when neither clustering matters: never below the answer level
    answer = np.diag(z.T @ z)
    out[np.diag_indices(G)] = np.maximum(np.diag(out), answer)
    return out


def _effective_n(p: float, n: float, var: float) -> float:
    """n / deff; n itself when the share or its variance carries no spread."""
    var_binom = p * (1 - p) / n
    if not np.isfinite(var) or var <= 0 or var_binom <= 0:
        return float(n)
    return float(n) * var_binom / var


def share_intervals(sh: Shares) -> list[tuple[float, float]]:
    """Return each group's 95 % interval (low, high): Wilson at the effective n."""
    out = []
    for gi in range(len(sh.estimate)):
        p, n = sh.estimate[gi], sh.n[gi]
        if not n:
            out.append((math.nan, math.nan))
            continue
        ne = _effective_n(p, n, sh.cov[gi, gi])
        out.append(wilson_interval(p * ne, ne, z=sh.z))
    return out


def share_interval(d: pd.DataFrame, n_resamples: int = 2000, seed: int = 0,
                   design: str | None = None) -> tuple[float, float, str]:
    """Return (low, high, design) of the share correct of the answers ``d`` (columns
    trial, participant, correct): the 95 % interval its design calls for."""
    sh = design_shares([d], n_resamples, seed, design)
    lo, hi = share_intervals(sh)[0]
    return lo, hi, sh.design


def difference_interval(a: pd.DataFrame, b: pd.DataFrame, n_resamples: int = 2000,
                        seed: int = 0, design: str | None = None
                        ) -> tuple[float, float, float, str]:
    """Return (difference, low, high, design): share correct in ``a`` minus in ``b`` with
    Newcombe's hybrid score 95 % interval from the two design intervals, corrected for
    their correlation across the same resamples."""
    sh = design_shares([a, b], n_resamples, seed, design)
    (l1, u1), (l2, u2) = share_intervals(sh)
    p1, p2 = sh.estimate
    d = p1 - p2
    if any(math.isnan(x) for x in (p1, p2, l1, l2)):
        return d, math.nan, math.nan, sh.design
    v1, v2, c12 = sh.cov[0, 0], sh.cov[1, 1], sh.cov[0, 1]
    r = float(np.clip(c12 / math.sqrt(v1 * v2), -1, 1)) if v1 > 0 and v2 > 0 else 0.0
    lo = d - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * r * (p1 - l1) * (u2 - p2)))
    hi = d + math.sqrt(max(0.0, (u1 - p1) ** 2 + (p2 - l2) ** 2 - 2 * r * (u1 - p1) * (p2 - l2)))
    return d, max(-1.0, lo), min(1.0, hi), sh.design


__all__ = ["DESIGNS", "DESCRIPTIONS", "Z95", "Shares", "design_of", "design_shares",
           "difference_interval", "share_interval", "share_intervals"]

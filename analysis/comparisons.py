"""The tests the paper's claims need, in one table, corrected for multiple comparisons
(Holm), with effect sizes; and a mixed-effects logistic model of correctness.

The unit of every test is the trial: answers to one trial share its five images and are
not independent, so each test compares per-trial shares of correct answers.
- conditions within a subset (per population): Welch's t-test on the per-trial shares of
  the two conditions' trials (different trials: unpaired);
- populations per cell (lab against MTurk, and any other pair): paired t-test over the
  trials both answered;
- humans against each machine feature set per cell: paired t-test of the per-trial human
  share against the machine's 0/1 (no choice counts as wrong).
Effect sizes: the difference in percentage points with its 95 % interval (the design's,
analysis/intervals.py: Newcombe's hybrid score interval from the two cells' intervals and
their correlation) and Cohen's h of the two accuracies.
Families for Holm's correction are declared: one per question (conditions, populations,
human vs machine) and population; the pilot population is in none unless asked for.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis.accuracy import cells
from analysis.intervals import difference_interval
from analysis.load import MACHINE_PREFIX, machine_columns, order_populations
from analysis.stats import cohen_h

COLUMNS = ["family", "population", "subset", "condition", "a", "b", "trials_a", "trials_b",
           "accuracy_a", "accuracy_b", "difference_pp", "low_pp", "high_pp", "interval",
           "cohen_h", "test", "statistic", "p", "holm_family", "p_holm", "significant"]
# Populations that pilot a study: their rows are shown but belong to no Holm family.
PILOT_POPULATIONS = ("pilot",)
NO_FAMILY = "none (pilot)"


def _shares(d: pd.DataFrame) -> pd.Series:
    """Per-trial share of answers choosing the true match."""
    return d.groupby("trial")["correct"].mean()


def _paired(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    diff = x - y
    if len(diff) < 2:
        return math.nan, math.nan
    # shares of a few answers repeat exactly up to rounding: treat that as no spread
    if np.ptp(diff) < 1e-12:
        # Every trial differs by the same amount: no spread to test against.
        return (math.nan, math.nan) if diff[0] != 0 else (0.0, 1.0)
    res = stats.ttest_rel(x, y)
    return float(res.statistic), float(res.pvalue)


def _unpaired(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) < 1e-12 and np.ptp(y) < 1e-12):
        return math.nan, math.nan
    with warnings.catch_warnings():
        # One condition with the same share on every trial (often 100 %) is a valid
        # group of variance 0; scipy warns about its moments, the test is still Welch's.
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        res = stats.ttest_ind(x, y, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def _row(family, pop, subset, cond, a, b, xa, xb, test, stat, p, ans_a, ans_b,
         n_resamples, seed):
    """One comparison; ans_a, ans_b are the answers (trial, participant, correct) of the
    two sides, whose shares and difference interval the row reports."""
    diff, lo, hi, design = difference_interval(ans_a, ans_b, n_resamples, seed)
    acc_a = float(ans_a["correct"].mean()) if len(ans_a) else math.nan
    acc_b = float(ans_b["correct"].mean()) if len(ans_b) else math.nan
    return {"family": family, "population": pop, "subset": subset, "condition": cond,
            "a": a, "b": b, "trials_a": len(xa), "trials_b": len(xb),
            "accuracy_a": acc_a, "accuracy_b": acc_b,
            "difference_pp": 100 * diff, "low_pp": 100 * lo, "high_pp": 100 * hi,
            "interval": design, "cohen_h": cohen_h(acc_a, acc_b),
            "test": test, "statistic": stat, "p": p}


def _answers(d: pd.DataFrame) -> pd.DataFrame:
    return d[["trial", "participant", "correct"]]


def comparison_table(df: pd.DataFrame, alpha: float = 0.05, include_pilot: bool = False,
                     n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Return every comparison as one row (columns COLUMNS), Holm-corrected per family.

    Parameters
    ----------
    df : DataFrame
        Answers without catch trials (``Answers.without_catch()``).
    alpha : float
        Family-wise error rate for ``significant`` (after Holm).
    include_pilot : bool
        Put the pilot populations (PILOT_POPULATIONS) into the families too.
    n_resamples, seed : int
        Bootstrap of the difference intervals, where the design calls for one.

    Returns
    -------
    DataFrame
        family (the question: "conditions", "populations", "human vs machine"),
        population, subset, condition (for the condition family: "a vs b"), a, b,
        trials_a, trials_b, accuracy_a, accuracy_b (share of answers, 0..1),
        difference_pp with its 95 % interval low_pp, high_pp (``interval`` names the
        design's method), cohen_h, test, statistic, p (trials as the unit), holm_family
        (question | population; NO_FAMILY for a pilot population), p_holm (statsmodels'
        multipletests, method "holm", within each holm_family), significant (p_holm <
        alpha). ``attrs["notes"]`` lists what was left out and why (a machine that chose
        nothing on a cell's trials has no accuracy to compare).

    Examples
    --------
    >>> comparison_table(answers.without_catch()).query("significant")  # doctest: +SKIP
    """
    from statsmodels.stats.multitest import multipletests

    rows, notes = [], []
    pops = order_populations(df["population"].unique())
    grid = cells(df)
    kw = {"n_resamples": n_resamples, "seed": seed}
    # conditions within a subset
    for pop in pops:
        d = df[df["population"] == pop]
        for subset in dict.fromkeys(s for s, _ in grid):
            conds = [c for s, c in grid if s == subset]
            for ca, cb in itertools.combinations(conds, 2):
                da = d[(d["subset"] == subset) & (d["condition"] == ca)]
                db = d[(d["subset"] == subset) & (d["condition"] == cb)]
                xa, xb = _shares(da).to_numpy(), _shares(db).to_numpy()
                if len(xa) == 0 or len(xb) == 0:
                    continue
                stat, p = _unpaired(xa, xb)
                rows.append(_row("conditions", pop, subset, f"{ca} vs {cb}", ca, cb, xa, xb,
                                 "Welch t (trials)", stat, p, _answers(da), _answers(db),
                                 **kw))
    # populations per cell, paired by trial
    for subset, cond in grid:
        cell = df[(df["subset"] == subset) & (df["condition"] == cond)]
        per_pop = {p: _shares(cell[cell["population"] == p]) for p in pops}
        for pa, pb in itertools.combinations(pops, 2):
            both = per_pop[pa].index.intersection(per_pop[pb].index)
            if len(both) == 0:
                continue
            xa, xb = per_pop[pa][both].to_numpy(), per_pop[pb][both].to_numpy()
            stat, p = _paired(xa, xb)
            shared = cell[cell["trial"].isin(both)]
            rows.append(_row("populations", f"{pa} vs {pb}", subset, cond, pa, pb, xa, xb,
                             "paired t (trials)", stat, p,
                             _answers(shared[shared["population"] == pa]),
                             _answers(shared[shared["population"] == pb]), **kw))
    # humans against each machine, paired by trial
    trials = df.drop_duplicates("trial").set_index("trial")
    for col in machine_columns(df):
        key = col[len(MACHINE_PREFIX):]
        for pop in pops:
            for subset, cond in grid:
                cell = df[(df["population"] == pop) & (df["subset"] == subset)
                          & (df["condition"] == cond)]
                if cell.empty:
                    continue
                h = _shares(cell)
                choice = trials.loc[h.index, col]
                if choice.isna().all():
                    notes.append(f"machine: {key} against {pop} on {subset}/{cond} left out: "
                                 f"the feature set ranked none of the cell's {len(h)} trials")
                    continue
                m = (choice == trials.loc[h.index, "true_position"]
                     ).fillna(False).astype(float).to_numpy()
                stat, p = _paired(h.to_numpy(), m)
                # the machine answers each trial once: its own unit per trial
                mach = pd.DataFrame({"trial": h.index, "participant": "machine@" + h.index.astype(str),
                                     "correct": m})
                rows.append(_row("human vs machine", pop, subset, cond, pop, f"machine: {key}",
                                 h.to_numpy(), m, "paired t (trials)", stat, p,
                                 _answers(cell), mach, **kw))
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS
                                      if c not in ("holm_family", "p_holm", "significant")])
    out["holm_family"] = [_family(r, include_pilot) for r in out.itertuples()]
    out["p_holm"] = np.nan
    for fam, idx in out.groupby("holm_family").groups.items():
        ok = out.loc[idx, "p"].notna()
        if fam == NO_FAMILY or not ok.any():
            continue
        sel = ok[ok].index
        out.loc[sel, "p_holm"] = multipletests(out.loc[sel, "p"].to_numpy(float),
                                               method="holm")[1]
    out["significant"] = out["p_holm"] < alpha
    if not include_pilot and (out["holm_family"] == NO_FAMILY).any():
        notes.append("rows of the pilot population are in no Holm family (no p_holm)")
    out.attrs["notes"] = notes
    return out


def _family(row, include_pilot: bool) -> str:
    """The Holm family of a row: its question and population ("populations": the pair)."""
    sides = (row.a, row.b) if row.family == "populations" else (row.population,)
    if not include_pilot and any(s in PILOT_POPULATIONS for s in sides):
        return NO_FAMILY
    return f"{row.family} | {row.population}"


def mixed_model(df: pd.DataFrame, seed: int = 0, intervals: str = "profile"
                ) -> tuple[pd.DataFrame, str]:
    """Mixed-effects logistic model of correctness by maximum likelihood (lme4's glmer
    through Rscript, analysis/glmm.py).

    Parameters
    ----------
    df : DataFrame
        Answers without catch trials.
    seed : int
        R's seed; a fixed seed gives identical results.
    intervals : {"profile", "wald", "boot"}
        See ``analysis.glmm.fit_glmm``.

    Returns
    -------
    effects : DataFrame
        glmm.EFFECT_COLUMNS: one row per estimable fixed effect (log odds, SE, Wald z, p
        and interval, the chosen interval, odds ratios), then one row per random intercept
        kept, ``term`` "SD of <group> intercepts" with its SD in ``estimate`` and interval.
    note : str
        The model's notes, one per line (formula, reference levels, random intercepts left
        out and why, terms not estimable, warnings), or why nothing was fitted.

    Raises
    ------
    AnalysisError
        R or lme4 is missing (the message names the packages to install).

    Examples
    --------
    >>> effects, note = mixed_model(answers.without_catch())  # doctest: +SKIP
    """
    from analysis import glmm

    res = glmm.fit_glmm(df, seed=seed, intervals=intervals)
    if res is None:
        return (pd.DataFrame(columns=glmm.EFFECT_COLUMNS),
                "not fitted: needs at least 3 trials and both right and wrong answers")
    sd_rows = pd.DataFrame({"term": [f"SD of {g} intercepts"
                                     for g in res.variances["random intercept"]],
                            "estimate": res.variances["sd"], "low": res.variances["low"],
                            "high": res.variances["high"]})
    effects = pd.concat([res.effects, sd_rows], ignore_index=True) if len(sd_rows) \
        else res.effects
    return effects, "\n".join(res.notes())

"""The mixed-effects logistic model of correctness, fitted by maximum likelihood with
lme4's ``glmer`` (Laplace approximation), the reference tool in psychology.

R runs as an ``Rscript`` subprocess (analysis/r/glmm.R): the data go over as CSV in a
temporary folder, the results come back as JSON. Python decides the design first, so that
every choice is stated in the report rather than left to R:
- fixed effects: cell (subset/condition) × population in treatment coding, each term named
  against its reference level in words; columns that the data cannot estimate (a cell one
  population never answered, a term equal to a sum of others) are dropped and listed;
- random intercepts for trial and for participant where the design identifies them, and
  the reason where it does not (each participant gave one answer: a participant intercept
  cannot be told apart from the answer's own noise).
Without R or lme4 the fit stops with an AnalysisError naming the Debian packages; there is
no fallback to another estimator.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import linalg
from scipy import stats as _st

from analysis.accuracy import cells
from analysis.errors import AnalysisError
from analysis.load import order_populations

R_SCRIPT = Path(__file__).resolve().parent / "r" / "glmm.R"
R_PACKAGES = "r-base-core r-cran-lme4 r-cran-jsonlite"
INSTALL_HINT = f"Debian: apt-get install -y {R_PACKAGES} (or sh scripts/setup-system.sh test)"
INTERVALS = ("profile", "wald", "boot")
TIMEOUT_S = 900
# The likelihood profile refits the model ~20 times per parameter: a lab-sized study (6,000
# answers, 8 fixed effects, 2 SDs) took over 8 minutes on a loaded 2-CPU machine.
PROFILE_LIMIT_S = 240
Z95 = float(_st.norm.ppf(0.975))

EFFECT_COLUMNS = ["term", "estimate", "se", "z", "p", "wald_low", "wald_high", "low", "high",
                  "odds_ratio", "or_low", "or_high"]
VARIANCE_COLUMNS = ["random intercept", "sd", "low", "high"]


@dataclass
class GlmmResult:
    """A fitted model: fixed effects, random-intercept SDs and everything a reader must
    be told (formula, reference levels, what was dropped and why, warnings)."""

    effects: pd.DataFrame
    variances: pd.DataFrame
    formula: str
    reference: str
    interval_method: str
    random_dropped: list[str] = field(default_factory=list)
    not_estimable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    singular: bool = False
    engine: str = ""
    n_answers: int = 0
    n_trials: int = 0
    n_participants: int = 0

    def notes(self) -> list[str]:
        """Return the lines the report prints above the tables."""
        lines = [f"{self.formula}; {self.n_answers} answers, {self.n_trials} trials, "
                 f"{self.n_participants} participants; maximum likelihood (Laplace), "
                 f"{self.engine}.",
                 f"Reference: {self.reference}. Estimates are log odds; intervals: "
                 f"{self.interval_method}; Wald = estimate ± 1.96 SE."]
        lines += [f"Random intercept left out: {r}" for r in self.random_dropped]
        if self.not_estimable:
            lines.append("Not estimable from these data, dropped: "
                         + "; ".join(self.not_estimable))
        if self.singular:
            lines.append("Singular fit: a random-intercept SD is estimated at (or near) 0.")
        lines += [f"Warning: {w}" for w in self.warnings]
        return lines


def _random_structure(d: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Which random intercepts the design identifies, and the reason for each left out."""
    keep, dropped = [], []
    for name, unit in (("trial", "trial"), ("participant", "participant")):
        per = d.groupby(name).size()
        if len(per) < 3:
            dropped.append(f"{name}: fewer than 3 {unit}s")
        elif per.max() < 2:
            dropped.append(f"{name}: each {unit} has one answer, so its intercept cannot be "
                           "told apart from the answer's own noise")
        else:
            keep.append(name)
    return keep, dropped


def _design(d: pd.DataFrame) -> tuple[pd.DataFrame, str, str, list[str]]:
    """The fixed-effects columns named in words, the formula's words, the reference
    levels, and the columns the data cannot estimate (dropped)."""
    cell = d["subset"].astype(str) + "/" + d["condition"].astype(str)
    cell_levels = [f"{s}/{c}" for s, c in cells(d)]
    pops = order_populations(d["population"].unique())
    cols = {"intercept": np.ones(len(d))}
    terms_words, ref = [], []
    cell_cols, pop_cols = {}, {}
    if len(cell_levels) > 1:
        terms_words.append("cell")
        ref.append(f"cell {cell_levels[0]}")
        for lv in cell_levels[1:]:
            cell_cols[lv] = (cell == lv).to_numpy(float)
            cols[f"cell {lv} vs {cell_levels[0]}"] = cell_cols[lv]
    if len(pops) > 1:
        terms_words.append("population")
        ref.append(f"population {pops[0]}")
        for p in pops[1:]:
            pop_cols[p] = (d["population"] == p).to_numpy(float)
            cols[f"population {p} vs {pops[0]}"] = pop_cols[p]
    for lv, cx in cell_cols.items():
        for p, px in pop_cols.items():
            cols[f"cell {lv} × population {p} (difference of differences)"] = cx * px
    X = pd.DataFrame(cols, index=d.index)
    dropped = [c for c in X.columns if not X[c].any()]
    X = X.drop(columns=dropped)
    # A pivoted QR finds the columns that are linear combinations of earlier ones.
    _, r, piv = linalg.qr(X.to_numpy(), mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int((diag > diag.max() * 1e-9).sum()) if len(diag) else 0
    dependent = sorted(piv[rank:])
    dropped += [X.columns[i] for i in dependent]
    X = X.drop(columns=[X.columns[i] for i in dependent])
    formula = "correct ~ " + (" × ".join(terms_words) if terms_words else "1")
    reference = ", ".join(ref) if ref else "none (intercept only)"
    return X, formula, reference, dropped


def _rscript() -> str:
    exe = os.environ.get("TLL_RSCRIPT") or shutil.which("Rscript")
    if not exe or not (shutil.which(exe) or Path(exe).is_file()):
        raise AnalysisError(f"the mixed model needs R's Rscript with lme4, not found "
                            f"({INSTALL_HINT})")
    return exe


def fit_glmm(df: pd.DataFrame, seed: int = 0, intervals: str = "wald",
             nsim: int = 500, profile_limit_s: float = PROFILE_LIMIT_S) -> GlmmResult | None:
    """Fit correct ~ cell × population + (1 | trial) + (1 | participant) with glmer.

    Parameters
    ----------
    df : DataFrame
        Answers without catch trials (``Answers.without_catch()``).
    seed : int
        R's seed (``set.seed``); the parametric bootstrap draws from it, the Laplace fit
        and the profile are deterministic: a fixed seed gives identical numbers.
    intervals : {"profile", "wald", "boot"}
        The interval in ``low``/``high``: Wald (default), likelihood profile, or a
        parametric bootstrap of ``nsim`` draws (percentile).
    profile_limit_s : float
        Seconds the profile may take; past it ``low``/``high`` are NaN and a warning says
        so (the Wald columns are always there).

    Returns
    -------
    GlmmResult or None
        None when there is nothing to fit (fewer than 3 trials, or no variation in
        correctness). ``effects`` has one row per estimable fixed effect (columns
        EFFECT_COLUMNS: log-odds estimate, SE, Wald z and p, Wald interval, the chosen
        interval, odds ratios on the chosen interval); ``variances`` the SD of each kept
        random intercept with its interval.

    Raises
    ------
    AnalysisError
        Rscript or an R package is missing (the message names the Debian packages), R
        failed, or it ran past TIMEOUT_S.

    Examples
    --------
    >>> res = fit_glmm(answers.without_catch(), seed=0)  # doctest: +SKIP
    >>> print("\\n".join(res.notes())); res.effects  # doctest: +SKIP
    """
    if intervals not in INTERVALS:
        raise AnalysisError(f"unknown interval method {intervals!r}: one of "
                            + ", ".join(INTERVALS))
    d = df.reset_index(drop=True)
    y = d["correct"].astype(int)
    if d["trial"].nunique() < 3 or y.nunique() < 2:
        return None
    exe = _rscript()
    random, random_dropped = _random_structure(d)
    X, formula, reference, not_estimable = _design(d)
    names = {f"x{i + 1}": c for i, c in enumerate(X.columns)}
    data = X.set_axis(list(names), axis=1).assign(
        y=y.to_numpy(), trial=d["trial"].astype(str).to_numpy(),
        participant=d["participant"].astype(str).to_numpy())
    with tempfile.TemporaryDirectory(prefix="tll-glmm-") as tmp:
        data.to_csv(Path(tmp) / "data.csv", index=False)
        (Path(tmp) / "spec.json").write_text(json.dumps(
            {"x": list(names), "random": random, "seed": seed, "intervals": intervals,
             "nsim": nsim, "profile_limit_s": profile_limit_s}))
        try:
            proc = subprocess.run([exe, "--vanilla", str(R_SCRIPT), tmp], capture_output=True,
                                  text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AnalysisError(f"the mixed model ran past {TIMEOUT_S} s in R") from None
        except OSError as exc:
            raise AnalysisError(f"could not run {exe}: {exc} ({INSTALL_HINT})") from None
        if proc.returncode == 3:
            raise AnalysisError(f"the mixed model needs R packages: "
                                f"{proc.stderr.strip()} ({INSTALL_HINT})")
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.strip().splitlines()[-3:])
            raise AnalysisError(f"the mixed model failed in R: {tail}")
        out = json.loads((Path(tmp) / "result.json").read_text())
    rows = []
    for f in out["fixed"]:
        est, se = _num(f["estimate"]), _num(f["se"])
        lo, hi = _num(f["low"]), _num(f["high"])
        if intervals == "wald":
            lo, hi = est - Z95 * se, est + Z95 * se
        z = est / se if se > 0 else math.nan
        rows.append({"term": names[f["x"]], "estimate": est, "se": se, "z": z,
                     "p": 2 * _st.norm.sf(abs(z)) if not math.isnan(z) else math.nan,
                     "wald_low": est - Z95 * se, "wald_high": est + Z95 * se,
                     "low": lo, "high": hi, "odds_ratio": _exp(est),
                     "or_low": _exp(lo), "or_high": _exp(hi)})
    var_rows = [{"random intercept": r["group"], "sd": _num(r["sd"]), "low": _num(r["low"]),
                 "high": _num(r["high"])} for r in out["random"]]
    # R names the columns x1, x2, ...: say the terms instead
    warns = [re.sub(r"\bx(\d+)\b", lambda m: repr(names.get(m.group(0), m.group(0))), w)
             for w in out.get("warnings") or []]
    for r in rows:
        if abs(r["estimate"]) > 10 or r["se"] > 5:
            # all right or all wrong in some cell: the likelihood has no finite maximum
            warns.append(f"{r['term']!r}: estimate {r['estimate']:.1f}, SE {r['se']:.1f}: "
                         "(quasi-)separation, the data are all right or all wrong there; "
                         "its estimate and Wald interval mean nothing")
    if out.get("profile_error"):
        warns.append(f"{intervals} intervals not computed ({out['profile_error'].strip()}): "
                     "only the Wald intervals are given; --model-intervals boot, or a "
                     "smaller model, may do")
    method = {"profile": "likelihood profile 95 %",
              "wald": "Wald 95 %",
              "boot": f"parametric bootstrap 95 % ({nsim} draws, percentile)"}[intervals]
    rhs = "".join(f" + (1 | {r})" for r in random)
    return GlmmResult(
        effects=pd.DataFrame(rows, columns=EFFECT_COLUMNS),
        variances=pd.DataFrame(var_rows, columns=VARIANCE_COLUMNS),
        formula=formula + rhs, reference=reference, interval_method=method,
        random_dropped=random_dropped, not_estimable=not_estimable, warnings=warns,
        singular=bool(out.get("singular")), engine=str(out.get("engine", "lme4")),
        n_answers=len(d), n_trials=int(d["trial"].nunique()),
        n_participants=int(d["participant"].nunique()))


def _num(v) -> float:
    return math.nan if v is None else float(v)


def _exp(v: float) -> float:
    """exp, inf past float range: an estimate under separation can be in the hundreds."""
    if math.isnan(v):
        return math.nan
    return math.exp(v) if v < 700 else math.inf

"""Figures as PNG, PDF and SVG files in one style fit for a paper. Uses matplotlib's
object API (Figure + Agg canvas) rather than pyplot, so no display or global state is
involved.

Sizes: simple figures are drawn at single-column width (SINGLE = 3.5 in), wide ones
(accuracy, galleries) at double-column width (DOUBLE = 7.16 in); every text is at least
MIN_PT = 9 pt at that size, so the figure can be placed at 100 % in a two-column paper.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import N_CANDIDATES

SINGLE = 3.5   # inches: one column of a two-column paper
DOUBLE = 7.16  # inches: the full text width
MIN_PT = 9
DEFAULT_DPI = 300
# Okabe & Ito's colour-blind-safe palette: under a deuteranopia simulation (Machado et al.
# 2009) any two of these stay >= 11 CIEDE2000 apart; matplotlib's default puts its green
# and red 4.6 apart (tests/analysis/test_figures.py).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
FORMATS = ("png", "pdf", "svg")
STYLE = {
    "font.size": MIN_PT, "axes.titlesize": 10, "axes.labelsize": MIN_PT,
    "xtick.labelsize": MIN_PT, "ytick.labelsize": MIN_PT, "legend.fontsize": MIN_PT,
    "figure.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "svg.fonttype": "none",  # text stays text in SVG, editable in a vector editor
    "pdf.fonttype": 42,      # TrueType in PDF, as journals ask
    "savefig.bbox": "tight", "savefig.pad_inches": 0.05,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
}


def style():
    """Return a context manager that applies the report's figure style (STYLE)."""
    return matplotlib.rc_context(STYLE)


def slug(label: str) -> str:
    """Return a file-name-safe form of ``label`` that two different labels never share:
    when characters had to be replaced ("AMT/US"), a short hash of the label is appended,
    so "AMT/US" and "AMT_US" get different files."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(label))[:40]
    if safe != str(label) or not safe:
        safe = f"{safe or 'x'}-{hashlib.sha1(str(label).encode()).hexdigest()[:6]}"
    return safe


def save_figure(fig: Figure, path: Path, dpi: int = DEFAULT_DPI, tight: bool = True) -> Path:
    """Write ``fig`` as PNG (at ``dpi``), PDF and SVG beside each other (same stem as
    ``path``); return the PNG's path. ``tight=False`` keeps the figure's own margins
    (galleries lay themselves out; a tight box would cost one more drawing)."""
    FigureCanvasAgg(fig)
    path = Path(path).with_suffix(".png")
    with style():
        for fmt in FORMATS:
            fig.savefig(path.with_suffix("." + fmt), dpi=dpi,
                        bbox_inches="tight" if tight else None)
    return path


def _new(width: float, height: float) -> Figure:
    with style():
        return Figure(figsize=(width, height), layout="constrained")


def styled(fn):
    """Run a plotting function inside style(): matplotlib reads sizes when an artist is
    made, so the whole drawing, not only the saving, must see the style."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with style():
            return fn(*args, **kwargs)
    return wrapper


@styled
def accuracy_plot(long: pd.DataFrame, path: Path, dpi: int = DEFAULT_DPI,
                  interval: str = "design") -> Path:
    """Bar chart of accuracy (%) per subset x condition cell, one bar per row (population
    or machine feature set), with 95 % intervals (``design``: the interval the cell's design calls
    for, columns low/high; ``wilson``: Wilson's). Writes PNG, PDF and SVG; returns the PNG path."""
    from analysis.accuracy import POOLED
    d = long[(long["subset"] != POOLED[0]) | (long["condition"] != POOLED[1])]
    cols = list(dict.fromkeys(zip(d["subset"], d["condition"])))
    rows = list(dict.fromkeys(d["row"]))
    lo_col, hi_col = ("low", "high") if interval == "design" else ("ci_low", "ci_high")
    fig = _new(DOUBLE, 3.4)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(cols))
    for i, r in enumerate(rows):
        sel = d[d["row"] == r].set_index(["subset", "condition"]).reindex(cols)
        acc = 100 * sel["accuracy"].to_numpy(float)
        # a machine that ranked none of a cell's trials has no bar, as the table shows "—"
        none = (sel["no_choice"].astype("Float64").fillna(-1) == sel["n"]).to_numpy(bool)
        acc = np.where(none, np.nan, acc)
        lo = 100 * sel[lo_col].to_numpy(float)
        hi = 100 * sel[hi_col].to_numpy(float)
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, acc, width, label=r,
               # clip: the interval may miss an accuracy of 0 or 1 by a rounding error
               yerr=np.clip(np.vstack([acc - lo, hi - acc]), 0, None), capsize=2,
               hatch="//" if r.startswith("machine") else None, alpha=0.85)
    ax.axhline(100 / N_CANDIDATES, color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xticks(x, [f"{s}\n{c}" for s, c in cols])
    ax.set_ylabel("% choosing the true match")
    ax.set_ylim(0, 105)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"Accuracy by subset × condition (95 % {interval} intervals)")
    return save_figure(fig, path, dpi)


@styled
def agreement_histogram_plot(hist: pd.DataFrame, population: str, path: Path,
                             dpi: int = DEFAULT_DPI) -> Path:
    """Fig. 5a: share of trials on which k of n participants chose the same candidate.
    With one n the x axis is k; with several n each n gets its own bars. Returns the PNG
    path (PDF and SVG beside it)."""
    fig = _new(SINGLE, 2.6)
    ax = fig.add_subplot()
    ns = sorted(hist["n"].unique())
    width = 0.8 / max(1, len(ns))
    for i, n in enumerate(ns):
        h = hist[hist["n"] == n]
        ax.bar(h["k"].to_numpy() + (i - (len(ns) - 1) / 2) * width, h["share"], width,
               label=f"n = {n} ({int(h['trials'].sum())} trials)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("k: answers on the most chosen candidate")
    ax.set_ylabel("share of trials")
    ax.set_title(f"Agreement ({population})")
    ax.legend()
    return save_figure(fig, path, dpi)


@styled
def agreement_scatter_plot(per_trial: pd.DataFrame, population: str, r: float, p: float,
                           path: Path, dpi: int = DEFAULT_DPI) -> Path:
    """Fig. 5b: per trial, agreement against the share choosing the true match. Returns
    the PNG path."""
    from analysis.stats import format_p
    fig = _new(SINGLE, 3.0)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    # A little jitter: with 20 answers many trials share the exact same point.
    jit = rng.uniform(-0.006, 0.006, size=(2, len(per_trial)))
    ax.scatter(per_trial["agreement"] + jit[0], per_trial["share_correct"] + jit[1],
               s=12, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("agreement")
    ax.set_ylabel("share choosing the true match")
    rs = "n/a" if np.isnan(r) else f"{r:.2f} (p {format_p(p) if p < 0.001 else '= ' + format_p(p)})"
    ax.set_title(f"{population}: Pearson r = {rs}")
    return save_figure(fig, path, dpi)


@styled
def position_plot(per_position: pd.DataFrame, path: Path, dpi: int = DEFAULT_DPI) -> Path:
    """Position bias among wrong answers: per display position, observed wrong answers
    over those expected given where each trial's true match was (1 = no bias), with 95 %
    intervals, one bar group per population. Returns the PNG path."""
    pops = list(dict.fromkeys(per_position["population"]))
    fig = _new(SINGLE, 2.6)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(pops))
    for i, pop in enumerate(pops):
        d = per_position[per_position["population"] == pop]
        r = d["wrong_ratio"].to_numpy(float)
        err = np.clip(np.vstack([r - d["wrong_low"].to_numpy(float),
                                 d["wrong_high"].to_numpy(float) - r]), 0, None)
        ax.bar(d["position"].to_numpy() + (i - (len(pops) - 1) / 2) * width, r,
               width, yerr=err, capsize=2, label=pop)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(1, N_CANDIDATES + 1))
    ax.set_xlabel("display position")
    # two lines: on one, the label is longer than the axes are tall and runs into the ticks
    ax.set_ylabel("wrong answers\nobserved / expected")
    ax.set_title("Position bias (wrong answers)")
    ax.legend()
    return save_figure(fig, path, dpi)


@styled
def rt_plot(df: pd.DataFrame, conditions: list[str], populations: list[str],
            path: Path, dpi: int = DEFAULT_DPI) -> Path:
    """Box plot of response times (s) per condition, one box per population. Returns the
    PNG path."""
    fig = _new(DOUBLE if len(conditions) * max(1, len(populations)) > 4 else SINGLE, 2.8)
    ax = fig.add_subplot()
    data, labels = [], []
    for c in conditions:
        for pop in populations:
            rt = df.loc[(df["condition"] == c) & (df["population"] == pop), "rt_ms"].dropna()
            data.append(rt.to_numpy() / 1000.0)
            labels.append(c if len(populations) == 1 else f"{c}\n{pop}")
    if any(len(x) for x in data):
        ax.boxplot([x if len(x) else [np.nan] for x in data], tick_labels=labels,
                   showfliers=True)
    else:
        ax.text(0.5, 0.5, "no response times recorded", ha="center", transform=ax.transAxes)
    ax.set_ylabel("response time (s)")
    ax.set_title("Response times by condition")
    return save_figure(fig, path, dpi)

"""Figures as PNG files. Uses matplotlib's object API (Figure + Agg canvas) rather than
pyplot, so no display or global state is involved."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import N_CANDIDATES


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()  # also makes room for a legend placed outside the axes
    fig.savefig(path, dpi=100)
    return path


def accuracy_plot(long: pd.DataFrame, path: Path) -> Path:
    """Bar chart of accuracy (%) with 95 % Wilson intervals per subset x condition cell,
    one bar per row (population or machine feature set). Returns the path written."""
    from analysis.accuracy import POOLED
    d = long[(long["subset"] != POOLED[0]) | (long["condition"] != POOLED[1])]
    cols = list(dict.fromkeys(zip(d["subset"], d["condition"])))
    rows = list(dict.fromkeys(d["row"]))
    fig = Figure(figsize=(max(6, 1.4 * len(cols) + 2), 4.2))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(cols))
    for i, r in enumerate(rows):
        sel = d[d["row"] == r].set_index(["subset", "condition"]).reindex(cols)
        acc = 100 * sel["accuracy"].to_numpy(float)
        lo = 100 * sel["ci_low"].to_numpy(float)
        hi = 100 * sel["ci_high"].to_numpy(float)
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, acc, width, label=r,
               # clip: the interval may miss an accuracy of 0 or 1 by a rounding error
               yerr=np.clip(np.vstack([acc - lo, hi - acc]), 0, None), capsize=2,
               hatch="//" if r.startswith("machine") else None, alpha=0.85)
    ax.axhline(100 / N_CANDIDATES, color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xticks(x, [f"{s}\n{c}" for s, c in cols], fontsize=8)
    ax.set_ylabel("% choosing the true match")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Accuracy by subset × condition (95 % Wilson intervals)")
    return _save(fig, path)


def agreement_histogram_plot(hist: pd.DataFrame, population: str, path: Path) -> Path:
    """Fig. 5a: share of trials on which k of n participants chose the same candidate.
    With one n the x axis is k; with several n each n gets its own bars."""
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.add_subplot()
    ns = sorted(hist["n"].unique())
    width = 0.8 / max(1, len(ns))
    for i, n in enumerate(ns):
        h = hist[hist["n"] == n]
        ax.bar(h["k"].to_numpy() + (i - (len(ns) - 1) / 2) * width, h["share"], width,
               label=f"n = {n} answers ({int(h['trials'].sum())} trials)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("k: answers agreeing with the most chosen candidate")
    ax.set_ylabel("share of trials")
    ax.set_title(f"Agreement ({population}): k of n agreed")
    ax.legend(fontsize=7)
    return _save(fig, path)


def agreement_scatter_plot(per_trial: pd.DataFrame, population: str, r: float, p: float,
                           path: Path) -> Path:
    """Fig. 5b: per trial, agreement against the share choosing the true match."""
    fig = Figure(figsize=(5, 4.2))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    # A little jitter: with 20 answers many trials share the exact same point.
    jit = rng.uniform(-0.006, 0.006, size=(2, len(per_trial)))
    ax.scatter(per_trial["agreement"] + jit[0], per_trial["share_correct"] + jit[1],
               s=14, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("agreement (share choosing the most chosen candidate)")
    ax.set_ylabel("share choosing the true match")
    rs = "n/a" if np.isnan(r) else f"{r:.3f} (p = {p:.2g})"
    ax.set_title(f"{population}: Pearson r = {rs}", fontsize=10)
    return _save(fig, path)


def position_plot(per_position: pd.DataFrame, path: Path) -> Path:
    """Answers per display position relative to the no-bias expectation (1 = none),
    one bar group per population."""
    pops = list(dict.fromkeys(per_position["population"]))
    fig = Figure(figsize=(6, 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(pops))
    for i, pop in enumerate(pops):
        d = per_position[per_position["population"] == pop]
        ax.bar(d["position"].to_numpy() + (i - (len(pops) - 1) / 2) * width, d["ratio"],
               width, label=pop)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(1, N_CANDIDATES + 1))
    ax.set_xlabel("display position")
    ax.set_ylabel("answers / expected without bias")
    ax.set_title("Position bias")
    ax.legend(fontsize=7)
    return _save(fig, path)


def rt_plot(df: pd.DataFrame, conditions: list[str], populations: list[str],
            path: Path) -> Path:
    """Box plot of response times (s) per condition, one box per population."""
    fig = Figure(figsize=(max(6, 1.3 * len(conditions) * max(1, len(populations)) + 1), 4))
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
    ax.tick_params(axis="x", labelsize=8)
    return _save(fig, path)

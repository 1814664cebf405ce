"""`evaluate`: retrieval results of every feature set in the store on one subset, as the
paper reports them: Table 1 (recall@k), Table 2a (associative recall), the votes
correlation, the recall curves (Fig. 2) and the cosine-minus-Euclidean curve (Fig. 2a).

Written to OUT (default ``STUDY_DIR/evaluation/<subset>/``): ``table1.csv`` / ``.md``,
``table2a.csv`` / ``.md``, ``votes.csv`` / ``.md``, ``ranks.csv`` (the rank of every
pair's own right image per feature set), ``recall_curves.png``, ``recall_zoom.png``,
``cosine_minus_euclidean.png``, Fig. 3 and Fig. 5c (experiments/figures.py) and
``index.html`` showing all of it (rendered from experiments/templates/evaluate.html).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from experiments import distance_sources as ds
from experiments import retrieval

ZOOM_KS = (1, 5, 10, 20)


@dataclass
class Evaluation:
    """Everything `evaluate` computed: tables (DataFrames), curves, and the files written."""

    subset: str
    n: int
    table1: pd.DataFrame
    table2a: pd.DataFrame
    votes: pd.DataFrame | None
    ranks: pd.DataFrame
    curves: dict[str, np.ndarray]
    cos_minus_euc: dict[str, np.ndarray]
    files: list[Path] = field(default_factory=list)


def _label(key: str) -> str:
    return key.split("/", 1)[1] if key.startswith("generic/") else key


def evaluate_feature_sets(feature_sets: dict, ids: Sequence[str], votes: dict | None = None,
                          ties: str = "mean", ks: Sequence[int] = retrieval.DEFAULT_KS,
                          ms: Sequence[int] = retrieval.DEFAULT_MS, repetitions: int = 10,
                          seed: int = 0, subset: str = "all") -> Evaluation:
    """Return the Evaluation of ``feature_sets`` (key -> FeatureSet) on pairs ``ids``.
    ``votes``: pair id -> {"up", "down"} (pairs without votes are left out of the
    correlation; None or empty: no votes)."""
    n = len(ids)
    order = sorted(feature_sets, key=lambda k: (("generic", "face", "face_generic").index(
        feature_sets[k].kind) if feature_sets[k].kind in ("generic", "face", "face_generic")
        else 9, k))
    rows1, rows2, vrows = [], [], []
    ranks_cols: dict[str, np.ndarray] = {}
    curves, cme = {}, {}
    for key in order:
        fs = feature_sets[key]
        metric = ds.default_metric(fs.kind)
        r = ds.rows_for(fs, ids)
        block = ds.block_for(fs, r, r, metric)
        ranks = retrieval.true_match_ranks(block, n, ties)
        ranks_cols[key] = ranks
        rec = retrieval.recall_at_k(ranks, ks)
        with_feature = int((ds.has_feature(fs, "left", r) & ds.has_feature(fs, "right", r)).sum())
        rows1.append({"feature_set": _label(key), "kind": fs.kind, "metric": metric, "N": n,
                      "pairs_with_feature": with_feature,
                      **{f"R@{k}": round(100 * v, 2) for k, v in rec.items()}})
        curves[key] = retrieval.recall_curve(ranks, n)
        if fs.kind == "generic":
            euc = retrieval.true_match_ranks(ds.block_for(fs, r, r, "euclidean"), n, ties)
            cme[key] = curves[key] - retrieval.recall_curve(euc, n)
        ar = retrieval.associative_recall(block, n, ms, repetitions, seed, ties)
        rows2.append({"feature_set": _label(key), "metric": metric,
                      **{f"m={m}": round(100 * v, 2) for m, v in ar.items()}})
        if votes:
            have = [i for i, pid in enumerate(ids) if votes.get(pid) is not None]
            if len(have) >= 3:
                dist = retrieval.pair_distances(block, n)[have]
                up = [votes[ids[i]]["up"] for i in have]
                down = [votes[ids[i]]["down"] for i in have]
                c = retrieval.votes_correlation(up, down, dist)
                vrows.append({"feature_set": _label(key), "metric": metric, "n": c["n"],
                              **{f"{side}_{stat}": round(c[side][stat], 4)
                                 for side in ("up", "down")
                                 for stat in ("pearson_r", "pearson_p", "spearman_r", "spearman_p")}})
    ranks_df = pd.DataFrame({"pair": list(ids), **{k: v for k, v in ranks_cols.items()}})
    return Evaluation(subset=subset, n=n, table1=pd.DataFrame(rows1), table2a=pd.DataFrame(rows2),
                      votes=pd.DataFrame(vrows) if vrows else None, ranks=ranks_df,
                      curves=curves, cos_minus_euc=cme)


# --------------------------------------------------------------------------- output
def markdown_table(df: pd.DataFrame) -> str:
    """Return a DataFrame as a GitHub Markdown table."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if (isinstance(v, float) and np.isnan(v)) else str(v)
                                       for v in row) + " |")
    return "\n".join(lines) + "\n"


def _plots(ev: Evaluation, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[Path] = []

    def save(fig, ax, name: str) -> None:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        files.append(out / name)
        fig.savefig(files[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)

    k = np.arange(1, ev.n + 1)
    fig, ax = plt.subplots(figsize=(7, 5))
    for key, c in ev.curves.items():
        ax.plot(k, 100 * c, label=_label(key))
    ax.plot(k, 100 * k / max(ev.n, 1), "k:", label="chance")
    ax.set(xscale="log", xlabel="k", ylabel="recall@k (%)",
           title=f"Recall of the paired right image, subset {ev.subset} (N = {ev.n})")
    save(fig, ax, "recall_curves.png")

    fig, ax = plt.subplots(figsize=(7, 5))
    zk = [x for x in ZOOM_KS if x <= ev.n] or [1]
    for key, c in ev.curves.items():
        ax.plot(zk, [100 * c[x - 1] for x in zk], marker="o", label=_label(key))
    ax.set(xticks=zk, xlabel="k", ylabel="recall@k (%)", title=f"Recall at 1, 5, 10, 20 ({ev.subset})")
    save(fig, ax, "recall_zoom.png")

    fig, ax = plt.subplots(figsize=(7, 5))
    for key, c in ev.cos_minus_euc.items():
        ax.plot(k, 100 * c, label=_label(key))
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="k", ylabel="recall@k cosine − Euclidean (points)",
           title=f"Cosine minus Euclidean recall ({ev.subset})")
    save(fig, ax, "cosine_minus_euclidean.png")
    return files


def _html(ev: Evaluation, votes_note: str, figures=None) -> str:
    from experiments.figures import FACE_COUNT_CAP
    from experiments.templates import render

    def table(df):
        return df.to_html(index=False, border=0, classes="t", na_rep="")
    summary = getattr(figures, "face_summary", None)
    return render("evaluate.html", ev=ev, figures=figures, votes_note=votes_note,
                  table1=table(ev.table1), table2a=table(ev.table2a),
                  votes=table(ev.votes) if ev.votes is not None else None,
                  face_summary=table(summary.round(4)) if summary is not None else "",
                  cap=FACE_COUNT_CAP)


def write_evaluation(ev: Evaluation, out: str | os.PathLike, figures=None) -> list[Path]:
    """Write the tables, plots and index.html of ``ev`` into ``out`` (index.html also
    showing ``figures``, the Figures of experiments.figures, when given); return the
    files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, df in (("table1", ev.table1), ("table2a", ev.table2a)):
        df.to_csv(out / f"{name}.csv", index=False)
        (out / f"{name}.md").write_text(markdown_table(df), encoding="utf-8")
        files += [out / f"{name}.csv", out / f"{name}.md"]
    votes_note = "No votes in the manifest for these pairs: no correlation computed."
    if ev.votes is not None:
        ev.votes.to_csv(out / "votes.csv", index=False)
        (out / "votes.md").write_text(markdown_table(ev.votes), encoding="utf-8")
    else:
        (out / "votes.csv").write_text("note\n" + votes_note + "\n", encoding="utf-8")
        (out / "votes.md").write_text(votes_note + "\n", encoding="utf-8")
    files += [out / "votes.csv", out / "votes.md"]
    ev.ranks.to_csv(out / "ranks.csv", index=False)
    files.append(out / "ranks.csv")
    files += _plots(ev, out)
    files += figures.files if figures is not None else []
    (out / "index.html").write_text(_html(ev, votes_note, figures), encoding="utf-8")
    files.append(out / "index.html")
    ev.files = files
    return files


def evaluate_study(workdir: str | os.PathLike, subset: str | None = None,
                   out: str | os.PathLike | None = None, ties: str = "mean",
                   repetitions: int = 10, seed: int = 0, gallery: int = 3) -> Evaluation:
    """Evaluate every feature set of a study's store on ``subset`` (default TLL_d when
    computed, else all pairs), write the results with Fig. 3 (``gallery`` queries per
    group) and Fig. 5c to ``out`` and return them."""
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore
    from experiments.subsets import load_subset, subsets_dir

    manifest = load_manifest(workdir)
    if subset is None:
        subset = "TLL_d" if (subsets_dir(workdir) / "TLL_d.json").is_file() else "all"
    name, ids = load_subset(workdir, subset, manifest.ids)
    store = FeatureStore(workdir)
    keys = store.keys()
    if not keys:
        raise ds.FeatureAccessError("the feature store is empty: run "
                                    f"`{ds.features_command('generic/efficientnet_lite0', str(workdir))}`")
    if len(ids) < 2:
        raise ds.FeatureAccessError(f"subset {name!r} holds {len(ids)} pair(s); retrieval needs 2 or more")
    fsets = {k: store.load(k) for k in keys}
    votes = {p.id: p.votes for p in manifest.pairs if p.votes is not None}
    ev = evaluate_feature_sets(fsets, ids, votes, ties=ties, repetitions=repetitions,
                               seed=seed, subset=name)
    from experiments.figures import write_figures

    out = Path(out or Path(workdir) / "evaluation" / name)
    write_evaluation(ev, out, write_figures(workdir, manifest, fsets, ev, out, gallery, seed))
    return ev

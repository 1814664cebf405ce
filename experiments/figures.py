"""The paper's Fig. 3 and Fig. 5c, drawn by `evaluate` into its output folder.

**Fig. 3, retrieval galleries.** For each feature set, on the evaluated subset: the
queries whose true match ranks worst, those where it ranks best, and a seeded random
sample of the others (``n`` of each). A row shows the query (left image), the five right
images the feature set retrieves first with their distances, and the true right image
with its rank (1-based, ties as in Table 1). Written as ``fig3_<kind>_<name>.png`` and
``.svg`` and the rows as ``fig3.csv``.

**Fig. 5c, faces per image.** For each face feature set (one per dlib detector; the
face-generic sets use the same detector's faces): how many faces the detector finds in
each left and right image, and how often the left and right image of a pair have the same
count, as tables and a heat map of left count x right count, on the evaluated subset and
on all pairs. Counts of ``FACE_COUNT_CAP`` or more share the last bin. Written as
``fig5c_<name>.png`` / ``.svg``, ``fig5c_counts.csv``, ``fig5c_agreement.csv`` and
``fig5c_summary.csv``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import distance_sources as ds

GALLERY_GROUPS = ("worst", "best", "random")
TOP = 5
FACE_COUNT_CAP = 4
THUMB = (100, 123)   # the TLL images are 200 x 245: half size keeps the SVGs small


@dataclass
class Figures:
    """What `write_figures` drew: per feature set the Fig. 3 files, per face feature set
    the Fig. 5c files, the tables, and every file written."""

    fig3: list[dict] = field(default_factory=list)      # {key, png, svg}
    fig5c: list[dict] = field(default_factory=list)     # {key, png, svg}
    gallery: pd.DataFrame | None = None
    face_counts: pd.DataFrame | None = None
    face_agreement: pd.DataFrame | None = None
    face_summary: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)


def _stem(key: str) -> str:
    return key.replace("/", "_")


# --------------------------------------------------------------------------- Fig. 3
def gallery_queries(ranks: np.ndarray, n: int, seed: int = 0) -> dict[str, list[int]]:
    """Return the positions of the queries of each gallery group: ``worst`` (largest
    ranks first), ``best`` (smallest first), ``random`` (a seeded sample of the others,
    in position order); ``n`` each at most, no query twice."""
    ranks = np.asarray(ranks, dtype=np.float64)
    order = np.argsort(ranks, kind="stable")
    best = [int(i) for i in order[:n]]
    worst = [int(i) for i in order[::-1] if i not in best][:n]
    rest = np.array(sorted(set(range(len(ranks))) - set(best) - set(worst)), dtype=np.int64)
    pick = np.random.default_rng(seed).choice(len(rest), min(n, len(rest)), replace=False)
    return {"worst": worst, "best": best, "random": sorted(int(rest[i]) for i in pick)}


def retrieval_gallery(fs, ids: Sequence[str], ranks: np.ndarray, n: int, seed: int = 0
                      ) -> pd.DataFrame:
    """Return the Fig. 3 rows of feature set ``fs`` on pairs ``ids`` (``ranks``: the true
    match's rank of each, from evaluate): group, pair, rank, the true match's distance,
    and the ``TOP`` nearest right images ``retrieved_1..`` with ``distance_1..`` (+inf
    where an image has no feature; the first on equal distances)."""
    r = ds.rows_for(fs, ids)
    block = ds.block_for(fs, r, r)
    rows = []
    for group, picks in gallery_queries(ranks, n, seed).items():
        if not picks:
            continue
        d = np.asarray(block(np.asarray(picks)), dtype=np.float64)
        for q, drow in zip(picks, d):
            top = np.argsort(drow, kind="stable")[:TOP]
            row = {"feature_set": fs.key, "group": group, "pair": ids[q],
                   "rank": float(ranks[q]), "true_distance": float(drow[q])}
            for k, j in enumerate(top, start=1):
                row[f"retrieved_{k}"] = ids[j]
                row[f"distance_{k}"] = float(drow[j])
            rows.append(row)
    return pd.DataFrame(rows)


def _thumbnail(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail(THUMB)
        return np.asarray(im)


def _fmt(d: float) -> str:
    return f"{d:.3f}" if np.isfinite(d) else "\u221e"


def draw_gallery(rows: pd.DataFrame, key: str, images: dict[tuple[str, str], Path],
                 out: Path) -> list[Path]:
    """Draw the Fig. 3 gallery of one feature set (``rows`` from retrieval_gallery;
    ``images[(pair, side)]`` the image files) as PNG and SVG; return the two paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    # One canvas of thumbnails in one axes: a grid of 7 x rows small axes took seconds
    # per gallery to lay out and save.
    cols, (tw, th) = TOP + 2, THUMB
    margin, pad, label = 28, 8, 26
    cw, ch = tw + pad, th + pad + label
    width, height = margin + cols * cw, 22 + len(rows) * ch
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    texts, frames = [], []
    for i, r in enumerate(rows.to_dict("records")):
        blind = not np.isfinite(r["distance_1"])   # the query has no feature (no face)
        cells = [((r["pair"], "left"), f"query L{r['pair']}" + ("\n(no feature)" if blind else ""),
                  False)]
        for k in range(1, TOP + 1):
            pid = r[f"retrieved_{k}"]
            cells.append(((pid, "right"), f"{k}. R{pid}\nd = {_fmt(r[f'distance_{k}'])}",
                          pid == r["pair"]))
        cells.append(((r["pair"], "right"),
                      f"true R{r['pair']}\nrank {r['rank']:g}, d = {_fmt(r['true_distance'])}",
                      True))
        y = 22 + i * ch + label
        texts.append((margin / 2, y + th / 2, r["group"], 90))
        for j, (img, title, framed) in enumerate(cells):
            x = margin + j * cw
            a = _thumbnail(images[img])
            canvas[y:y + a.shape[0], x:x + a.shape[1]] = a
            texts.append((x + tw / 2, y - 3, title, 0))
            if framed:
                frames.append((x - 2, y - 2, a.shape[1] + 4, a.shape[0] + 4))
    fig = plt.figure(figsize=(width / 100, height / 100))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, extent=(0, width, height, 0), interpolation="nearest")
    ax.set_axis_off()
    for x, y, text, rot in texts:
        ax.text(x, y, text, fontsize=6, ha="center", va="center" if rot else "bottom",
                rotation=rot)
    for x, y, w, h in frames:
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="tab:green", linewidth=2))
    ax.text(width / 2, 4, f"Fig. 3: retrieval with {key} (worst, best and random queries; "
            "the true match framed green)", fontsize=8, ha="center", va="top")
    files = [out / f"fig3_{_stem(key)}.png", out / f"fig3_{_stem(key)}.svg"]
    for f in files:
        fig.savefig(f, dpi=100)
    plt.close(fig)
    return files


# --------------------------------------------------------------------------- Fig. 5c
def _bins() -> list[str]:
    return [str(k) for k in range(FACE_COUNT_CAP)] + [f"{FACE_COUNT_CAP}+"]


def face_count_tables(fs, scopes: dict[str, Sequence[str]]
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return ``(counts, agreement, summary)`` of a face feature set on each scope
    (name -> pair ids): images per number of faces per side; pairs per (left faces,
    right faces); and per scope the pairs, the share with equal counts, and the shares
    of left images, right images and pairs with a face."""
    labels = _bins()
    counts, agree, summary = [], [], []
    for scope, ids in scopes.items():
        r = ds.rows_for(fs, ids)
        c = {side: np.minimum(ds.face_counts(fs, side, r), FACE_COUNT_CAP) for side in ("left", "right")}
        for side in ("left", "right"):
            hist = np.bincount(c[side], minlength=FACE_COUNT_CAP + 1)
            for b, label in enumerate(labels):
                counts.append({"feature_set": fs.key, "scope": scope, "side": side,
                               "faces": label, "images": int(hist[b]),
                               "share": hist[b] / max(len(ids), 1)})
        grid = np.zeros((FACE_COUNT_CAP + 1, FACE_COUNT_CAP + 1), dtype=np.int64)
        np.add.at(grid, (c["left"], c["right"]), 1)
        for a, la in enumerate(labels):
            for b, lb in enumerate(labels):
                agree.append({"feature_set": fs.key, "scope": scope, "left_faces": la,
                              "right_faces": lb, "pairs": int(grid[a, b])})
        n = max(len(ids), 1)
        summary.append({"feature_set": fs.key, "scope": scope, "pairs": len(ids),
                        "same_count": float((c["left"] == c["right"]).sum() / n),
                        "same_count_with_face": float(((c["left"] == c["right"])
                                                       & (c["left"] > 0)).sum() / n),
                        "left_with_face": float((c["left"] > 0).sum() / n),
                        "right_with_face": float((c["right"] > 0).sum() / n),
                        "both_with_face": float(((c["left"] > 0) & (c["right"] > 0)).sum() / n)})
    return pd.DataFrame(counts), pd.DataFrame(agree), pd.DataFrame(summary)


def draw_face_counts(key: str, counts: pd.DataFrame, agreement: pd.DataFrame,
                     summary: pd.DataFrame, out: Path) -> list[Path]:
    """Draw Fig. 5c of one face feature set: per scope, faces per image per side (bars)
    and the left x right heat map of face counts; PNG and SVG; return the two paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _bins()
    scopes = list(summary["scope"])
    fig, axes = plt.subplots(len(scopes), 2, figsize=(10, 3.8 * len(scopes)), squeeze=False)
    x = np.arange(len(labels))
    for (bar_ax, heat_ax), scope in zip(axes, scopes):
        cs = counts[counts["scope"] == scope]
        for off, side in ((-0.2, "left"), (0.2, "right")):
            v = cs[cs["side"] == side].set_index("faces").loc[labels, "share"] * 100
            bar_ax.bar(x + off, v, width=0.4, label=f"{side} images")
        s = summary[summary["scope"] == scope].iloc[0]
        bar_ax.set(xticks=x, xticklabels=labels, xlabel="faces found in the image",
                   ylabel="% of images", title=f"{scope} ({int(s['pairs'])} pairs)")
        bar_ax.legend(fontsize=8)
        bar_ax.grid(alpha=0.3, axis="y")
        ag = agreement[agreement["scope"] == scope]
        grid = ag.pivot(index="left_faces", columns="right_faces", values="pairs").loc[labels, labels]
        heat_ax.imshow(grid.to_numpy(), cmap="Blues", origin="lower")
        for a in range(len(labels)):
            for b in range(len(labels)):
                v = int(grid.iloc[a, b])
                heat_ax.text(b, a, str(v), ha="center", va="center", fontsize=8,
                             color="white" if v > grid.to_numpy().max() / 2 else "black")
        heat_ax.set(xticks=x, xticklabels=labels, yticks=x, yticklabels=labels,
                    xlabel="faces in the right image", ylabel="faces in the left image",
                    title=f"same count in {100 * s['same_count']:.1f} % of pairs "
                          f"({100 * s['same_count_with_face']:.1f} % with a face)")
    fig.suptitle(f"Fig. 5c: faces per image found by {key}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    files = [out / f"fig5c_{_stem(key)}.png", out / f"fig5c_{_stem(key)}.svg"]
    for f in files:
        fig.savefig(f, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return files


# --------------------------------------------------------------------------- both
def write_figures(workdir: str | os.PathLike, manifest, feature_sets: dict, ev,
                  out: str | os.PathLike, gallery: int = 3, seed: int = 0) -> Figures:
    """Draw Fig. 3 for every feature set of ``ev`` (an Evaluation, whose ranks give the
    queries) with ``gallery`` queries per group (0: none), and Fig. 5c for every face
    feature set on ``ev``'s subset and on all pairs of ``manifest``; write them and
    their tables into ``out``; return what was drawn."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = Figures()
    ids = list(ev.ranks["pair"])
    images = {(p.id, side): getattr(p, side).abspath(workdir)
              for p in manifest.pairs for side in ("left", "right")}
    keys = [k for k in ev.ranks.columns if k != "pair"]
    if gallery > 0:
        tables = []
        for key in tqdm(keys, desc="Fig. 3 galleries", unit="feature set", leave=False):
            rows = retrieval_gallery(feature_sets[key], ids, ev.ranks[key].to_numpy(), gallery, seed)
            png, svg = draw_gallery(rows, key, images, out)
            figs.fig3.append({"key": key, "png": png.name, "svg": svg.name})
            figs.files += [png, svg]
            tables.append(rows)
        figs.gallery = pd.concat(tables, ignore_index=True)
        figs.gallery.to_csv(out / "fig3.csv", index=False)
        figs.files.append(out / "fig3.csv")
    scopes = {ev.subset: ids}
    if ev.subset != "all":
        scopes["all"] = list(manifest.ids)
    face_keys = [k for k in keys if feature_sets[k].kind == "face"]
    parts = [face_count_tables(feature_sets[k], scopes) for k in face_keys]
    if parts:
        figs.face_counts, figs.face_agreement, figs.face_summary = (
            pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))
        for name, df in (("counts", figs.face_counts), ("agreement", figs.face_agreement),
                         ("summary", figs.face_summary)):
            df.to_csv(out / f"fig5c_{name}.csv", index=False)
            figs.files.append(out / f"fig5c_{name}.csv")
        for key, (c, a, s) in zip(face_keys, parts):
            png, svg = draw_face_counts(key, c, a, s, out)
            figs.fig5c.append({"key": key, "png": png.name, "svg": svg.name})
            figs.files += [png, svg]
    return figs

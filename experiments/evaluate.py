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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import conditions, retrieval
from experiments import distance_sources as ds
from experiments.files import make_dirs, write_text, write_with

ZOOM_KS = (1, 5, 10, 20)


# How the face and face-generic rows of Tables 1 and 2a are counted (one row per mode):
# ``faces``: the subset's pairs with a face on both sides, ranked among the subset's right
# images; ``subset``: every pair of the subset; ``notebook``: the authors' cell 53 as it
# ran, whatever the subset: the pairs of the whole set with a face on both sides, ranked
# among all its right images, and its printed ``zz[[1, 5, 10, 20]]``, which is recall at
# 2, 6, 11 and 21 under the labels 1, 5, 10, 20.
FACE_DENOMINATORS = ("faces", "subset", "notebook")
FACE_ROWS = {
    "faces": "pairs of the subset with a face on both sides, ranked among the subset's "
             "right images",
    "subset": "every pair of the subset, ranked among the subset's right images",
    "notebook": "the authors' cell 53: pairs of the whole set with a face on both sides, "
                "ranked among all its right images; R@1, 5, 10, 20 are its printed "
                "zz[[1,5,10,20]], i.e. recall at 2, 6, 11, 21",
}
# cell 53's printed indices into the cumulative hit count: recall at index + 1
NOTEBOOK_PRINTED = (1, 5, 10, 20)
ASSOCIATIVE_METHODS = ("exact", "sampled")


@dataclass
class Evaluation:
    """Everything `evaluate` computed: tables (DataFrames), curves, and the files written,
    with the rules that made them (the subset's face rule, Table 1's face denominator,
    how associative recall was computed)."""

    subset: str
    n: int
    table1: pd.DataFrame
    table2a: pd.DataFrame
    votes: pd.DataFrame | None
    ranks: pd.DataFrame
    curves: dict[str, np.ndarray]
    cos_minus_euc: dict[str, np.ndarray]
    files: list[Path] = field(default_factory=list)
    face_rule: str = "n/a"
    face_denominator: str = "faces"
    associative: str = "exact"


def _label(key: str) -> str:
    return key.split("/", 1)[1] if key.startswith("generic/") else key


def _kind_of(key: str) -> str:
    return key.split("/", 1)[0]


def _order(keys) -> list[str]:
    """Keys in the conditions table's order of feature kinds (an unknown kind is an
    error), then by name."""
    return sorted(keys, key=lambda k: (
        conditions.FEATURE_KINDS.index(conditions.for_kind(_kind_of(k)).feature_kind), k))


def evaluate_feature_sets(feature_sets, ids: Sequence[str], votes: dict | None = None,
                          ties: str = "mean", ks: Sequence[int] = retrieval.DEFAULT_KS,
                          ms: Sequence[int] = retrieval.DEFAULT_MS, repetitions: int = 10,
                          seed: int = 0, subset: str = "all",
                          face_denominator: str = "faces", associative: str = "exact",
                          face_rule: str = "n/a", device: str = "cpu",
                          all_ids: Sequence[str] | None = None, chunk: int | None = None,
                          stats: Mapping[str, dict] | None = None) -> Evaluation:
    """Return the Evaluation of ``feature_sets`` (a mapping key -> FeatureSet, read one
    key at a time, so a lazy mapping keeps one set in memory) on pairs ``ids``.

    One distance pass per feature set gives the ranks (Table 1), associative recall
    (Table 2a, ``exact``: in closed form from the ranks; ``sampled``: the notebook's
    ``repetitions`` random sets, a second pass), the votes correlation (each pair's own
    distance) and, for generic features, the Euclidean ranks of Fig. 2a from the same
    matrix product. ``face_denominator`` (one of FACE_ROWS) says how the face and
    face-generic rows of Tables 1 and 2a are counted; ``notebook`` needs ``all_ids``, the
    whole set's pair ids, and leaves the ranks, curves and figures on the ``faces``
    population of the subset. ``votes``: pair id -> {"up", "down"} (None or empty: no
    votes). ``chunk``: query rows per distance block (default `retrieval.auto_chunk`).
    ``stats``: key -> the `set_stats` of every query, e.g. merged from shards
    (`merge_shards`), used instead of a distance pass."""
    if face_denominator not in FACE_DENOMINATORS:
        raise ValueError(f"unknown face denominator {face_denominator!r} "
                         f"(use {' or '.join(FACE_DENOMINATORS)})")
    if associative not in ASSOCIATIVE_METHODS:
        raise ValueError(f"unknown associative recall method {associative!r} "
                         f"(use {' or '.join(ASSOCIATIVE_METHODS)})")
    if ties not in retrieval.TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r} (use one of {', '.join(retrieval.TIE_RULES)})")
    if face_denominator == "notebook" and all_ids is None:
        raise ValueError("face rows `notebook` rank among the whole set: give all_ids")
    n = len(ids)
    rows1, rows2, vrows = [], [], []
    ranks_cols: dict[str, np.ndarray] = {}
    curves, cme = {}, {}
    have_votes = [i for i, pid in enumerate(ids) if votes and votes.get(pid) is not None]
    for key in _order(feature_sets):
        fs = feature_sets[key]
        metric = ds.default_metric(fs.kind)
        r = ds.rows_for(fs, ids)
        st = stats[key] if stats is not None else set_stats(fs, ids, device, chunk)
        closer, tie, own = st["closer"], st["tie"], st["own"]
        if fs.kind == "generic":
            cme[key] = (retrieval.recall_curve(retrieval.ranks_from_counts(closer, tie, ties), n)
                        - retrieval.recall_curve(retrieval.ranks_from_counts(
                            st["euclidean_closer"], st["euclidean_tie"], ties), n))
        ranks = retrieval.ranks_from_counts(closer, tie, ties)
        ranks_cols[key] = ranks
        finite = np.isfinite(own)
        face_rows = face_denominator if fs.kind != "generic" else "subset"
        queries = finite if face_rows in ("faces", "notebook") else np.ones(n, dtype=bool)
        curves[key] = retrieval.recall_curve(ranks[queries], n)
        rows_n, t_closer, t_tie, t_queries = n, closer, tie, queries
        if face_rows == "notebook":
            rows_n = len(all_ids)
            ra = ds.rows_for(fs, all_ids)
            t_closer, t_tie, t_own = retrieval.match_stats(
                ds.block_for(fs, ra, ra, metric), rows_n, retrieval.auto_chunk(rows_n))
            t_queries = np.isfinite(t_own)
            t_ranks = retrieval.ranks_from_counts(t_closer, t_tie, ties)[t_queries]
            rec = {k: (retrieval.recall_at_k(t_ranks, [k + 1])[k + 1] if k in NOTEBOOK_PRINTED
                       else float("nan")) for k in ks}
            with_feature = int(t_queries.sum())
        else:
            rec = retrieval.recall_at_k(ranks[queries], ks)
            with_feature = int((ds.has_feature(fs, "left", r) & ds.has_feature(fs, "right", r)).sum())
        rows1.append({"feature_set": _label(key), "kind": fs.kind, "metric": metric, "N": rows_n,
                      "queries": int(t_queries.sum()), "pairs_with_feature": with_feature,
                      **{f"R@{k}": round(100 * v, 2) for k, v in rec.items()},
                      "recall_at": "2,6,11,21" if face_rows == "notebook" else "k",
                      "face_rule": face_rule, "face_denominator": face_rows})
        if associative == "exact" or face_rows == "notebook":
            per_query = retrieval.associative_recall_exact(t_closer, t_tie, rows_n, ms, ties)
            ar = {m: (float(v[t_queries].mean()) if t_queries.any() else float("nan"))
                  for m, v in per_query.items()}
        else:
            ar = retrieval.associative_recall(ds.block_for(fs, r, r, metric), n, ms, repetitions,
                                              seed, ties, queries=queries)
        rows2.append({"feature_set": _label(key), "metric": metric,
                      "queries": int(t_queries.sum()),
                      **{f"m={m}": round(100 * v, 2) for m, v in ar.items()},
                      "method": "exact" if face_rows == "notebook" else associative,
                      "face_rule": face_rule, "face_denominator": face_rows})
        if len(have_votes) >= 3:
            up = [votes[ids[i]]["up"] for i in have_votes]
            down = [votes[ids[i]]["down"] for i in have_votes]
            c = retrieval.votes_correlation(up, down, own[have_votes])
            vrows.append({"feature_set": _label(key), "metric": metric, "n": c["n"],
                          **{f"{side}_{stat}": round(c[side][stat], 4)
                             for side in ("up", "down")
                             for stat in ("pearson_r", "pearson_p", "spearman_r", "spearman_p")},
                          "face_rule": face_rule})
        del fs
    ranks_df = pd.DataFrame({"pair": list(ids), **{k: v for k, v in ranks_cols.items()}})
    return Evaluation(subset=subset, n=n, table1=pd.DataFrame(rows1), table2a=pd.DataFrame(rows2),
                      votes=pd.DataFrame(vrows) if vrows else None, ranks=ranks_df,
                      curves=curves, cos_minus_euc=cme, face_rule=face_rule,
                      face_denominator=face_denominator, associative=associative)


STAT_FIELDS = ("closer", "tie", "own", "euclidean_closer", "euclidean_tie")


class ShardError(Exception):
    """Evaluation shards that cannot be computed or merged; the message says why."""


def set_stats(fs, ids: Sequence[str], device: str = "cpu", chunk: int | None = None,
              part: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Return the distance pass of feature set ``fs`` on pairs ``ids`` under its default
    metric: ``closer``, ``tie`` and ``own`` per query (see `retrieval.match_stats`) and,
    for generic sets, ``euclidean_closer`` and ``euclidean_tie`` (Fig. 2a), for every
    query or only query rows ``part`` (whole chunks of ``chunk`` rows, see
    `retrieval.shard_rows`; computed on the CPU)."""
    n = len(ids)
    r = ds.rows_for(fs, ids)
    metric = ds.default_metric(fs.kind)
    chunk = chunk or retrieval.auto_chunk(n)
    if fs.kind == "generic":
        got = ds.generic_stats(fs, r, device=device, chunk=chunk, part=part)
        (closer, tie, own), (ec, et, _) = got[metric], got["euclidean"]
        return {"closer": closer, "tie": tie, "own": own, "euclidean_closer": ec,
                "euclidean_tie": et}
    block = ds.block_for(fs, r if part is None else r[part[0]:part[1]], r, metric)
    if part is not None:  # a shard copies only its own queries' faces: the same rows
        sub, start = block, part[0]

        def block(rows: np.ndarray) -> np.ndarray:
            return sub(rows - start)
    closer, tie, own = retrieval.match_stats(block, n, chunk, part=part)
    return {"closer": closer, "tie": tie, "own": own}


def _ids_digest(ids: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _set_stamp(fs) -> str:
    """What identifies the computed content of a feature set (its meta's ``created``)."""
    return str((getattr(fs, "meta", None) or {}).get("created", ""))


def shard_path(folder: str | os.PathLike, shard: tuple[int, int]) -> Path:
    """Return the file of evaluation shard ``(i, k)`` in ``folder``."""
    return Path(folder) / f"shard-{shard[0]}-of-{shard[1]}.npz"


def evaluate_shard(feature_sets, ids: Sequence[str], shard: tuple[int, int],
                   folder: str | os.PathLike, chunk: int | None = None) -> Path:
    """Compute `set_stats` of every feature set for the query rows of shard ``(i, k)``
    (`retrieval.shard_rows`), write them to `shard_path` in ``folder`` with what the
    merge checks (the pair ids' digest, the chunk, each set's ``created``) and return the
    file."""
    n = len(ids)
    chunk = chunk or retrieval.auto_chunk(n)
    try:
        start, stop = retrieval.shard_rows(n, chunk, shard)
    except ValueError as exc:
        raise ShardError(str(exc)) from None
    head = {"n": n, "ids": _ids_digest(ids), "chunk": chunk, "start": start, "stop": stop,
            "shard": list(shard), "sets": {}}
    arrays: dict[str, np.ndarray] = {}
    for j, key in enumerate(_order(feature_sets)):
        fs = feature_sets[key]
        head["sets"][key] = {"index": j, "created": _set_stamp(fs)}
        for name, a in set_stats(fs, ids, chunk=chunk, part=(start, stop)).items():
            arrays[f"s{j}_{name}"] = a
        del fs
    path = shard_path(folder, shard)
    make_dirs(path.parent)
    import json

    write_with(path, lambda fh: np.savez(fh, head=np.array(json.dumps(head)), **arrays))
    return path


def merge_shards(feature_sets, ids: Sequence[str], tasks: int, folder: str | os.PathLike,
                 chunk: int | None = None) -> dict[str, dict]:
    """Return key -> `set_stats` of every query, concatenated from the ``tasks`` shard
    files in ``folder``; raise ShardError when one is missing or was computed on other
    pairs, another chunk or other feature sets, or when they do not cover the rows once."""
    import json

    n = len(ids)
    chunk = chunk or retrieval.auto_chunk(n)
    digest = _ids_digest(ids)
    stamps = {key: _set_stamp(feature_sets[key]) for key in _order(feature_sets)}
    parts, covered = [], 0
    for i in range(1, tasks + 1):
        path = shard_path(folder, (i, tasks))
        try:
            with np.load(path, allow_pickle=False) as z:
                head = json.loads(str(z["head"]))
                data = {k: z[k] for k in z.files if k != "head"}
        except (OSError, ValueError, KeyError):
            raise ShardError(f"shard {i}/{tasks} missing or unreadable: {path} (run "
                             f"`evaluate ... --shard {i}/{tasks}` again)") from None
        why = ("other pairs" if head["ids"] != digest or head["n"] != n
               else f"chunk {head['chunk']}, not {chunk}" if head["chunk"] != chunk
               else "other feature sets" if {k: v["created"] for k, v in head["sets"].items()} != stamps
               else f"rows {head['start']}:{head['stop']}, not from row {covered}"
               if head["start"] != covered else None)
        if why:
            raise ShardError(f"shard {i}/{tasks} ({path}) was computed on {why}: compute "
                             "every shard again with the same options")
        covered = head["stop"]
        parts.append((head, data))
    if covered != n:
        raise ShardError(f"the {tasks} shards cover rows 0:{covered} of {n}")
    out = {}
    for key in stamps:
        fields = [f for f in STAT_FIELDS if any(f"s{h['sets'][key]['index']}_{f}" in d
                                                for h, d in parts)]
        out[key] = {f: np.concatenate([d[f"s{h['sets'][key]['index']}_{f}"] for h, d in parts])
                    for f in fields}
    return out


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
        write_with(files[-1], lambda fh: fig.savefig(fh, format="png", dpi=110,
                                                     bbox_inches="tight"))
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


def face_rows_note(mode: str) -> str:
    """Return the sentence that says how face rows are counted under ``mode``."""
    if mode not in FACE_ROWS:
        raise ValueError(f"unknown face rows {mode!r} (use {' or '.join(FACE_DENOMINATORS)})")
    return FACE_ROWS[mode]


def _html(ev: Evaluation, votes_note: str, figures=None) -> str:
    from experiments.figures import FACE_COUNT_CAP
    from experiments.templates import render

    def table(df):
        return df.to_html(index=False, border=0, classes="t", na_rep="")
    summary = getattr(figures, "face_summary", None)
    return render("evaluate.html", ev=ev, figures=figures, votes_note=votes_note,
                  face_rows_note=face_rows_note(ev.face_denominator),
                  table1=table(ev.table1), table2a=table(ev.table2a),
                  votes=table(ev.votes) if ev.votes is not None else None,
                  face_summary=table(summary.round(4)) if summary is not None else "",
                  cap=FACE_COUNT_CAP)


def write_evaluation(ev: Evaluation, out: str | os.PathLike, figures=None) -> list[Path]:
    """Write the tables, plots and index.html of ``ev`` into ``out`` (index.html also
    showing ``figures``, the Figures of experiments.figures, when given); return the
    files."""
    out = Path(out)
    make_dirs(out)
    files = []
    for name, df in (("table1", ev.table1), ("table2a", ev.table2a)):
        write_text(out / f"{name}.csv", df.to_csv(index=False))
        write_text(out / f"{name}.md", markdown_table(df))
        files += [out / f"{name}.csv", out / f"{name}.md"]
    votes_note = "No votes in the manifest for these pairs: no correlation computed."
    if ev.votes is not None:
        write_text(out / "votes.csv", ev.votes.to_csv(index=False))
        write_text(out / "votes.md", markdown_table(ev.votes))
    else:
        write_text(out / "votes.csv", "note\n" + votes_note + "\n")
        write_text(out / "votes.md", votes_note + "\n")
    files += [out / "votes.csv", out / "votes.md"]
    write_text(out / "ranks.csv", ev.ranks.to_csv(index=False))
    files.append(out / "ranks.csv")
    files += _plots(ev, out)
    files += figures.files if figures is not None else []
    write_text(out / "index.html", _html(ev, votes_note, figures))
    files.append(out / "index.html")
    ev.files = files
    return files


class LazyFeatureSets(Mapping):
    """The store's feature sets by key, each loaded (memory-mapped) when asked for and
    not kept, so a whole evaluation holds one feature set at a time."""

    def __init__(self, store, keys: Sequence[str]):
        self.store, self._keys = store, list(keys)

    def __getitem__(self, key: str):
        if key not in self._keys:
            raise KeyError(key)
        return self.store.load(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def evaluate_study(workdir: str | os.PathLike, subset: str | None = None,
                   out: str | os.PathLike | None = None, ties: str = "mean",
                   repetitions: int = 10, seed: int = 0, gallery: int = 3,
                   face_denominator: str = "faces", associative: str = "exact",
                   device: str = "auto", chunk: int | None = None,
                   shard: tuple[int, int] | None = None,
                   from_shards: int | None = None) -> Evaluation | Path:
    """Evaluate every feature set of a study's store on ``subset`` (default TLL_d when
    computed, else all pairs), write the results with Fig. 3 (``gallery`` queries per
    group) and Fig. 5c to ``out`` and return them. Feature sets are memory-mapped and
    read one at a time. ``shard`` ``(i, k)``: only compute the distance pass of shard i
    of k into ``out/shards/`` and return that file; ``from_shards`` k: evaluate from
    those k files instead of a distance pass (the same tables, byte for byte)."""
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore
    from experiments.subsets import load_subset, subset_face_rule, subsets_dir

    manifest = load_manifest(workdir)
    if subset is None:
        subset = "TLL_d" if (subsets_dir(workdir) / "TLL_d.json").is_file() else "all"
    name, ids = load_subset(workdir, subset, manifest.ids)
    store = FeatureStore(workdir)
    keys = store.keys()
    if not keys and keys.unusable:
        why = "; ".join(f"{k} is {why}: run `{ds.features_command(k, str(workdir))}`"
                        for k, why in sorted(keys.unusable.items()))
        raise ds.FeatureAccessError(f"no usable feature set in {workdir}: {why}")
    if not keys:
        raise ds.FeatureAccessError("the feature store is empty: run "
                                    f"`{ds.features_command('generic/efficientnet_lite0', str(workdir))}`")
    if len(ids) < 2:
        raise ds.FeatureAccessError(f"subset {name!r} holds {len(ids)} pair(s); retrieval needs 2 or more")
    votes = {p.id: p.votes for p in manifest.pairs if p.votes is not None}
    fsets = LazyFeatureSets(store, keys)
    out = Path(out or Path(workdir) / "evaluation" / name)
    if shard is not None or from_shards is not None:
        # a shard holds one distance pass per set; these modes need a second, whole one
        if associative != "exact" or face_denominator == "notebook":
            raise ShardError("sharded evaluate computes Table 2a exactly on the subset: "
                             "use --associative exact and face rows faces or subset")
    if shard is not None:
        return evaluate_shard(fsets, ids, shard, out / "shards", chunk)
    stats = (merge_shards(fsets, ids, from_shards, out / "shards", chunk)
             if from_shards is not None else None)
    ev = evaluate_feature_sets(fsets, ids, votes, ties=ties,
                               repetitions=repetitions, seed=seed, subset=name,
                               face_denominator=face_denominator, associative=associative,
                               face_rule=subset_face_rule(workdir, name) or "n/a", device=device,
                               all_ids=manifest.ids, chunk=chunk, stats=stats)
    from experiments.figures import write_figures

    write_evaluation(ev, out, write_figures(workdir, manifest, fsets, ev, out, gallery, seed))
    return ev

"""The lines printed after each stage of the machine side, shared by the commands and
the demo pipeline (so the library never needs the CLI to say what it did)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from experiments import conditions


def subsets_summary(docs: dict, params, workdir: str | Path) -> str:
    """Return the lines printed after `subsets`: the pairs and feature sets used, the
    thresholds, and per subset the pairs kept and dropped."""
    from experiments.subsets import subsets_dir

    first = next(iter(docs.values()))
    total = len(first["ids"]) + len({r["id"] for r in first["dropped"]})
    lines = [f"subsets of {total} pairs from {', '.join(first['feature_sets'])} "
             f"(within cosine {params.within_cosine}, cross cosine {params.cross_cosine}, "
             f"face {params.within_face}/{params.cross_face}, face rule {params.face_rule}):"]
    for name, doc in docs.items():
        lines.append(f"  {name:<17} {len(doc['ids']):>6} pairs kept, "
                     f"{len({r['id'] for r in doc['dropped']}):>6} dropped")
    lines.append(f"written to {subsets_dir(workdir)}/")
    return "\n".join(lines)


def evaluation_summary(ev, ties: str) -> str:
    """Return the lines printed after `evaluate`: Table 1 as markdown and where the
    tables, plots and index.html are."""
    from experiments.evaluate import markdown_table

    cols = ["feature_set", "metric", "queries"] + [c for c in ev.table1.columns
                                                   if c.startswith("R@")]
    from experiments.evaluate import face_rows_note

    if "recall_at" in ev.table1.columns:
        cols.append("recall_at")
    lines = [f"Table 1: recall@k (%) on subset {ev.subset} (N = {ev.n}, ties: {ties}, "
             f"subset face rule: {ev.face_rule}, face rows over: {ev.face_denominator}, "
             f"associative recall: {ev.associative})",
             f"face rows `{ev.face_denominator}`: {face_rows_note(ev.face_denominator)}",
             markdown_table(ev.table1[cols]).rstrip("\n")]
    if ev.votes is None:
        lines.append("votes: none in the manifest for these pairs, no correlation computed")
    if ev.files:
        lines.append(f"tables, plots and index.html in {ev.files[0].parent}/")
    return "\n".join(lines)


def build_summary(doc: dict, design, seed: int, out: str | Path) -> str:
    """Return the lines printed after `build`: trials, HITs and images, the trials per
    cell, the feature set of each feature condition, and the file written."""
    per = Counter((t["condition"], t["subset"]) for t in doc["trials"])
    lines = [f"experiment {design.name!r}: {len(doc['trials'])} trials in {len(doc['hits'])} "
             f"HITs of up to {design.trials_per_hit}, {len(doc['images'])} images, seed {seed}"]
    for (cond, sub), n in sorted(per.items(), key=lambda kv: (kv[0][0] == conditions.CATCH,
                                                              kv[0])):
        lines.append(f"  {cond:<13} on {sub:<12} {n:>4} trials")
    for cond, key in doc["design"]["feature_sets"].items():
        lines.append(f"  {cond} distractors from {key}")
    lines.append(f"written to {out}")
    return "\n".join(lines)

"""The option matrix: TLL_d's face rule (``notebook``, ``distance``) against the way face
rows of Table 1 are counted (``faces``, ``subset``, ``notebook``), on one study, so a
reader sees at once which number comes from which choice. Nothing is written: the
subsets are computed in memory from the store, as `subsets` would compute them."""
from __future__ import annotations

import os

import pandas as pd

COLUMNS = ["face_rule", "face_rows", "TLL_d", "feature_set", "N", "queries",
           "R@1", "R@5", "R@10", "R@20", "recall_at"]


def option_matrix(workdir: str | os.PathLike) -> pd.DataFrame:
    """Return one row per (face rule, face-row mode, face or face-generic feature set):
    the size of TLL_d under that rule and the feature set's Table 1 row on it (``N``,
    ``queries``, R@1..R@20 and ``recall_at``, which says when the labels are the
    notebook's printed recall at 2, 6, 11, 21)."""
    from experiments import distance_sources as ds
    from experiments.evaluate import FACE_DENOMINATORS, LazyFeatureSets, evaluate_feature_sets
    from experiments.store import FeatureStore
    from experiments.subsets import FACE_RULES, SubsetParams, build_subsets, study_reasons

    ids, reasons, _, keys = study_reasons(workdir)
    store = FeatureStore(workdir)
    face_keys = [k for k in keys if k.split("/", 1)[0] in ds.FACE_KINDS]
    fsets = LazyFeatureSets(store, face_keys)
    rows = []
    for rule in FACE_RULES:
        tll_d = build_subsets(ids, reasons, SubsetParams(face_rule=rule), [])["TLL_d"]["ids"]
        for mode in FACE_DENOMINATORS:
            if len(tll_d) < 2:
                rows += [{"face_rule": rule, "face_rows": mode, "TLL_d": len(tll_d),
                          "feature_set": k} for k in face_keys]
                continue
            t1 = evaluate_feature_sets(fsets, tll_d, None, face_denominator=mode,
                                       face_rule=rule, all_ids=ids).table1
            for row in t1.to_dict("records"):
                rows.append({"face_rule": rule, "face_rows": mode, "TLL_d": len(tll_d),
                             **{c: row.get(c) for c in COLUMNS[3:]}})
    return pd.DataFrame(rows, columns=COLUMNS)


def option_matrix_text(df: pd.DataFrame) -> str:
    """Return the lines printed for the option matrix: a heading, the table in Markdown
    and what `recall_at` means."""
    from experiments.evaluate import markdown_table

    return "\n".join([
        "Option matrix: TLL_d face rule x face rows of Table 1 (recall %, face feature sets)",
        markdown_table(df).rstrip("\n"),
        "recall_at k: R@k is recall at k; 2,6,11,21: the labels 1, 5, 10, 20 are the "
        "notebook's printed recall at 2, 6, 11, 21 (cell 53), over the whole set"])

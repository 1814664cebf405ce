"""Near-duplicate subsets TLL_d and TLL_obj (paper §4.2, the authors' notebook) and the
reading of subsets by name or file (docs/contracts.md §4).

Rules (every threshold a parameter; "within t" means a distance of at most t):

* ``left_duplicate``: the pair's left image has another left image within
  ``within_cosine`` (0.10) by generic cosine distance; ``right_duplicate`` likewise.
* ``cross_duplicate``: the pair's left image is within ``cross_cosine`` (0.15) of a right
  image other than its own (the paper prints "≥ 0.15", a typo).
* ``face_left_duplicate`` / ``face_right_duplicate``: face distance (minimum over face
  pairs, Euclidean) to another image of the same side at most ``within_face`` (0.4);
  ``face_cross_duplicate``: to another pair's image of the other side, at most ``cross_face``.
* ``face_left_argmin`` / ``face_right_argmin`` (face rule ``notebook``, the default): what
  the authors' de-duplication notebook computed (cells 20-31) and the paper's TLL_d came
  from. Each side's face-distance matrix is built as the notebook built it: the set-minimum
  distance of every two images with a face (an image to itself: 0), 10^9 wherever either
  image has no face, and only then ``100 * eye`` added. Each row is reduced with
  ``argmin`` and that *index* (0-based, manifest order), not the distance, is compared
  with ``within_face``. So a faceless image is flagged (argmin 0) except in pair 0, whose
  faceless row has its smallest value at index 1; an image that is the only one with a
  face on its side has argmin itself (flagged only in pair 0); an image whose nearest face
  belongs to pair 0 is flagged. The notebook rule also applies ``face_cross_duplicate``
  (cell 47's active line ends with ``(cross_face_dists <= .4)``; cell 20's
  ``cross_face_dists`` is the minimum of each row of the left-to-right face-distance
  matrix plus ``100 * eye``, which for a threshold below 100 is the nearest other pair's
  right image). In effect TLL_d keeps pairs with a face on both sides, minus generic and
  cross-face duplicates. Face rule ``distance`` applies the three face rules above as the
  paper states them.
* ``face`` (definition ``strict``): either image has a face. ``one_face`` (definition
  ``notebook``): the larger of the two face counts is exactly 1, so pairs with two or
  more faces stay (the notebook's quirk, which produced the paper's 1,622).

TLL_d drops the three generic rules and the face rules of its face rule; TLL_obj drops the
two generic within-side rules and the face rule of its definition. Each dropped pair lists
every rule it broke with the nearest offending image and its distance.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from experiments import files, retrieval

D_RULES = ("left_duplicate", "right_duplicate", "cross_duplicate",
           "face_left_duplicate", "face_right_duplicate", "face_cross_duplicate")
GENERIC_D_RULES = D_RULES[:3]
NOTEBOOK_FACE_RULES = ("face_left_argmin", "face_right_argmin", "face_cross_duplicate")
FACE_RULES = ("notebook", "distance")
OBJ_DEFINITIONS = ("notebook", "strict")
# The notebook's stand-in for "no face": a distance no real descriptor pair reaches.
NOTEBOOK_FACELESS = 1e9
# What the notebook adds to the diagonal (``100 * eye``) after filling faceless entries.
NOTEBOOK_DIAGONAL = 100.0
SUBSET_NAMES = ("TLL_d", "TLL_obj", "TLL_obj_notebook", "TLL_obj_strict")


class SubsetError(Exception):
    """A subset cannot be read or computed; the message says what to do."""


@dataclass(frozen=True)
class SubsetParams:
    """Thresholds of the near-duplicate rules (defaults: the authors' notebook)."""

    within_cosine: float = 0.10
    cross_cosine: float = 0.15
    within_face: float = 0.4
    cross_face: float = 0.4
    obj_definition: str = "notebook"
    face_rule: str = "notebook"


def d_rules(face_rule: str) -> tuple[str, ...]:
    """Return the rules TLL_d drops under `face_rule` (`notebook`: the generic rules, the
    notebook's argmin-index face rules and the cross-face rule; `distance`: the six rules
    as the paper states them)."""
    if face_rule not in FACE_RULES:
        raise SubsetError(f"unknown face rule {face_rule!r} (use {' or '.join(FACE_RULES)})")
    return D_RULES if face_rule == "distance" else GENERIC_D_RULES + NOTEBOOK_FACE_RULES


def obj_rules(definition: str) -> tuple[str, ...]:
    """Return the rules TLL_obj drops under `definition` (`notebook` or `strict`)."""
    if definition not in OBJ_DEFINITIONS:
        raise SubsetError(f"unknown TLL_obj definition {definition!r} "
                          f"(use {' or '.join(OBJ_DEFINITIONS)})")
    return ("left_duplicate", "right_duplicate", "face" if definition == "strict" else "one_face")


def _near(block, n, threshold, ids, rule, other_prefix, out, chunk):
    idx, dist = retrieval.nearest_other(block, n, chunk=chunk, exclude_diagonal=True)
    for i in np.flatnonzero(dist <= threshold):
        out.append({"id": ids[i], "rule": rule, "other": other_prefix + ids[idx[i]],
                    "distance": round(float(dist[i]), 6)})


def notebook_face_argmin(vectors: np.ndarray, offsets: np.ndarray, chunk: int = 1024
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(argmin index, its value)`` per image of one side as the notebook computed
    them: Euclidean set-minimum face distances to every image of the side (itself: 0),
    10^9 where either image has no face, then 100 added on the diagonal. A faceless row is
    10^9 everywhere but its diagonal (10^9 + 100), so its argmin is 0, or 1 in row 0; an
    image alone with a face on its side has argmin itself (value 100)."""
    n = len(offsets) - 1
    block = retrieval.face_block(vectors, offsets, vectors, offsets)
    idx = np.zeros(n, dtype=np.int64)
    dist = np.full(n, NOTEBOOK_FACELESS)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        d = np.array(block(rows), dtype=np.float64)
        d[~np.isfinite(d)] = NOTEBOOK_FACELESS
        d[np.arange(len(rows)), rows] += NOTEBOOK_DIAGONAL
        j = np.argmin(d, axis=1)
        idx[rows], dist[rows] = j, d[np.arange(len(rows)), j]
    return idx, dist


def near_duplicate_reasons(ids: Sequence[str], left: np.ndarray, right: np.ndarray,
                           face_left: tuple[np.ndarray, np.ndarray],
                           face_right: tuple[np.ndarray, np.ndarray],
                           params: SubsetParams = SubsetParams(),
                           chunk: int = 1024) -> list[dict]:
    """Return every rule broken by every pair, as ``{"id", "rule", "other", "distance"}``
    (sorted by id then rule). ``left``/``right``: generic features (rows = ``ids``);
    ``face_left``/``face_right``: ``(vectors, offsets)`` face sets in the same order."""
    ids = list(ids)
    n = len(ids)
    out: list[dict] = []
    if n == 0:
        return out
    _near(retrieval.generic_block(left, left, "cosine"), n, params.within_cosine, ids,
          "left_duplicate", "L", out, chunk)
    _near(retrieval.generic_block(right, right, "cosine"), n, params.within_cosine, ids,
          "right_duplicate", "R", out, chunk)
    _near(retrieval.generic_block(left, right, "cosine"), n, params.cross_cosine, ids,
          "cross_duplicate", "R", out, chunk)
    (lv, lo), (rv, ro) = face_left, face_right
    _near(retrieval.face_block(lv, lo, lv, lo), n, params.within_face, ids,
          "face_left_duplicate", "L", out, chunk)
    _near(retrieval.face_block(rv, ro, rv, ro), n, params.within_face, ids,
          "face_right_duplicate", "R", out, chunk)
    _near(retrieval.face_block(lv, lo, rv, ro), n, params.cross_face, ids,
          "face_cross_duplicate", "R", out, chunk)
    for (v, o), rule, prefix in (((lv, lo), NOTEBOOK_FACE_RULES[0], "L"),
                                 ((rv, ro), NOTEBOOK_FACE_RULES[1], "R")):
        idx, dist = notebook_face_argmin(v, o, chunk)
        # the notebook's comparison of an index with a distance threshold, kept on purpose
        for i in np.flatnonzero(idx <= params.within_face):
            out.append({"id": ids[i], "rule": rule, "other": prefix + ids[idx[i]],
                        "distance": round(float(dist[i]), 6), "argmin": int(idx[i])})
    lc, rc = np.diff(np.asarray(lo)), np.diff(np.asarray(ro))
    for i in range(n):
        if lc[i] > 0 or rc[i] > 0:
            out.append({"id": ids[i], "rule": "face", "other": None, "distance": None,
                        "faces": [int(lc[i]), int(rc[i])]})
        if max(lc[i], rc[i]) == 1:
            out.append({"id": ids[i], "rule": "one_face", "other": None, "distance": None,
                        "faces": [int(lc[i]), int(rc[i])]})
    out.sort(key=lambda r: (r["id"], r["rule"]))
    return out


def apply_rules(ids: Sequence[str], reasons: list[dict], rules: Sequence[str]
                ) -> tuple[list[str], list[dict]]:
    """Return ``(kept ids, dropped reasons)`` keeping the pairs that break none of
    ``rules``; the order of ``ids`` is kept."""
    rules = set(rules)
    dropped = [r for r in reasons if r["rule"] in rules]
    gone = {r["id"] for r in dropped}
    return [i for i in ids if i not in gone], dropped


def build_subsets(ids: Sequence[str], reasons: list[dict], params: SubsetParams,
                  feature_sets: Sequence[str]) -> dict[str, dict]:
    """Return the subset documents ``{name: {"name", "params", "feature_sets", "ids",
    "dropped"}}`` for TLL_d, TLL_obj_notebook, TLL_obj_strict and TLL_obj (the latter is
    the definition chosen in ``params``)."""
    obj_rules(params.obj_definition)
    docs = {}
    for name, rules in (("TLL_d", d_rules(params.face_rule)), ("TLL_obj_notebook", obj_rules("notebook")),
                        ("TLL_obj_strict", obj_rules("strict")),
                        ("TLL_obj", obj_rules(params.obj_definition))):
        kept, dropped = apply_rules(ids, reasons, rules)
        p = asdict(params)
        if name.startswith("TLL_obj_"):
            p["obj_definition"] = name.rpartition("_")[2]
        docs[name] = {"name": name, "params": p, "face_rule": params.face_rule,
                      "rules": list(rules),
                      "feature_sets": list(feature_sets), "ids": kept, "dropped": dropped}
    return docs


# --------------------------------------------------------------------------- files
def subsets_dir(workdir: str | os.PathLike) -> Path:
    """Return the folder of a study's subset files."""
    return Path(workdir) / "subsets"


def study_reasons(workdir: str | os.PathLike, params: SubsetParams = SubsetParams(),
                  model: str | None = None, detector: str | None = None):
    """Return ``(ids, reasons, used, keys)`` for a study: the manifest's pair ids, the
    near-duplicate reasons of each pair from its generic and face feature sets
    (``near_duplicate_reasons`` under ``params``), the keys of those two sets and all the
    store's keys."""
    from experiments import distance_sources as ds
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore

    manifest = load_manifest(workdir)
    store = FeatureStore(workdir)
    keys = store.keys()
    gkey = ds.generic_key(keys, model)
    fkey = ds.face_key(keys, detector)
    generic, face = store.load(gkey), store.load(fkey)
    ids = manifest.ids
    g_rows, f_rows = ds.rows_for(generic, ids), ds.rows_for(face, ids)
    reasons = near_duplicate_reasons(
        ids, np.asarray(generic.left)[g_rows], np.asarray(generic.right)[g_rows],
        retrieval.select_faces(face.left.vectors, face.left.offsets, f_rows),
        retrieval.select_faces(face.right.vectors, face.right.offsets, f_rows), params)
    return ids, reasons, [gkey, fkey], keys


def compute_subsets(workdir: str | os.PathLike, params: SubsetParams = SubsetParams(),
                    model: str | None = None, detector: str | None = None) -> dict[str, dict]:
    """Compute the near-duplicate subsets of a study from its feature store, write
    ``subsets/<NAME>.json`` and return the documents written."""
    ids, reasons, used, _ = study_reasons(workdir, params, model, detector)
    docs = build_subsets(ids, reasons, params, used)
    for name, doc in docs.items():
        files.write_json(subsets_dir(workdir) / f"{name}.json", doc)
    return docs


def _read_id_file(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    if isinstance(obj, dict):
        obj = obj.get("ids")
    if not isinstance(obj, list):
        raise SubsetError(f"{path}: a subset file is a JSON list of pair ids, a JSON object "
                          "with `ids`, or a text file with one id per line")
    return [str(x) for x in obj]


def subset_face_rule(workdir: str | os.PathLike, name: str) -> str | None:
    """Return the face rule that made the computed subset ``name`` (None for ``all``, a
    user's file, or a subset file written before face rules existed)."""
    path = subsets_dir(workdir) / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    rule = doc.get("face_rule") or (doc.get("params") or {}).get("face_rule")
    return rule if isinstance(rule, str) else None


def load_subset(workdir: str | os.PathLike, name: str, manifest_ids: Sequence[str]
                ) -> tuple[str, list[str]]:
    """Return ``(name, ids)`` of a subset given by name (``all``, ``TLL_d``, any
    ``subsets/<NAME>.json``) or by the path of a file of pair ids; ids keep manifest order.
    Raise SubsetError for an unknown name or ids not in the manifest."""
    if name == "all":
        return "all", list(manifest_ids)
    own = subsets_dir(workdir) / f"{name}.json"
    if own.is_file():
        ids = _read_id_file(own)
    elif Path(name).is_file():
        ids = _read_id_file(Path(name))
        name = Path(name).stem
    elif name in SUBSET_NAMES:
        raise SubsetError(f"subset {name!r} has not been computed: run "
                          f"`python -m experiments subsets {workdir}` first")
    else:
        known = sorted(p.stem for p in subsets_dir(workdir).glob("*.json"))
        raise SubsetError(f"unknown subset {name!r}: not `all`, not one of "
                          f"{', '.join(known) or '(none computed)'}, and no file by that name")
    present = set(manifest_ids)
    missing = [i for i in ids if i not in present]
    if missing:
        raise SubsetError(f"subset {name!r} names {len(missing)} pair id(s) not in the "
                          f"manifest (e.g. {', '.join(missing[:3])})")
    wanted = set(ids)
    return name, [i for i in manifest_ids if i in wanted]

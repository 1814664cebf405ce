"""Per-trial candidate distances for the human-likeness table, read with numpy from the
study's feature store as docs/contracts.md §3 lays it out (the analysis never imports the
machine side): cosine distance for generic and face-generic features, Euclidean for dlib
face descriptors; several faces: the smallest distance over face pairs; no face: +inf.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - a @ b.T


def _euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))


def set_distance(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    """Return the smallest ``metric`` distance between two sets of vectors (rows), +inf
    when either set is empty."""
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    d = _cosine(a, b) if metric == "cosine" else _euclidean(a, b)
    return float(d.min())


def _vectors(folder: Path, kind: str, side: str, row: int) -> np.ndarray:
    if kind == "generic":
        return np.load(folder / f"{side}.npy", mmap_mode="r")[row:row + 1].astype(float)
    offsets = np.load(folder / f"{side}_offsets.npy")
    vectors = np.load(folder / f"{side}_vectors.npy", mmap_mode="r")
    return np.asarray(vectors[offsets[row]:offsets[row + 1]], dtype=float)


def _store_distances(folder: Path, key: str, doc: dict, where: dict) -> dict:
    """{trial id: five distances} of one feature set's store folder."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    kind = str(meta.get("kind") or key.split("/")[0])
    rows = {pid: i for i, pid in enumerate(meta["ids"])}
    metric = "euclidean" if kind == "face" else "cosine"
    cache: dict[str, np.ndarray] = {}

    def vec(image_id: str) -> np.ndarray:
        if image_id not in cache:
            pair, side = where[image_id]
            cache[image_id] = _vectors(folder, kind, side, rows[pair])
        return cache[image_id]

    per = {}
    for t in doc.get("trials", []):
        if t.get("catch"):
            continue
        q = vec(t["query"])
        per[t["id"]] = [set_distance(q, vec(c), metric) for c in t["candidates"]]
    return per


def trial_distances(experiment_file: str | Path) -> tuple[dict, list[str]]:
    """The five candidates' distances to the query, per feature set and trial.

    Parameters
    ----------
    experiment_file : str or Path
        The experiment file; the feature store is STUDY_DIR/features/<key>/ (contracts §3).

    Returns
    -------
    distances : dict
        feature set -> trial id -> list of five floats (display order; +inf where a side
        has no face). Catch trials are left out.
    notes : list of str
        One line per feature set whose store could not be read: nothing is dropped
        silently.

    Examples
    --------
    >>> dist, notes = trial_distances("build/demo/experiments/demo.json")  # doctest: +SKIP
    """
    path = Path(experiment_file)
    doc = json.loads(path.read_text(encoding="utf-8"))
    return document_distances(doc, (path.parent / str(doc.get("image_root", "."))).resolve())


def document_distances(doc: dict, root: Path) -> tuple[dict, list[str]]:
    """:func:`trial_distances` of an experiment file already parsed: ``doc`` its
    document, ``root`` its resolved study folder (``TrialImages.document`` and ``.root``
    of ``items.from_experiment_file``). Returns the same distances and notes."""
    where = {im["id"]: (im.get("pair"), im.get("side")) for im in doc.get("images", [])}
    out: dict[str, dict[str, list[float]]] = {}
    notes = []
    for key in doc.get("feature_sets", []):
        try:
            out[key] = _store_distances(root / "features" / key, key, doc, where)
        except (OSError, KeyError, ValueError, IndexError) as exc:
            notes.append(f"{key}: no distances ({type(exc).__name__}: {exc})")
    return out, notes

"""From feature sets (docs/contracts.md §3) to the distance blocks of `retrieval`.

Duck-typed on the store's `FeatureSet`: it needs `kind`, `key`, `ids`, and `left` /
`right` that are arrays (generic) or face sets with `vectors` and `offsets` (face kinds).
Also the choice of default feature sets (which generic model, which face detector).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments import conditions, retrieval, store

FACE_KINDS = conditions.FACE_KINDS
PREFERRED_GENERIC = ("densenet121", "efficientnet_lite0")
PREFERRED_DETECTORS = ("cnn", "hog")


class FeatureAccessError(Exception):
    """A feature set needed for a computation is missing or does not cover the pairs."""


# the distance a feature kind uses: cosine for generic CNN features (also on face crops),
# Euclidean for dlib face descriptors (paper §4.1; experiments/conditions.py)
default_metric = conditions.distance_of_kind


def features_command(key: str, workdir: str = "STUDY_DIR") -> str:
    """Return the `features` command that computes feature set `key` (the store's
    `features_command`, arguments in this module's order). A malformed key, met only in
    an error message, gives the command without the set's model and detector."""
    try:
        return store.features_command(workdir, key)
    except store.StoreError:
        return f"python -m experiments features {workdir} --kind {str(key).partition('/')[0]}"


def rows_for(fs, ids: Sequence[str]) -> np.ndarray:
    """Return the row index in feature set `fs` of each pair id; raise FeatureAccessError
    naming the features command when some are missing (features older than the manifest)."""
    pos = {pid: i for i, pid in enumerate(fs.ids)}
    missing = [pid for pid in ids if pid not in pos]
    if missing:
        raise FeatureAccessError(
            f"feature set {fs.key} lacks {len(missing)} pair(s) of the manifest "
            f"(e.g. {', '.join(missing[:3])}): run `{features_command(fs.key)}` again")
    return np.array([pos[pid] for pid in ids], dtype=np.int64)


def _side(fs, side: str):
    return fs.left if side == "left" else fs.right


def block_for(fs, left_rows: np.ndarray, right_rows: np.ndarray, metric: str | None = None,
              left_side: str = "left", right_side: str = "right") -> retrieval.DistanceBlock:
    """Return a distance block from images `left_rows` of side `left_side` to images
    `right_rows` of side `right_side` of `fs` (block rows/columns are positions in these
    index arrays)."""
    metric = metric or default_metric(fs.kind)
    a, b = _side(fs, left_side), _side(fs, right_side)
    if fs.kind == "generic":
        return retrieval.generic_block(np.asarray(a)[left_rows], np.asarray(b)[right_rows], metric)
    lv, lo = retrieval.select_faces(a.vectors, a.offsets, left_rows)
    rv, ro = retrieval.select_faces(b.vectors, b.offsets, right_rows)
    return retrieval.face_block(lv, lo, rv, ro, metric)


# Below this many multiply-adds (N x N x d) a GPU's start-up costs more than it saves.
GPU_MIN_WORK = 2e11


def resolve_retrieval_device(device: str, n: int, dim: int) -> str:
    """Return where the distances of an ``n x n`` retrieval on ``dim``-d features run:
    ``cpu``, or ``cuda`` when asked, or (``auto``) when the features are large and torch
    sees a GPU. torch is only imported for large features."""
    if device == "cpu":
        return "cpu"
    if device not in ("auto", "cuda"):
        raise ValueError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device == "auto" and float(n) * n * dim < GPU_MIN_WORK:
        return "cpu"
    from experiments.features.compute import gpu_possible

    if device == "auto" and not gpu_possible():  # torch alone costs about 0.9 GB
        return "cpu"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement of experiments/
        available = False
    else:
        available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise FeatureAccessError("--device cuda: torch sees no CUDA GPU on this machine "
                                 "(use --device auto or cpu)")
    return "cuda" if available else "cpu"


def torch_generic_stats(left: np.ndarray, right: np.ndarray, device: str = "cuda",
                        chunk: int | None = None) -> dict:
    """Return what `retrieval.generic_match_stats` returns, computed with torch on
    ``device`` (the GPU path of `evaluate`): the same formulas, float32, counts reduced on
    the device so only N numbers per metric come back."""
    import torch

    n = len(left)
    chunk = chunk or retrieval.auto_chunk(n, 64_000_000)
    dev = torch.device(device)
    lt = torch.as_tensor(np.ascontiguousarray(left, dtype=np.float32), device=dev)
    rt = torch.as_tensor(np.ascontiguousarray(right, dtype=np.float32), device=dev)
    lnorm, rnorm = lt.norm(dim=1), rt.norm(dim=1)
    ln = lt / torch.where(lnorm > 0, lnorm, 1)[:, None]
    rnt = (rt / torch.where(rnorm > 0, rnorm, 1)[:, None]).T.contiguous()
    del lt, rt
    rsq = rnorm * rnorm
    out = {m: (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64))
           for m in ("cosine", "euclidean")}
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n), device=dev)
        sim = ln[rows] @ rnt
        idx = torch.arange(len(rows), device=dev)
        lr = lnorm[rows][:, None]
        for m in ("cosine", "euclidean"):
            d = 1.0 - sim if m == "cosine" else (sim * (-2 * lr)) * rnorm[None, :] + rsq[None, :] + lr * lr
            own = d[idx, rows][:, None]
            sl = slice(start, start + len(rows))
            out[m][0][sl] = (d < own).sum(1).cpu().numpy()
            out[m][1][sl] = ((d == own).sum(1) - 1).cpu().numpy()
            out[m][2][sl] = own[:, 0].double().cpu().numpy()
    out["euclidean"][2][:] = np.sqrt(np.maximum(out["euclidean"][2], 0))
    return out


def generic_stats(fs, rows: np.ndarray, device: str = "auto", chunk: int | None = None,
                  part: tuple[int, int] | None = None) -> dict:
    """Return ``{metric: (closer, ties, own)}`` for cosine and Euclidean distance of the
    generic feature set ``fs`` restricted to ``rows`` (left i pairs with right i), from one
    distance pass, on the GPU where `resolve_retrieval_device` says so. ``part``: only
    those query rows (see `retrieval.generic_match_stats`), always on the CPU."""
    left, right = np.asarray(fs.left), np.asarray(fs.right)
    rows = np.asarray(rows, dtype=np.int64)
    # the whole set in store order (evaluate on `all`): no index copy of a memory map
    whole = len(rows) == len(left) and bool((rows == np.arange(len(left))).all())
    where = "cpu" if part is not None else resolve_retrieval_device(
        device, len(rows), left.shape[1] if left.ndim == 2 else 0)
    if where == "cuda":
        return torch_generic_stats(left if whole else left[rows],
                                   right if whole else right[rows], "cuda")
    return retrieval.generic_match_stats(left, right, chunk=chunk,
                                         rows=None if whole else rows, part=part)


def has_feature(fs, side: str, rows: np.ndarray) -> np.ndarray:
    """Return a bool per image: whether it has a feature (always for generic; a face for
    face kinds)."""
    if fs.kind == "generic":
        return np.ones(len(rows), dtype=bool)
    offsets = np.asarray(_side(fs, side).offsets)
    rows = np.asarray(rows, dtype=np.int64)
    return (offsets[rows + 1] - offsets[rows]) > 0


def face_counts(fs, side: str, rows: np.ndarray) -> np.ndarray:
    """Return the number of faces per image for a face-kind feature set."""
    offsets = np.asarray(_side(fs, side).offsets)
    rows = np.asarray(rows, dtype=np.int64)
    return offsets[rows + 1] - offsets[rows]


def image_vectors(fs, side: str, row: int) -> np.ndarray:
    """Return the vectors of one image as a 2-D array (one row for generic, one per face)."""
    s = _side(fs, side)
    if fs.kind == "generic":
        return np.asarray(s)[row:row + 1]
    return np.asarray(s.vectors)[s.offsets[row]:s.offsets[row + 1]]


# --------------------------------------------------------------------------- defaults
def _workdir(keys) -> str:
    return getattr(keys, "workdir", "STUDY_DIR")


def missing_set(keys, key: str) -> str:
    """Return why feature set ``key`` cannot be used (not computed, incomplete or out of
    date, as the store's ``keys()`` knows) and the exact command that computes it."""
    state = getattr(keys, "unusable", {}).get(key, "not in the store")
    return f"feature set {key} is {state}: run `{features_command(key, _workdir(keys))}`"


def _none_usable(keys, kind: str, label: str, default: str) -> FeatureAccessError:
    """The error for "no usable set of this kind": it names every set of the kind that is
    present but unusable, else the command for the default set."""
    stale = sorted(k for k in getattr(keys, "unusable", {}) if k.startswith(kind + "/"))
    if stale:
        return FeatureAccessError(f"no usable {label} features in the store: "
                                  + "; ".join(missing_set(keys, k) for k in stale))
    return FeatureAccessError(f"no {label} features in the store: run "
                              f"`{features_command(default, _workdir(keys))}`")


def generic_key(keys: Sequence[str], model: str | None = None) -> str:
    """Return the generic feature-set key to use: `generic/<model>` when a model is named,
    else DenseNet121 if present, else EfficientNet-Lite0, else the first generic set."""
    if model:
        key = model if model.startswith("generic/") else f"generic/{model}"
        if key not in keys:
            raise FeatureAccessError(f"{missing_set(keys, key)} (usable: "
                                     f"{', '.join(keys) or 'none'})")
        return key
    for name in PREFERRED_GENERIC:
        if f"generic/{name}" in keys:
            return f"generic/{name}"
    generic = [k for k in keys if k.startswith("generic/")]
    if not generic:
        raise _none_usable(keys, "generic", "generic", "generic/efficientnet_lite0")
    return generic[0]


def face_key(keys: Sequence[str], detector: str | None = None) -> str:
    """Return the face feature-set key: `face/dlib_<detector>`, by default the CNN
    detector's if present (the notebook's), else HOG's."""
    if detector:
        key = f"face/dlib_{detector}"
        if key not in keys:
            raise FeatureAccessError(missing_set(keys, key))
        return key
    for det in PREFERRED_DETECTORS:
        if f"face/dlib_{det}" in keys:
            return f"face/dlib_{det}"
    raise _none_usable(keys, "face", "face", "face/dlib_hog")


def face_generic_key(keys: Sequence[str], model: str | None = None,
                     detector: str | None = None) -> str:
    """Return the face-generic key `face_generic/<model>_<detector>`; unnamed parts are
    taken from the sets present (preferring DenseNet121 and the CNN detector)."""
    cands = [k for k in keys if k.startswith("face_generic/")]
    if model:
        model = model.split("/", 1)[-1]
        cands = [k for k in cands if k.split("/", 1)[1].rpartition("_")[0] == model]
    if detector:
        cands = [k for k in cands if k.rpartition("_")[2] == detector]
    if not cands:
        want = f"face_generic/{model or 'efficientnet_lite0'}_{detector or 'hog'}"
        if want in getattr(keys, "unusable", {}) or not (model or detector):
            raise _none_usable(keys, "face_generic", "face-generic", want)
        raise FeatureAccessError("no face-generic features in the store"
                                 + (f" for model {model!r}" if model else "")
                                 + (f" and detector {detector!r}" if detector else "")
                                 + f": run `{features_command(want, _workdir(keys))}`")

    def pref(k: str) -> tuple:
        m, _, d = k.split("/", 1)[1].rpartition("_")
        return (PREFERRED_GENERIC.index(m) if m in PREFERRED_GENERIC else 9,
                PREFERRED_DETECTORS.index(d) if d in PREFERRED_DETECTORS else 9, k)
    return sorted(cands, key=pref)[0]


def default_key(kind: str, keys: Sequence[str], generic_model: str | None = None) -> str:
    """Return the store's default feature-set key of feature kind ``kind``: the generic
    model named (else the preferred one), the preferred face detector, and for face crops
    the named generic model's set when there is one, else the preferred one."""
    if kind == "generic":
        return generic_key(keys, generic_model)
    if kind == "face":
        return face_key(keys)
    if kind == "face_generic":
        model = generic_model.split("/")[-1] if generic_model else None
        try:
            return face_generic_key(keys, model)
        except FeatureAccessError:
            return face_generic_key(keys)
    conditions.for_kind(kind)  # raises for a kind that is not in the table
    raise conditions.UnknownKindError(f"no default feature set for kind {kind!r}")

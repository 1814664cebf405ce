"""The feature store `STUDY_DIR/features/<kind>/<name>/` (docs/contracts.md §3).

Reading (`FeatureStore`, `FeatureSet`, `FaceSets`) needs only numpy. Writing goes through
`FeatureCache`, which keeps per-image results keyed by pixel sha256 in `cache/` chunk files
as they are computed (so an interrupted run resumes where it stopped), and
`write_feature_set`, which assembles the arrays in manifest order and writes meta.json
last, with `complete: true`. No torch import here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from experiments import conditions, files

KINDS = conditions.FEATURE_KINDS
SIDES = ("left", "right")
META_NAME = "meta.json"
CACHE_DIR = "cache"


class StoreError(Exception):
    """A feature set is missing, incomplete or out of date; the message names the command
    that computes it."""


class MixedSettingsError(StoreError):
    """A feature set would hold results computed under different recorded settings."""


# ------------------------------------------------------------------------- keys
def feature_key(kind: str, model: str | None = None, detector: str | None = None) -> str:
    """Return the feature-set key: `generic/<model>`, `face/dlib_<detector>` or
    `face_generic/<model>_<detector>`."""
    if kind == "generic":
        return f"generic/{model}"
    if kind == "face":
        return f"face/dlib_{detector}"
    if kind == "face_generic":
        return f"face_generic/{model}_{detector}"
    raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def parse_key(key: str) -> dict:
    """Return {"kind", "name", "model", "detector"} of a key (model/detector None where the
    kind has none); raise StoreError for a malformed key."""
    kind, _, name = str(key).partition("/")
    if kind not in KINDS or not name or "/" in name:
        raise StoreError(f"{key!r} is not a feature-set key (generic/<model>, "
                         "face/dlib_<detector>, face_generic/<model>_<detector>)")
    model = detector = None
    if kind == "generic":
        model = name
    elif kind == "face":
        if not name.startswith("dlib_"):
            raise StoreError(f"{key!r}: face feature sets are named dlib_<detector>")
        detector = name[len("dlib_"):]
    else:
        model, _, detector = name.rpartition("_")
        if not model:
            raise StoreError(f"{key!r}: face_generic feature sets are named <model>_<detector>")
    return {"kind": kind, "name": name, "model": model, "detector": detector}


def features_command(workdir: str | os.PathLike, key: str) -> str:
    """Return the `python -m experiments features ...` command that computes `key`."""
    k = parse_key(key)
    cmd = f"python -m experiments features {workdir} --kind {k['kind']}"
    if k["model"]:
        cmd += f" --model {k['model']}"
    if k["detector"]:
        cmd += f" --detector {k['detector']}"
    return cmd


# ------------------------------------------------------------------------- reading
class StoreKeys(list):
    """The usable feature-set keys of a store (a plain sorted list of str), with the
    study folder and the sets that are present but incomplete or out of date (key ->
    why), so that a message about a missing set can name it and the command to run."""

    def __init__(self, keys=(), workdir: str = "STUDY_DIR", unusable: dict | None = None):
        super().__init__(keys)
        self.workdir = workdir
        self.unusable = dict(unusable or {})


@dataclass
class FaceSets:
    """The faces of one side: `vectors` float32 F x d (all faces, image by image),
    `offsets` int64 N+1 (faces of image i are rows offsets[i]:offsets[i+1]) and `boxes`
    int32 F x 4 (left, top, right, bottom)."""

    vectors: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Return the number of faces of each image (int64, length N)."""
        return np.diff(self.offsets)

    @property
    def has_face(self) -> np.ndarray:
        """Return a bool array, True where the image has at least one face."""
        return self.counts > 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def faces(self, i: int) -> np.ndarray:
        """Return the vectors of the faces of image i (k x d, k may be 0)."""
        return self.vectors[self.offsets[i]:self.offsets[i + 1]]

    def face_boxes(self, i: int) -> np.ndarray:
        """Return the boxes of the faces of image i (k x 4)."""
        return self.boxes[self.offsets[i]:self.offsets[i + 1]]


@dataclass
class FeatureSet:
    """A complete feature set: for generic `left`/`right` are N x d arrays, for face kinds
    FaceSets; rows follow `ids` (the manifest's pair order)."""

    key: str
    kind: str
    name: str
    meta: dict
    ids: list[str]
    left: object
    right: object

    def side(self, name: str):
        """Return `left` or `right` by name."""
        if name not in SIDES:
            raise ValueError(f"side must be 'left' or 'right', not {name!r}")
        return self.left if name == "left" else self.right


def read_meta(folder: str | os.PathLike) -> dict | None:
    """Return the meta.json of a feature-set folder, or None if absent or unreadable."""
    path = Path(folder) / META_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class FeatureStore:
    """The feature sets of one work directory."""

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = Path(workdir)
        self.root = self.workdir / "features"
        self._manifest = None

    def folder(self, key: str) -> Path:
        """Return the folder of feature set `key` (it may not exist)."""
        k = parse_key(key)
        return self.root / k["kind"] / k["name"]

    def _manifest_view(self):
        if self._manifest is None:
            from experiments.manifest import ManifestError, load_manifest

            try:
                m = load_manifest(self.workdir)
                self._manifest = (m.ids, [p.left.sha256 for p in m.pairs],
                                  [p.right.sha256 for p in m.pairs])
            except ManifestError:
                self._manifest = False
        return self._manifest

    def _problem(self, key: str, meta: dict | None) -> str | None:
        """Return why `key` cannot be loaded (None when it can)."""
        if meta is None:
            return "not computed"
        if not meta.get("complete"):
            return "incomplete (its run was interrupted)"
        view = self._manifest_view()
        if view:
            ids, left, right = view
            if (meta.get("ids") != ids or meta.get("left_sha256") != left
                    or meta.get("right_sha256") != right):
                return "out of date (the pair manifest changed since)"
        return None

    def keys(self) -> StoreKeys:
        """Return the keys of the complete, up-to-date feature sets, sorted (a list that
        also says which sets are present but unusable, and why)."""
        found, unusable = [], {}
        if self.root.is_dir():
            for meta_path in self.root.glob(f"*/*/{META_NAME}"):
                key = f"{meta_path.parent.parent.name}/{meta_path.parent.name}"
                try:
                    parse_key(key)
                except StoreError:
                    continue
                problem = self._problem(key, read_meta(meta_path.parent))
                if problem is None:
                    found.append(key)
                else:
                    unusable[key] = problem
        return StoreKeys(sorted(found), workdir=str(self.workdir), unusable=unusable)

    def has(self, key: str) -> bool:
        """Return True if `key` is complete and matches the current manifest."""
        try:
            return self._problem(key, read_meta(self.folder(key))) is None
        except StoreError:
            return False

    def load(self, key: str, mmap: bool = True) -> FeatureSet:
        """Return the FeatureSet `key`; raise StoreError naming the command to run when it
        is missing, incomplete or out of date. With `mmap` (the default) the arrays are
        read-only memory maps: only the rows a computation touches are read, so 100,000
        pairs of nine models do not have to fit in RAM together."""
        folder = self.folder(key)
        meta = read_meta(folder)
        problem = self._problem(key, meta)
        if problem is not None:
            raise StoreError(f"feature set {key} in {self.workdir} is {problem}: run "
                             f"`{features_command(self.workdir, key)}`")
        kind = meta["kind"]
        mode = "r" if mmap else None

        def arr(name: str) -> np.ndarray:
            return np.load(folder / name, allow_pickle=False, mmap_mode=mode)
        try:
            if kind == "generic":
                sides = [arr(f"{s}.npy") for s in SIDES]
            else:
                sides = [FaceSets(arr(f"{s}_vectors.npy"), arr(f"{s}_offsets.npy"),
                                  arr(f"{s}_boxes.npy")) for s in SIDES]
        except (OSError, ValueError) as exc:
            raise StoreError(f"feature set {key} in {self.workdir} is damaged ({exc}): run "
                             f"`{features_command(self.workdir, key)}`") from None
        return FeatureSet(key=key, kind=kind, name=meta["name"], meta=meta,
                          ids=list(meta["ids"]), left=sides[0], right=sides[1])


# ------------------------------------------------------------------------- writing
def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    files.write_with(path, lambda fh: np.save(fh, array, allow_pickle=False))


def write_meta(folder: Path, meta: dict) -> None:
    """Write meta.json atomically."""
    files.make_dirs(folder)
    files.write_json(folder / META_NAME, meta)


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class CacheEntry:
    """One image's results: `vectors` k x d (k = 1 for generic) and, for face kinds, the
    face boxes k x 4."""

    vectors: np.ndarray
    boxes: np.ndarray | None = None
    settings: str | None = None


_CHUNK = re.compile(r"^chunk-(?:(s\d+of\d+)-)?(\d+)\.npz$")


@dataclass
class FeatureCache:
    """Per-image results of one feature set keyed by pixel sha256, persisted under
    `<folder>/cache/` in chunk files (one per `add`), written atomically under names no
    other writer uses (`chunk-<tag>-<n>.npz` for shard `tag`), so shards on several
    machines can fill one cache at once.

    Opening changes nothing on disk: results computed under another configuration (model,
    weights, preprocessing, detector...) are ignored then, and only removed by the first
    `add` (so a run that fails before computing anything, e.g. on a bad weights file,
    leaves the store exactly as it was). The cache keeps an index of the chunk files it
    has read or written, so adding a batch never lists the folder."""

    folder: Path
    config: dict
    tag: str | None = None
    entries: dict = field(default_factory=dict)
    discarded: int = 0

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.dir = self.folder / CACHE_DIR
        self._files: set[str] = set()
        self._next = 1
        try:
            old = json.loads((self.dir / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        self.stale = old != json.loads(files.canonical_json(self.config))
        self._stale_files: list[Path] = []
        if self.stale:
            self._stale_files = self._list()
        else:
            self.refresh()

    def _list(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if _CHUNK.match(p.name))

    def refresh(self) -> int:
        """Read the chunk files written since (by other shards); return how many."""
        if self.stale:
            return 0
        new = [p for p in self._list() if p.name not in self._files]
        for p in new:
            m = _CHUNK.match(p.name)
            if m.group(1) == self.tag:
                self._next = max(self._next, int(m.group(2)) + 1)
            self._files.add(p.name)
            self._read_chunk(p)
        return len(new)

    def _reset(self) -> None:
        """Drop the results of another configuration (only the files seen at open: a
        shard that started at the same time keeps its own) and record this one."""
        files.make_dirs(self.dir)
        for p in self._stale_files:
            self.discarded += 1
            p.unlink(missing_ok=True)
        self._stale_files = []
        files.write_json(self.dir / "config.json", self.config)
        self.stale = False

    def _read_chunk(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                shas, counts, vectors = z["sha256"], z["counts"], z["vectors"]
                boxes = z["boxes"] if "boxes" in z.files else None
                recorded = z["settings"] if "settings" in z.files else None
        except (OSError, ValueError, KeyError):
            return  # a damaged chunk only costs recomputing its images
        offsets = np.concatenate([[0], np.cumsum(counts)])
        for i, sha in enumerate(shas):
            a, b = offsets[i], offsets[i + 1]
            self.entries[str(sha)] = CacheEntry(vectors[a:b],
                                                boxes[a:b] if boxes is not None else None,
                                                (str(recorded[i]) or None)
                                                if recorded is not None else None)

    def __contains__(self, sha: str) -> bool:
        return sha in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, sha: str) -> CacheEntry:
        """Return the cached entry of an image."""
        return self.entries[sha]

    def add(self, shas: list[str], vectors: list[np.ndarray],
            boxes: list[np.ndarray] | None = None, settings: dict | None = None) -> None:
        """Store the results of some images (vectors[i] is k_i x d, boxes[i] k_i x 4),
        computed under ``settings`` (recorded with each), and persist them as one new
        chunk file before returning."""
        if not shas:
            return
        if self.stale:
            self._reset()
        recorded = json.dumps(settings, sort_keys=True, separators=(",", ":")) if settings else None
        entries = [CacheEntry(np.atleast_2d(np.asarray(v, dtype=np.float32)),
                              None if boxes is None else np.asarray(boxes[i], dtype=np.int32).reshape(-1, 4),
                              recorded)
                   for i, v in enumerate(vectors)]
        self._write_chunk(self._next_chunk_path(), list(shas), entries)
        for sha, e in zip(shas, entries):
            self.entries[sha] = e

    def _next_chunk_path(self) -> Path:
        name = f"chunk-{self.tag + '-' if self.tag else ''}{self._next:06d}.npz"
        self._next += 1
        self._files.add(name)
        return self.dir / name

    def _write_chunk(self, path: Path, shas: list[str], entries: list[CacheEntry]) -> None:
        dims = {e.vectors.shape[1] for e in entries if e.vectors.shape[0]}
        dim = dims.pop() if dims else 0
        arrays = {
            "sha256": np.asarray(shas, dtype="<U64"),
            "counts": np.asarray([e.vectors.shape[0] for e in entries], dtype=np.int64),
            "vectors": (np.concatenate([e.vectors.reshape(-1, dim) for e in entries])
                        .astype(np.float32) if dim else np.zeros((0, 0), np.float32)),
        }
        if entries and entries[0].boxes is not None:
            arrays["boxes"] = np.concatenate([e.boxes.reshape(-1, 4) for e in entries]).astype(np.int32)
        if any(e.settings for e in entries):
            arrays["settings"] = np.asarray([e.settings or "" for e in entries], dtype=str)
        files.make_dirs(self.dir)
        files.write_with(path, lambda fh: np.savez(fh, **arrays))

    def compact(self, keep: set[str]) -> None:
        """Rewrite the chunks this cache has read or written as one chunk holding only the
        images in `keep` (chunks other shards wrote since are left alone)."""
        if self.stale:
            return
        old = sorted(self._files)
        kept = [s for s in self.entries if s in keep]
        if kept:
            self._write_chunk(self._next_chunk_path(), kept, [self.entries[s] for s in kept])
        for name in old:
            (self.dir / name).unlink(missing_ok=True)
            self._files.discard(name)
        self.entries = {s: self.entries[s] for s in kept}

    def settings_of(self, shas) -> dict[str, tuple[dict | None, int]]:
        """Return, for the images ``shas`` held here, ``{signature (canonical JSON):
        (its full settings, how many images)}``, where a batch size, thread count or
        batching that varied under one signature is the list of its values; results
        recorded without settings have the signature "null"."""
        from experiments.features.compute import signature

        by_raw: dict[str | None, int] = {}
        for sha in shas:
            e = self.entries.get(sha)
            if e is not None:
                by_raw[e.settings] = by_raw.get(e.settings, 0) + 1
        out: dict[str, tuple[dict | None, int]] = {}
        for raw, n in by_raw.items():   # few distinct settings, however many images
            full = json.loads(raw) if raw else None
            sig = json.dumps(signature(full), sort_keys=True)
            first, count = out.get(sig, (full, 0))
            if first is not None and full is not None and first is not full:
                # same signature, other batch size or threads: list every value seen
                first = dict(first)
                for k in ("batch_size", "threads", "deterministic"):
                    seen = first[k] if isinstance(first.get(k), list) else [first.get(k)]
                    if full.get(k) not in seen:
                        seen = sorted(seen + [full.get(k)], key=str)
                    first[k] = seen if len(seen) > 1 else seen[0]
            out[sig] = (first, count + n)
        return out

    def clear(self) -> None:
        """Remove the whole cache folder."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.entries = {}
        self._files = set()


def write_feature_set(folder: str | os.PathLike, meta: dict, sides: dict) -> None:
    """Write a feature set's arrays, then its meta.json with `complete: true`.
    `sides[side]` is the list of CacheEntry of that side's images in manifest order."""
    folder = Path(folder)
    files.make_dirs(folder)
    dim = int(meta["dim"])
    for side in SIDES:
        entries = sides[side]
        if meta["kind"] == "generic":
            arr = (np.stack([e.vectors.reshape(dim) for e in entries]).astype(np.float32)
                   if entries else np.zeros((0, dim), np.float32))
            _atomic_save_npy(folder / f"{side}.npy", arr)
        else:
            counts = [e.vectors.shape[0] for e in entries]
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            vecs = [e.vectors.reshape(-1, dim) for e in entries if e.vectors.shape[0]]
            boxes = [e.boxes.reshape(-1, 4) for e in entries if e.vectors.shape[0]]
            _atomic_save_npy(folder / f"{side}_vectors.npy",
                             np.concatenate(vecs).astype(np.float32) if vecs
                             else np.zeros((0, dim), np.float32))
            _atomic_save_npy(folder / f"{side}_offsets.npy", offsets)
            _atomic_save_npy(folder / f"{side}_boxes.npy",
                             np.concatenate(boxes).astype(np.int32) if boxes
                             else np.zeros((0, 4), np.int32))
    write_meta(folder, dict(meta, complete=True))

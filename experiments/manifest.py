"""The pair manifest `STUDY_DIR/manifest.json` (docs/contracts.md §2).

Written by `python -m experiments ingest`, read by every later stage. No torch here: the
server and the feature store both import this module.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from experiments import files

FORMAT = "tll-manifest"
VERSION = 1
LAYOUTS = ("tll", "combined", "csv")
MANIFEST_NAME = "manifest.json"


class ManifestError(Exception):
    """The manifest is missing or malformed; the message says what to run or fix."""


def file_sha256(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pixel_sha256(image) -> str:
    """Return the hex sha256 of a PIL image's content: `b"RGB%dx%d:" % (w, h)` followed by
    its RGB pixel bytes, so equal pictures hash equal whatever their file format."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    digest = hashlib.sha256(b"RGB%dx%d:" % (w, h))
    digest.update(rgb.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ImageRef:
    """One side of a pair: the study's copy (`path`, relative to STUDY_DIR), its pixel hash,
    size `(w, h)`, the original file (`source`) and, for combined pictures, the crop box."""

    path: str
    sha256: str
    size: tuple[int, int]
    source: str
    box: tuple[int, int, int, int] | None = None

    def abspath(self, workdir: str | os.PathLike) -> Path:
        """Return the absolute path of the study's copy of this image."""
        return Path(workdir).resolve() / self.path

    def to_json(self) -> dict:
        """Return the JSON object of this side as the manifest stores it."""
        return {"path": self.path, "sha256": self.sha256, "size": list(self.size),
                "source": self.source, "box": list(self.box) if self.box is not None else None}

    @classmethod
    def from_json(cls, obj: dict) -> ImageRef:
        """Return the ImageRef read from a manifest side object."""
        box = obj.get("box")
        return cls(path=str(obj["path"]), sha256=str(obj["sha256"]),
                   size=(int(obj["size"][0]), int(obj["size"][1])),
                   source=str(obj.get("source", "")),
                   box=tuple(int(v) for v in box) if box is not None else None)


@dataclass(frozen=True)
class Pair:
    """A pair of the study: its id, the left and right images and the votes (or None)."""

    id: str
    left: ImageRef
    right: ImageRef
    votes: dict | None = None

    def side(self, name: str) -> ImageRef:
        """Return the ImageRef of side `name` ("left" or "right")."""
        if name not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', not {name!r}")
        return self.left if name == "left" else self.right

    def to_json(self) -> dict:
        """Return the JSON object of this pair as the manifest stores it."""
        return {"id": self.id, "left": self.left.to_json(), "right": self.right.to_json(),
                "votes": dict(self.votes) if self.votes is not None else None}

    @classmethod
    def from_json(cls, obj: dict) -> Pair:
        """Return the Pair read from a manifest pair object."""
        votes = obj.get("votes")
        return cls(id=str(obj["id"]), left=ImageRef.from_json(obj["left"]),
                   right=ImageRef.from_json(obj["right"]),
                   votes={k: int(v) for k, v in votes.items()} if votes is not None else None)


@dataclass
class Manifest:
    """The pairs of a study (sorted by id), how they were ingested, and (once loaded or
    saved) `sha256`, the hash of the manifest file's bytes."""

    layout: str
    source: str
    pairs: list[Pair] = field(default_factory=list)
    sha256: str = ""

    def __post_init__(self) -> None:
        self.pairs = sorted(self.pairs, key=lambda p: p.id)

    @property
    def ids(self) -> list[str]:
        """Return the pair ids in manifest order."""
        return [p.id for p in self.pairs]

    def by_id(self) -> dict[str, Pair]:
        """Return a dict from pair id to Pair."""
        return {p.id: p for p in self.pairs}

    def __len__(self) -> int:
        return len(self.pairs)

    def to_json(self) -> dict:
        """Return the manifest as the JSON object stored in manifest.json."""
        return {"format": FORMAT, "version": VERSION, "layout": self.layout,
                "source": self.source, "pairs": [p.to_json() for p in self.pairs]}

    def to_bytes(self) -> bytes:
        """Return the canonical file bytes (sorted keys, indent 2, trailing newline)."""
        return files.canonical_json(self.to_json())


def manifest_path(workdir: str | os.PathLike) -> Path:
    """Return the path of the manifest file of a work directory."""
    return Path(workdir) / MANIFEST_NAME


def _parse(data: bytes, where: Path) -> Manifest:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc}); re-run "
                            "`python -m experiments ingest SOURCE --workdir STUDY_DIR`") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ManifestError(f"{where}: not a pair manifest (format must be {FORMAT!r})")
    if obj.get("version") != VERSION:
        raise ManifestError(f"{where}: manifest version {obj.get('version')!r} is not "
                            f"supported (expected {VERSION})")
    try:
        pairs = [Pair.from_json(p) for p in obj["pairs"]]
        ids = [p.id for p in pairs]
        if len(set(ids)) != len(ids):
            raise ManifestError(f"{where}: duplicate pair ids")
        return Manifest(layout=str(obj["layout"]), source=str(obj.get("source", "")),
                        pairs=pairs, sha256=hashlib.sha256(data).hexdigest())
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ManifestError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None


def load_manifest(workdir: str | os.PathLike) -> Manifest:
    """Return the Manifest of a work directory; raise ManifestError if it is missing or
    malformed."""
    path = manifest_path(workdir)
    if not path.is_file():
        raise ManifestError(f"no pair manifest at {path}: run "
                            f"`python -m experiments ingest SOURCE --workdir {workdir}` first")
    return _parse(path.read_bytes(), path)


def save_manifest(workdir: str | os.PathLike, manifest: Manifest) -> Path:
    """Write the manifest atomically (temp file in the same folder, then rename); set
    `manifest.sha256` to the hash of the bytes written and return the file's path."""
    workdir = Path(workdir)
    files.make_dirs(workdir)
    data = manifest.to_bytes()
    files.write_bytes(manifest_path(workdir), data, fsync=True)
    manifest.sha256 = hashlib.sha256(data).hexdigest()
    return manifest_path(workdir)

"""The experiment file (docs/contracts.md §5): the contract between the machine side and
the server. Written canonically (sorted keys, indent 2, trailing newline, no clock
time), so the same inputs and seed give the same bytes.

Schema (``schema_version`` 1)::

    format          "tll-experiment"
    schema_version  1
    seed            the seed every random draw was derived from
    image_root      the study folder, relative to the experiment file's folder
    manifest_sha256 sha256 of the manifest file the trials were built from
    design          {name, conditions: [{condition, subset, count}], trials_per_hit,
                     catch_trials, feature_sets: {condition: feature-set key}}
    feature_sets    every feature set of the store (keys of machine_choices)
    images          [{id: "L<pair>"|"R<pair>", path (relative to the study folder),
                      sha256 (of the file bytes), pair, side}] sorted by id
    trials          [{id: "t0001", condition, subset, pair, query, candidates (5 image
                      ids in display order), true_index (0-based), catch,
                      feature_set (the key that chose the distractors, null for random
                      and catch), machine_choices: {key: 0-based position | null}}]
    hits            [{id: "h0001", trials: [trial ids]}] in order; each trial in one HIT
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from experiments import files

FORMAT = "tll-experiment"
SCHEMA_VERSION = 1


class ExperimentFileError(Exception):
    """An experiment file is malformed."""




def image_id(pair: str, side: str) -> str:
    """Return the image id of one side of a pair: ``L<pair>`` or ``R<pair>``."""
    return ("L" if side == "left" else "R") + pair


def relative_root(workdir: str | os.PathLike, out: str | os.PathLike) -> str:
    """Return the study folder relative to the folder of the experiment file (POSIX)."""
    rel = os.path.relpath(Path(workdir).resolve(), Path(out).resolve().parent)
    return Path(rel).as_posix()


def make_document(*, seed: int, image_root: str, manifest_sha256: str, design: dict,
                  feature_sets: list[str], images: list[dict], trials: list[dict],
                  hits: list[dict]) -> dict:
    """Return the experiment document (a dict in the §5 layout)."""
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "seed": int(seed),
            "image_root": image_root, "manifest_sha256": manifest_sha256, "design": design,
            "feature_sets": sorted(feature_sets),
            "images": sorted(images, key=lambda im: im["id"]),
            "trials": trials, "hits": hits}


def to_bytes(doc: dict) -> bytes:
    """Return the canonical bytes of an experiment document."""
    return files.canonical_json(doc)


def write_experiment(path: str | os.PathLike, doc: dict) -> Path:
    """Check and write the document atomically; return the path written."""
    check(doc)
    return files.write_bytes(path, to_bytes(doc))


def read_experiment(path: str | os.PathLike) -> dict:
    """Return the checked experiment document stored at ``path``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExperimentFileError(f"{path}: cannot read experiment file ({exc})") from None
    check(doc)
    return doc


def check(doc: dict) -> None:
    """Raise ExperimentFileError unless ``doc`` keeps the §5 invariants: five distinct
    known candidates per trial, a valid true index, every trial in exactly one HIT."""
    problems = []
    if doc.get("format") != FORMAT or doc.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"not a {FORMAT} document of schema version {SCHEMA_VERSION}")
    images = {im["id"] for im in doc.get("images", [])}
    ids = [t["id"] for t in doc.get("trials", [])]
    for t in doc.get("trials", []):
        c = t["candidates"]
        if len(c) != 5 or len(set(c)) != 5:
            problems.append(f"trial {t['id']}: needs five distinct candidates")
        if not 0 <= t["true_index"] < len(c):
            problems.append(f"trial {t['id']}: true_index out of range")
        unknown = [x for x in c + [t["query"]] if x not in images]
        if unknown:
            problems.append(f"trial {t['id']}: images not listed: {', '.join(unknown)}")
    in_hits = [tid for h in doc.get("hits", []) for tid in h["trials"]]
    if sorted(in_hits) != sorted(ids) or len(set(ids)) != len(ids):
        problems.append("every trial must belong to exactly one HIT")
    if problems:
        raise ExperimentFileError("; ".join(problems))

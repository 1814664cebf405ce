"""Item analysis: one row per trial (its images, how people answered, what each machine
chose), the trials the paper's galleries show, and where the images come from.

Images come from the experiment file (its study folder, contracts §5) or from the
server's database (table ``images``), whichever the analysis reads; a missing image is
None, drawn as a grey box with its id, never an error.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import N_CANDIDATES
from analysis.agreement import trial_distribution
from analysis.errors import AnalysisError
from analysis.gallery import TrialDrawing
from analysis.load import MACHINE_PREFIX, machine_columns


@dataclass
class TrialImages:
    """Which images each trial showed, and how to open them.

    ``trials``: trial id -> {"query": image id, "candidates": [image ids in display
    order]}; ``paths``: image id -> file path (experiment file) or ``blobs``: image id ->
    bytes (database); ``source``: where they came from, for the report. From an
    experiment file, ``document`` is the parsed file and ``root`` its resolved study
    folder, so the report reads the file once (None otherwise)."""

    trials: dict[str, dict] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    source: str = "no image source"
    document: dict | None = None
    root: Path | None = None

    def image(self, key: str | None):
        """Return the image ``key`` as a PIL image, or None when it cannot be read."""
        from PIL import Image, UnidentifiedImageError
        if key is None:
            return None
        try:
            if key in self.blobs:
                return Image.open(io.BytesIO(self.blobs[key])).convert("RGB")
            if key in self.paths:
                with Image.open(self.paths[key]) as im:
                    return im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError):
            return None
        return None


def from_experiment_file(path: str | Path) -> TrialImages:
    """The trials' image ids and paths from an experiment file (docs/contracts.md §5).

    Parameters
    ----------
    path : str or Path
        The experiment file; images are found under its ``image_root`` resolved against
        the file's folder (the study folder).

    Returns
    -------
    TrialImages
        ``trials`` (trial -> query and candidate image ids), ``paths`` (image id -> file),
        ``document`` (the parsed file) and ``root`` (the resolved study folder).

    Raises
    ------
    AnalysisError
        When the file is missing or not an experiment file.

    Examples
    --------
    >>> images = from_experiment_file("build/demo/experiments/demo.json")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"experiment file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != "tll-experiment":
        raise AnalysisError(f"{path}: not an experiment file (expected \"format\": "
                            f"\"tll-experiment\", docs/contracts.md §5)")
    root = (path.parent / str(doc.get("image_root", "."))).resolve()
    paths = {str(im["id"]): root / str(im["path"]) for im in doc.get("images", [])
             if isinstance(im, dict) and "id" in im and "path" in im}
    trials = {str(t["id"]): {"query": str(t.get("query")),
                             "candidates": [str(c) for c in t.get("candidates", [])]}
              for t in doc.get("trials", []) if isinstance(t, dict) and "id" in t}
    return TrialImages(trials=trials, paths=paths, source=f"experiment file {path}",
                       document=doc, root=root)


def from_database(url: str, experiment: str, only: set[str] | None = None) -> TrialImages:
    """The trials' image ids and image bytes from the server's database.

    Parameters
    ----------
    url : str
        Database URL (any form the server accepts).
    experiment : str
        Experiment name.
    only : set of str, optional
        Read image bytes for these trials only (all when None): a gallery needs few.

    Returns
    -------
    TrialImages
        ``trials`` (trial -> query and candidate image ids), ``blobs`` (image id ->
        bytes), ``source``. An unreadable images table gives no blobs and says so in
        ``source``: galleries then draw grey boxes.

    Examples
    --------
    >>> images = from_database("sqlite:////abs/server.sqlite3", "demo", {"t0001"})  # doctest: +SKIP
    >>> images.image(images.trials["t0001"]["query"])  # doctest: +SKIP
    """
    from sqlalchemy import bindparam, text
    from sqlalchemy.exc import SQLAlchemyError

    from analysis.load import _engine, _safe, normalise_database_url

    url = normalise_database_url(url)
    engine = _engine(url)
    out = TrialImages(source=f"database {_safe(url)}")
    try:
        with engine.connect() as conn:
            exp_id = conn.execute(text("SELECT id FROM experiments WHERE name = :n"),
                                  {"n": experiment}).scalar()
            keys = dict(conn.execute(text("SELECT id, key FROM images WHERE experiment_id "
                                          "= :e"), {"e": exp_id}).all())
            rows = conn.execute(text("SELECT key, query_image_id, candidate_image_ids FROM "
                                     "trials WHERE experiment_id = :e"), {"e": exp_id}).all()
            wanted: set[int] = set()
            for key, q, cands in rows:
                ids = json.loads(cands or "[]")
                out.trials[str(key)] = {"query": keys.get(q),
                                        "candidates": [keys.get(c) for c in ids]}
                if only is None or str(key) in only:
                    wanted.update([q, *ids])
            found: dict = {}
            if wanted:
                query = text("SELECT id, data FROM images WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True))
                found = dict(conn.execute(query, {"ids": sorted(wanted)}).all())
            for i, blob in sorted(found.items()):
                if blob is not None and i in keys:
                    out.blobs[keys[i]] = bytes(blob)
    except (SQLAlchemyError, ValueError) as exc:
        # an older schema without images: galleries show grey boxes
        out.source = f"database {_safe(url)} (images unreadable: {str(exc).splitlines()[0]})"
    finally:
        engine.dispose()
    return out


# --------------------------------------------------------------------------- the table
def item_table(df: pd.DataFrame, images: TrialImages | None = None,
               majority: str = "strict") -> pd.DataFrame:
    """Return one row per trial, all populations given pooled.

    Parameters
    ----------
    df : DataFrame
        Answers (catch trials removed), as ``Answers.df``.
    images : TrialImages, optional
        Where the trial's image ids come from; without it those columns are empty.
    majority : {"strict", "half"}
        How ``has_majority`` is counted (see agreement.trial_distribution).

    Returns
    -------
    DataFrame
        trial, pair, query, candidate_1..candidate_5 (image ids), condition, subset,
        true_position, n, count_1..count_5, accuracy (share choosing the true match),
        agreement, human_choice (most chosen position; lowest on ties), tied,
        has_majority, then per feature set ``<key>`` (its 1-based choice, <NA> = none),
        ``<key> = human`` and ``<key> = true`` (booleans, <NA> without a choice).

    Examples
    --------
    >>> item_table(answers.without_catch(), from_experiment_file("demo.json"))  # doctest: +SKIP
    """
    per = trial_distribution(df, majority=majority)
    first = df.drop_duplicates("trial").set_index("trial")
    rows = []
    for _, t in per.iterrows():
        row = {"trial": t["trial"], "pair": first.loc[t["trial"], "pair"],
               "query": None, **{c: None for c in _CANDIDATE_COLUMNS},
               "condition": t["condition"], "subset": t["subset"],
               "true_position": int(t["true_position"]), "n": int(t["n"]),
               **{f"count_{p}": int(t[f"count_{p}"]) for p in range(1, N_CANDIDATES + 1)},
               "accuracy": float(t["share_correct"]), "agreement": float(t["agreement"]),
               "human_choice": int(t["top_position"]), "tied": bool(t["tied"]),
               "has_majority": bool(t["majority"])}
        for col in machine_columns(df):
            key = col[len(MACHINE_PREFIX):]
            v = first.loc[t["trial"], col]
            row[key] = pd.NA if pd.isna(v) else int(v)
            row[f"{key} = human"] = pd.NA if pd.isna(v) else int(v) == row["human_choice"]
            row[f"{key} = true"] = pd.NA if pd.isna(v) else int(v) == row["true_position"]
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in machine_columns(df):
        key = col[len(MACHINE_PREFIX):]
        out[key] = out[key].astype("Int64")
        for suffix in (" = human", " = true"):
            out[key + suffix] = out[key + suffix].astype("boolean")
    return with_images(out, images) if images else out


_CANDIDATE_COLUMNS = [f"candidate_{i}" for i in range(1, N_CANDIDATES + 1)]


def with_images(table: pd.DataFrame, images: TrialImages | None) -> pd.DataFrame:
    """Return a copy of an :func:`item_table` with its ``query`` and
    ``candidate_1..candidate_5`` columns filled from ``images`` (None where a trial or
    an image id is unknown): the table is built once, before the images are read.

    Examples
    --------
    >>> plain = item_table(answers.without_catch())  # doctest: +SKIP
    >>> table = with_images(plain, from_experiment_file("demo.json"))  # doctest: +SKIP
    """
    out = table.copy()
    if out.empty:
        return out
    infos = [(images.trials.get(t) if images else None) or {} for t in out["trial"]]
    cands = [list(info.get("candidates") or []) for info in infos]
    out["query"] = [info.get("query") for info in infos]
    for i, col in enumerate(_CANDIDATE_COLUMNS):
        out[col] = [c[i] if i < len(c) else None for c in cands]
    return out


# --------------------------------------------------------------------------- selections
def easiest_hardest(items: pd.DataFrame, k: int = 2) -> dict[str, pd.DataFrame]:
    """Return {"easiest <condition>": ..., "hardest <condition>": ...}: per condition the
    k trials with the highest and the lowest accuracy (ties: more answers first, then
    trial id)."""
    out = {}
    for cond, g in items.groupby("condition", sort=False):
        out[f"easiest: {cond}"] = g.sort_values(["accuracy", "n", "trial"],
                                                ascending=[False, False, True]).head(k)
        out[f"hardest: {cond}"] = g.sort_values(["accuracy", "n", "trial"],
                                                ascending=[True, False, True]).head(k)
    return out


def agreed_on_distractor(items: pd.DataFrame, k: int = 6) -> pd.DataFrame:
    """Return up to k trials where people agree (a majority) on a candidate that is not
    the true match, strongest agreement first."""
    sel = items[items["has_majority"] & ~items["tied"]
                & (items["human_choice"] != items["true_position"])]
    return sel.sort_values(["agreement", "trial"], ascending=[False, True]).head(k)


def machine_disagrees(items: pd.DataFrame, key: str, k: int = 6) -> pd.DataFrame:
    """Return up to k trials where feature set ``key`` chose another candidate than the
    people's majority (trials with a majority only), strongest agreement first."""
    col = f"{key} = human"
    sel = items[items["has_majority"] & items[col].eq(False).fillna(False).astype(bool)]
    return sel.sort_values(["agreement", "trial"], ascending=[False, True]).head(k)


def agreement_extremes(items: pd.DataFrame, k: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (highest, lowest): the k trials with the highest and the lowest agreement
    (paper Fig. 4; ties: more answers first, then trial id). With fewer than 2k trials
    the lowest are taken from those not already among the highest."""
    hi = items.sort_values(["agreement", "n", "trial"], ascending=[False, False, True]).head(k)
    rest = items[~items["trial"].isin(hi["trial"])]
    lo = rest.sort_values(["agreement", "n", "trial"], ascending=[True, False, True]).head(k)
    return hi, lo


def drawings(sel: pd.DataFrame, images: TrialImages | None,
             machine: str | None = None) -> list[TrialDrawing]:
    """Return one TrialDrawing per row of ``sel`` (an item_table selection): the query,
    the five candidates, the true match marked, the share of people who chose each as
    bars, and ``machine``'s choice highlighted when given."""
    out = []
    images = images or TrialImages()
    for _, r in sel.iterrows():
        counts = np.array([r[f"count_{p}"] for p in range(1, N_CANDIDATES + 1)], float)
        ids = [r.get(f"candidate_{p}") for p in range(1, N_CANDIDATES + 1)]
        labels = [str(i) if i is not None and not pd.isna(i) else f"pos. {p}"
                  for p, i in enumerate(ids, start=1)]
        hl = None
        if machine is not None and machine in r and not pd.isna(r[machine]):
            hl = int(r[machine]) - 1
        query = r.get("query")
        query = None if query is None or pd.isna(query) else str(query)
        out.append(TrialDrawing(
            query=images.image(query), candidates=[images.image(i if isinstance(i, str)
                                                                 else None) for i in ids],
            marked=int(r["true_position"]) - 1, bars=list(counts / max(1.0, counts.sum())),
            labels=labels, query_label=query or "query", highlight=hl,
            title=(f"{r['trial']} · {r['subset']} {r['condition']} · {int(r['n'])} answers, "
                   f"{100 * r['accuracy']:.0f} % right, agreement {100 * r['agreement']:.0f} %"
                   + (f" · orange: {machine}" if hl is not None else ""))))
    return out

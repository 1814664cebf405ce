"""Ingest: image pairs from one of three layouts into a study's work directory.

Layouts (`detect_layout` picks one; `--layout` forces it):
- `tll`: the TLL download, `SOURCE/left/` and `SOURCE/right/` with matching file names;
- `combined`: the website's combined pictures (`SOURCE/Images/` or `SOURCE/` itself), each
  split into its two halves after dropping the caption strip (`CombinedGeometry`);
- `csv`: a CSV file with columns `left,right[,up,down][,id]` of image paths (relative
  paths are relative to the CSV's folder).

Each image is decoded once: the decode checks it, gives its pixel hash and size, and (for
the combined layout) the crops. The study keeps its own copy under `images/left|right`.
Everything is written into a staging folder first, and swapped in only when the ingest
succeeds, so a failed or `--strict` ingest leaves the work directory as it was.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from experiments import files
from experiments.images import needs_conversion, to_rgb
from experiments.manifest import (
    ImageRef,
    Manifest,
    Pair,
    manifest_path,
    pixel_sha256,
    save_manifest,
)

LAYOUTS = ("tll", "combined", "csv")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SIDES = ("left", "right")
# pair ids become file names under images/: keep them to a portable character set
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class IngestError(Exception):
    """Ingest stopped; `problems` lists one line per bad file (may be empty for a
    problem with the whole source)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


@dataclass(frozen=True)
class CombinedGeometry:
    """How to cut a combined picture: drop `drop_columns` on the right, split the rest into
    two halves `crop_width` wide, drop the bottom `caption_rows` rows (TLL: 200, 26, 1)."""

    crop_width: int = 200
    caption_rows: int = 26
    drop_columns: int = 1

    def boxes(self, size: tuple[int, int]) -> tuple[tuple[int, int, int, int], ...]:
        """Return the PIL crop boxes (left half, right half) for a picture of `size`, or
        raise ValueError saying why the picture does not fit the geometry."""
        w, h = size
        want_w = 2 * self.crop_width + self.drop_columns
        if w != want_w or h <= self.caption_rows:
            raise ValueError(
                f"is {w}x{h}; a combined picture must be {want_w} px wide (2 x crop width "
                f"{self.crop_width} + {self.drop_columns} dropped column(s)) and higher than "
                f"the {self.caption_rows} caption rows (see --crop-width, --drop-columns, "
                "--caption-rows)")
        bottom = h - self.caption_rows
        return ((0, 0, self.crop_width, bottom),
                (self.crop_width, 0, 2 * self.crop_width, bottom))


@dataclass
class Candidate:
    """A pair found in the source before its images are checked: id, the file of each side
    (the same combined picture for both sides in that layout), how to name it in messages,
    and the votes given with it."""

    id: str
    left: Path
    right: Path
    left_label: str
    right_label: str
    votes: dict | None = None


@dataclass
class IngestResult:
    """What an ingest did: the manifest written, the number of pairs found, the problems
    (one line each, pairs skipped) and notes (files ignored, votes not joined)."""

    manifest: Manifest
    found: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        """Return the number of pairs in the manifest."""
        return len(self.manifest.pairs)


# --------------------------------------------------------------------------- layouts
def _list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Return (image files, other files) directly inside folder, sorted, hidden skipped."""
    images, others = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        (images if p.suffix.lower() in IMAGE_EXTS else others).append(p)
    return images, others


def detect_layout(source: Path) -> str:
    """Return the layout of `source` (`tll`, `combined` or `csv`); raise IngestError when
    it cannot be told."""
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "csv"
        raise IngestError(f"{source} is a file but not a .csv pair list; give a folder "
                          "(left/ and right/, or combined pictures) or a CSV file")
    if not source.is_dir():
        raise IngestError(f"{source} does not exist")
    if (source / "left").is_dir() and (source / "right").is_dir():
        return "tll"
    for have, lack in (("left", "right"), ("right", "left")):
        if (source / have).is_dir() and not (source / lack).is_dir():
            raise IngestError(f"{source} has a {have}/ folder but no {lack}/ folder: the tll "
                              "layout needs both, with matching file names")
    if (source / "Images").is_dir():
        return "combined"
    images, others = _list_images(source)
    if images:
        return "combined"
    if not others and not any(source.iterdir()):
        raise IngestError(f"{source} is an empty folder: no images to ingest")
    raise IngestError(f"cannot tell the layout of {source}: expected left/ and right/ "
                      "folders (tll), combined pictures (combined) or a CSV file (csv)")


def _by_stem(files: list[Path], label: str, problems: list[str],
             dropped: set[str] | None = None) -> dict[str, Path]:
    """Return {stem: file}; stems used twice are reported, added to `dropped` and left
    out."""
    seen: dict[str, list[Path]] = {}
    for f in files:
        seen.setdefault(f.stem, []).append(f)
    out = {}
    for stem, fs in seen.items():
        if len(fs) > 1:
            names = ", ".join(f"{label}/{f.name}" for f in fs)
            problems.append(f"{names}: duplicate id {stem!r} (several files with one name)")
            if dropped is not None:
                dropped.add(stem)
        else:
            out[stem] = fs[0]
    return out


def _check_id(pid: str, where: str, problems: list[str]) -> bool:
    if ID_RE.match(pid):
        return True
    problems.append(f"{where}: id {pid!r} cannot name a file (use letters, digits, . _ -)")
    return False


def scan_tll(root: Path) -> tuple[list[Candidate], list[str], list[str], int]:
    """Return (candidates, problems, notes, ids found) for the TLL layout: `left/X.jpg` pairs with
    `right/X.*` of the same name."""
    for side in SIDES:
        if not (root / side).is_dir():
            raise IngestError(f"{root} has no {side}/ folder: the tll layout needs "
                              "left/ and right/ with matching file names")
    problems: list[str] = []
    notes: list[str] = []
    files = {}
    duplicated: set[str] = set()
    for side in SIDES:
        images, others = _list_images(root / side)
        if others:
            notes.append(f"ignored {len(others)} file(s) without an image extension in "
                         f"{side}/: " + ", ".join(o.name for o in others[:5])
                         + (" ..." if len(others) > 5 else ""))
        files[side] = _by_stem(images, side, problems, duplicated)
    if not files["left"] and not files["right"] and not duplicated:
        raise IngestError(f"{root}: left/ and right/ hold no images (empty folder)", problems)
    candidates = []
    ids = set(files["left"]) | set(files["right"]) | duplicated
    for pid in sorted(ids - duplicated):
        lf, rf = files["left"].get(pid), files["right"].get(pid)
        if lf is None or rf is None:
            have, other = ("left", "right") if lf is not None else ("right", "left")
            f = lf or rf
            problems.append(f"{have}/{f.name}: no partner ({other}/{pid}.* is missing)")
            continue
        if not _check_id(pid, f"left/{lf.name}", problems):
            continue
        candidates.append(Candidate(pid, lf, rf, f"left/{lf.name}", f"right/{rf.name}"))
    return candidates, problems, notes, len(ids)


def scan_combined(root: Path) -> tuple[list[Candidate], list[str], list[str], int]:
    """Return (candidates, problems, notes, ids found) for the combined layout: each picture in
    `root/Images/` (or `root/`) is one pair whose id is the file name without extension."""
    folder = root / "Images" if (root / "Images").is_dir() else root
    images, others = _list_images(folder)
    label = "Images" if folder != root else "."
    notes = []
    if others:
        notes.append(f"ignored {len(others)} file(s) without an image extension: "
                     + ", ".join(o.name for o in others[:5]) + (" ..." if len(others) > 5 else ""))
    if not images:
        raise IngestError(f"{folder} holds no images (empty folder)")
    problems: list[str] = []
    duplicated: set[str] = set()
    by_stem = _by_stem(images, label, problems, duplicated)
    candidates = []
    for pid, f in sorted(by_stem.items()):
        name = f.name if folder == root else f"Images/{f.name}"
        if _check_id(pid, name, problems):
            candidates.append(Candidate(pid, f, f, name, name))
    return candidates, problems, notes, len(by_stem) + len(duplicated)


def _int_or_none(value: str | None) -> int | None:
    """Return the count in a CSV cell (None when empty); raise ValueError unless it is a
    whole number >= 0 (spreadsheets write 12 as 12.0)."""
    if value is None or value.strip() == "":
        return None
    v = float(value)
    if not math.isfinite(v) or v != int(v) or v < 0:
        raise ValueError(value)
    return int(v)


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(f"cannot read {path}: {exc}") from None
    rows = [{(k or "").strip().lower(): (v if isinstance(v, str) else "") for k, v in r.items()}
            for r in rows]
    return header, rows


def scan_csv(path: Path) -> tuple[list[Candidate], list[str], list[str], int]:
    """Return (candidates, problems, notes, ids found) for a CSV pair list with columns
    `left,right[,up,down][,id]`; pair id = the `id` column or the 1-based row number."""
    header, rows = _read_csv(path)
    missing = [c for c in ("left", "right") if c not in header]
    if missing:
        raise IngestError(f"{path}: missing column(s) {', '.join(missing)}; a pair list "
                          "needs a header row with left,right[,up,down][,id]")
    if not rows:
        raise IngestError(f"{path} lists no pairs (empty file)")
    base = path.parent
    has_id = "id" in header
    problems: list[str] = []
    entries: list[tuple[str, int, dict]] = []
    for n, row in enumerate(rows, start=1):
        pid = (row.get("id") or "").strip() if has_id else f"{n:05d}"
        entries.append((pid, n + 1, row))  # n + 1: line number, the header is line 1
    counts: dict[str, list[int]] = {}
    for pid, line, _ in entries:
        counts.setdefault(pid, []).append(line)
    candidates = []
    for pid, line, row in entries:
        where = f"{path.name} line {line}"
        if not pid:
            problems.append(f"{where}: empty id")
            continue
        if len(counts[pid]) > 1:
            if line == counts[pid][0]:
                problems.append(f"{path.name} lines {', '.join(map(str, counts[pid]))}: "
                                f"duplicate id {pid!r} (all skipped)")
            continue
        if not _check_id(pid, where, problems):
            continue
        sides = {}
        for side in SIDES:
            cell = (row.get(side) or "").strip()
            if not cell:
                problems.append(f"{where}: empty {side} path")
                break
            p = Path(cell)
            sides[side] = (p if p.is_absolute() else base / p, cell)
        if len(sides) < 2:
            continue
        votes = None
        if "up" in header or "down" in header:
            try:
                up, down = _int_or_none(row.get("up")), _int_or_none(row.get("down"))
            except ValueError:
                problems.append(f"{where}: up/down must be counts, got "
                                f"{row.get('up')!r}, {row.get('down')!r}")
                continue
            if up is not None or down is not None:
                votes = {"up": up or 0, "down": down or 0}
        candidates.append(Candidate(pid, sides["left"][0], sides["right"][0],
                                    sides["left"][1], sides["right"][1], votes))
    return candidates, problems, [], len(entries)


def read_votes(path: Path) -> tuple[dict[str, dict], list[str]]:
    """Return ({pair id: {"up", "down"}}, problems) from a votes CSV `id,wins,fails`
    (TLL's columns; `id,up,down` is accepted too)."""
    header, rows = _read_csv(path)
    up_col = "wins" if "wins" in header else "up" if "up" in header else None
    down_col = "fails" if "fails" in header else "down" if "down" in header else None
    if "id" not in header or up_col is None or down_col is None:
        raise IngestError(f"{path}: a votes file needs the columns id,wins,fails")
    votes: dict[str, dict] = {}
    problems: list[str] = []
    lines: dict[str, int] = {}
    for n, row in enumerate(rows, start=2):
        pid = (row.get("id") or "").strip()
        where = f"{path.name} line {n}"
        try:
            up, down = _int_or_none(row.get(up_col)), _int_or_none(row.get(down_col))
            if not pid or up is None or down is None:
                raise ValueError
        except ValueError:
            problems.append(f"{where}: need an id and two counts, got {pid!r}, "
                            f"{row.get(up_col)!r}, {row.get(down_col)!r}")
            continue
        if pid in votes:
            problems.append(f"{where}: duplicate id {pid!r} (first on line {lines[pid]}); "
                            "the first row is used")
            continue
        votes[pid] = {"up": up, "down": down}
        lines[pid] = n
    return votes, problems


def _join_votes(candidates: list[Candidate], votes: dict[str, dict]) -> list[str]:
    """Set each candidate's votes from `votes` (ids match exactly, or as numbers: 18 ~
    00018); return notes on what did not join."""
    by_number = {}
    for pid in votes:
        if pid.isdigit():
            by_number.setdefault(int(pid), pid)
    used = set()
    missing = 0
    for c in candidates:
        key = c.id if c.id in votes else by_number.get(int(c.id)) if c.id.isdigit() else None
        if key is None:
            missing += 1
            continue
        c.votes = dict(votes[key])
        used.add(key)
    notes = []
    if missing:
        notes.append(f"{missing} pair(s) have no row in the votes file (votes: null)")
    unused = sorted(set(votes) - used)
    if unused:
        notes.append(f"{len(unused)} votes row(s) name no pair: " + ", ".join(unused[:5])
                     + (" ..." if len(unused) > 5 else ""))
    return notes


# --------------------------------------------------------------------------- images
def _decode(data: bytes, converted: list | None = None):
    """Return the fully decoded image of file bytes as upright 8-bit RGB (images.to_rgb);
    append to ``converted`` whether that differs from a plain convert("RGB") of the file.
    Raise ValueError with a reason."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("empty file, not an image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode: a truncated file fails here, not later
            if converted is not None:
                converted.append(needs_conversion(im))
            return to_rgb(im)
    except UnidentifiedImageError:
        raise ValueError("not an image (PIL cannot identify it)") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ValueError(f"unreadable or truncated image ({exc})") from None


def _process(c: Candidate, layout: str, staging: Path,
             geometry: CombinedGeometry) -> tuple[Pair | None, list[str]]:
    """Check, hash and copy one pair into staging; return (Pair or None, problems)."""
    problems = []
    refs = {}
    if layout == "combined":
        try:
            combined = _decode(c.left.read_bytes())
            boxes = geometry.boxes(combined.size)
        except (OSError, ValueError) as exc:
            return None, [f"{c.left_label}: {_reason(exc)}"]
        for side, box in zip(SIDES, boxes):
            half = combined.crop(box)
            rel = f"images/{side}/{c.id}.png"
            files.write_with(staging / rel, lambda fh, im=half: im.save(fh, format="PNG"))
            refs[side] = ImageRef(rel, pixel_sha256(half), half.size, os.path.abspath(c.left),
                                  tuple(box))
        return Pair(c.id, refs["left"], refs["right"], c.votes), []
    decoded = {}
    for side, path, label in (("left", c.left, c.left_label), ("right", c.right, c.right_label)):
        try:
            data = path.read_bytes()
            converted: list[bool] = []
            decoded[side] = (path, data, _decode(data, converted), converted[0])
        except FileNotFoundError:
            problems.append(f"{label}: file not found ({path})")
        except (OSError, ValueError) as exc:
            problems.append(f"{label}: {_reason(exc)}")
    if problems:
        return None, problems  # nothing copied: a half-good pair leaves no file behind
    for side, (path, data, img, converted) in decoded.items():
        if converted:
            # 16-bit, transparent or EXIF-rotated: the study keeps the pixels the models
            # and the participants must see, since they only convert("RGB")
            rel = f"images/{side}/{c.id}.png"
            files.write_with(staging / rel, lambda fh, im=img: im.save(fh, format="PNG"))
        else:
            ext = path.suffix.lower() if path.suffix.lower() in IMAGE_EXTS else ".img"
            rel = f"images/{side}/{c.id}{ext}"
            files.write_bytes(staging / rel, data)
        refs[side] = ImageRef(rel, pixel_sha256(img), img.size, os.path.abspath(path), None)
    return Pair(c.id, refs["left"], refs["right"], c.votes), []


def _reason(exc: Exception) -> str:
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image"
    if isinstance(exc, OSError):
        return f"cannot read ({exc.strerror or exc})"
    return str(exc)


# --------------------------------------------------------------------------- ingest
def ingest(source: str | os.PathLike, workdir: str | os.PathLike, layout: str = "auto",
           votes: str | os.PathLike | None = None, strict: bool = False,
           geometry: CombinedGeometry = CombinedGeometry(), progress: bool = True,
           workers: int | None = None) -> IngestResult:
    """Ingest the pairs of `source` into `workdir` (manifest.json + images/); return the
    IngestResult. Bad pairs are skipped and listed; with `strict`, or when no pair is
    left, raise IngestError and leave `workdir` as it was."""
    from tqdm import tqdm

    source = Path(os.path.abspath(source))
    workdir = Path(os.path.abspath(workdir))
    if layout == "auto":
        layout = detect_layout(source)
    elif layout not in LAYOUTS:
        raise IngestError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "csv" and not source.is_file():
        raise IngestError(f"--layout csv needs a CSV file as SOURCE, {source} is not a file")
    if layout != "csv" and not source.is_dir():
        raise IngestError(f"--layout {layout} needs a folder as SOURCE, {source} is not one")
    scan = {"tll": scan_tll, "combined": scan_combined, "csv": scan_csv}[layout]
    candidates, problems, notes, found = scan(source)
    if votes is not None:
        vote_map, vote_problems = read_votes(Path(votes))
        problems += vote_problems
        notes += _join_votes(candidates, vote_map)
    # even with --strict every image is checked, so that one run lists every problem
    created = not workdir.exists()
    files.make_dirs(workdir)
    staging = Path(tempfile.mkdtemp(prefix=".ingest-", dir=workdir))
    try:
        for side in SIDES:
            files.make_dirs(staging / "images" / side)
        pairs: list[Pair] = []
        previous = _previous_pairs(workdir)
        workers = workers or min(8, (os.cpu_count() or 1) + 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda c: _process(c, layout, staging, geometry), candidates)
            for c, (pair, probs) in zip(candidates, tqdm(
                    results, total=len(candidates), desc="ingest", unit="pair",
                    disable=None if progress else True)):
                problems += probs
                if pair is None and not strict and c.id in previous:
                    pair = _keep_previous(previous[c.id], workdir, staging)
                    if pair is not None:
                        notes.append(f"warning: pair {c.id} is bad in the source now; the "
                                     "study keeps its previous copy (images "
                                     f"{pair.left.path}, {pair.right.path}) and its manifest "
                                     "entry")
                if pair is not None:
                    pairs.append(pair)
        if strict and problems:
            raise IngestError(_problem_text(problems, source, layout)
                              + "\n--strict: stopped, nothing written", problems)
        if not pairs:
            raise IngestError(_problem_text(problems, source, layout)
                              + "\nno pair left to ingest, nothing written", problems)
        manifest = Manifest(layout=layout, source=str(source), pairs=pairs)
        _swap_in(workdir, staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return IngestResult(manifest, found, problems, notes)


def _previous_pairs(workdir: Path) -> dict[str, Pair]:
    """Return the pairs of the study's current manifest by id (none for a new study)."""
    from experiments.manifest import ManifestError, load_manifest

    try:
        return {p.id: p for p in load_manifest(workdir).pairs}
    except ManifestError:
        return {}


def _keep_previous(pair: Pair, workdir: Path, staging: Path) -> Pair | None:
    """Copy the study's previous copy of ``pair`` into staging when both its images are
    still there and unchanged (pixel hash); return the pair, or None when it cannot be
    kept."""
    from PIL import Image

    try:
        for ref in (pair.left, pair.right):
            src = ref.abspath(workdir)
            with Image.open(src) as im:
                if pixel_sha256(im) != ref.sha256:
                    return None
            files.write_bytes(staging / ref.path, src.read_bytes())
    except (OSError, ValueError):
        return None
    return pair


def _swap_in(workdir: Path, staging: Path, manifest: Manifest) -> None:
    """Put staging/images in place of workdir/images and write the manifest atomically;
    features/ and everything else in workdir are kept."""
    images = workdir / "images"
    old = staging / "old-images"
    if images.exists():
        os.replace(images, old)
    try:
        os.replace(staging / "images", images)
    except OSError:
        if old.exists():
            os.replace(old, images)
        raise
    save_manifest(workdir, manifest)


def _problem_text(problems: list[str], source: Path, layout: str) -> str:
    head = f"{len(problems)} problem(s) in {source} (layout {layout}):"
    return "\n".join([head] + [f"  - {p}" for p in problems])


def summary(result: IngestResult, workdir: Path) -> str:
    """Return the lines printed after an ingest: problems, notes, kept count, next step."""
    lines = []
    if result.problems:
        lines.append(_problem_text(result.problems, Path(result.manifest.source),
                                   result.manifest.layout))
    lines += [n if n.startswith("warning:") else f"note: {n}" for n in result.notes]
    skipped = result.found - result.kept
    lines.append(f"kept {result.kept} of {result.found} pairs"
                 + (f" ({skipped} skipped, see the problems above)" if skipped > 0 else "")
                 + f"; layout {result.manifest.layout}; manifest {manifest_path(workdir)}")
    return "\n".join(lines)

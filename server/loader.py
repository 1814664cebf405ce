"""Validate an experiment file (docs/contracts.md §5) and load it into the database.

Images are re-encoded at load time (PIL → RGB JPEG, one pixel size for the whole
experiment, no metadata) and stored with an opaque random token, so serving never touches
the study folder and no file name, format or size tells a candidate apart.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from . import practice
from .images import encode_image, reencode
from .models import Experiment, Hit, Image, Participant, Response, Trial, db
from .recruitment import REPEATS
from .texts import LINE_TEXTS, MARKDOWN_TEXTS, check_language, check_texts

SETTING_NAMES = ("consent_text", "trial_order", "repeats", "break_every", "practice",
                 "min_viewport_width", "min_viewport_height", "kiosk", "platform_settings",
                 "texts", "language", "practice_trials", "practice_feedback", "practice_images",
                 "seconds_per_trial")
# The researcher's texts (Markdown), kept as JSON in experiments.texts; consent_text is
# the consent ('' = the default computed for the experiment by server/texts.py).
TEXT_NAMES = LINE_TEXTS + MARKDOWN_TEXTS
# Past any experiment's length (a break never comes) and inside every database's INTEGER.
MAX_BREAK_EVERY = 100_000


class LoadError(Exception):
    """The experiment file cannot be loaded; `problems` lists one message per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of the bytes of the file at `path`."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_experiment_file(path: Path) -> tuple[dict, Path, list[str]]:
    """Return (document, image root, problems) for the experiment file at `path`; the
    problems list is empty when the file follows the schema and every image is present
    with the recorded sha256."""
    problems: list[str] = []
    path = Path(path)
    if not path.is_file():
        return {}, path.parent, [f"{path}: no such file"]
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, path.parent, [f"{path}: not valid JSON ({e})"]
    if not isinstance(doc, dict):
        return {}, path.parent, [f"{path}: top level must be a JSON object"]
    if doc.get("format") != "tll-experiment":
        problems.append(f"format must be 'tll-experiment', found {doc.get('format')!r}")
    if doc.get("schema_version") != 1:
        problems.append(f"schema_version must be 1, found {doc.get('schema_version')!r}")
    root_rel = doc.get("image_root")
    if not isinstance(root_rel, str):
        problems.append("image_root must be a string (the study folder relative to this file)")
        root_rel = "."
    root = (path.parent / root_rel).resolve()
    images = doc.get("images")
    trials = doc.get("trials")
    hits = doc.get("hits", [])
    for name, val in (("images", images), ("trials", trials), ("hits", hits)):
        if not isinstance(val, list):
            problems.append(f"{name} must be a list")
    if problems:
        return doc, root, problems
    if not trials:
        problems.append("trials is empty")
    fs = doc.get("feature_sets", [])
    if not isinstance(fs, list) or not all(isinstance(k, str) for k in fs):
        problems.append("feature_sets must be a list of strings")

    ids: set[str] = set()
    for i, im in enumerate(images):
        iid = _entry_id(im, f"images[{i}]", "image", ids, problems)
        if iid is None:
            continue
        where = f"image {iid}"
        rel, sha = im.get("path"), im.get("sha256")
        if not isinstance(rel, str) or not rel:
            problems.append(f"{where}: path must be a non-empty string")
            continue
        if not isinstance(sha, str) or len(sha) != 64:
            problems.append(f"{where}: sha256 must be 64 hex digits")
            continue
        f = (root / rel).resolve()
        if not f.is_file():
            problems.append(f"{where}: file {f} is missing")
        elif file_sha256(f) != sha.lower():
            problems.append(f"{where}: file {f} does not match the recorded sha256")

    keys: set[str] = set()
    for i, t in enumerate(trials):
        tid = _entry_id(t, f"trials[{i}]", "trial", keys, problems)
        if tid is None:
            continue
        where = f"trial {tid}"
        if not isinstance(t.get("condition"), str) or not t.get("condition"):
            problems.append(f"{where}: condition must be a non-empty string")
        if t.get("query") not in ids:
            problems.append(f"{where}: query {t.get('query')!r} is not among the images")
        c = t.get("candidates")
        if not isinstance(c, list) or len(c) != 5:
            problems.append(f"{where}: candidates must be a list of five image ids")
        else:
            for cid in c:
                if cid not in ids:
                    problems.append(f"{where}: candidate {cid!r} is not among the images")
            if len(set(map(str, c))) != 5:
                problems.append(f"{where}: candidates must be five different images")
        ti = t.get("true_index")
        if isinstance(ti, bool) or not isinstance(ti, int) or not 0 <= ti <= 4:
            problems.append(f"{where}: true_index must be an integer 0..4")
        mc = t.get("machine_choices", {})
        if not isinstance(mc, dict) or any(
                v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 4)
                for v in mc.values()):
            problems.append(f"{where}: machine_choices must map keys to 0..4 or null")
        if "catch" in t and not isinstance(t["catch"], bool):
            problems.append(f"{where}: catch must be true or false")

    in_hits: dict[str, str] = {}
    for i, h in enumerate(hits):
        if not isinstance(h, dict) or not isinstance(h.get("id"), str) \
                or not isinstance(h.get("trials"), list):
            problems.append(f"hits[{i}] must be an object with id and a list of trials")
            continue
        for tk in h["trials"]:
            if tk not in keys:
                problems.append(f"hit {h['id']}: trial {tk!r} is not among the trials")
            elif tk in in_hits:
                problems.append(f"hit {h['id']}: trial {tk} is already in hit {in_hits[tk]}")
            else:
                in_hits[tk] = h["id"]
    return doc, root, problems


def _entry_id(entry, where: str, kind: str, seen: set[str], problems: list[str]) -> str | None:
    """Return the id of one `images`/`trials` entry, adding it to `seen`; None (with the
    problem noted) when the entry is not an object or its id is not a non-empty string.
    A duplicate id is noted but still returned, so the entry's other fields are checked."""
    if not isinstance(entry, dict):
        problems.append(f"{where} must be an object")
        return None
    eid = entry.get("id")
    if not isinstance(eid, str) or not eid:
        problems.append(f"{where}: id must be a non-empty string")
        return None
    if eid in seen:
        problems.append(f"{kind} {eid}: duplicate id")
    seen.add(eid)
    return eid


def _image_size(paths: list[Path]) -> tuple[int, int]:
    from PIL import Image as PILImage

    sizes = Counter()
    for p in paths:
        with PILImage.open(p) as im:
            sizes[im.size] += 1
    return sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def validate_settings(settings: dict) -> list[str]:
    """Return one message per invalid experiment setting."""
    problems = []
    if "allow_repeats" in settings:  # the setting before `repeats`: True = allow
        settings["repeats"] = "allow" if settings.pop("allow_repeats") else "none"
    if "repeats" in settings and settings["repeats"] not in REPEATS:
        problems.append(f"repeats must be one of {', '.join(REPEATS)}")
    for k in ("min_viewport_width", "min_viewport_height"):
        v = settings.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 200 <= v <= 10000):
            problems.append(f"{k.replace('_', ' ')} must be a number of CSS pixels 200..10000")
    if "trial_order" in settings and settings["trial_order"] not in ("random", "fixed"):
        problems.append("trial order must be 'random' or 'fixed'")
    if "break_every" in settings and (not isinstance(settings["break_every"], int)
                                      or isinstance(settings["break_every"], bool)
                                      or not 0 <= settings["break_every"] <= MAX_BREAK_EVERY):
        problems.append(f"break every must be an integer 0..{MAX_BREAK_EVERY} (0 = no breaks)")
    if "platform_settings" in settings:
        problems += validate_platform_settings(settings["platform_settings"])
    if "texts" in settings:
        t = settings["texts"]
        if not isinstance(t, dict) or not all(isinstance(v, str) for v in t.values()):
            problems.append("texts must be a mapping of text name to Markdown text")
        else:
            problems += [f"unknown text {k!r} (one of {', '.join(TEXT_NAMES)})"
                         for k in t if k not in TEXT_NAMES]
            problems += check_texts({k: v for k, v in t.items() if k in TEXT_NAMES})
    if "consent_text" in settings:
        problems += check_texts({}, consent=settings["consent_text"])
    if "language" in settings:
        problems += check_language(settings["language"])
    if "practice_trials" in settings and (not isinstance(settings["practice_trials"], int)
                                          or not 0 <= settings["practice_trials"] <= 10):
        problems.append("practice trials must be a number 0..10")
    if "practice_feedback" in settings and not isinstance(settings["practice_feedback"], bool):
        problems.append("practice feedback must be yes or no")
    if "practice_images" in settings:
        problems += practice.check_sets(settings["practice_images"])
    spt = settings.get("seconds_per_trial")
    if spt is not None and (isinstance(spt, bool) or not isinstance(spt, int | float)
                            or not 0 < spt <= 600):
        problems.append("seconds per trial must be a number of seconds in (0, 600]")
    unknown = set(settings) - set(SETTING_NAMES)
    if unknown:
        problems.append(f"unknown settings: {', '.join(sorted(unknown))}")
    return problems


def validate_platform_settings(value) -> list[str]:
    """Return one message per invalid platform setting in `value` ({platform: {...}}):
    each platform must be registered and check its own settings (`check_settings`)."""
    from . import recruitment

    if not isinstance(value, dict):
        return ["platform settings must be a mapping of platform name to settings"]
    problems = []
    for name, conf in value.items():
        try:
            plat = recruitment.platform(name)
        except recruitment.UnknownName as e:
            problems.append(str(e))
            continue
        check = getattr(plat, "check_settings", None)
        if check is None:
            problems.append(f"platform {name!r} has no settings")
        elif not isinstance(conf, dict):
            problems.append(f"{name} settings must be a mapping")
        else:
            problems += check(conf)
    return problems


def apply_settings(exp: Experiment, settings: dict) -> None:
    """Set validated `settings` on `exp` (the caller commits). Platform settings are
    merged platform by platform and key by key; a value None removes that key."""
    for k, v in settings.items():
        if k == "platform_settings":
            current = json.loads(exp.platform_settings or "{}")
            for plat, conf in v.items():
                merged = {**current.get(plat, {}), **conf}
                current[plat] = {a: b for a, b in merged.items() if b is not None}
            exp.platform_settings = json.dumps(current, sort_keys=True)
        elif k == "texts":
            merged = {**json.loads(exp.texts or "{}"), **v}
            exp.texts = json.dumps({a: b for a, b in merged.items() if b}, sort_keys=True)
        elif k == "practice_images":
            exp.practice_images = json.dumps(v)
        else:
            setattr(exp, k, v)


def response_count(experiment: Experiment) -> int:
    """Return how many responses the experiment has."""
    return int(db.session.execute(
        select(func.count(Response.id)).join(Participant)
        .where(Participant.experiment_id == experiment.id)).scalar_one())


def load_experiment(path: Path, name: str | None = None, settings: dict | None = None,
                    progress=None) -> tuple[Experiment, str]:
    """Validate and load the experiment file at `path` under `name` (default: the file's
    stem); return (experiment, outcome) with outcome 'created', 'replaced' or 'unchanged'.
    Raises LoadError; an experiment with responses is never overwritten."""
    path = Path(path).resolve()
    name = name or path.stem
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    problems = validate_settings(settings)
    if not name or len(name) > 100 or "/" in name or name != name.strip():
        problems.append(f"experiment name {name!r} must be 1-100 characters without '/'")
    if problems:
        raise LoadError(problems)
    doc, root, problems = read_experiment_file(path)
    if not problems and settings.get("practice_images"):
        problems = practice.check_against_file(settings["practice_images"], doc)
    if problems:
        raise LoadError([f"{path.name}: {p}" for p in problems])
    sha = file_sha256(path)
    existing = db.session.execute(select(Experiment).where(Experiment.name == name)).scalar_one_or_none()
    outcome = "created"
    if existing is not None:
        if existing.file_sha256 == sha:
            if settings.get("practice_images"):
                problems = practice.check_loaded(existing, settings["practice_images"])
                if problems:
                    raise LoadError(problems + [
                        "(the file is unchanged: load it under another --name to add "
                        "practice images to a new copy)"])
            if settings:
                apply_settings(existing, settings)
                db.session.commit()
            return existing, "unchanged"
        n = response_count(existing)
        if n:
            raise LoadError([f"experiment {name!r} already has {n} responses and is never "
                             "overwritten: load the new file under another --name"])
        published = db.session.execute(select(func.count(Hit.id)).where(
            Hit.experiment_id == existing.id, Hit.mturk_hit_id.is_not(None))).scalar_one()
        if published:
            raise LoadError([f"experiment {name!r} has published HITs and is never "
                             "overwritten: load the new file under another --name"])
        kept = {k: getattr(existing, k) for k in SETTING_NAMES}
        for k in ("platform_settings", "texts", "practice_images"):
            kept[k] = json.loads(getattr(existing, k) or "{}")
        # Practice images given with this load were checked against the file above; the
        # kept ones are checked here.
        from_kept = not settings.get("practice_images")
        settings = {**kept, **settings}
        if not settings.get("practice_images") or (
                from_kept and practice.check_against_file(settings["practice_images"], doc)):
            settings["practice_images"] = []  # the new file lacks the kept practice images
        # The new rows are inserted before the old ones are deleted (old name moved aside),
        # so that no row id is ever reused: the servers cache trials' image tokens by id.
        existing.name = f"{name}~replaced~{existing.id}"
        db.session.flush()
        outcome = "replaced"

    images = doc["images"]
    used = {t["query"] for t in doc["trials"]} | {c for t in doc["trials"] for c in t["candidates"]}
    in_trials = set(used)
    used |= {x for s in settings.get("practice_images") or [] for x in s}
    size = _image_size([(root / im["path"]).resolve() for im in images if im["id"] in in_trials])
    exp = Experiment(name=name, source_path=str(path), file_sha256=sha, seed=doc.get("seed"),
                     design=json.dumps(doc.get("design", {}), sort_keys=True),
                     feature_sets=json.dumps(sorted(doc.get("feature_sets", []))),
                     image_width=size[0], image_height=size[1],
                     consent_text="", trial_order="random", repeats="none",
                     break_every=0, practice=True)
    apply_settings(exp, settings)
    db.session.add(exp)
    db.session.flush()

    by_key: dict[str, Image] = {}
    todo = [im for im in images if im["id"] in used]
    it = progress(todo) if progress else todo
    for im in it:
        src = (root / im["path"]).resolve()
        data = encode_image(src, size)
        row = Image(experiment_id=exp.id, key=im["id"], token=secrets.token_urlsafe(24),
                    pair=str(im.get("pair", "")), side=str(im.get("side", "")),
                    source_path=str(src), sha256=im["sha256"].lower(), mime="image/jpeg",
                    width=size[0], height=size[1], data=data)
        db.session.add(row)
        by_key[im["id"]] = row
    db.session.flush()

    hit_of = {tk: h["id"] for h in doc.get("hits", []) for tk in h["trials"]}
    for pos, t in enumerate(doc["trials"]):
        query = by_key[t["query"]]
        if t["query"] in t["candidates"]:
            # A catch trial shows the query again among the candidates: the query's copy
            # gets its own token and bytes (encoded alike: same quality and subsampling).
            alias = Image(experiment_id=exp.id, key=f"{t['query']}@{t['id']}",
                          token=secrets.token_urlsafe(24), pair=query.pair, side=query.side,
                          source_path=query.source_path, sha256=query.sha256,
                          mime="image/jpeg", width=size[0], height=size[1],
                          data=reencode(query.data))
            db.session.add(alias)
            db.session.flush()
            query = alias
        db.session.add(Trial(
            experiment_id=exp.id, key=t["id"], position=pos, condition=t["condition"],
            subset=str(t.get("subset", "")), pair=str(t.get("pair", "")),
            catch=bool(t.get("catch", False)), true_index=t["true_index"],
            machine_choices=json.dumps(t.get("machine_choices", {}), sort_keys=True),
            hit_key=hit_of.get(t["id"], ""), query_image_id=query.id,
            candidate_image_ids=json.dumps([by_key[c].id for c in t["candidates"]])))
    db.session.flush()
    if existing is not None:
        db.session.delete(existing)
    db.session.commit()
    return exp, outcome

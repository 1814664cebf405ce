"""The practice trials shown with the instructions: they teach the real task, a
*look-alike* choice among five different pictures, from images the researcher names
(experiments.practice_images: sets of [query, look-alike, four distractors] from the
experiment file, never from its trials) or from the built-in set in static/practice/
(drawn by scripts/make_practice_images.py: a cartoon face and a wall socket that looks
like it). When the experiment has catch trials and more than one practice trial, the last
practice trial is a catch trial (the very same picture among the candidates), so that
practice and feedback agree with what the catch trials ask."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass

from flask import url_for
from flask_babel import gettext
from sqlalchemy import select

from .models import Experiment, Image, Trial, db
from .texts import attention_checks_sentence, trial_counts

# [query, look-alike, four distractors], file names in static/practice/.
BUILTIN_SET = ("p1.png", "p2.png", "p3.png", "p4.png", "p5.png", "p6.png")
SET_SIZE = 6


@dataclass(frozen=True)
class PracticeTrial:
    """One practice trial: image URLs and the 0-based position of the right answer."""
    k: int
    kind: str  # "look-alike" or "catch"
    query: str
    candidates: list[str]
    true_index: int


def count(exp: Experiment) -> int:
    """Return how many practice trials the experiment shows (0 when practice is off)."""
    return int(exp.practice_trials or 0) if exp.practice else 0


def named_sets(exp: Experiment) -> list[list[str]]:
    """Return the researcher's practice sets (lists of six image ids)."""
    return json.loads(exp.practice_images or "[]")


def check_sets(sets) -> list[str]:
    """Return one message per malformed practice set (each a list of six different image
    ids: the query, its look-alike, then four distractors)."""
    if not isinstance(sets, list):
        return ["practice images must be a list of sets of six image ids"]
    problems = []
    for i, s in enumerate(sets, start=1):
        if (not isinstance(s, list) or len(s) != SET_SIZE
                or not all(isinstance(x, str) and x for x in s) or len(set(s)) != SET_SIZE):
            problems.append(f"practice set {i} must be six different image ids: the query, "
                            "its look-alike, then four distractors")
    return problems


def _shown_in_trials(key: str) -> str:
    """The message for practice image `key` that a trial of the experiment shows."""
    return (f"practice image {key!r} is shown in the experiment's trials: practice images "
            "must not be")


def check_against_file(sets: list[list[str]], doc: dict) -> list[str]:
    """Return one message per practice image that the experiment file lacks or that one
    of its trials shows (practice must not show the answer to a real trial)."""
    ids = {im.get("id") for im in doc.get("images", []) if isinstance(im, dict)}
    in_trials = {t["query"] for t in doc["trials"]} | {
        c for t in doc["trials"] for c in t["candidates"]}
    problems = []
    for key in dict.fromkeys(x for s in sets for x in s):
        if key not in ids:
            problems.append(f"practice image {key!r} is not among the experiment file's images")
        elif key in in_trials:
            problems.append(_shown_in_trials(key))
    return problems


def check_loaded(exp: Experiment, sets: list[list[str]]) -> list[str]:
    """Return one message per practice image not loaded with the experiment as a practice
    image (a trial's image is refused: practice must not show a real trial's answer)."""
    keys = {x for s in sets for x in s}
    have = dict(db.session.execute(select(Image.key, Image.id).where(
        Image.experiment_id == exp.id, Image.key.in_(keys))).all())
    shown = set()
    for query, cands in db.session.execute(select(Trial.query_image_id,
                                                  Trial.candidate_image_ids).where(
            Trial.experiment_id == exp.id)).all():
        shown |= {query, *json.loads(cands)}
    problems = []
    for k in sorted(keys):
        if k in have and have[k] in shown:
            problems.append(_shown_in_trials(k))
        elif k not in have:
            problems.append(f"practice image {k!r} was not loaded with experiment "
                            f"{exp.name!r}: name it with --practice-set when loading the "
                            "experiment file (load-experiment)")
    return problems


def _sets(exp: Experiment) -> list[list[str]]:
    """Return the practice sets as image URLs (the built-in set when the experiment names
    none, or none of its sets was loaded)."""
    sets = named_sets(exp)
    if sets:
        keys = {x for s in sets for x in s}
        tokens = dict(db.session.execute(select(Image.key, Image.token).where(
            Image.experiment_id == exp.id, Image.key.in_(keys))).all())
        urls = [[url_for("images.image", token=tokens[x]) for x in s] for s in sets
                if all(x in tokens for x in s)]
        if urls:
            return urls
    return [[url_for("static", filename=f"practice/{f}") for f in BUILTIN_SET]]


def kind_of(exp: Experiment, k: int) -> str:
    """Return the kind of practice trial `k` (0-based): the last of two or more is a
    catch trial when the experiment has catch trials; all others are look-alike."""
    n = count(exp)
    if n >= 2 and k == n - 1 and trial_counts(exp)[1]:
        return "catch"
    return "look-alike"


def trial(exp: Experiment, k: int) -> PracticeTrial:
    """Return practice trial `k` (0-based) of the experiment, in a candidate order fixed
    per experiment and trial (so the page and its answer agree)."""
    sets = _sets(exp)
    query, match, *distractors = sets[k % len(sets)]
    kind = kind_of(exp, k)
    right = query if kind == "catch" else match
    cands = [right] + distractors
    order = list(range(SET_SIZE - 1))
    random.Random(f"practice:{exp.id}:{k}").shuffle(order)
    return PracticeTrial(k=k, kind=kind, query=query, candidates=[cands[i] for i in order],
                         true_index=order.index(0))


def feedback(exp: Experiment, t: PracticeTrial, choice: int) -> tuple[bool, str]:
    """Return (right, message) for `choice` in practice trial `t`. A look-alike trial's
    feedback names the look-alike and, when the experiment has catch trials, says that
    some trials show the very same picture (so it never contradicts them); a catch
    trial's says to choose the very same picture."""
    right = choice == t.true_index
    pos = t.true_index + 1
    if t.kind == "catch":
        msg = (gettext("Right: candidate %(pos)d is the very same picture as the top image. "
                       "Some trials are such attention checks; in them, choose that "
                       "picture.", pos=pos) if right else
               gettext("Candidate %(pos)d was the very same picture as the top image. Some "
                       "trials are such attention checks; in them, choose that picture.",
                       pos=pos))
        return right, msg
    msg = (gettext("Right: candidate %(pos)d is the look-alike: it shows something else, "
                   "but it looks most like the top image.", pos=pos)
           if right else
           gettext("Candidate %(pos)d was the look-alike: it shows something else, but it "
                   "looks most like the top image. Look for that kind of likeness.",
                   pos=pos))
    if trial_counts(exp)[1]:
        msg += " " + attention_checks_sentence()
    return right, msg

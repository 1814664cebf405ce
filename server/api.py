"""The JSON API over the recording core (used by the pages' script, the simulated
participant and load tests).

- `POST /api/v1/experiments/<name>/participants` body `{"code"?: str, "consent": true,
  "population"?: str}` → 201 (new) / 200 (resumed) `{"participant": token, "code",
  "total", "answered", "next": url}`.
- `GET /api/v1/participants/<token>` → `{"code", "experiment", "answered", "total",
  "completed"}`.
- `GET /api/v1/participants/<token>/next` → `{"done": false, "trial": {"n", "total",
  "answered", "query": url, "candidates": [5 urls], "next": {...}|null}}` or
  `{"done": true}`.
- `GET /api/v1/participants/<token>/trials/<n>` → `{"trial": {...}}`.
- `POST /api/v1/participants/<token>/answers` body `{"n": int, "choice": 0..4,
  "rt_ms"?: number}` → 201 `{"stored": true, "duplicate": false, "n", "choice", ...}`
  or 200 with `"duplicate": true` and the stored choice when the trial was answered.
Errors: 4xx `{"error": reason, "status": code}`.
"""
from __future__ import annotations

import re

from flask import Blueprint, jsonify, request, url_for

from . import recording as rec
from .models import iso_utc
from .recording import RecordingError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
POPULATION_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def json_body() -> dict:
    """Return the request's JSON object body or raise RecordingError(400/415)."""
    if not request.is_json:
        raise RecordingError(415, "send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise RecordingError(400, "the body must be a JSON object")
    return body


def image_urls(view: dict) -> dict:
    """Return a trial view with its image tokens turned into URLs."""
    prefix = url_for("images.image", token="T")[:-1]  # tokens are URL-safe already

    def url(t):
        return prefix + t
    out = dict(view)
    out["query"] = url(view["query"])
    out["candidates"] = [url(t) for t in view["candidates"]]
    if view.get("next"):
        nx = view["next"]
        out["next"] = {"n": nx["n"], "query": url(nx["query"]),
                       "candidates": [url(t) for t in nx["candidates"]]}
    return out


def answer_payload(resp, created: bool, participant) -> dict:
    """Return the JSON describing a stored answer."""
    answered, total = rec.progress(participant)
    return {"stored": True, "duplicate": not created, "n": resp.trial_order,
            "choice": resp.chosen_index, "rt_ms": resp.rt_ms,
            "received_at": iso_utc(resp.received_at), "answered": answered,
            "total": total, "done": answered >= total}


@bp.post("/experiments/<name>/participants")
def start(name: str):
    exp = rec.get_experiment(name)
    body = json_body()
    population = body.get("population", "lab")
    if not isinstance(population, str) or not POPULATION_RE.match(population) \
            or population == "mturk":
        raise RecordingError(400, "population must be a short label (letters, digits, _.-), "
                                  "not 'mturk'")
    consent = body.get("consent")
    if consent is not True:
        raise RecordingError(400, "consent must be true to take part")
    p, created = rec.start_participant(exp, code=body.get("code"), population=population,
                                       consent=True,
                                       user_agent=request.headers.get("User-Agent", ""))
    rec.give_consent(p)
    answered, total = rec.progress(p)
    return jsonify(participant=p.token, code=p.code, total=total, answered=answered,
                   created=created,
                   next=url_for("api.next_", token=p.token)), 201 if created else 200


@bp.get("/participants/<token>")
def status(token: str):
    p = rec.participant_by_token(token)
    answered, total = rec.progress(p)
    return jsonify(code=p.code, experiment=p.experiment.name, answered=answered, total=total,
                   completed=p.completed_at is not None)


@bp.get("/participants/<token>/next")
def next_(token: str):
    p = rec.participant_ref(token)
    view = rec.next_trial(p)
    if view is None:
        return jsonify(done=True)
    return jsonify(done=False, trial=image_urls(view))


@bp.get("/participants/<token>/trials/<n>")
def trial(token: str, n: str):
    p = rec.participant_ref(token)
    return jsonify(trial=image_urls(rec.trial_view(p, n)))


@bp.post("/participants/<token>/answers")
def answer(token: str):
    p = rec.participant_ref(token)
    body = json_body()
    if "n" not in body or "choice" not in body:
        raise RecordingError(400, "the body needs 'n' (trial position) and 'choice' (0..4)")
    resp, created = rec.record_answer(p, body["n"], body["choice"], body.get("rt_ms"))
    return jsonify(answer_payload(resp, created, p)), 201 if created else 200

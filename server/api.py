"""The JSON API over the recording core (used by the pages' script, the simulated
participant and load tests).

- `POST /api/v1/experiments/<name>/participants` body `{"code"?: str, "consent": true,
  "population"?: str}` → 201 (new) / 200 (resumed) `{"participant": token, "code",
  "total", "answered", "next": url}`. The participant's platform is `api` (`simulated`
  for that population; `lab` where the experiment's api setting `counts_as` says so),
  counted by the analysis only when named. Without TRUST_CODES
  (production) the code is always generated: a body naming one is refused (400).
- `GET /api/v1/participants/<token>` → `{"code", "experiment", "answered", "total",
  "completed", "platform", "status"}`.
- `POST /api/v1/participants/<token>/screen` body `{"viewport": [w, h], "screen": [w, h]}`
  → 204: the page's viewport and screen size in CSS pixels.
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

from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask.globals import _cv_request

from . import recording as rec
from . import recruitment
from .lab import participant_starts
from .models import Experiment, db, iso_utc
from .recording import RecordingError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
POPULATION_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


@bp.before_request
def load_participant() -> None:
    """Load the participant whose token is in the URL into `g.participant` (a light
    record, one indexed read), once per request for every participant route; an unknown
    token is a 404 before the route runs."""
    ctx = _cv_request.get()  # once, not through the proxies: this runs per answer
    if not ctx.app.config.get("PARTICIPANT_API", True) and ctx.request.endpoint != "api.screen":
        # The pages post the screen size here; everything else is the scripts' API.
        raise RecordingError(404, "the participant API is turned off on this server "
                                  "(TLL_PARTICIPANT_API=0)")
    token = (ctx.request.view_args or {}).get("token")
    g.participant = rec.participant_ref(token) if token is not None else None


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
@participant_starts
def start(name: str):
    exp = rec.get_experiment(name)
    body = json_body()
    population = body.get("population", "api")
    if not isinstance(population, str) or not POPULATION_RE.match(population) \
            or population in ("mturk", "lab"):
        raise RecordingError(400, "population must be a short label (letters, digits, _.-), "
                                  "not 'mturk' or 'lab'")
    consent = body.get("consent")
    if consent is not True:
        raise RecordingError(400, "consent must be true to take part")
    trusted = current_app.config.get("TRUST_CODES", True)
    if body.get("code") is not None and not trusted:
        # Production: the API makes no participant under a code someone chose (it could be
        # a real participant's, made ahead of them) and never turns a code into a token.
        raise RecordingError(400, "the API generates participant codes: send no 'code'")
    # Anyone may call this route: its participants are their own platform (`api`), which
    # the analysis counts only when asked to, unless the experiment says they count as
    # `lab` (platform_settings["api"]["counts_as"]); `simulated` ones are the simulations'.
    p, created = rec.start_participant(
        exp, code=body.get("code"), population=population, consent=True,
        platform="simulated" if population == "simulated"
        else recruitment.platform("api").platform_for(exp),
        user_agent=request.headers.get("User-Agent", ""))
    rec.give_consent(p)
    answered, total = rec.progress(p)
    return jsonify(participant=p.token, code=p.code, total=total, answered=answered,
                   created=created,
                   next=url_for("api.next_", token=p.token)), 201 if created else 200


@bp.get("/participants/<token>")
def status(token: str):
    p = g.participant
    answered, total = rec.progress(p)
    exp = db.session.get(Experiment, p.experiment_id)
    return jsonify(code=p.code, experiment=exp.name, answered=answered, total=total,
                   completed=p.completed_at is not None, platform=p.platform,
                   status=p.submission_status)


@bp.post("/participants/<token>/screen")
def screen(token: str):
    """Record the participant's viewport and screen size (CSS px), sent once by the page:
    body {"viewport": [w, h], "screen": [w, h]} → 204."""
    body = json_body()
    sizes = [_size(body.get("viewport"), "viewport"), _size(body.get("screen"), "screen")]
    rec.record_screen(g.participant, *sizes)
    return "", 204


def _size(value, what: str) -> tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100000
                       for v in value)):
        raise RecordingError(400, f"{what} must be [width, height] in CSS pixels")
    return value[0], value[1]


@bp.get("/participants/<token>/next")
def next_(token: str):
    p = g.participant
    view = rec.next_trial(p)
    if view is None:
        return jsonify(done=True)
    return jsonify(done=False, trial=image_urls(view))


@bp.get("/participants/<token>/trials/<n>")
def trial(token: str, n: str):
    p = g.participant
    rec.check_not_ahead(p, rec.check_position(p, n))
    return jsonify(trial=image_urls(rec.trial_view(p, n)))


@bp.post("/participants/<token>/answers")
def answer(token: str):
    reply, created = record(g.participant, json_body())
    return jsonify(reply), 201 if created else 200


def record(p, body: dict) -> tuple[dict, bool]:
    """Check and store the answer in the JSON object `body` for participant `p`; return
    (the reply, created). Raises RecordingError before writing anything when refused.
    The route and server/fastanswer.py both answer through this."""
    if "n" not in body or "choice" not in body:
        raise RecordingError(400, "the body needs 'n' (trial position) and 'choice' (0..4)")
    rec.check_not_ahead(p, rec.check_position(p, body["n"]))
    resp, created = rec.record_answer(p, body["n"], body["choice"], body.get("rt_ms"))
    return answer_payload(resp, created, p), created

"""The participant / trial-sequence / answer-recording core, shared by the lab pages, the
JSON API and the MTurk worker routes (server/mturk/). Call these inside an app context.

API
---
- `get_experiment(name) -> Experiment` (RecordingError 404 when unknown).
- `start_participant(experiment, code=None, population="lab", assignment_id=None,
  worker_id=None, hit_id=None, hit_record=None, trial_keys=None, consent=False,
  user_agent="") -> (Participant, created)`:
  lab codes resume an unfinished participant and refuse a finished one (409) unless the
  experiment allows repeats (then a new attempt); MTurk participants are keyed by
  (assignment_id, worker_id) with population "mturk" and `trial_keys` the HIT's trials.
  The sequence is the experiment's trials (or `trial_keys`), shuffled with a recorded seed
  when the experiment's order is "random".
- `give_consent(participant)`: stamps `consented_at` (answers are refused before).
- `participant_by_token(token) -> Participant` (404 when unknown).
- `progress(participant) -> (answered, total)`.
- `next_trial(participant) -> dict | None`: the first unanswered trial as
  `{"n", "total", "answered", "query", "candidates", "next"}` where `n` is the 1-based
  position in the participant's sequence (the page's only trial identifier), `query` and
  `candidates` are opaque image tokens (candidates in the trial's recorded order) and
  `next` is the following unanswered trial's tokens (for preloading) or None.
- `trial_view(participant, n) -> dict`: the same for position `n`.
- `record_answer(participant, n, choice, rt_ms=None) -> (Response, created)`:
  validates `n` (in the sequence) and `choice` (0..4), commits before returning;
  a repeated answer for the same trial stores nothing and returns the stored Response
  with `created=False`. Raises RecordingError (status, reason) on bad input.
"""
from __future__ import annotations

import json
import math
import random
import secrets
import time

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from .models import Experiment, Image, Participant, Response, Trial, db, utcnow

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_CODE_LEN = 64


class RecordingError(Exception):
    """Bad input to the recording core: `status` is the HTTP status, `reason` the message."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def get_experiment(name: str) -> Experiment:
    """Return the experiment called `name`; RecordingError(404) when there is none."""
    exp = db.session.execute(select(Experiment).where(Experiment.name == name)).scalar_one_or_none()
    if exp is None:
        raise RecordingError(404, f"unknown experiment {name!r}")
    return exp


def new_code(length: int = 8) -> str:
    """Return a random participant code without ambiguous characters (no 0/O, 1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def clean_code(code) -> str:
    """Return the participant code stripped, or raise RecordingError(400)."""
    if not isinstance(code, str):
        raise RecordingError(400, "participant code must be a string")
    code = code.strip()
    if not code:
        raise RecordingError(400, "participant code is empty")
    if len(code) > MAX_CODE_LEN:
        raise RecordingError(400, f"participant code is longer than {MAX_CODE_LEN} characters")
    if any(not (ch.isprintable()) for ch in code):
        raise RecordingError(400, "participant code contains control characters")
    return code


def _sequence(experiment: Experiment, trial_keys: list[str] | None) -> tuple[list[int], int | None]:
    rows = db.session.execute(
        select(Trial.id, Trial.key).where(Trial.experiment_id == experiment.id)
        .order_by(Trial.position)).all()
    if trial_keys is not None:
        by_key = {k: i for i, k in rows}
        missing = [k for k in trial_keys if k not in by_key]
        if missing:
            raise RecordingError(404, f"unknown trial(s) {', '.join(missing)} in experiment "
                                      f"{experiment.name!r}")
        ids = [by_key[k] for k in trial_keys]
    else:
        ids = [i for i, _ in rows]
    if not ids:
        raise RecordingError(409, f"experiment {experiment.name!r} has no trials")
    seed = None
    if experiment.trial_order == "random":
        seed = secrets.randbelow(2**31)
        random.Random(seed).shuffle(ids)
    return ids, seed


def start_participant(experiment: Experiment, code: str | None = None, population: str = "lab",
                      assignment_id: str | None = None, worker_id: str | None = None,
                      hit_id: str | None = None, hit_record=None,
                      trial_keys: list[str] | None = None, consent: bool = False,
                      user_agent: str = "") -> tuple[Participant, bool]:
    """Return (participant, created): resume the existing participant for this code (or
    MTurk assignment+worker), or create one with a fresh trial sequence."""
    mturk = assignment_id is not None or worker_id is not None
    if mturk:
        if not assignment_id or not worker_id:
            raise RecordingError(400, "MTurk participants need both assignment_id and worker_id")
        code = f"mturk:{assignment_id}:{worker_id}"
        existing = db.session.execute(select(Participant).where(
            Participant.experiment_id == experiment.id,
            Participant.assignment_id == assignment_id,
            Participant.worker_id == worker_id)).scalar_one_or_none()
        if existing is not None:
            return existing, False
        attempt = 1
    else:
        code = clean_code(code) if code is not None else new_code()
        latest = db.session.execute(
            select(Participant).where(Participant.experiment_id == experiment.id,
                                      Participant.code == code)
            .order_by(Participant.attempt.desc()).limit(1)).scalar_one_or_none()
        attempt = 1
        if latest is not None:
            if latest.completed_at is None:
                return latest, False
            if not experiment.allow_repeats:
                raise RecordingError(409, f"participant code {code!r} has already taken part "
                                          "in this experiment")
            attempt = latest.attempt + 1
    ids, seed = _sequence(experiment, trial_keys)
    p = Participant(experiment_id=experiment.id, code=code, attempt=attempt,
                    population=population, token=secrets.token_urlsafe(24),
                    assignment_id=assignment_id, worker_id=worker_id, hit_id=hit_id,
                    hit_record_id=getattr(hit_record, "id", hit_record),
                    seed=seed, sequence=json.dumps(ids), user_agent=(user_agent or "")[:300],
                    consented_at=utcnow() if consent else None)
    db.session.add(p)
    try:
        db.session.commit()
    except IntegrityError:
        # Two requests for the same code at once: the other one won; resume it.
        db.session.rollback()
        q = select(Participant).where(Participant.experiment_id == experiment.id,
                                      Participant.code == code, Participant.attempt == attempt)
        other = db.session.execute(q).scalar_one_or_none()
        if other is None:
            raise
        return other, False
    return p, True


def give_consent(participant: Participant) -> None:
    """Record that the participant consented (idempotent)."""
    if participant.consented_at is None:
        participant.consented_at = utcnow()
        db.session.commit()


def participant_by_token(token) -> Participant:
    """Return the participant with this session token; RecordingError(404) otherwise."""
    if not isinstance(token, str) or not token or len(token) > 64:
        raise RecordingError(404, "unknown participant")
    p = db.session.execute(select(Participant).where(Participant.token == token)).scalar_one_or_none()
    if p is None:
        raise RecordingError(404, "unknown participant")
    return p


def _answered_ids(participant: Participant) -> set[int]:
    return set(db.session.execute(select(Response.trial_id).where(
        Response.participant_id == participant.id)).scalars())


def progress(participant: Participant) -> tuple[int, int]:
    """Return (answered, total) for the participant's sequence."""
    n = db.session.execute(select(func.count(Response.id)).where(
        Response.participant_id == participant.id)).scalar_one()
    return int(n), len(participant.trial_ids())


def _tokens(trial_ids: list[int]) -> dict[int, tuple[str, list[str]]]:
    trials = db.session.execute(select(Trial.id, Trial.query_image_id, Trial.candidate_image_ids)
                                .where(Trial.id.in_(trial_ids))).all()
    image_ids: set[int] = set()
    parsed = {}
    for tid, qid, cands in trials:
        c = json.loads(cands)
        parsed[tid] = (qid, c)
        image_ids.add(qid)
        image_ids.update(c)
    tok = dict(db.session.execute(select(Image.id, Image.token)
                                  .where(Image.id.in_(image_ids))).all())
    return {tid: (tok[q], [tok[i] for i in c]) for tid, (q, c) in parsed.items()}


def _view(participant: Participant, n: int, answered: set[int]) -> dict:
    seq = participant.trial_ids()
    following = next((k for k in range(n + 1, len(seq) + 1) if seq[k - 1] not in answered), None)
    wanted = [seq[n - 1]] + ([seq[following - 1]] if following else [])
    toks = _tokens(wanted)
    q, c = toks[seq[n - 1]]
    view = {"n": n, "total": len(seq), "answered": len(answered), "query": q,
            "candidates": c, "next": None}
    if following:
        nq, nc = toks[seq[following - 1]]
        view["next"] = {"n": following, "query": nq, "candidates": nc}
    return view


def next_trial(participant: Participant) -> dict | None:
    """Return the view of the first unanswered trial in the sequence, or None when done."""
    answered = _answered_ids(participant)
    for n, tid in enumerate(participant.trial_ids(), start=1):
        if tid not in answered:
            return _view(participant, n, answered)
    return None


def check_position(participant: Participant, n) -> int:
    """Return `n` as an int if it is a position in the participant's sequence."""
    if isinstance(n, bool):
        raise RecordingError(400, "trial position must be an integer")
    if isinstance(n, str):
        if not n.strip().isdigit():
            raise RecordingError(400, "trial position must be an integer")
        n = int(n)
    if not isinstance(n, int):
        raise RecordingError(400, "trial position must be an integer")
    total = len(participant.trial_ids())
    if not 1 <= n <= total:
        raise RecordingError(404, f"trial {n} is not in this participant's sequence (1..{total})")
    return n


def trial_view(participant: Participant, n) -> dict:
    """Return the view of the trial at 1-based position `n` of the participant's sequence."""
    n = check_position(participant, n)
    return _view(participant, n, _answered_ids(participant))


def _check_choice(choice) -> int:
    if isinstance(choice, bool):
        raise RecordingError(400, "choice must be an integer 0..4")
    if isinstance(choice, str):
        if not choice.strip().isdigit():
            raise RecordingError(400, "choice must be an integer 0..4")
        choice = int(choice)
    if not isinstance(choice, int):
        raise RecordingError(400, "choice must be an integer 0..4")
    if not 0 <= choice <= 4:
        raise RecordingError(400, "choice must be one of the five candidates (0..4)")
    return choice


def _check_rt(rt_ms) -> float | None:
    if rt_ms is None or rt_ms == "":
        return None
    if isinstance(rt_ms, bool):
        raise RecordingError(400, "rt_ms must be a number of milliseconds")
    try:
        rt = float(rt_ms)
    except (TypeError, ValueError):
        raise RecordingError(400, "rt_ms must be a number of milliseconds") from None
    if not math.isfinite(rt) or rt < 0 or rt > 1e8:
        raise RecordingError(400, "rt_ms must be between 0 and 1e8 milliseconds")
    return rt


def _existing(participant_id: int, trial_id: int) -> Response | None:
    return db.session.execute(select(Response).where(
        Response.participant_id == participant_id,
        Response.trial_id == trial_id)).scalar_one_or_none()


def record_answer(participant: Participant, n, choice, rt_ms=None) -> tuple[Response, bool]:
    """Store the answer `choice` (0-based position) to trial position `n` and commit;
    return (response, created). A repeat returns the stored response, created=False."""
    n = check_position(participant, n)
    choice = _check_choice(choice)
    rt = _check_rt(rt_ms)
    if participant.consented_at is None:
        raise RecordingError(403, "consent has not been given")
    trial_id = participant.trial_ids()[n - 1]
    pid = participant.id
    old = _existing(pid, trial_id)
    if old is not None:
        return old, False
    total = len(participant.trial_ids())
    for attempt in range(5):
        resp = Response(participant_id=pid, trial_id=trial_id, trial_order=n,
                        chosen_index=choice, rt_ms=rt, received_at=utcnow())
        db.session.add(resp)
        try:
            db.session.flush()
            count = db.session.execute(select(func.count(Response.id)).where(
                Response.participant_id == pid)).scalar_one()
            if count >= total:
                participant.completed_at = utcnow()
            db.session.commit()
            return resp, True
        except IntegrityError:
            db.session.rollback()
            old = _existing(pid, trial_id)
            if old is None:
                raise
            return old, False
        except OperationalError:
            # SQLite under heavy concurrent writing: wait and try again.
            db.session.rollback()
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise RuntimeError("unreachable")

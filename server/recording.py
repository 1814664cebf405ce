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
- `participant_by_token(token) -> Participant` (404 when unknown);
  `participant_ref(token) -> ParticipantRef`, a light read-only record accepted by the
  functions below (the JSON API uses it: one small query per request).
- `progress(participant) -> (answered, total)`.
- `next_trial(participant) -> dict | None`: the first unanswered trial as
  `{"n", "total", "answered", "query", "candidates", "next"}` where `n` is the 1-based
  position in the participant's sequence (the page's only trial identifier), `query` and
  `candidates` are opaque image tokens (candidates in the trial's recorded order) and
  `next` is the following unanswered trial's tokens (for preloading) or None.
- `trial_view(participant, n) -> dict`: the same for position `n`.
- `check_not_ahead(participant, n)`: 409 for a trial past the next unanswered one.
- `trial_token(participant, n) -> str` / `check_trial_token(participant, n, token)`: the
  value a trial page carries for its participant and trial, and the check that refuses
  (409) an answer from a page of another participant or another trial.
- `record_answer(participant, n, choice, rt_ms=None) -> (Answer, created)`:
  validates `n` (in the sequence) and `choice` (0..4), commits before returning;
  a repeated answer for the same trial stores nothing and returns the stored answer
  with `created=False`. Raises RecordingError (status, reason) on bad input.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
import secrets
import time
import unicodedata

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from . import fastsql, groupcommit, recruitment
from .models import AuditEntry, Experiment, Hit, Image, Participant, Trial, db, utcnow

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


class ExperimentRef:
    """The id and name of an experiment (one light query): what the form answer routes
    need, without loading the ORM object."""

    __slots__ = ("id", "name", "kiosk")

    def __init__(self, id: int, name: str, kiosk):
        self.id, self.name, self.kiosk = id, name, bool(kiosk)


def experiment_ref(name: str) -> ExperimentRef:
    """Return the id and name of the experiment called `name`; RecordingError(404)."""
    row = fastsql.execute("SELECT id, name, kiosk FROM experiments WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise RecordingError(404, f"unknown experiment {name!r}")
    return ExperimentRef(*row)


def new_code(length: int = 8) -> str:
    """Return a random participant code without ambiguous characters (no 0/O, 1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


# What a participant code may be made of, after NFKC normalisation and upper-casing: one
# documented ASCII alphabet, so that full-width, composed/decomposed and compatibility
# forms become one code, and letters of other scripts that look like Latin ones (Cyrillic
# "А", Greek "Β") can never make a second participant that reads the same.
CODE_RE = re.compile(r"[A-Z0-9][A-Z0-9._-]*")
CODE_RULE = "letters A-Z, digits 0-9, and . _ - inside"


def clean_code(code) -> str:
    """Return the participant code in its one stored form: NFKC-normalised, stripped and
    upper-cased (codes are compared case-insensitively: "ab12", "ＡＢ１２" and "AB12" are
    one code), or raise RecordingError(400) unless it is 1..MAX_CODE_LEN characters of
    CODE_RULE."""
    if not isinstance(code, str):
        raise RecordingError(400, "participant code must be a string")
    if len(code) > 4 * MAX_CODE_LEN:  # before normalising: bounded work
        raise RecordingError(400, f"participant code is longer than {MAX_CODE_LEN} characters")
    code = unicodedata.normalize("NFKC", code).strip().upper()
    if not code:
        raise RecordingError(400, "participant code is empty")
    if len(code) > MAX_CODE_LEN:
        raise RecordingError(400, f"participant code is longer than {MAX_CODE_LEN} characters")
    if not (code.isascii() and CODE_RE.fullmatch(code)):
        raise RecordingError(400, f"a participant code is made of {CODE_RULE} (no spaces, "
                                  "accents or letters of other scripts)")
    return code


# A participant-reachable number as text: ASCII digits only ("٣".isdigit(), "²".isdigit()
# and "３".isdigit() are all True, and int() and float() accept the first and last).
_DIGITS = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")


def ascii_int(value, what: str) -> int:
    """Return `value`, a JSON integer or a string of 1..9 ASCII digits, as an int (of any
    size for an integer: the caller checks its range); RecordingError(400) naming `what`
    otherwise (signs, spaces, other scripts' digits, floats and booleans included)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RecordingError(400, f"{what} must be an integer written with the digits 0-9")


def ascii_number(value, what: str, high: float) -> float:
    """Return `value`, a JSON number or a decimal string of ASCII digits (at most six
    after the point), as a float in 0..`high`; RecordingError(400) naming `what`
    otherwise (other scripts' digits, exponents, signs, NaN, infinities, booleans and
    integers too large for a float included)."""
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise RecordingError(400, f"{what} must be a number written with the digits 0-9")
        number = float(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        # Compared as an int: float() of a 309-digit integer overflows.
        number = float(value) if 0 <= value <= high else math.inf
    elif isinstance(value, float):
        number = value
    else:
        raise RecordingError(400, f"{what} must be a number")
    if not (math.isfinite(number) and 0 <= number <= high):
        raise RecordingError(400, f"{what} must be between 0 and {high:g}")
    return number


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


def _identity(experiment_code: str, population: str, mturk: bool, assignment_id, worker_id,
              hit_id, hit_record, environment: str | None,
              platform: str | None = None) -> recruitment.Identity:
    """Return the provenance of a new participant from what the route knows."""
    if mturk:
        if environment is None:
            hit = hit_record if isinstance(hit_record, Hit) else (
                db.session.get(Hit, hit_record) if hit_record is not None else None)
            if hit is None:
                raise ValueError("an MTurk participant needs its HIT record or environment")
            environment = hit.environment
        try:
            return recruitment.platform("mturk").identity(
                workerId=worker_id, assignmentId=assignment_id, hitId=hit_id,
                hit_environment=environment)
        except recruitment.UnknownName as e:
            raise RecordingError(400, str(e)) from None
    name = platform or ("simulated" if population == "simulated" else "lab")
    return recruitment.platform(name).identity(code=experiment_code)


def start_participant(experiment: Experiment, code: str | None = None, population: str = "lab",
                      assignment_id: str | None = None, worker_id: str | None = None,
                      hit_id: str | None = None, hit_record=None,
                      trial_keys: list[str] | None = None, consent: bool = False,
                      user_agent: str = "", environment: str | None = None,
                      identity: recruitment.Identity | None = None,
                      platform: str | None = None) -> tuple[Participant, bool]:
    """Return (participant, created): resume the existing participant for this code (or
    MTurk assignment+worker), or create one with a fresh trial sequence and its provenance
    (platform, environment, external ids; MTurk's environment from `hit_record` unless
    `environment` names it). The experiment's repeat policy is enforced by a unique key
    in the database: a second participant of the same person is refused with 409.
    A participant who came by a platform's link (a panel, Prolific) brings its `identity`
    and is keyed by platform, external participant id and session. A code participant's
    platform is `platform` when given (the JSON API's: `api`), else `simulated` for that
    population and `lab` otherwise."""
    mturk = assignment_id is not None or worker_id is not None
    if identity is not None:
        code = ":".join(x for x in (identity.platform, identity.external_participant_id,
                                    identity.external_session_id) if x)
        population = identity.platform
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
        if identity is None:
            code = clean_code(code) if code is not None else new_code()
        latest = db.session.execute(
            select(Participant).where(Participant.experiment_id == experiment.id,
                                      Participant.code == code)
            .order_by(Participant.attempt.desc()).limit(1)).scalar_one_or_none()
        attempt = 1
        if latest is not None:
            # A link participant (panel, Prolific) who finished and opens the link
            # again gets the completion page (with their code) back, not a refusal.
            if latest.completed_at is None or (identity is not None
                                               and experiment.repeats != "allow"):
                return latest, False
            if experiment.repeats != "allow":
                raise RecordingError(409, f"participant code {code!r} has already taken part "
                                          "in this experiment")
            attempt = latest.attempt + 1
    ident = identity or _identity(code, population, mturk, assignment_id, worker_id, hit_id,
                                  hit_record, environment, platform)
    key = recruitment.repeat_key(experiment.repeats, ident)
    ids, seed = _sequence(experiment, trial_keys)
    p = Participant(experiment_id=experiment.id, code=code, attempt=attempt,
                    population=population, token=secrets.token_urlsafe(24),
                    assignment_id=assignment_id, worker_id=worker_id, hit_id=hit_id,
                    hit_record_id=getattr(hit_record, "id", hit_record),
                    platform=ident.platform, environment=ident.environment,
                    external_participant_id=ident.external_participant_id,
                    external_session_id=ident.external_session_id,
                    external_study_id=ident.external_study_id,
                    submission_status=recruitment.platform(ident.platform).statuses[0],
                    repeat_key=key,
                    seed=seed, sequence=json.dumps(ids), user_agent=(user_agent or "")[:300],
                    consented_at=utcnow() if consent else None)
    db.session.add(p)
    try:
        db.session.commit()
    except IntegrityError:
        # Two requests for the same code at once: the other one won; resume it. Otherwise
        # the repeat key is taken: this person already takes part under the policy.
        db.session.rollback()
        q = select(Participant).where(Participant.experiment_id == experiment.id,
                                      Participant.code == code, Participant.attempt == attempt)
        other = db.session.execute(q).scalar_one_or_none()
        if other is not None:
            return other, False
        if key is not None and db.session.execute(select(Participant.id).where(
                Participant.experiment_id == experiment.id,
                Participant.repeat_key == key)).first() is not None:
            raise RepeatRefused(experiment.repeats) from None
        raise
    return p, True


class RepeatRefused(RecordingError):
    """The experiment's repeat policy refuses another participant of this person."""

    def __init__(self, policy: str):
        what = "this HIT" if policy == "per-hit" else "this study"
        super().__init__(409, f"you have already taken part in {what}, and each person may "
                              "take part only once")
        self.policy = policy


def set_status(participant: Participant, status: str, synced: bool = False) -> None:
    """Set the participant's submission status (one of its platform's, else
    recruitment.UnknownName), stamping `status_synced_at` when it comes from the platform.
    A participant whose session closed (returned, expired) without an answer frees their
    repeat key, so that the person may take the study up again. The caller commits."""
    recruitment.check_status(participant.platform, status)
    participant.submission_status = status
    if synced:
        participant.status_synced_at = utcnow()
    closed = recruitment.platform(participant.platform).closed_statuses
    if status in closed and participant.repeat_key is not None and not _count(participant.id):
        participant.repeat_key = None


def withdraw(participant: Participant, experiment_name: str | None = None,
             detail: str = "") -> bool:
    """Mark the participant withdrawn (their answers leave every export and analysis by
    default) and commit; return False when they had already withdrawn. With
    `experiment_name` (the participant's own request), the withdrawal is logged in
    audit_log in the same commit."""
    if participant.withdrawn_at is not None:
        return False
    participant.withdrawn_at = utcnow()
    if experiment_name is not None:
        db.session.add(AuditEntry(actor="participant", action="withdraw",
                                  experiment=experiment_name, subject=participant.code,
                                  detail=detail))
    db.session.commit()
    return True


def record_screen(participant, viewport: tuple[int, int], screen: tuple[int, int]) -> None:
    """Store the participant's viewport and screen size (CSS px) and commit."""
    db.session.execute(Participant.__table__.update().where(
        Participant.__table__.c.id == participant.id).values(
        viewport_width=viewport[0], viewport_height=viewport[1],
        screen_width=screen[0], screen_height=screen[1]))
    db.session.commit()


def give_consent(participant: Participant) -> None:
    """Record that the participant consented (idempotent)."""
    if participant.consented_at is None:
        participant.consented_at = utcnow()
        db.session.commit()


# The columns of a participant that the answer path needs: the light record's fields
# and its query are both made from this one list.
_REF_FIELDS = ("id", "experiment_id", "token", "code", "population", "sequence",
               "consented_at", "completed_at", "platform", "submission_status",
               "assignment_id", "worker_id", "withdrawn_at")
# ...and the trial ids answered so far, in the same query (one round trip fewer on the
# answer path, which needs both to refuse a trial ahead of the next open one).
_ANSWERED_LIST = {"sqlite": "group_concat(trial_id)",
                  "postgresql": "string_agg(trial_id::text, ',')"}
_REF_SQL = {dialect: f"SELECT {', '.join(_REF_FIELDS)}, (SELECT {agg} FROM responses "
                    "WHERE participant_id = participants.id) FROM participants WHERE token = ?"
            for dialect, agg in _ANSWERED_LIST.items()}


class ParticipantRef:
    """The few columns of a participant that the answer path needs (one light query)."""

    __slots__ = (*_REF_FIELDS, "_ids", "__dict__")

    def __init__(self, row):
        for name, value in zip(_REF_FIELDS, row, strict=False):
            setattr(self, name, value)
        self._ids = None
        # The answered trial ids read with the record: valid until this request writes
        # an answer (record_answer drops them).
        answered = row[len(_REF_FIELDS)]
        self.__dict__["_answered"] = {int(t) for t in answered.split(",")} if answered else set()

    def trial_ids(self) -> list[int]:
        """Return the trial sequence (trials.id) in the order shown."""
        if self._ids is None:
            self._ids = json.loads(self.sequence)
        return self._ids


def _check_token(token) -> None:
    if not isinstance(token, str) or not token or len(token) > 64:
        raise RecordingError(404, "unknown participant")


def participant_by_token(token) -> Participant:
    """Return the participant with this session token; RecordingError(404) otherwise."""
    _check_token(token)
    p = db.session.execute(select(Participant).where(Participant.token == token)).scalar_one_or_none()
    if p is None:
        raise RecordingError(404, "unknown participant")
    return p


def participant_ref(token) -> ParticipantRef:
    """Return a light record (id, sequence, consent...) of the participant with this token,
    usable wherever the functions below take a participant; RecordingError(404) otherwise."""
    _check_token(token)
    row = fastsql.first_row(_REF_SQL[fastsql.dialect().name], (token,))
    if row is None:
        raise RecordingError(404, "unknown participant")
    return ParticipantRef(row)


def _answered_ids(participant) -> set[int]:
    known = participant.__dict__.get("_answered")
    if known is not None:
        return known
    return {r[0] for r in fastsql.execute(
        "SELECT trial_id FROM responses WHERE participant_id = ?", (participant.id,)).fetchall()}


def _count(participant_id: int) -> int:
    return int(fastsql.execute("SELECT count(*) FROM responses WHERE participant_id = ?",
                               (participant_id,)).fetchone()[0])


def progress(participant: Participant) -> tuple[int, int]:
    """Return (answered, total) for the participant's sequence."""
    cached = participant.__dict__.get("_answered_now")
    if cached is not None:  # counted by record_answer in this request
        return cached, len(participant.trial_ids())
    known = participant.__dict__.get("_answered")
    if known is not None:  # read with the light record (one row per answered trial)
        return len(known), len(participant.trial_ids())
    return _count(participant.id), len(participant.trial_ids())


# Trials and images never change once loaded, and row ids are never reused (the loader
# inserts a replacement before deleting), so a trial's tokens can be kept per process.
_TOKEN_CACHE: dict[tuple[str, int], tuple[str, list[str]]] = {}
_TOKEN_CACHE_MAX = 100_000


def _tokens(trial_ids: list[int]) -> dict[int, tuple[str, list[str]]]:
    url = str(db.engine.url)
    out = {t: _TOKEN_CACHE[(url, t)] for t in trial_ids if (url, t) in _TOKEN_CACHE}
    todo = [t for t in trial_ids if t not in out]
    if not todo:
        return out
    trials = db.session.execute(select(Trial.id, Trial.query_image_id, Trial.candidate_image_ids)
                                .where(Trial.id.in_(todo))).all()
    image_ids: set[int] = set()
    parsed = {}
    for tid, qid, cands in trials:
        c = json.loads(cands)
        parsed[tid] = (qid, c)
        image_ids.add(qid)
        image_ids.update(c)
    tok = dict(db.session.execute(select(Image.id, Image.token)
                                  .where(Image.id.in_(image_ids))).all())
    if len(_TOKEN_CACHE) > _TOKEN_CACHE_MAX:
        _TOKEN_CACHE.clear()
    for tid, (q, c) in parsed.items():
        out[tid] = _TOKEN_CACHE[(url, tid)] = (tok[q], [tok[i] for i in c])
    return out


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


def next_open(participant) -> int | None:
    """Return the 1-based position of the first unanswered trial, or None when all are
    answered: the furthest a participant may see or answer."""
    answered = _answered_ids(participant)
    return next((n for n, tid in enumerate(participant.trial_ids(), start=1)
                 if tid not in answered), None)


def next_trial(participant: Participant) -> dict | None:
    """Return the view of the first unanswered trial in the sequence, or None when done."""
    answered = _answered_ids(participant)
    for n, tid in enumerate(participant.trial_ids(), start=1):
        if tid not in answered:
            return _view(participant, n, answered)
    return None


def check_position(participant: Participant, n) -> int:
    """Return `n` as an int if it is a position in the participant's sequence."""
    n = ascii_int(n.strip() if isinstance(n, str) else n, "trial position")
    total = len(participant.trial_ids())
    if not 1 <= n <= total:
        raise RecordingError(404, f"trial {n} is not in this participant's sequence (1..{total})")
    return n


def check_not_ahead(participant, n: int) -> None:
    """Refuse (409) trial position `n` when it lies beyond the participant's next
    unanswered trial (its images are preloaded through the next trial's view; nothing
    further is shown or answered early). Every answer and trial route checks this."""
    nxt = next_open(participant)
    if nxt is not None and n > nxt:
        raise RecordingError(409, f"trial {n} is not open yet: answer trial {nxt} first")


def trial_token(participant, n: int) -> str:
    """Return the token that the page of trial position `n` carries for this participant:
    an answer posted from a page must bring it back, so that a page shown to one
    participant, or for one trial, can never answer for another."""
    return trial_token_for(participant.token, n)


def trial_token_for(session_token: str, n: int) -> str:
    """Return the trial token of position `n` for the participant whose secret session
    token is `session_token`: an HMAC of the position under it (the position names one
    trial of that participant's fixed sequence), 32 hex digits."""
    return hmac.new(session_token.encode(), f"trial:{n}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def check_trial_token(participant, n: int, token) -> None:
    """Refuse (409) an answer to position `n` whose page token (`trial_token`) was not
    issued for this participant and this trial: the page belongs to someone else (a
    shared browser taken over by the next person) or to another trial."""
    if not isinstance(token, str) or not token:
        raise RecordingError(400, "this answer carries no trial token: reload the page "
                                  "and answer again")
    if not hmac.compare_digest(token.encode(), trial_token(participant, n).encode()):
        raise RecordingError(409, "this answer comes from a page that was shown to another "
                                  "participant or for another trial, so it was not "
                                  "recorded: reload the page to continue")


def trial_view(participant: Participant, n) -> dict:
    """Return the view of the trial at 1-based position `n` of the participant's sequence."""
    n = check_position(participant, n)
    return _view(participant, n, _answered_ids(participant))


def _check_choice(choice) -> int:
    choice = ascii_int(choice.strip() if isinstance(choice, str) else choice, "choice")
    if not 0 <= choice <= 4:
        raise RecordingError(400, "choice must be one of the five candidates (0..4)")
    return choice


def _check_rt(rt_ms) -> float | None:
    if rt_ms is None or rt_ms == "":
        return None
    return ascii_number(rt_ms.strip() if isinstance(rt_ms, str) else rt_ms, "rt_ms", 1e8)


def _check_open(platform: str, status: str) -> None:
    """Refuse answers of a participant whose platform session is closed (an MTurk
    assignment returned or expired): they would never count."""
    if status in recruitment.platform(platform).closed_statuses:
        raise RecordingError(409, f"this session is closed (status {status}): answers are no "
                                  "longer recorded; accept the task again to take part")


def _existing(participant_id: int, trial_id: int) -> Answer | None:
    row = fastsql.execute(
        "SELECT id, participant_id, trial_id, trial_order, chosen_index, rt_ms, received_at "
        "FROM responses WHERE participant_id = ? AND trial_id = ?",
        (participant_id, trial_id)).fetchone()
    if row is None:
        return None
    return Answer(*row[:6], fastsql.dt_value(row[6]))


class Answer:
    """A stored answer as `record_answer` returns it: the columns of its `responses` row
    (`trial` loads the Trial on demand). Building an ORM Response and attaching it to the
    session cost about a tenth of the answer path's CPU, for fields the reply copies."""

    __slots__ = ("id", "participant_id", "trial_id", "trial_order", "chosen_index", "rt_ms",
                 "received_at")

    def __init__(self, id, participant_id, trial_id, trial_order, chosen_index, rt_ms,
                 received_at):
        (self.id, self.participant_id, self.trial_id, self.trial_order, self.chosen_index,
         self.rt_ms, self.received_at) = (id, participant_id, trial_id, trial_order,
                                          chosen_index, rt_ms, received_at)

    @property
    def trial(self) -> Trial:
        """Return the answered Trial (one query)."""
        return db.session.get(Trial, self.trial_id)


def _insert(cur, pid: int, trial_id: int, n: int, choice: int, rt, total: int, done_at):
    """Insert one answer, count the participant's answers and stamp the completion when
    this one completes them; return (row id, count, completes, time). Raises the
    driver's IntegrityError for a repeated answer."""
    # Taken once this participant's writes are serialised, so that the completion stamp
    # is the latest answer's time.
    now = utcnow()
    cur.execute(fastsql.sql(
        "INSERT INTO responses (participant_id, trial_id, trial_order, "
        "chosen_index, rt_ms, received_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id"),
        (pid, trial_id, n, choice, rt, fastsql.dt_param(now)))
    new_id = cur.fetchone()[0]
    cur.execute(fastsql.sql("SELECT count(*) FROM responses WHERE participant_id = ?"), (pid,))
    count = int(cur.fetchone()[0])
    completes = count >= total and done_at is None
    if completes:
        cur.execute(fastsql.sql(
            "UPDATE participants SET completed_at = ? WHERE id = ? "
            "AND completed_at IS NULL"), (fastsql.dt_param(now), pid))
    return new_id, count, completes, now


def _write_batch(jobs: list[groupcommit.Job]) -> None:
    """Write a group commit's answers in one SQLite transaction (a repeat gets None) and
    commit; set the results only then."""
    integrity_error, operational_error = fastsql.dbapi_errors()
    for attempt in range(5):
        try:
            with fastsql.write_lock():
                cur = fastsql.cursor()
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    results = []
                    for job in jobs:
                        # A repeat fails on its INSERT, the job's first write: SQLite
                        # undoes that statement alone and the transaction goes on.
                        try:
                            results.append(job.write(cur))
                        except integrity_error:
                            results.append(None)
                    fastsql.commit()
                except BaseException:
                    fastsql.rollback()  # release SQLite's lock before the others
                    raise
            for job, result in zip(jobs, results, strict=True):
                job.result = result
            return
        except operational_error:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def record_answer(participant: Participant, n, choice, rt_ms=None) -> tuple[Answer, bool]:
    """Store the answer `choice` (0-based position) to trial position `n` and commit;
    return (answer, created): an `Answer` (the row's columns and `trial`), stored now
    (created=True) or stored before for a repeat (created=False, the stored choice).
    In the answer routes on SQLite, answers arriving together share one commit (see
    server/groupcommit.py); each is committed before this returns either way."""
    n = check_position(participant, n)
    choice = _check_choice(choice)
    rt = _check_rt(rt_ms)
    if participant.consented_at is None:
        raise RecordingError(403, "consent has not been given")
    if participant.withdrawn_at is not None:
        # Another tab of a participant who withdrew: the answer would never count.
        raise RecordingError(409, "you withdrew from this study: answers are no longer "
                                  "recorded")
    _check_open(participant.platform, participant.submission_status)
    trial_id = participant.trial_ids()[n - 1]
    pid = participant.id
    total = len(participant.trial_ids())
    participant.__dict__.pop("_answered_now", None)
    participant.__dict__.pop("_answered", None)
    integrity_error, operational_error = fastsql.dbapi_errors()
    key = fastsql.group_commit_key()
    if key is not None:
        done_at = participant.completed_at
        job = groupcommit.Job(lambda cur: _insert(cur, pid, trial_id, n, choice, rt, total,
                                                  done_at))
        try:
            result = groupcommit.submit(key, job, _write_batch)
        except operational_error as e:
            raise fastsql.operational(e) from e
        if result is None:
            return _repeat(pid, trial_id)
        new_id, count, completes, now = result
        return _answered(participant, new_id, pid, trial_id, n, choice, rt, count,
                         completes, now)
    conn = None if fastsql.is_sqlite() else fastsql.borrowed_driver()
    if conn is not None:
        return _record_pipelined(conn, participant, pid, trial_id, n, choice, rt, total)
    lock_row = not fastsql.is_sqlite()  # SQLite writers are serialised already
    for attempt in range(5):
        try:
            # One short write transaction: insert, count, completion stamp, commit.
            with fastsql.write_lock():
                cur = fastsql.cursor()
                try:
                    done_at = participant.completed_at
                    if lock_row:
                        # PostgreSQL (READ COMMITTED): without this row lock two last answers
                        # committing at once each count the other's row as missing, and
                        # nobody stamps the completion. With it, a participant's answers
                        # are written one after the other and the count sees them all.
                        cur.execute(fastsql.sql(
                            "SELECT completed_at, submission_status FROM participants "
                            "WHERE id = ? FOR NO KEY UPDATE"), (pid,))
                        done_at, status = cur.fetchone()
                        _check_open(participant.platform, status)
                    new_id, count, completes, now = _insert(cur, pid, trial_id, n, choice, rt,
                                                            total, done_at)
                    fastsql.commit()
                except BaseException:
                    fastsql.rollback()  # release SQLite's lock before the Python one
                    raise
            break
        except (IntegrityError, integrity_error):
            fastsql.rollback()
            return _repeat(pid, trial_id)
        except (OperationalError, operational_error) as e:
            # SQLite under heavy concurrent writing: wait and try again.
            fastsql.rollback()
            if attempt == 4:
                if isinstance(e, operational_error):
                    raise fastsql.operational(e) from e
                raise
            time.sleep(0.05 * (attempt + 1))
    return _answered(participant, new_id, pid, trial_id, n, choice, rt, count, completes, now)


# PostgreSQL's write of one answer, three statements sent as one pipeline (one round
# trip): (1) insert it, taking the participant's row lock, unless the platform session is
# closed; (2) count the participant's answers and stamp the completion when they are all
# in; (3) commit. The row lock makes a participant's answers wait for each other, and (2)
# starts once (1) holds it, so under READ COMMITTED it sees every answer committed before:
# the count and the completion are right whatever the interleaving.
_PG_WRITE = (
    "INSERT INTO responses (participant_id, trial_id, trial_order, chosen_index, rt_ms, "
    "received_at) SELECT id, %s, %s, %s, %s, %s FROM participants "
    "WHERE id = %s AND NOT (submission_status = ANY(%s)) FOR NO KEY UPDATE RETURNING id",
    # The latest answer's time, whichever of two last answers stamps it.
    "WITH c AS (SELECT count(*) AS n, max(received_at) AS last FROM responses "
    "WHERE participant_id = %s), "
    "u AS (UPDATE participants SET completed_at = (SELECT last FROM c) WHERE id = %s "
    "AND completed_at IS NULL AND (SELECT n FROM c) >= %s RETURNING completed_at) "
    "SELECT n, (SELECT count(*) FROM u) FROM c",
    "COMMIT",
)


def _record_pipelined(conn, participant, pid: int, trial_id: int, n: int, choice: int, rt,
                      total: int) -> tuple[Answer, bool]:
    mod = fastsql.dialect().dbapi
    now = utcnow()
    closed = sorted(recruitment.platform(participant.platform).closed_statuses)
    params = ((trial_id, n, choice, rt, now, pid, closed), (pid, pid, total), ())
    curs = [conn.cursor() for _ in _PG_WRITE]
    try:
        with conn.pipeline():
            for cur, statement, args in zip(curs, _PG_WRITE, params, strict=True):
                cur.execute(statement, args)
        inserted, counted = curs[0].fetchone(), curs[1].fetchone()
    except mod.IntegrityError:  # a repeat: nothing of the pipeline is committed
        fastsql.rollback()
        return _repeat(pid, trial_id)
    except mod.OperationalError as e:
        fastsql.rollback()
        raise fastsql.operational(e) from e
    except BaseException:
        fastsql.rollback()
        raise
    if inserted is None:  # gone, or its session closed meanwhile: nothing was written
        row = fastsql.execute("SELECT submission_status FROM participants WHERE id = ?",
                              (pid,)).fetchone()
        fastsql.commit()
        if row is None:
            raise RecordingError(404, "unknown participant")
        _check_open(participant.platform, row[0])
        raise RecordingError(409, "this session is closed: answers are no longer recorded")
    return _answered(participant, inserted[0], pid, trial_id, n, choice, rt, int(counted[0]),
                     counted[1] > 0, now)


def _repeat(pid: int, trial_id: int) -> tuple[Answer, bool]:
    old = _existing(pid, trial_id)
    if old is None:
        raise RecordingError(404, "unknown participant or trial") from None
    return old, False


def _answered(participant, new_id, pid, trial_id, n, choice, rt, count, completes,
              now) -> tuple[Answer, bool]:
    if completes and isinstance(participant, Participant):
        # Already written: keep the instance in step without another flush.
        from sqlalchemy.orm.attributes import set_committed_value
        set_committed_value(participant, "completed_at", now)
    elif completes:
        participant.completed_at = now
    participant.__dict__["_answered_now"] = count
    return Answer(new_id, pid, trial_id, n, choice, rt, now), True

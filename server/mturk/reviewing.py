"""After the workers: pull assignments from MTurk and reconcile them with the database,
show each submitted assignment with its answers and catch-trial results, approve,
reject and pay bonuses. Call inside an app context.

The database never claims an assignment was submitted before MTurk says so: the worker
page records 'finished' (every answer stored); `sync` records what MTurk reports.
"""
from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from ..models import Assignment, Bonus, Hit, Participant, Response, Trial, db, iso_utc
from .fees import bonus_fee, parse_amount
from .requester import MTurkFailure, Requester, as_utc, request_token

LOCAL_STATUS = {"Submitted": "submitted", "Approved": "approved", "Rejected": "rejected"}


@dataclass
class Answer:
    """One stored answer, as the requester reviews it (and the admin's participant page
    shows it, with the fields after `correct`)."""
    trial: str
    condition: str
    catch: bool
    chosen_position: int   # 1-based, as on screen
    true_position: int
    correct: bool
    trial_order: int = 0
    subset: str = ""
    rt_ms: float | None = None
    received_at: str | None = None  # ISO 8601 UTC


class CatchSummary:
    """What a review shows of one participant's answers (`answers`, `expected`): catch
    trials answered and failed, and whether every trial was answered. Shared by the
    reviews of every platform."""
    answers: list[Answer]
    expected: int

    @property
    def catch_total(self) -> int:
        """Return how many catch trials were answered."""
        return sum(a.catch for a in self.answers)

    @property
    def catch_failed(self) -> int:
        """Return how many catch trials were answered wrongly."""
        return sum(a.catch and not a.correct for a in self.answers)

    @property
    def complete(self) -> bool:
        """Return True when every expected trial has an answer."""
        return self.expected > 0 and len(self.answers) >= self.expected


@dataclass
class Review(CatchSummary):
    """A submitted (or decided) assignment with the worker's answers."""
    hit: Hit
    assignment_id: str
    worker_id: str
    status: str                       # MTurk's AssignmentStatus
    local: Assignment | None
    answers: list[Answer] = field(default_factory=list)
    expected: int = 0


def local_assignment(assignment_id: str, worker_id: str) -> Assignment | None:
    """Return the database row for (assignment ID, worker), or None."""
    return db.session.execute(select(Assignment).where(
        Assignment.mturk_assignment_id == assignment_id,
        Assignment.worker_id == worker_id)).scalar_one_or_none()


def answers_of(participant: Participant | None) -> list[Answer]:
    """Return the participant's answers in the order given."""
    if participant is None:
        return []
    rows = db.session.execute(
        select(Response, Trial).join(Trial, Trial.id == Response.trial_id)
        .where(Response.participant_id == participant.id)
        .order_by(Response.trial_order)).all()
    return [Answer(t.key, t.condition, bool(t.catch), r.chosen_index + 1, t.true_index + 1,
                   r.chosen_index == t.true_index, r.trial_order, t.subset, r.rt_ms,
                   iso_utc(r.received_at)) for r, t in rows]


def _review(hit: Hit, a: dict) -> Review:
    row = local_assignment(a["AssignmentId"], a["WorkerId"])
    participant = row.participant if row is not None else None
    expected = len(participant.trial_ids()) if participant is not None else 0
    return Review(hit, a["AssignmentId"], a["WorkerId"], a["AssignmentStatus"], row,
                  answers_of(participant), expected)


def _apply(row: Assignment, a: dict) -> None:
    row.status = LOCAL_STATUS.get(a["AssignmentStatus"], row.status)
    row.submitted_at = as_utc(a.get("SubmitTime")) or row.submitted_at
    row.approved_at = as_utc(a.get("ApprovalTime")) or row.approved_at
    row.rejected_at = as_utc(a.get("RejectionTime")) or row.rejected_at
    if row.participant is not None:
        _set(row.participant, row.status)


def _set(p: Participant, status: str) -> bool:
    """Record the platform's status on the participant; return True when it changed."""
    from ..recording import set_status
    changed = p.submission_status != status
    set_status(p, status, synced=True)
    return changed


@dataclass
class SyncReport:
    """What `sync` found: counts, the participants' statuses after it, and one line per
    mismatch."""
    hits: int = 0
    assignments: int = 0
    updated: int = 0
    statuses: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)


def sync(requester: Requester, hits: list[Hit]) -> SyncReport:
    """Pull every assignment of `hits` from MTurk, update the database rows and each
    participant's submission status (accepted, submitted, approved, rejected, returned,
    abandoned), and report each mismatch: on MTurk but unknown here, submitted on MTurk
    but not finished here, finished here but not submitted on MTurk."""
    rep = SyncReport()
    for hit in hits:
        if hit.status == "deleted":
            continue  # MTurk no longer lists a deleted HIT's assignments
        rep.hits += 1
        try:
            _sync_hit(requester, hit, rep)
        except MTurkFailure as exc:
            db.session.rollback()
            rep.mismatches.append(f"{hit.key} {hit.mturk_hit_id}: cannot be read on MTurk "
                                  f"({exc})")
        db.session.commit()
    return rep


def _sync_hit(requester: Requester, hit: Hit, rep: SyncReport) -> None:
    info = requester.hit(hit.mturk_hit_id)
    # MTurk's clock decides whether an unsubmitted assignment ran out of time.
    now = as_utc(requester.server_time or datetime.now(UTC))
    duration = timedelta(seconds=int(info.get("AssignmentDurationInSeconds", 0)))
    pending = int(info.get("NumberOfAssignmentsPending", 0))
    hit.status = info.get("HITStatus", hit.status)
    hit.expires_at = as_utc(info.get("Expiration")) or hit.expires_at
    seen = set()
    for a in requester.assignments(hit.mturk_hit_id):
        rep.assignments += 1
        seen.add((a["AssignmentId"], a["WorkerId"]))
        row = local_assignment(a["AssignmentId"], a["WorkerId"])
        if row is None:
            rep.mismatches.append(
                f"{hit.key} {a['AssignmentId']} worker {a['WorkerId']}: "
                f"{a['AssignmentStatus']} on MTurk but unknown here")
            continue
        before = row.participant.submission_status if row.participant else row.status
        _apply(row, a)
        rep.updated += before != row.status
        p = row.participant
        if p is None or p.completed_at is None:
            done = len(answers_of(p))
            total = len(p.trial_ids()) if p is not None else "?"
            rep.mismatches.append(
                f"{hit.key} {a['AssignmentId']} worker {a['WorkerId']}: "
                f"{a['AssignmentStatus']} on MTurk but not finished here "
                f"({done} of {total} answers)")
    rows = db.session.execute(select(Assignment).where(Assignment.hit_id == hit.id)).scalars()
    for row in rows:
        p = row.participant
        if (row.mturk_assignment_id, row.worker_id) not in seen:
            gone = _unsubmitted(row, now, duration, pending)
            if gone and p is not None:
                rep.updated += _set(p, gone)
            if gone:
                row.status = gone
            # A finished page never submitted is a mismatch while MTurk may still get
            # it; once returned or abandoned the two records agree (it does not count).
            if p is not None and p.completed_at is not None and \
                    row.status not in ("returned", "abandoned"):
                rep.mismatches.append(
                    f"{hit.key} {row.mturk_assignment_id} worker {row.worker_id}: "
                    "finished here but not submitted on MTurk")
        if p is not None:
            rep.statuses[p.submission_status] += 1


def _unsubmitted(row: Assignment, now: datetime, duration: timedelta,
                 pending: int) -> str | None:
    """The status of an assignment MTurk does not list (never submitted): `returned`
    when its ID went to another worker (the worker page saw it) or nobody holds it any
    more before its deadline, `abandoned` once its deadline passed, else None (still
    being worked on)."""
    if row.status in ("returned", "abandoned"):
        return row.status
    if as_utc(row.accepted_at) + duration <= now:
        return "abandoned"
    if pending == 0:
        return "returned"
    return None


def review(requester: Requester, hits: list[Hit],
           statuses=("Submitted",)) -> list[Review]:
    """Return the assignments of `hits` in `statuses` on MTurk, with their answers
    (database rows are brought up to date on the way)."""
    out = []
    for hit in hits:
        for a in requester.assignments(hit.mturk_hit_id, statuses):
            r = _review(hit, a)
            if r.local is not None:
                _apply(r.local, a)
            out.append(r)
    db.session.commit()
    return out


def decide(requester: Requester, items: list[Review], approve: bool,
           feedback: str | None = None,
           override: bool = False) -> list[tuple[Review, str | None]]:
    """Approve or reject each review item; return (item, error or None) per item. An
    item MTurk already shows in the wanted state counts as done (safe to rerun).
    `override` approves a rejected assignment (MTurk allows it within 30 days)."""
    out = []
    want = "Approved" if approve else "Rejected"
    for r in items:
        try:
            current = requester.assignment(r.assignment_id)
            if current.get("WorkerId") != r.worker_id:
                raise MTurkFailure(f"assignment {r.assignment_id} now belongs to another "
                                   "worker")
            if current["AssignmentStatus"] != want:
                if approve:
                    requester.approve(r.assignment_id, feedback, override)
                else:
                    requester.reject(r.assignment_id, feedback or "")
                current = requester.assignment(r.assignment_id)
            r.status = current["AssignmentStatus"]
            if r.local is not None:
                _apply(r.local, current)
            out.append((r, None))
        except MTurkFailure as exc:
            out.append((r, str(exc)))
        db.session.commit()
    return out


def find_review(requester: Requester, hits: list[Hit], assignment_id: str) -> Review | None:
    """Return the Review of one assignment of `hits` (any status), or None."""
    by_id = {h.mturk_hit_id: h for h in hits}
    try:
        a = requester.assignment(assignment_id)
    except MTurkFailure:
        return None
    hit = by_id.get(a.get("HITId"))
    return _review(hit, a) if hit is not None else None


def bonus_cost(amount) -> Decimal:
    """Return what paying a bonus of `amount` costs including MTurk's fee."""
    amount = parse_amount(amount)
    return amount + bonus_fee(amount)


def pay_bonus(requester: Requester, r: Review, amount, reason: str,
              additional: bool = False) -> tuple[Bonus, bool]:
    """Pay a bonus on a reviewed assignment; return (bonus row, newly paid).

    One bonus per assignment: the row and its UniqueRequestToken are stored before MTurk
    is called, so a rerun after a crash or a timeout finishes that same bonus and never
    pays twice. A bonus interrupted earlier must be finished with its own amount before
    anything else; a bonus already paid is refused unless `additional` asks for another.
    """
    amount = parse_amount(amount)
    if amount <= 0:
        raise ValueError("bonus amount must be positive")
    if not reason.strip():
        raise ValueError("a bonus needs a reason (the worker reads it)")
    row = r.local
    if row is None:
        raise ValueError(f"assignment {r.assignment_id} is not recorded here: run sync")
    pending = [b for b in row.bonuses if b.status == "pending"]
    paid = [b for b in row.bonuses if b.status == "paid"]
    if pending and pending[0].amount != amount:
        raise ValueError(f"an earlier bonus of ${pending[0].amount} on {r.assignment_id} was "
                         f"interrupted and may have been paid: run the command again with "
                         f"--amount {pending[0].amount} to finish it (it will not pay twice)")
    if pending:
        b = pending[0]
    elif paid and not additional:
        total = sum(p.amount for p in paid)
        raise ValueError(f"assignment {r.assignment_id} already has a bonus of ${total}: "
                         "nothing paid (add --additional to pay another bonus on it)")
    else:
        b = Bonus(assignment_id=row.id, amount=amount, reason=reason,
                  unique_request_token=request_token("tll-bonus", r.assignment_id,
                                                     r.worker_id, secrets.token_hex(8)),
                  status="pending")
        db.session.add(b)
        db.session.commit()
    fresh = requester.send_bonus(r.worker_id, r.assignment_id, f"{amount:.2f}", b.reason,
                                 b.unique_request_token)
    b.status, b.paid_at = "paid", datetime.now(UTC)
    db.session.commit()
    return b, fresh


def experiment_workers(hits: list[Hit], statuses: tuple[str, ...] = ()) -> list[str]:
    """Return the distinct worker ids recorded on `hits` (optionally only assignments in
    these local statuses), sorted."""
    q = select(Assignment.worker_id).where(Assignment.hit_id.in_([h.id for h in hits]))
    if statuses:
        q = q.where(Assignment.status.in_(statuses))
    return sorted(set(db.session.execute(q).scalars()))


def notify(requester: Requester, worker_ids: list[str], subject: str, message: str,
           batch: int = 100, progress=None) -> list[dict]:
    """Send `message` to the workers in batches of `batch` (MTurk takes 100 a call);
    return the failure statuses MTurk reported."""
    chunks = [worker_ids[i:i + batch] for i in range(0, len(worker_ids), batch)]
    failures = []
    for chunk in (progress(chunks) if progress else chunks):
        failures += requester.notify(subject, message, chunk)
    return failures

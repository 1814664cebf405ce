"""Following and deciding submissions: sync Prolific's submission statuses into the
participants' provenance (returned and timed-out ones included), review the submissions
awaiting review with each participant's answers and catch-trial results, approve (one,
several, all, or those who passed every catch trial), reject with Prolific's category and
message, and pay a bonus at most once per submission."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import MultipleResultsFound

from ...models import Participant, db, utcnow
from ...mturk.reviewing import Answer, CatchSummary, answers_of  # platform-neutral
from ...recording import set_status
from . import shapes
from .client import Client, ProlificFailure
from .models import ProlificBonus, ProlificStudy


@dataclass
class Review(CatchSummary):
    """A submission with the participant's answers on this server."""
    submission: shapes.Submission
    participant: Participant | None
    answers: list[Answer] = field(default_factory=list)
    expected: int = 0


class Participants:
    """The study's participants on this server, loaded in one query, keyed by
    (SESSION_ID, PROLIFIC_PID) as they came with their submissions; `rows` keeps them
    all (by_key keeps one per repeated key)."""

    def __init__(self, rec: ProlificStudy):
        self.rows: list[Participant] = db.session.execute(select(Participant).where(
            Participant.experiment_id == rec.experiment_id,
            Participant.platform == "prolific")).scalars().all()
        self.by_key: dict[tuple[str | None, str | None], Participant] = {}
        self.twice: set[tuple[str | None, str | None]] = set()
        for p in self.rows:
            key = (p.external_session_id, p.external_participant_id)
            if key in self.by_key:
                self.twice.add(key)
            self.by_key[key] = p

    def of(self, sub: shapes.Submission) -> Participant | None:
        """Return the participant who came with submission `sub`, or None when they never
        reached this server; MultipleResultsFound when more than one did."""
        key = (sub.id, sub.participant_id)
        if key in self.twice:
            raise MultipleResultsFound(f"more than one participant came with submission "
                                       f"{sub.id}")
        return self.by_key.get(key)


def _review(sub: shapes.Submission, participants: Participants, answers: bool) -> Review:
    p = participants.of(sub)
    if not answers:
        return Review(sub, p)
    return Review(sub, p, answers_of(p), len(p.trial_ids()) if p is not None else 0)


@dataclass
class SyncResult:
    """What a sync changed: participants per status, and submissions or participants
    that do not match."""
    statuses: Counter
    changed: int
    mismatches: list[str]


def sync(client: Client, rec: ProlificStudy) -> SyncResult:
    """Set every participant of the study to their submission's status on Prolific
    (stamping status_synced_at) and commit; list what does not match."""
    subs = client.submissions(rec.study_id)
    participants = Participants(rec)
    seen, changed, mismatches = set(), 0, []
    for sub in subs:
        p = participants.of(sub)
        if p is None:
            if sub.local_status in ("awaiting-review", "approved"):
                mismatches.append(f"submission {sub.id} ({sub.status}) of participant "
                                  f"{sub.participant_id} has no answers on this server")
            continue
        seen.add(p.id)
        if p.submission_status != sub.local_status:
            changed += 1
        set_status(p, sub.local_status, synced=True)
    others = [p for p in participants.rows if p.external_study_id == rec.study_id]
    for p in others:
        if p.id not in seen:
            mismatches.append(f"participant {p.external_participant_id} (session "
                              f"{p.external_session_id}) has no submission on Prolific")
    db.session.commit()
    statuses = Counter(p.submission_status for p in others)
    return SyncResult(statuses, changed, mismatches)


def review(client: Client, rec: ProlificStudy,
           statuses: tuple[str, ...] = ("AWAITING REVIEW",),
           answers: bool = True) -> list[Review]:
    """Return the study's submissions in `statuses` (the API's) with their answers (with
    `answers` False, their participants only: for decisions that need no catch rule)."""
    subs = [s for s in client.submissions(rec.study_id) if s.status in statuses]
    participants = Participants(rec)
    return [_review(s, participants, answers) for s in subs]


def approve(client: Client, rec: ProlificStudy, items: list[Review]) -> list[Review]:
    """Approve the submissions of `items` in one bulk call and record their status."""
    if not items:
        return []
    client.bulk_approve(rec.study_id, [r.submission.id for r in items])
    for r in items:
        if r.participant is not None:
            set_status(r.participant, "approved", synced=True)
    db.session.commit()
    return items


def reject(client: Client, rec: ProlificStudy, items: list[Review], category: str,
           message: str) -> list[tuple[Review, str | None]]:
    """Reject each submission with `category` and `message`; return (item, error or
    None) per submission, statuses recorded."""
    out = []
    for r in items:
        try:
            sub = client.transition_submission(r.submission.id,
                                               shapes.reject_body(category, message))
        except ProlificFailure as e:
            out.append((r, str(e)))
            continue
        if r.participant is not None:
            set_status(r.participant, sub.local_status, synced=True)
        out.append((r, None))
    db.session.commit()
    return out


class BonusRefused(ValueError):
    """A bonus that is not paid (paid before, or a pay call whose outcome is unknown)."""


def bonus(client: Client, rec: ProlificStudy, sub: shapes.Submission, cents: int) -> ProlificBonus:
    """Pay `cents` to the participant of submission `sub`, once per submission: the
    record is kept before each call; a bonus set up but not paid is paid by a rerun; one
    whose pay call was sent without an answer is never paid again automatically
    (Prolific's pay call is not idempotent): BonusRefused says to check on Prolific."""
    row = db.session.execute(select(ProlificBonus).where(
        ProlificBonus.submission_id == sub.id)).scalar_one_or_none()
    if row is not None and row.status == "paid":
        raise BonusRefused(f"submission {sub.id} already has a bonus of "
                           f"{shapes.money(row.amount_cents)} (paid {row.paid_at:%Y-%m-%d})")
    if row is not None and row.status == "paying":
        raise BonusRefused(f"the bonus of submission {sub.id} was sent to Prolific without an "
                           "answer: check the study's bonuses on Prolific before paying again")
    if row is not None and row.amount_cents != cents:
        raise BonusRefused(f"submission {sub.id} has a bonus of {shapes.money(row.amount_cents)} "
                           "set up and not paid yet: run bonus again with that amount")
    if row is None:
        row = ProlificBonus(study_record_id=rec.id, submission_id=sub.id,
                            participant_id=sub.participant_id, amount_cents=cents)
        db.session.add(row)
        db.session.commit()
    if row.bulk_id is None:
        set_up = client.set_up_bonus(rec.study_id, [(sub.participant_id, cents)])
        row.bulk_id = str(set_up.get("id") or "")
        if not row.bulk_id:
            raise ProlificFailure("Prolific's bonus set-up answer has no id")
        db.session.commit()
    row.status = "paying"
    db.session.commit()
    try:
        client.pay_bonus(row.bulk_id)
    except ProlificFailure as e:
        if 400 <= e.status < 500:     # refused outright: nothing was paid
            row.status = "set-up"
            db.session.commit()
        raise
    row.status, row.paid_at = "paid", utcnow()
    db.session.commit()
    return row

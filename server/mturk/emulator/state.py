"""The local endpoint's bookkeeping: HITs, assignments, bonuses and the account, with
MTurk's rules (states, counts, idempotency tokens, auto-approval, reuse of the ID of a
returned assignment). Kept in memory, optionally mirrored to a JSON file.
"""
from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from ..fees import FeeError, bonus_fee, parse_amount, publish_cost
from ..question import QuestionError, parse_external_question

SANDBOX_MASTERS = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"
PRODUCTION_MASTERS = "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
SYSTEM_QUALIFICATIONS = {"00000000000000000040", "000000000000000000L0",
                         "00000000000000000071", "00000000000000000060"}
COMPARATORS = {"LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo",
               "EqualTo", "NotEqualTo", "Exists", "DoesNotExist", "In", "NotIn"}
ANSWER_NS = ("http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
             "2005-10-01/QuestionFormAnswers.xsd")
_ALNUM = string.ascii_uppercase + string.digits


class MTurkError(Exception):
    """An error MTurk would answer with: `kind` is RequestError or ServiceFault."""

    def __init__(self, message: str, turk_code: str = "AWS.MechanicalTurk.ParameterValidation",
                 kind: str = "RequestError"):
        super().__init__(message)
        self.message, self.turk_code, self.kind = message, turk_code, kind


def new_id(prefix: str = "3", length: int = 30) -> str:
    """Return an MTurk-looking identifier (upper-case letters and digits)."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length - len(prefix)))


def new_worker_id() -> str:
    """Return a worker ID shaped like MTurk's (A + 13 characters)."""
    return new_id("A", 14)


@dataclass
class HitRec:
    hit_id: str
    hit_type_id: str
    hit_group_id: str
    creation_time: float
    title: str
    description: str
    question: str
    keywords: str
    max_assignments: int
    reward: str
    auto_approval_delay: int
    expiration: float
    assignment_duration: int
    requester_annotation: str
    qualification_requirements: list
    external_url: str
    frame_height: int
    token: str | None = None
    disposed: bool = False
    reusable_ids: list = field(default_factory=list)


@dataclass
class AssignmentRec:
    assignment_id: str
    hit_id: str
    worker_id: str
    status: str            # Accepted, Submitted, Approved, Rejected, Returned, Abandoned
    accept_time: float
    deadline: float
    submit_time: float | None = None
    auto_approval_time: float | None = None
    approval_time: float | None = None
    rejection_time: float | None = None
    answer: str | None = None
    fields: dict = field(default_factory=dict)
    feedback: str | None = None


def answer_xml(fields: dict) -> str:
    """Return MTurk's QuestionFormAnswers XML for the fields a task page posted."""
    items = "".join(f"<Answer><QuestionIdentifier>{escape(k)}</QuestionIdentifier>"
                    f"<FreeText>{escape(v)}</FreeText></Answer>"
                    for k, v in fields.items())
    return (f'<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers '
            f'xmlns="{ANSWER_NS}">{items}</QuestionFormAnswers>')


class EmulatorState:
    """Everything the local endpoint knows. Every public method takes the lock, applies
    the lapse of time (expired deadlines, auto-approvals) and saves when it changed
    something."""

    def __init__(self, environment: str = "sandbox", allow_http_localhost: bool = False,
                 balance: str | None = None, path: str | Path | None = None,
                 clock=time.time):
        if environment not in ("sandbox", "production"):
            raise ValueError("environment is sandbox or production")
        self.environment = environment
        self.allow_http_localhost = allow_http_localhost
        self.clock = clock
        self.path = Path(path) if path else None
        self.lock = threading.RLock()
        self.hits: dict[str, HitRec] = {}
        self.assignments: dict[str, AssignmentRec] = {}
        self.bonuses: list[dict] = []
        self.tokens: dict[str, str] = {}          # token -> HIT id / bonus key
        # The sandbox always reads $10,000.00 and never runs out; a tracked balance
        # (production-like) is spent by rewards, fees and bonuses.
        self.tracked = balance is not None
        self.balance = parse_amount(balance if balance is not None else "10000.00")
        self.faults: list[dict] = []              # injected errors, for tests
        self.calls: Counter = Counter()           # requests per operation, for tests
        if self.path and self.path.exists():
            self._load()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        data = json.loads(self.path.read_text())
        self.hits = {k: HitRec(**v) for k, v in data["hits"].items()}
        self.assignments = {k: AssignmentRec(**v) for k, v in data["assignments"].items()}
        self.bonuses, self.tokens = data["bonuses"], data["tokens"]
        self.tracked, self.balance = data["tracked"], Decimal(data["balance"])

    def _save(self) -> None:
        if not self.path:
            return
        data = {"hits": {k: asdict(v) for k, v in self.hits.items()},
                "assignments": {k: asdict(v) for k, v in self.assignments.items()},
                "bonuses": self.bonuses, "tokens": self.tokens,
                "tracked": self.tracked, "balance": str(self.balance)}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
        os.replace(tmp, self.path)

    # ------------------------------------------------------------------ time
    def _tick(self) -> None:
        now = self.clock()
        for a in self.assignments.values():
            if a.status == "Accepted" and now > a.deadline:
                self._release(a, "Abandoned")
            elif a.status == "Submitted" and a.auto_approval_time is not None \
                    and now >= a.auto_approval_time:
                a.status, a.approval_time = "Approved", a.auto_approval_time

    def _release(self, a: AssignmentRec, status: str) -> None:
        # MTurk gives the ID of a returned or abandoned assignment to the next worker.
        a.status = status
        self.hits[a.hit_id].reusable_ids.append(a.assignment_id)

    # ------------------------------------------------------------------ lookups
    def hit(self, hit_id: str) -> HitRec:
        """Return the HIT or raise MTurk's does-not-exist error."""
        rec = self.hits.get(hit_id or "")
        if rec is None:
            raise MTurkError(f"Hit {hit_id} does not exist.",
                             "AWS.MechanicalTurk.HITDoesNotExist")
        return rec

    def assignment(self, assignment_id: str) -> AssignmentRec:
        """Return the live (not returned/abandoned) assignment or raise."""
        rec = self.assignments.get(assignment_id or "")
        if rec is None or rec.status in ("Returned", "Abandoned"):
            raise MTurkError(f"Assignment {assignment_id} does not exist.",
                             "AWS.MechanicalTurk.AssignmentDoesNotExist")
        return rec

    def counts(self, h: HitRec) -> dict:
        """Return pending / available / completed / submitted counts of a HIT."""
        mine = [a for a in self.assignments.values() if a.hit_id == h.hit_id]
        pending = sum(a.status == "Accepted" for a in mine)
        submitted = sum(a.status == "Submitted" for a in mine)
        completed = sum(a.status in ("Approved", "Rejected") for a in mine)
        available = max(0, h.max_assignments - pending - submitted - completed)
        return {"pending": pending, "submitted": submitted, "completed": completed,
                "available": available}

    def hit_status(self, h: HitRec) -> str:
        """Return MTurk's HITStatus for `h` now."""
        if h.disposed:
            return "Disposed"
        c = self.counts(h)
        if self.clock() < h.expiration and c["available"] > 0:
            return "Assignable"
        if c["pending"] > 0:
            return "Unassignable"
        return "Reviewable"

    # ------------------------------------------------------------------ requester side
    def _fault(self, operation: str) -> None:
        for f in self.faults:
            if f["operation"] == operation and f["times"] > 0:
                f["times"] -= 1
                raise MTurkError(f["message"], f["turk_code"], f["kind"])

    def check_fault(self, operation: str) -> None:
        """Raise the next injected error queued for `operation`, if any."""
        with self.lock:
            self._fault(operation)

    def inject_fault(self, operation: str, times: int = 1, kind: str = "ServiceFault",
                     message: str = "Rate exceeded",
                     turk_code: str = "AWS.MechanicalTurk.RateLimitExceeded") -> None:
        """Queue `times` errors for the next calls of `operation` (tests, rehearsals)."""
        with self.lock:
            self.faults.append({"operation": operation, "times": times, "kind": kind,
                                "message": message, "turk_code": turk_code})

    def _check_qualifications(self, reqs: list) -> bool:
        masters = False
        known = set(SYSTEM_QUALIFICATIONS)
        known.add(SANDBOX_MASTERS if self.environment == "sandbox" else PRODUCTION_MASTERS)
        for q in reqs:
            qid = q.get("QualificationTypeId")
            if qid not in known:
                raise MTurkError(f"QualificationType {qid} does not exist.",
                                 "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
            if q.get("Comparator") not in COMPARATORS:
                raise MTurkError(f"Comparator {q.get('Comparator')} is not valid.")
            if qid == "00000000000000000071" and not q.get("LocaleValues"):
                raise MTurkError("The locale qualification needs LocaleValues.")
            if qid in (SANDBOX_MASTERS, PRODUCTION_MASTERS):
                masters = True
        return masters

    def create_hit(self, p: dict) -> HitRec:
        """CreateHIT: validate as MTurk does, honour UniqueRequestToken, charge."""
        with self.lock:
            self._tick()
            token = p.get("UniqueRequestToken")
            if token and token in self.tokens:
                raise MTurkError(
                    f"The HIT with ID \"{self.tokens[token]}\" already exists for this "
                    f"UniqueRequestToken ({token}).", "AWS.MechanicalTurk.HitAlreadyExists")
            for key in ("Title", "Description", "Reward", "LifetimeInSeconds",
                        "AssignmentDurationInSeconds", "Question"):
                if p.get(key) in (None, ""):
                    raise MTurkError(f"Value for {key} is required.")
            if len(p["Title"]) > 128 or len(p["Description"]) > 2000:
                raise MTurkError("Title is at most 128 and Description 2000 characters.")
            try:
                reward = parse_amount(p["Reward"])
            except FeeError as exc:
                raise MTurkError(f"Reward: {exc}") from None
            n = int(p.get("MaxAssignments", 1))
            if not 1 <= n <= 1000000:
                raise MTurkError("MaxAssignments must be between 1 and 1000000.")
            life, dur = int(p["LifetimeInSeconds"]), int(p["AssignmentDurationInSeconds"])
            delay = int(p.get("AutoApprovalDelayInSeconds", 2592000))
            if not 30 <= life <= 31536000 or not 30 <= dur <= 31536000:
                raise MTurkError("LifetimeInSeconds and AssignmentDurationInSeconds must "
                                 "be between 30 and 31536000.")
            if not 0 <= delay <= 2592000:
                raise MTurkError("AutoApprovalDelayInSeconds must be between 0 and 2592000.")
            try:
                url, height = parse_external_question(p["Question"],
                                                      self.allow_http_localhost)
            except QuestionError as exc:
                raise MTurkError(f"There was an error parsing the XML question or answer "
                                 f"data in your request: {exc}",
                                 "AWS.MechanicalTurk.XMLParseError") from None
            reqs = p.get("QualificationRequirements") or []
            masters = self._check_qualifications(reqs)
            cost = publish_cost(reward, n, 1, masters).total
            if self.tracked and cost > self.balance:
                raise MTurkError("This Requester has insufficient funds in their account "
                                 "to complete this transaction. Please visit "
                                 "https://requester.mturk.com/account to purchase "
                                 "prepaid HITs.", "AWS.MechanicalTurk.InsufficientFunds")
            now = self.clock()
            type_key = json.dumps([p["Title"], p["Description"], str(reward), dur, delay,
                                   p.get("Keywords", ""), reqs], sort_keys=True)
            type_id = self.tokens.setdefault("type:" + type_key, new_id())
            h = HitRec(hit_id=new_id(), hit_type_id=type_id, hit_group_id=type_id,
                       creation_time=now, title=p["Title"], description=p["Description"],
                       question=p["Question"], keywords=p.get("Keywords", ""),
                       max_assignments=n, reward=f"{reward:.2f}",
                       auto_approval_delay=delay, expiration=now + life,
                       assignment_duration=dur,
                       requester_annotation=p.get("RequesterAnnotation", ""),
                       qualification_requirements=reqs, external_url=url,
                       frame_height=height, token=token)
            self.hits[h.hit_id] = h
            if token:
                self.tokens[token] = h.hit_id
            if self.tracked:
                self.balance -= cost
            self._save()
            return h

    def add_assignments(self, hit_id: str, extra: int, token: str | None) -> None:
        """CreateAdditionalAssignmentsForHIT, idempotent under its token."""
        with self.lock:
            self._tick()
            h = self.hit(hit_id)
            if token and token in self.tokens:
                raise MTurkError(f"The request with UniqueRequestToken {token} has already "
                                 "been processed.", "AWS.MechanicalTurk.DuplicateRequest")
            if extra < 1 or h.disposed or self.clock() >= h.expiration:
                raise MTurkError("Additional assignments need a positive number on a HIT "
                                 "that has not expired.")
            masters = self._check_qualifications(h.qualification_requirements)
            cost = publish_cost(h.reward, h.max_assignments + extra, 1, masters).fee_per_assignment
            cost = (parse_amount(h.reward) + cost) * extra
            if self.tracked and cost > self.balance:
                raise MTurkError("This Requester has insufficient funds in their account "
                                 "to complete this transaction.",
                                 "AWS.MechanicalTurk.InsufficientFunds")
            h.max_assignments += extra
            if token:
                self.tokens[token] = hit_id
            if self.tracked:
                self.balance -= cost
            self._save()

    def update_expiration(self, hit_id: str, expire_at: float) -> None:
        """UpdateExpirationForHIT: a time in the past expires the HIT at once."""
        with self.lock:
            self._tick()
            h = self.hit(hit_id)
            if h.disposed:
                raise MTurkError(f"Hit {hit_id} has been deleted.",
                                 "AWS.MechanicalTurk.HITDoesNotExist")
            now = self.clock()
            h.expiration = float(expire_at) if expire_at > now else now - 0.001
            self._save()

    def delete_hit(self, hit_id: str) -> None:
        """DeleteHIT: only a Reviewable HIT whose submitted assignments are all decided."""
        with self.lock:
            self._tick()
            h = self.hit(hit_id)
            if h.disposed:
                return
            status = self.hit_status(h)
            if status != "Reviewable" or self.counts(h)["submitted"]:
                raise MTurkError(
                    "This HIT is currently in the state '%s'. This operation can be called "
                    "with a status of: Reviewable, with all submitted assignments approved "
                    "or rejected." % status, "AWS.MechanicalTurk.InvalidHITState")
            h.disposed = True
            self._save()

    def approve(self, assignment_id: str, feedback: str | None, override: bool) -> None:
        """ApproveAssignment (a Rejected one only with OverrideRejection)."""
        with self.lock:
            self._tick()
            a = self.assignment(assignment_id)
            if a.status == "Submitted" or (a.status == "Rejected" and override):
                a.status, a.approval_time = "Approved", self.clock()
                a.feedback = feedback or a.feedback
                self._save()
                return
            raise MTurkError(f"This operation can be called with a status of: Submitted "
                             f"(assignment {assignment_id} is {a.status}).",
                             "AWS.MechanicalTurk.InvalidAssignmentState")

    def reject(self, assignment_id: str, feedback: str) -> None:
        """RejectAssignment: Submitted only, feedback required."""
        with self.lock:
            self._tick()
            a = self.assignment(assignment_id)
            if not feedback or len(feedback) > 1024:
                raise MTurkError("RequesterFeedback is required (at most 1024 characters).")
            if a.status != "Submitted":
                raise MTurkError(f"This operation can be called with a status of: Submitted "
                                 f"(assignment {assignment_id} is {a.status}).",
                                 "AWS.MechanicalTurk.InvalidAssignmentState")
            a.status, a.rejection_time, a.feedback = "Rejected", self.clock(), feedback
            self._save()

    def send_bonus(self, p: dict) -> None:
        """SendBonus to the worker of a submitted assignment, idempotent under its token."""
        with self.lock:
            self._tick()
            token = p.get("UniqueRequestToken")
            if token and token in self.tokens:
                raise MTurkError(f"The bonus with UniqueRequestToken {token} has already "
                                 "been sent.", "AWS.MechanicalTurk.DuplicateRequest")
            a = self.assignment(p.get("AssignmentId"))
            if a.worker_id != p.get("WorkerId"):
                raise MTurkError("The worker did not work on this assignment.")
            if a.status not in ("Submitted", "Approved", "Rejected"):
                raise MTurkError("Bonuses can be paid only for submitted assignments.",
                                 "AWS.MechanicalTurk.InvalidAssignmentState")
            if not p.get("Reason"):
                raise MTurkError("Value for Reason is required.")
            try:
                amount = parse_amount(p.get("BonusAmount"))
            except FeeError as exc:
                raise MTurkError(f"BonusAmount: {exc}") from None
            if amount <= 0:
                raise MTurkError("BonusAmount must be positive.")
            cost = amount + bonus_fee(amount)
            if self.tracked and cost > self.balance:
                raise MTurkError("This Requester has insufficient funds in their account "
                                 "to complete this transaction.",
                                 "AWS.MechanicalTurk.InsufficientFunds")
            self.bonuses.append({"WorkerId": a.worker_id, "AssignmentId": a.assignment_id,
                                 "HITId": a.hit_id, "BonusAmount": f"{amount:.2f}",
                                 "Reason": p["Reason"], "GrantTime": self.clock()})
            if token:
                self.tokens[token] = "bonus:" + a.assignment_id
            if self.tracked:
                self.balance -= cost
            self._save()

    def list_hits(self) -> list[HitRec]:
        """Every HIT not disposed, oldest first."""
        with self.lock:
            self._tick()
            return sorted((h for h in self.hits.values() if not h.disposed),
                          key=lambda h: (h.creation_time, h.hit_id))

    def list_assignments(self, hit_id: str, statuses: list | None) -> list[AssignmentRec]:
        """Submitted/Approved/Rejected assignments of a HIT (filtered), in submit order."""
        with self.lock:
            self._tick()
            self.hit(hit_id)
            wanted = set(statuses or ("Submitted", "Approved", "Rejected"))
            rows = [a for a in self.assignments.values()
                    if a.hit_id == hit_id and a.status in wanted]
            return sorted(rows, key=lambda a: (a.submit_time or 0, a.assignment_id))

    def tick(self) -> None:
        """Apply the lapse of time now (deadlines, auto-approvals)."""
        with self.lock:
            self._tick()
            self._save()

    # ------------------------------------------------------------------ worker side
    def accept(self, hit_id: str, worker_id: str | None = None) -> AssignmentRec:
        """A worker accepts a HIT: a new assignment (reusing the ID of a returned one,
        as MTurk does). A worker may hold one assignment per HIT."""
        with self.lock:
            self._tick()
            h = self.hit(hit_id)
            if self.hit_status(h) != "Assignable":
                raise MTurkError("This HIT is no longer available.",
                                 "AWS.MechanicalTurk.HITNotAssignable")
            worker_id = worker_id or new_worker_id()
            for a in self.assignments.values():
                if a.hit_id == hit_id and a.worker_id == worker_id and \
                        a.status not in ("Returned", "Abandoned"):
                    raise MTurkError(f"Worker {worker_id} already works on this HIT.",
                                     "AWS.MechanicalTurk.WorkerAlreadyOnHIT")
            aid = h.reusable_ids.pop(0) if h.reusable_ids else new_id()
            now = self.clock()
            a = AssignmentRec(assignment_id=aid, hit_id=hit_id, worker_id=worker_id,
                              status="Accepted", accept_time=now,
                              deadline=now + h.assignment_duration)
            self.assignments[aid] = a
            self._save()
            return a

    def return_assignment(self, assignment_id: str) -> AssignmentRec:
        """The worker returns (abandons) an accepted assignment; its ID becomes free."""
        with self.lock:
            self._tick()
            a = self.assignment(assignment_id)
            if a.status != "Accepted":
                raise MTurkError(f"Assignment {assignment_id} is {a.status}: only an "
                                 "accepted assignment can be returned.",
                                 "AWS.MechanicalTurk.InvalidAssignmentState")
            self._release(a, "Returned")
            self._save()
            return a

    def submit(self, assignment_id: str, fields: dict) -> AssignmentRec:
        """externalSubmit: mark an accepted assignment Submitted with the posted fields."""
        with self.lock:
            self._tick()
            a = self.assignments.get(assignment_id or "")
            if a is None or a.status in ("Returned", "Abandoned"):
                raise MTurkError(f"Assignment {assignment_id} is not held by a worker.",
                                 "AWS.MechanicalTurk.AssignmentDoesNotExist")
            if a.status != "Accepted":
                raise MTurkError(f"Assignment {assignment_id} was already submitted.",
                                 "AWS.MechanicalTurk.InvalidAssignmentState")
            if not fields:
                raise MTurkError("externalSubmit needs at least one field besides "
                                 "assignmentId.")
            h = self.hits[a.hit_id]
            now = self.clock()
            a.status, a.submit_time, a.fields = "Submitted", now, dict(fields)
            a.answer = answer_xml(fields)
            a.auto_approval_time = now + h.auto_approval_delay
            self._save()
            return a

"""The local endpoint's bookkeeping: HITs, assignments, bonuses and the account, with
MTurk's rules (states, counts, idempotency tokens, auto-approval, reuse of the ID of a
returned assignment). Kept in memory, optionally mirrored to a JSON file.
"""
from __future__ import annotations

import json
import os
import re
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
NUMBER_APPROVED, PERCENT_APPROVED, LOCALE = ("00000000000000000040", "000000000000000000L0",
                                             "00000000000000000071")
COMPARATORS = {"LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo",
               "EqualTo", "NotEqualTo", "Exists", "DoesNotExist", "In", "NotIn"}
ORDERED = {"LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo"}
LOCALE_COMPARATORS = {"EqualTo", "NotEqualTo", "In", "NotIn"}
ACTIONS = {"Accept", "PreviewAndAccept", "DiscoverPreviewAndAccept"}
# MTurk's own vocabulary for assignments; Accepted/Returned/Abandoned exist only here.
LISTED_STATUSES = ("Submitted", "Approved", "Rejected")
TOKEN_LIFETIME = 24 * 3600   # MTurk remembers a UniqueRequestToken for 24 hours
NOTIFY_LIMIT = 100
OVERRIDE_WINDOW = 30 * 86400  # a rejection can be overridden within 30 days of submission
# A simulated worker nobody described: an experienced US Masters worker.
DEFAULT_WORKER = {"masters": True, "approval_rate": 99, "approved": 5000,
                  "locale": {"Country": "US"}}
ANSWER_NS = ("http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
             "2005-10-01/QuestionFormAnswers.xsd")
_ALNUM = string.ascii_uppercase + string.digits


class MTurkError(Exception):
    """An error MTurk would answer with: `kind` is RequestError or ServiceFault."""

    def __init__(self, message: str, turk_code: str = "AWS.MechanicalTurk.ParameterValidation",
                 kind: str = "RequestError"):
        super().__init__(message)
        self.message, self.turk_code, self.kind = message, turk_code, kind


# MTurk's CurrencyAmount (Reward, BonusAmount): the pattern of its service model,
# ^[0-9]+(\.)?[0-9]{0,2}$, matched whole (no sign, currency symbol, spaces or newline).
CURRENCY_AMOUNT = re.compile(r"[0-9]+\.?[0-9]{0,2}")


def currency_amount(member: str, value) -> Decimal:
    """Return `value` as a Decimal if it is a CurrencyAmount as MTurk accepts it (a string
    such as "0.05"); raise MTurkError (ParameterValidation) otherwise."""
    if not isinstance(value, str) or not CURRENCY_AMOUNT.fullmatch(value):
        raise MTurkError(f"1 validation error detected: Value {json.dumps(value)} at "
                         f"'{member}' failed to satisfy constraint: Member must satisfy "
                         "regular expression pattern: ^[0-9]+(\\.)?[0-9]{0,2}$")
    try:
        return parse_amount(value)
    except FeeError as exc:  # beyond any account's means
        raise MTurkError(f"{member}: {exc}") from None


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
class WorkerRec:
    """A simulated worker's profile: the system qualifications MTurk keeps for them, the
    requester's qualifications granted to them, and the messages sent to them."""
    worker_id: str
    masters: bool = True
    approval_rate: int = 99
    approved: int = 5000
    locale: dict = field(default_factory=lambda: {"Country": "US"})
    qualifications: dict = field(default_factory=dict)   # type id -> integer value
    messages: list = field(default_factory=list)


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
        # Indexes, so that a paper-sized run (thousands of assignments) stays fast: the
        # assignment ids of each HIT, and those whose state time can still change.
        self.by_hit: dict[str, set[str]] = {}
        self.open: set[str] = set()
        self.bonuses: list[dict] = []
        self.tokens: dict[str, str] = {}          # token -> HIT id / bonus key
        self.token_times: dict[str, float] = {}   # token -> when it was first used
        self.hit_types: dict[str, str] = {}       # settings key -> HIT type id
        self.qualification_types: dict[str, dict] = {}
        self.workers: dict[str, WorkerRec] = {}
        self.default_worker = dict(DEFAULT_WORKER)
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
        for a in self.assignments.values():
            self.by_hit.setdefault(a.hit_id, set()).add(a.assignment_id)
            self.open.add(a.assignment_id)
        self.bonuses, self.tokens = data["bonuses"], data["tokens"]
        self.tracked, self.balance = data["tracked"], Decimal(data["balance"])
        self.token_times = data.get("token_times", {})
        self.hit_types = data.get("hit_types", {})
        self.qualification_types = data.get("qualification_types", {})
        self.workers = {k: WorkerRec(**v) for k, v in data.get("workers", {}).items()}

    def _save(self) -> None:
        if not self.path:
            return
        data = {"hits": {k: asdict(v) for k, v in self.hits.items()},
                "assignments": {k: asdict(v) for k, v in self.assignments.items()},
                "bonuses": self.bonuses, "tokens": self.tokens,
                "token_times": self.token_times, "hit_types": self.hit_types,
                "qualification_types": self.qualification_types,
                "workers": {k: asdict(v) for k, v in self.workers.items()},
                "tracked": self.tracked, "balance": str(self.balance)}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
        os.replace(tmp, self.path)

    # ------------------------------------------------------------------ time
    def _tick(self) -> None:
        now = self.clock()
        for aid in list(self.open):
            a = self.assignments[aid]
            if a.status not in ("Accepted", "Submitted"):
                self.open.discard(aid)
            elif a.status == "Accepted" and now > a.deadline:
                self._release(a, "Abandoned")
            elif a.status == "Submitted" and a.auto_approval_time is not None \
                    and now >= a.auto_approval_time:
                a.status, a.approval_time = "Approved", a.auto_approval_time

    def _release(self, a: AssignmentRec, status: str) -> None:
        # MTurk gives the ID of a returned or abandoned assignment to the next worker.
        a.status = status
        self.hits[a.hit_id].reusable_ids.append(a.assignment_id)

    def _token(self, token: str | None) -> str | None:
        """Return what `token` was used for within the last 24 hours, else None (an older
        use is forgotten, as MTurk forgets it)."""
        if not token or token not in self.tokens:
            return None
        if self.clock() - self.token_times.get(token, self.clock()) >= TOKEN_LIFETIME:
            del self.tokens[token]
            self.token_times.pop(token, None)
            return None
        return self.tokens[token]

    def _remember(self, token: str | None, value: str) -> None:
        if token:
            self.tokens[token], self.token_times[token] = value, self.clock()

    # ------------------------------------------------------------------ lookups
    def live_hit(self, hit_id: str) -> HitRec:
        """Return the HIT unless it does not exist or was deleted (then raise)."""
        h = self.hit(hit_id)
        if h.disposed:
            raise MTurkError(f"Hit {hit_id} has been deleted.",
                             "AWS.MechanicalTurk.HITDoesNotExist")
        return h

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

    def _of(self, hit_id: str) -> list[AssignmentRec]:
        """The assignments of one HIT (the latest holder of each reused ID)."""
        return [self.assignments[aid] for aid in self.by_hit.get(hit_id, ())]

    def listed_assignment(self, assignment_id: str) -> AssignmentRec:
        """Return a submitted, approved or rejected assignment: the only ones MTurk's
        requester API shows (an accepted one is still the worker's business)."""
        rec = self.assignment(assignment_id)
        if rec.status not in LISTED_STATUSES:
            raise MTurkError(f"Assignment {assignment_id} does not exist.",
                             "AWS.MechanicalTurk.AssignmentDoesNotExist")
        return rec

    def counts(self, h: HitRec) -> dict:
        """Return pending / available / completed / submitted counts of a HIT."""
        mine = self._of(h.hit_id)
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
        """Validate QualificationRequirements as MTurk does; return whether one of them
        asks for Masters (which raises the fee)."""
        masters = False
        known = set(SYSTEM_QUALIFICATIONS) | set(self.qualification_types)
        known.add(SANDBOX_MASTERS if self.environment == "sandbox" else PRODUCTION_MASTERS)
        for q in reqs:
            qid, comp = q.get("QualificationTypeId"), q.get("Comparator")
            ints, locales = q.get("IntegerValues"), q.get("LocaleValues")
            if qid not in known:
                raise MTurkError(f"QualificationType {qid} does not exist.",
                                 "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
            if comp not in COMPARATORS:
                raise MTurkError(f"Comparator {comp} is not valid.")
            if q.get("ActionsGuarded") is not None and q["ActionsGuarded"] not in ACTIONS:
                raise MTurkError(f"ActionsGuarded {q['ActionsGuarded']} is not valid.")
            if comp in ("Exists", "DoesNotExist"):
                if ints or locales:
                    raise MTurkError(f"{comp} takes no IntegerValues or LocaleValues "
                                     f"(QualificationType {qid}).")
            elif qid == LOCALE:
                if ints or not locales:
                    raise MTurkError("The locale qualification is compared with "
                                     "LocaleValues, not IntegerValues.")
                if comp not in LOCALE_COMPARATORS:
                    raise MTurkError(f"The locale qualification cannot use {comp}: only "
                                     "EqualTo, NotEqualTo, In and NotIn.")
                _check_values(comp, locales)
                for loc in locales:
                    _check_locale(loc)
            else:
                if locales or not ints:
                    raise MTurkError(f"Comparator {comp} on QualificationType {qid} needs "
                                     "IntegerValues (LocaleValues are for the locale).")
                _check_values(comp, ints)
            if qid in (SANDBOX_MASTERS, PRODUCTION_MASTERS):
                if comp not in ("Exists", "DoesNotExist"):
                    raise MTurkError("The Masters qualification is used with Exists or "
                                     "DoesNotExist.")
                masters = True
        return masters

    # ------------------------------------------------------------------ workers
    def worker(self, worker_id: str) -> WorkerRec:
        """Return the simulated worker, described by the default profile when new."""
        w = self.workers.get(worker_id)
        if w is None:
            w = self.workers[worker_id] = WorkerRec(worker_id=worker_id,
                                                    **json.loads(json.dumps(
                                                        self.default_worker)))
        return w

    def describe_worker(self, worker_id: str, profile: dict) -> WorkerRec:
        """Create or change a simulated worker (masters, approval_rate, approved, locale,
        qualifications); return it. Tests and rehearsals use this to play unqualified
        workers."""
        unknown = set(profile) - {"masters", "approval_rate", "approved", "locale",
                                  "qualifications"}
        if unknown:
            raise MTurkError(f"unknown worker properties: {sorted(unknown)}")
        with self.lock:
            w = self.worker(worker_id)
            if "locale" in profile:
                _check_locale(profile["locale"])
            for key, value in profile.items():
                setattr(w, key, value)
            self._save()
            return w

    def _value(self, w: WorkerRec, qid: str):
        """The worker's value of a qualification, or None when they do not hold it."""
        if qid in (SANDBOX_MASTERS, PRODUCTION_MASTERS):
            mine = SANDBOX_MASTERS if self.environment == "sandbox" else PRODUCTION_MASTERS
            return 1 if w.masters and qid == mine else None
        if qid == PERCENT_APPROVED:
            return w.approval_rate
        if qid == NUMBER_APPROVED:
            return w.approved
        if qid == LOCALE:
            return w.locale
        if qid == "00000000000000000060":      # Adult: simulated workers are adults
            return 1
        return w.qualifications.get(qid)

    def unmet(self, worker_id: str, h: HitRec, action: str = "Accept") -> list[str]:
        """Return the requirements of `h` that keep `worker_id` from `action` (Accept,
        Preview or Discover), one readable line each; empty when none do."""
        w = self.worker(worker_id)
        out = []
        for q in h.qualification_requirements:
            guarded = q.get("ActionsGuarded") or (
                "PreviewAndAccept" if q.get("RequiredToPreview") else "Accept")
            if action not in guarded:
                continue
            if not _meets(self._value(w, q["QualificationTypeId"]), q):
                out.append(f"{q['QualificationTypeId']} {q['Comparator']} "
                           f"{q.get('IntegerValues') or q.get('LocaleValues') or ''}".strip())
        return out

    # ------------------------------------------------------------------ qualification types
    def create_qualification_type(self, p: dict) -> dict:
        """CreateQualificationType: a name unique among the requester's types."""
        with self.lock:
            name, desc = (p.get("Name") or "").strip(), p.get("Description") or ""
            status = p.get("QualificationTypeStatus")
            if not name or not desc:
                raise MTurkError("Name and Description are required.")
            if status not in ("Active", "Inactive"):
                raise MTurkError("QualificationTypeStatus must be Active or Inactive.")
            if any(t["Name"] == name for t in self.qualification_types.values()):
                raise MTurkError(f"You have already created a QualificationType with this "
                                 f"name. A QualificationType's name must be unique among all "
                                 f"of the QualificationTypes created by the same user. "
                                 f"(Name: {name})",
                                 "AWS.MechanicalTurk.QualificationTypeAlreadyExists")
            qid = new_id("3", 30)
            t = {"QualificationTypeId": qid, "CreationTime": self.clock(), "Name": name,
                 "Description": desc, "Keywords": p.get("Keywords", ""),
                 "QualificationTypeStatus": status, "IsRequestable": False,
                 "AutoGranted": bool(p.get("AutoGranted", False))}
            self.qualification_types[qid] = t
            self._save()
            return t

    def qualification_type(self, qid: str) -> dict:
        """Return a requester's qualification type or raise does-not-exist."""
        t = self.qualification_types.get(qid or "")
        if t is None:
            raise MTurkError(f"QualificationType {qid} does not exist.",
                             "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
        return t

    def list_qualification_types(self, query: str | None) -> list[dict]:
        """The requester's qualification types whose name or description holds `query`."""
        with self.lock:
            q = (query or "").lower()
            return sorted((t for t in self.qualification_types.values()
                           if q in t["Name"].lower() or q in t["Description"].lower()),
                          key=lambda t: t["CreationTime"])

    def associate(self, qid: str, worker_id: str, value: int = 1) -> None:
        """AssociateQualificationWithWorker: grant (or change) the worker's value."""
        with self.lock:
            self.qualification_type(qid)
            if not worker_id:
                raise MTurkError("Value for WorkerId is required.")
            self.worker(worker_id).qualifications[qid] = int(value)
            self._save()

    def disassociate(self, qid: str, worker_id: str) -> None:
        """DisassociateQualificationFromWorker."""
        with self.lock:
            self.qualification_type(qid)
            w = self.workers.get(worker_id or "")
            if w is None or qid not in w.qualifications:
                raise MTurkError(f"Worker {worker_id} does not hold QualificationType {qid}.",
                                 "AWS.MechanicalTurk.QualificationDoesNotExist")
            del w.qualifications[qid]
            self._save()

    def workers_with(self, qid: str) -> list[tuple[str, int]]:
        """(worker id, value) of every worker granted qualification `qid`."""
        with self.lock:
            self.qualification_type(qid)
            return sorted((w.worker_id, w.qualifications[qid])
                          for w in self.workers.values() if qid in w.qualifications)

    def notify(self, subject: str, text: str, worker_ids: list) -> list[dict]:
        """NotifyWorkers: at most 100 workers a call; return the failure statuses (a
        worker who never worked for this requester cannot be messaged)."""
        with self.lock:
            if not subject or len(subject) > 200:
                raise MTurkError("Subject is required and at most 200 characters.")
            if not text or len(text) > 4096:
                raise MTurkError("MessageText is required and at most 4096 characters.")
            if not worker_ids or len(worker_ids) > NOTIFY_LIMIT:
                raise MTurkError(f"WorkerIds must list between 1 and {NOTIFY_LIMIT} "
                                 f"workers; got {len(worker_ids or [])}.")
            worked = {a.worker_id for a in self.assignments.values()}
            failures = []
            for wid in worker_ids:
                if wid not in worked:
                    failures.append({"NotifyWorkersFailureCode": "HardFailure",
                                     "NotifyWorkersFailureMessage":
                                         f"Worker {wid} has not worked for you.",
                                     "WorkerId": wid})
                    continue
                self.worker(wid).messages.append({"Subject": subject, "MessageText": text,
                                                  "Time": self.clock()})
            self._save()
            return failures

    def _hit_type(self, p: dict) -> tuple[str, dict]:
        """Validate the HIT type fields of `p` (CreateHIT or CreateHITType); return the
        type's id (one per distinct set of fields) and its settings."""
        for key in ("Title", "Description", "Reward", "AssignmentDurationInSeconds"):
            if p.get(key) in (None, ""):
                raise MTurkError(f"Value for {key} is required.")
        if len(p["Title"]) > 128 or len(p["Description"]) > 2000:
            raise MTurkError("Title is at most 128 and Description 2000 characters.")
        reward = currency_amount("reward", p["Reward"])
        if reward < Decimal("0.01"):
            raise MTurkError(f"The value {p['Reward']} for Reward is invalid: the minimum "
                             "reward is $0.01.")
        dur = int(p["AssignmentDurationInSeconds"])
        delay = int(p.get("AutoApprovalDelayInSeconds", 2592000))
        if not 30 <= dur <= 31536000:
            raise MTurkError("LifetimeInSeconds and AssignmentDurationInSeconds must be "
                             "between 30 and 31536000.")
        if not 0 <= delay <= 2592000:
            raise MTurkError("AutoApprovalDelayInSeconds must be between 0 and 2592000.")
        reqs = p.get("QualificationRequirements") or []
        masters = self._check_qualifications(reqs)
        t = {"Title": p["Title"], "Description": p["Description"],
             "Reward": f"{reward:.2f}", "dur": dur, "delay": delay,
             "Keywords": p.get("Keywords", ""), "QualificationRequirements": reqs}
        type_id = self.hit_types.setdefault(json.dumps(t, sort_keys=True), new_id())
        return type_id, {**t, "masters": masters}

    def create_hit_type(self, p: dict) -> str:
        """CreateHITType: the id of the HIT type with these fields (made once)."""
        with self.lock:
            type_id, _ = self._hit_type(p)
            self._save()
            return type_id

    def update_hit_type(self, hit_id: str, type_id: str) -> None:
        """UpdateHITTypeOfHIT: give a live HIT another type's reward, texts and
        qualification requirements."""
        with self.lock:
            self._tick()
            h = self.live_hit(hit_id)
            found = [json.loads(k) for k, v in self.hit_types.items() if v == type_id]
            if not found:
                raise MTurkError(f"HITType {type_id} does not exist.",
                                 "AWS.MechanicalTurk.HITTypeDoesNotExist")
            t = found[0]
            h.hit_type_id = h.hit_group_id = type_id
            h.title, h.description, h.reward = t["Title"], t["Description"], t["Reward"]
            h.assignment_duration, h.auto_approval_delay = t["dur"], t["delay"]
            h.keywords, h.qualification_requirements = t["Keywords"], \
                t["QualificationRequirements"]
            self._save()

    def create_hit(self, p: dict) -> HitRec:
        """CreateHIT: validate as MTurk does, honour UniqueRequestToken, charge."""
        with self.lock:
            self._tick()
            token = p.get("UniqueRequestToken")
            if token and len(token) > 64:
                raise MTurkError("UniqueRequestToken is at most 64 characters.")
            if self._token(token):
                raise MTurkError(
                    f"The HIT with ID \"{self.tokens[token]}\" already exists for this "
                    f"UniqueRequestToken ({token}).", "AWS.MechanicalTurk.HitAlreadyExists")
            for key in ("LifetimeInSeconds", "Question"):
                if p.get(key) in (None, ""):
                    raise MTurkError(f"Value for {key} is required.")
            type_id, t = self._hit_type(p)
            reward, dur, delay = parse_amount(t["Reward"]), t["dur"], t["delay"]
            reqs = t["QualificationRequirements"]
            n = int(p.get("MaxAssignments", 1))
            if not 1 <= n <= 1000000:
                raise MTurkError("MaxAssignments must be between 1 and 1000000.")
            life = int(p["LifetimeInSeconds"])
            if not 30 <= life <= 31536000:
                raise MTurkError("LifetimeInSeconds and AssignmentDurationInSeconds must "
                                 "be between 30 and 31536000.")
            try:
                url, height = parse_external_question(p["Question"],
                                                      self.allow_http_localhost)
            except QuestionError as exc:
                raise MTurkError(f"There was an error parsing the XML question or answer "
                                 f"data in your request: {exc}",
                                 "AWS.MechanicalTurk.XMLParseError") from None
            cost = publish_cost(reward, n, 1, t["masters"]).total
            if self.tracked and cost > self.balance:
                raise MTurkError("This Requester has insufficient funds in their account "
                                 "to complete this transaction. Please visit "
                                 "https://requester.mturk.com/account to purchase "
                                 "prepaid HITs.", "AWS.MechanicalTurk.InsufficientFunds")
            now = self.clock()
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
            self._remember(token, h.hit_id)
            if self.tracked:
                self.balance -= cost
            self._save()
            return h

    def add_assignments(self, hit_id: str, extra: int, token: str | None) -> None:
        """CreateAdditionalAssignmentsForHIT, idempotent under its token."""
        with self.lock:
            self._tick()
            h = self.live_hit(hit_id)
            if self._token(token):
                raise MTurkError(f"The request with UniqueRequestToken {token} has already "
                                 "been processed.", "AWS.MechanicalTurk.DuplicateRequest")
            if extra < 1 or self.clock() >= h.expiration:
                raise MTurkError("Additional assignments need a positive number on a HIT "
                                 "that has not expired.")
            if h.max_assignments < 10 <= h.max_assignments + extra:
                raise MTurkError(
                    f"HIT {hit_id} has {h.max_assignments} assignments: a HIT created with "
                    f"fewer than 10 assignments cannot be extended to 10 or more "
                    f"(requested {h.max_assignments + extra}).",
                    "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease")
            masters = self._check_qualifications(h.qualification_requirements)
            cost = publish_cost(h.reward, h.max_assignments + extra, 1, masters).fee_per_assignment
            cost = (parse_amount(h.reward) + cost) * extra
            if self.tracked and cost > self.balance:
                raise MTurkError("This Requester has insufficient funds in their account "
                                 "to complete this transaction.",
                                 "AWS.MechanicalTurk.InsufficientFunds")
            h.max_assignments += extra
            self._remember(token, hit_id)
            if self.tracked:
                self.balance -= cost
            self._save()

    def update_expiration(self, hit_id: str, expire_at: float) -> None:
        """UpdateExpirationForHIT: a time in the past expires the HIT at once."""
        with self.lock:
            self._tick()
            h = self.live_hit(hit_id)
            now = self.clock()
            h.expiration = float(expire_at) if expire_at > now else now - 0.001
            self._save()

    def delete_hit(self, hit_id: str) -> None:
        """DeleteHIT: only a Reviewable HIT whose submitted assignments are all decided."""
        with self.lock:
            self._tick()
            h = self.live_hit(hit_id)
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
            a = self.listed_assignment(assignment_id)
            if a.status == "Rejected" and override and self.hits[a.hit_id].disposed:
                raise MTurkError(f"HIT {a.hit_id} has been deleted: its rejected "
                                 "assignments can no longer be approved.",
                                 "AWS.MechanicalTurk.HITDoesNotExist")
            if a.status == "Rejected" and override and \
                    self.clock() - (a.submit_time or 0) > OVERRIDE_WINDOW:
                raise MTurkError(f"Assignment {assignment_id} was submitted more than 30 days "
                                 "ago: its rejection can no longer be overridden.",
                                 "AWS.MechanicalTurk.InvalidAssignmentState")
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
            a = self.listed_assignment(assignment_id)
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
            if self._token(token):
                raise MTurkError(f"The bonus with UniqueRequestToken {token} has already "
                                 "been sent.", "AWS.MechanicalTurk.DuplicateRequest")
            a = self.listed_assignment(p.get("AssignmentId"))
            if a.worker_id != p.get("WorkerId"):
                raise MTurkError("The worker did not work on this assignment.")
            if not p.get("Reason"):
                raise MTurkError("Value for Reason is required.")
            amount = currency_amount("bonusAmount", p.get("BonusAmount"))
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
            self._remember(token, "bonus:" + a.assignment_id)
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
            wrong = sorted(set(statuses or ()) - set(LISTED_STATUSES))
            if wrong:
                raise MTurkError(f"AssignmentStatuses {wrong} are not valid: use Submitted, "
                                 "Approved or Rejected.")
            wanted = set(statuses or LISTED_STATUSES)
            rows = [a for a in self._of(hit_id) if a.status in wanted]
            return sorted(rows, key=lambda a: (a.submit_time or 0, a.assignment_id))

    def tick(self) -> None:
        """Apply the lapse of time now (deadlines, auto-approvals)."""
        with self.lock:
            self._tick()
            self._save()

    # ------------------------------------------------------------------ worker side
    def accept(self, hit_id: str, worker_id: str | None = None) -> AssignmentRec:
        """A worker accepts a HIT: a new assignment (reusing the ID of a returned one,
        as MTurk does). A worker may hold one assignment per HIT and must meet the HIT's
        qualification requirements."""
        with self.lock:
            self._tick()
            h = self.live_hit(hit_id)
            if self.hit_status(h) != "Assignable":
                raise MTurkError("This HIT is no longer available.",
                                 "AWS.MechanicalTurk.HITNotAssignable")
            worker_id = worker_id or new_worker_id()
            unmet = self.unmet(worker_id, h, "Accept")
            if unmet:
                raise MTurkError(f"Worker {worker_id} does not meet the qualification "
                                 f"requirements of this HIT: {'; '.join(unmet)}.",
                                 "AWS.MechanicalTurk.QualificationRequirementNotMet")
            for a in self._of(hit_id):
                if a.worker_id == worker_id and \
                        a.status not in ("Returned", "Abandoned"):
                    raise MTurkError(f"Worker {worker_id} already works on this HIT.",
                                     "AWS.MechanicalTurk.WorkerAlreadyOnHIT")
            aid = h.reusable_ids.pop(0) if h.reusable_ids else new_id()
            now = self.clock()
            a = AssignmentRec(assignment_id=aid, hit_id=hit_id, worker_id=worker_id,
                              status="Accepted", accept_time=now,
                              deadline=now + h.assignment_duration)
            self.assignments[aid] = a
            self.by_hit.setdefault(hit_id, set()).add(aid)
            self.open.add(aid)
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


def _check_values(comp: str, values: list) -> None:
    single = comp in ORDERED or comp in ("EqualTo", "NotEqualTo")
    if single and len(values) != 1:
        raise MTurkError(f"Comparator {comp} takes exactly one value; got {len(values)}.")
    if comp in ("In", "NotIn") and not 1 <= len(values) <= 30:
        raise MTurkError(f"Comparator {comp} takes 1 to 30 values; got {len(values)}.")


def _check_locale(loc) -> None:
    """Refuse a Locale that is not an ISO 3166 country (and US subdivision)."""
    import pycountry

    if not isinstance(loc, dict) or set(loc) - {"Country", "Subdivision"}:
        raise MTurkError(f"Locale {loc!r} has only Country and Subdivision.")
    country, sub = loc.get("Country"), loc.get("Subdivision")
    if not isinstance(country, str) or len(country) != 2 or not country.isupper() or \
            pycountry.countries.get(alpha_2=country) is None:
        raise MTurkError(f"Country {country!r} is not an ISO 3166 country code.")
    if sub is not None:
        if country != "US":
            raise MTurkError("Subdivisions are available only for the United States (US).")
        if not isinstance(sub, str) or not sub.isupper() or \
                pycountry.subdivisions.get(code=f"US-{sub}") is None:
            raise MTurkError(f"Subdivision {sub!r} is not an ISO 3166-2 code of the US.")


def _meets(value, q: dict) -> bool:
    """Whether a worker's qualification value satisfies one QualificationRequirement."""
    comp = q["Comparator"]
    if comp == "Exists":
        return value is not None
    if comp == "DoesNotExist":
        return value is None
    if value is None:
        return False
    if isinstance(value, dict):                      # a locale
        def match(want):
            return want["Country"] == value.get("Country") and (
                "Subdivision" not in want or want["Subdivision"] == value.get("Subdivision"))
        hit = any(match(v) for v in q["LocaleValues"])
        return hit if comp in ("EqualTo", "In") else not hit
    ints = [int(v) for v in q["IntegerValues"]]
    return {"LessThan": lambda: value < ints[0],
            "LessThanOrEqualTo": lambda: value <= ints[0],
            "GreaterThan": lambda: value > ints[0],
            "GreaterThanOrEqualTo": lambda: value >= ints[0],
            "EqualTo": lambda: value == ints[0],
            "NotEqualTo": lambda: value != ints[0],
            "In": lambda: value in ints,
            "NotIn": lambda: value not in ints}[comp]()

"""The requester's side of MTurk on boto3: one `Requester` per environment (sandbox,
production, or a local endpoint), with MTurk's pagination, idempotency tokens and a
retry policy that only repeats calls that cannot do a thing twice.

Credentials come from boto3's standard chain (environment, ~/.aws, instance role); this
module never reads, prints or logs them.
"""
from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

ENDPOINTS = {
    "sandbox": "https://mturk-requester-sandbox.us-east-1.amazonaws.com",
    "production": "https://mturk-requester.us-east-1.amazonaws.com",
}
WORKER_SITES = {"sandbox": "https://workersandbox.mturk.com",
                "production": "https://worker.mturk.com"}
MASTERS = {"sandbox": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6",
           "production": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"}
PERCENT_APPROVED = "000000000000000000L0"
NUMBER_APPROVED = "00000000000000000040"
LOCALE = "00000000000000000071"

# Calls that change nothing, or set an absolute state, may be repeated after throttling;
# calls that create something only when they carry a UniqueRequestToken.
READ_ONLY = {"GetAccountBalance", "GetHIT", "ListHITs", "ListAssignmentsForHIT",
             "GetAssignment", "ListBonusPayments", "UpdateExpirationForHIT", "DeleteHIT",
             "ListQualificationTypes", "GetQualificationType",
             "AssociateQualificationWithWorker", "ListWorkersWithQualificationType",
             "CreateHITType", "UpdateHITTypeOfHIT"}
TOKENED = {"CreateHIT", "SendBonus", "CreateAdditionalAssignmentsForHIT"}
THROTTLE_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException",
                  "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException"}

log = logging.getLogger(__name__)


_LOADER = []


def _shared_loader():
    if not _LOADER:
        from botocore.loaders import create_loader
        _LOADER.append(create_loader())
    return _LOADER[0]


class MTurkFailure(Exception):
    """A call MTurk refused, with a message fit for the researcher (no credentials)."""

    def __init__(self, message: str, code: str = "", turk_code: str = ""):
        super().__init__(message)
        self.code, self.turk_code = code, turk_code


def request_token(*parts: str) -> str:
    """Return a deterministic UniqueRequestToken (64 hex characters max) for `parts`."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]


def qualification_requirements(environment: str, masters: bool = False,
                               min_approval_rate: int | None = None,
                               min_approved: int | None = None,
                               locales: list[str] | None = None) -> list[dict]:
    """Return MTurk QualificationRequirements for the usual worker filters."""
    reqs = []
    if masters:
        reqs.append({"QualificationTypeId": MASTERS[environment], "Comparator": "Exists",
                     "ActionsGuarded": "DiscoverPreviewAndAccept"})
    if min_approval_rate is not None:
        reqs.append({"QualificationTypeId": PERCENT_APPROVED,
                     "Comparator": "GreaterThanOrEqualTo",
                     "IntegerValues": [int(min_approval_rate)],
                     "ActionsGuarded": "DiscoverPreviewAndAccept"})
    if min_approved is not None:
        reqs.append({"QualificationTypeId": NUMBER_APPROVED,
                     "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [int(min_approved)],
                     "ActionsGuarded": "DiscoverPreviewAndAccept"})
    if locales:
        values = []
        for loc in locales:
            country, _, sub = loc.strip().upper().partition("-")
            values.append({"Country": country, **({"Subdivision": sub} if sub else {})})
        reqs.append({"QualificationTypeId": LOCALE, "Comparator": "In",
                     "LocaleValues": values, "ActionsGuarded": "DiscoverPreviewAndAccept"})
    return reqs


@dataclass
class Created:
    """A HIT created (or found again through its token)."""
    hit: dict
    existed: bool


class Requester:
    """boto3's MTurk client for one environment, with safe retries and pagination."""

    def __init__(self, environment: str = "sandbox", endpoint_url: str | None = None,
                 client=None, retries: int = 5, backoff: float = 0.5, sleep=time.sleep):
        if environment not in ENDPOINTS:
            raise ValueError("environment is 'sandbox' or 'production'")
        self.environment = environment
        self.endpoint_url = endpoint_url or ENDPOINTS[environment]
        self.local = endpoint_url is not None and endpoint_url.rstrip("/") != ENDPOINTS[environment]
        self.retries, self.backoff, self.sleep = retries, backoff, sleep
        self._client = client
        self.server_time: datetime | None = None   # MTurk's clock at the last answer

    @property
    def label(self) -> str:
        """'sandbox', 'production', or 'local-sandbox' / 'local-production'."""
        return ("local-" if self.local else "") + self.environment

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            # botocore's own retries would repeat any call; ours repeat only safe ones.
            cfg = Config(retries={"mode": "standard", "total_max_attempts": 1},
                         connect_timeout=10, read_timeout=60)
            # A session of its own, so credentials are resolved now and not cached for the
            # process; the service-model loader is shared, as re-reading it is slow.
            import botocore.session

            core = botocore.session.get_session()
            core.register_component("data_loader", _shared_loader())
            self._client = boto3.session.Session(botocore_session=core).client(
                "mturk", region_name="us-east-1", endpoint_url=self.endpoint_url, config=cfg)
        return self._client

    # ------------------------------------------------------------------ calls
    def call(self, operation: str, **params):
        """Call `operation` (CamelCase name); retry throttling with exponential backoff
        only when the call is read-only/absolute or carries a UniqueRequestToken.
        Raise MTurkFailure with a readable message on any error."""
        from botocore import xform_name
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            ParamValidationError,
            PartialCredentialsError,
        )

        method = getattr(self.client, xform_name(operation))
        safe = operation in READ_ONLY or (operation in TOKENED and
                                          params.get("UniqueRequestToken"))
        for attempt in range(self.retries):
            try:
                out = method(**params)
                self._note_time(out)
                return out
            except (NoCredentialsError, PartialCredentialsError):
                raise MTurkFailure(
                    "No AWS credentials found. Configure them as for the AWS CLI "
                    "(`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY in the environment).", "NoCredentials") from None
            except ClientError as exc:
                err = exc.response.get("Error", {})
                code = err.get("Code", "")
                turk = exc.response.get("TurkErrorCode", "") or ""
                message = err.get("Message", "") or exc.response.get("Message", "") or code
                throttled = code in THROTTLE_CODES or "RateLimit" in turk or \
                    "rate exceeded" in message.lower() or "throttl" in message.lower()
                if throttled and safe and attempt + 1 < self.retries:
                    delay = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
                    log.warning("%s throttled; retrying in %.2fs", operation, delay)
                    self.sleep(delay)
                    continue
                raise MTurkFailure(_readable(operation, code, turk, message, throttled, safe),
                                   code, turk) from None
            except ParamValidationError as exc:
                raise MTurkFailure(f"{operation}: invalid parameters: {exc}",
                                   "ParamValidation") from None
            except BotoCoreError as exc:
                raise MTurkFailure(f"{operation}: cannot reach MTurk at {self.endpoint_url}: "
                                   f"{type(exc).__name__}", "Connection") from None
        raise AssertionError("unreachable")

    def _note_time(self, out: dict) -> None:
        # MTurk's Date header: its clock, not ours, decides deadlines and expiry.
        from email.utils import parsedate_to_datetime
        date = (out.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get("date")
        try:
            self.server_time = parsedate_to_datetime(date) if date else self.server_time
        except (TypeError, ValueError):
            pass

    def pages(self, operation: str, key: str, **params):
        """Yield every item of a NextToken-paginated listing (100 per call)."""
        token = None
        while True:
            extra = {"NextToken": token} if token else {}
            page = self.call(operation, MaxResults=100, **params, **extra)
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return

    # ------------------------------------------------------------------ operations
    def balance(self) -> str:
        """Return the available balance as a string of dollars ('10000.00')."""
        return self.call("GetAccountBalance")["AvailableBalance"]

    def create_hit(self, token: str, annotation: str, **params) -> Created:
        """CreateHIT with `token`; a repeat of the token resolves to the existing HIT
        (MTurk answers a duplicate token with an error naming it)."""
        try:
            return Created(self.call("CreateHIT", UniqueRequestToken=token,
                                     RequesterAnnotation=annotation, **params)["HIT"], False)
        except MTurkFailure as exc:
            if "AlreadyExists" not in exc.turk_code and "already exists" not in str(exc):
                raise
            existing = self._find_existing(str(exc), annotation)
            if existing is None:
                raise MTurkFailure(f"MTurk says a HIT with this request token exists but it "
                                   f"cannot be found: {exc}", exc.code, exc.turk_code) from None
            return Created(existing, True)

    def _find_existing(self, message: str, annotation: str) -> dict | None:
        for hit_id in re.findall(r"\b[0-9A-Z]{30}\b", message):
            try:
                hit = self.call("GetHIT", HITId=hit_id)["HIT"]
            except MTurkFailure:
                continue
            if hit.get("RequesterAnnotation") == annotation:
                return hit
        for hit in self.pages("ListHITs", "HITs"):
            if hit.get("RequesterAnnotation") == annotation:
                return hit
        return None

    def hit(self, hit_id: str) -> dict:
        """Return GetHIT's HIT."""
        return self.call("GetHIT", HITId=hit_id)["HIT"]

    def hits(self):
        """Yield every HIT of the account (all pages)."""
        return self.pages("ListHITs", "HITs")

    def assignments(self, hit_id: str, statuses=("Submitted", "Approved", "Rejected")):
        """Yield every assignment of a HIT with one of `statuses` (all pages)."""
        return self.pages("ListAssignmentsForHIT", "Assignments", HITId=hit_id,
                          AssignmentStatuses=list(statuses))

    def assignment(self, assignment_id: str) -> dict:
        """Return GetAssignment's Assignment."""
        return self.call("GetAssignment", AssignmentId=assignment_id)["Assignment"]

    def approve(self, assignment_id: str, feedback: str | None = None,
                override: bool = False) -> None:
        """Approve a submitted assignment (a rejected one with `override`)."""
        params = {"AssignmentId": assignment_id, "OverrideRejection": override}
        if feedback:
            params["RequesterFeedback"] = feedback
        self.call("ApproveAssignment", **params)

    def reject(self, assignment_id: str, feedback: str) -> None:
        """Reject a submitted assignment with the feedback the worker will read."""
        self.call("RejectAssignment", AssignmentId=assignment_id, RequesterFeedback=feedback)

    def send_bonus(self, worker_id: str, assignment_id: str, amount: str, reason: str,
                   token: str) -> bool:
        """Pay a bonus; return False when the token shows it was paid before."""
        try:
            self.call("SendBonus", WorkerId=worker_id, AssignmentId=assignment_id,
                      BonusAmount=amount, Reason=reason, UniqueRequestToken=token)
            return True
        except MTurkFailure as exc:
            if "Duplicate" in exc.turk_code or "already" in str(exc).lower():
                return False
            raise

    def expire(self, hit_id: str) -> None:
        """Expire a HIT now, pending assignments or not (expiry set to a past time)."""
        self.call("UpdateExpirationForHIT", HITId=hit_id,
                  ExpireAt=datetime(2015, 1, 1, tzinfo=UTC))

    def set_expiration(self, hit_id: str, when: datetime) -> None:
        """Move a HIT's expiry to `when` (a future time re-opens an expired HIT)."""
        self.call("UpdateExpirationForHIT", HITId=hit_id, ExpireAt=when)

    def add_assignments(self, hit_id: str, extra: int, token: str) -> bool:
        """Add `extra` assignments; return False when the token shows it was done."""
        try:
            self.call("CreateAdditionalAssignmentsForHIT", HITId=hit_id,
                      NumberOfAdditionalAssignments=extra, UniqueRequestToken=token)
            return True
        except MTurkFailure as exc:
            if "Duplicate" in exc.turk_code or "already" in str(exc).lower():
                return False
            raise

    def find_qualification_type(self, name: str) -> str | None:
        """Return the id of the requester's qualification type called `name`, or None."""
        for t in self.pages("ListQualificationTypes", "QualificationTypes", Query=name,
                            MustBeRequestable=False, MustBeOwnedByCaller=True):
            if t.get("Name") == name:
                return t["QualificationTypeId"]
        return None

    def qualification_type(self, name: str, description: str) -> tuple[str, bool]:
        """Return (id, created) of the requester's qualification type called `name`,
        creating it when there is none (names are unique per requester)."""
        found = self.find_qualification_type(name)
        if found:
            return found, False
        try:
            t = self.call("CreateQualificationType", Name=name, Description=description,
                          QualificationTypeStatus="Active")["QualificationType"]
            return t["QualificationTypeId"], True
        except MTurkFailure as exc:
            if "AlreadyExists" not in exc.turk_code:
                raise
            # Created by a concurrent run between our listing and our creation.
            return self.qualification_type(name, description)[0], False

    def grant(self, qualification_type_id: str, worker_id: str, value: int = 1) -> None:
        """Give `worker_id` the qualification (no e-mail to the worker)."""
        self.call("AssociateQualificationWithWorker",
                  QualificationTypeId=qualification_type_id, WorkerId=worker_id,
                  IntegerValue=int(value), SendNotification=False)

    def notify(self, subject: str, message: str, worker_ids: list[str]) -> list[dict]:
        """NotifyWorkers for at most 100 workers; return MTurk's failure statuses."""
        if not 1 <= len(worker_ids) <= 100:
            raise ValueError("NotifyWorkers takes 1 to 100 workers a call")
        return self.call("NotifyWorkers", Subject=subject, MessageText=message,
                         WorkerIds=list(worker_ids)).get("NotifyWorkersFailureStatuses", [])

    def retype(self, hit_id: str, **type_fields) -> str:
        """Give a HIT the HIT type with `type_fields` (reward, texts, qualification
        requirements); return the new HIT type id."""
        type_id = self.call("CreateHITType", **type_fields)["HITTypeId"]
        self.call("UpdateHITTypeOfHIT", HITId=hit_id, HITTypeId=type_id)
        return type_id

    def delete(self, hit_id: str) -> None:
        """Delete (dispose of) a reviewable HIT whose assignments are all decided."""
        self.call("DeleteHIT", HITId=hit_id)


def _readable(operation: str, code: str, turk: str, message: str, throttled: bool,
              safe: bool) -> str:
    if "InsufficientFunds" in turk or "insufficient funds" in message.lower():
        return (f"{operation}: insufficient funds in the requester account. Add funds at "
                "https://requester.mturk.com/account (prepaid HITs) and run the command "
                "again.")
    if throttled:
        why = "retries exhausted" if safe else "not retried: repeating it could act twice"
        return f"{operation}: MTurk throttled the request ({why}). Wait a minute and run again."
    if code == "ServiceFault":
        return f"{operation}: MTurk had an internal error ({message}). Try again later."
    return f"{operation}: {message}" + (f" [{turk}]" if turk else "")


def as_utc(value) -> datetime | None:
    """Return an MTurk timestamp (botocore's datetime, or epoch seconds) as an aware UTC
    datetime; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)

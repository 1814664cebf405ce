"""Prolific's public REST API (`/api/v1/`), its request and response shapes in one place:
what the client sends, what the local endpoint answers, what the commands read.

From Prolific's API reference (docs.prolific.com/api-reference): studies are created
unpublished (`POST /studies/`) and change state by `POST /studies/{id}/transition/`
(`PUBLISH`, `PAUSE`, `START`, `STOP`); a submission is approved or rejected by
`POST /submissions/{id}/transition/` (a rejection needs a `rejection_category` and a
`message` of at least 100 characters), many at once by `POST /submissions/bulk-approve/`;
a bonus is set up by `POST /submissions/bonus-payments/` (a CSV of participant and amount
in the study's currency) and paid by `POST /bulk-bonus-payments/{id}/pay/` (not
idempotent: paying twice pays twice). Lists come as `{"results": [...], "_links":
{"next": {"href": ...}}, "meta": {"count": n}}`; errors as `{"error": {"status",
"error_code", "title", "detail", "additional_information"}}`. Money is in pence/cents.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

API_PATH = "/api/v1"
DEFAULT_API_URL = "https://api.prolific.com"
DEFAULT_COMPLETION_URL = "https://app.prolific.com/submissions/complete"

# The study URL's placeholders, filled by Prolific for each participant.
PLACEHOLDERS = {"PROLIFIC_PID": "{{%PROLIFIC_PID%}}", "STUDY_ID": "{{%STUDY_ID%}}",
                "SESSION_ID": "{{%SESSION_ID%}}"}

# The transitions that lead out of each study state (Prolific's study life).
STUDY_TRANSITIONS = {
    "PUBLISH": {"UNPUBLISHED": "ACTIVE"},
    "PAUSE": {"ACTIVE": "PAUSED"},
    "START": {"PAUSED": "ACTIVE"},
    "STOP": {"ACTIVE": "AWAITING REVIEW", "PAUSED": "AWAITING REVIEW"},
}

# Submission statuses as the API writes them -> the provenance statuses (provenance.py).
SUBMISSION_STATUSES = {
    "RESERVED": "active", "ACTIVE": "active", "AWAITING REVIEW": "awaiting-review",
    "APPROVED": "approved", "REJECTED": "rejected", "RETURNED": "returned",
    "TIMED-OUT": "timed-out", "SCREENED OUT": "screened-out",
    "PARTIALLY APPROVED": "partially-approved",
}
SUBMISSION_ACTIONS = ("APPROVE", "REJECT")
REJECTION_CATEGORIES = ("TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS",
                        "INCOMP_LONGITUDINAL", "FAILED_CHECK", "LOW_EFFORT", "MALINGERING",
                        "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER")
MIN_REJECT_MESSAGE = 100
# Prolific's service fee on rewards and bonuses (its researcher pricing: 33.3 %; VAT comes
# on top for UK and EU workspaces). `publish --fee-rate` overrides it; check the current
# rate on Prolific's pricing page before a real run.
FEE_RATE = Decimal("0.333")


def service_fee(cents: int, rate: Decimal) -> int:
    """Return Prolific's service fee on `cents` at `rate`, in whole pence/cents (half up)."""
    return int((Decimal(cents) * rate).quantize(Decimal(1), ROUND_HALF_UP))


def money(cents: int) -> str:
    """Return pence/cents as pounds/dollars with two decimals."""
    return f"{cents // 100}.{cents % 100:02d}"

# Completion codes: what the participant's code means and what Prolific does with it.
CODE_TYPES = ("COMPLETED", "FAILED_ATTENTION_CHECK", "OTHER")
CODE_ACTIONS = ("MANUALLY_REVIEW", "AUTOMATICALLY_APPROVE", "REQUEST_RETURN")
DEVICES = ("desktop", "tablet", "mobile")
ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")       # study, submission, participant ids


class ShapeError(ValueError):
    """A response that does not have the documented shape."""


@dataclass(frozen=True)
class Study:
    """A study as the API returns it (the fields this platform reads)."""
    id: str
    internal_name: str
    status: str
    total_available_places: int


@dataclass(frozen=True)
class Submission:
    """A submission as the API returns it: `status` is the API's, `local_status` ours."""
    id: str
    participant_id: str
    status: str
    study_code: str | None

    @property
    def local_status(self) -> str:
        return submission_status(self.status)


def submission_status(api_status: str) -> str:
    """Return the provenance status of Prolific submission status `api_status`;
    ShapeError for a status Prolific does not document."""
    try:
        return SUBMISSION_STATUSES[api_status]
    except KeyError:
        raise ShapeError(f"unknown Prolific submission status {api_status!r}") from None


def study_url(base: str) -> str:
    """Return the external study URL: `base` with the three placeholders appended."""
    sep = "&" if "?" in base else "?"
    return base + sep + "&".join(f"{k}={v}" for k, v in PLACEHOLDERS.items())


def completion_code(code: str, code_type: str = "COMPLETED",
                    action: str = "MANUALLY_REVIEW") -> dict:
    """Return one entry of a study's `completion_codes`."""
    return {"code": code, "code_type": code_type, "actor": "participant",
            "actions": [{"action": action}]}


def study_body(*, name: str, internal_name: str, description: str, external_study_url: str,
               places: int, reward_cents: int, minutes: int, max_minutes: int,
               codes: list[dict], filters: list[dict] | None = None,
               devices: tuple[str, ...] = ("desktop",)) -> dict:
    """Return the body of `POST /api/v1/studies/` (a draft study)."""
    return {"name": name, "internal_name": internal_name, "description": description,
            "external_study_url": external_study_url,
            "prolific_id_option": "url_parameters",
            "completion_codes": codes, "total_available_places": places,
            "estimated_completion_time": minutes, "maximum_allowed_time": max_minutes,
            "reward": reward_cents, "device_compatibility": list(devices),
            "peripheral_requirements": [], "filters": list(filters or [])}


def reject_body(category: str, message: str) -> dict:
    """Return the body of a REJECT transition."""
    return {"action": "REJECT", "rejection_category": category, "message": message}


def check_rejection(category: str, message: str) -> list[str]:
    """Return the problems of a rejection ([] when Prolific would take it)."""
    problems = []
    if category not in REJECTION_CATEGORIES:
        problems.append(f"unknown rejection category {category!r} (one of "
                        f"{', '.join(REJECTION_CATEGORIES)})")
    if len((message or "").strip()) < MIN_REJECT_MESSAGE:
        problems.append(f"the rejection message must be at least {MIN_REJECT_MESSAGE} "
                        f"characters (Prolific's rule; it has {len((message or '').strip())})")
    return problems


def bonus_csv(rows: list[tuple[str, int]]) -> str:
    """Return `csv_bonuses`: one "participant id,amount" line each, amounts in pounds or
    dollars with two decimals (Prolific's format), from amounts in pence/cents."""
    return "\n".join(f"{pid},{money(cents)}" for pid, cents in rows)


def error_body(status: int, title: str, detail, code: int = 0) -> dict:
    """Return an error response body as Prolific writes it."""
    return {"error": {"status": status, "error_code": code or status * 1000,
                      "title": title, "detail": detail,
                      "additional_information": "/api/v1/errors/", "interactive": False}}


def error_message(body) -> str:
    """Return one line from an error response body (any shape)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        detail = err.get("detail")
        if isinstance(detail, dict):
            detail = "; ".join(f"{k}: {' '.join(v) if isinstance(v, list) else v}"
                               for k, v in detail.items())
        elif isinstance(detail, list):
            detail = "; ".join(map(str, detail))
        return f"{err.get('title', 'error')}: {detail}" if detail else str(err.get("title"))
    return str(body)[:300]


def _need(doc: dict, key: str, kind):
    if not isinstance(doc, dict) or key not in doc or not isinstance(doc[key], kind):
        raise ShapeError(f"Prolific's response lacks {key!r}")
    return doc[key]


def parse_study(doc: dict) -> Study:
    """Return the Study in a response; ShapeError when it lacks what is read."""
    return Study(id=_need(doc, "id", str), internal_name=doc.get("internal_name") or "",
                 status=_need(doc, "status", str),
                 total_available_places=int(doc.get("total_available_places") or 0))


def parse_submission(doc: dict) -> Submission:
    """Return the Submission in a response; ShapeError when it lacks what is read."""
    pid = doc.get("participant_id") or doc.get("participant")
    if not isinstance(pid, str):
        raise ShapeError("Prolific's submission lacks 'participant_id'")
    status = _need(doc, "status", str)
    submission_status(status)
    return Submission(id=_need(doc, "id", str), participant_id=pid, status=status,
                      study_code=doc.get("study_code") or doc.get("entered_code"))


def results(doc: dict) -> tuple[list, str | None]:
    """Return (results, URL of the next page or None) of a list response."""
    items = _need(doc, "results", list)
    nxt = ((doc.get("_links") or {}).get("next") or {}).get("href")
    return items, nxt

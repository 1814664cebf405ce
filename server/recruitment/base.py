"""The platform interface: how a participant enters (identity and environment), how they
leave (exit response), and the requester's operations, which a platform may lack.

Platforms are plain objects satisfying `Platform`; `server.recruitment` registers them by
name. The recording core and the analysis know a platform only through the provenance
columns an `Identity` fills (platform, environment, external ids, submission status).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from provenance import PLATFORMS as FACTS
from provenance import Environment  # noqa: F401  (re-exported: the table lives there)

# The requester's operations, in the order a study goes through them. A platform that has
# no requester side (the lab) simply lacks these methods; `supports()` tells.
REQUESTER_OPERATIONS = ("publish", "status", "sync", "review", "approve", "reject", "bonus",
                        "cost")


class UnknownName(ValueError):
    """A platform, environment, status or repeat policy that is not in its table."""


class EntryError(ValueError):
    """A platform's link that cannot start a participant (no id, a bad id, a study that is
    not set up for the platform)."""


@dataclass(frozen=True)
class Identity:
    """Who a participant is on their platform: the provenance kept with every answer."""
    platform: str
    environment: str
    external_participant_id: str | None = None   # MTurk worker id, lab code, panel id
    external_session_id: str | None = None       # MTurk assignment id
    external_study_id: str | None = None         # MTurk HIT id


@dataclass(frozen=True)
class ExitResponse:
    """How a participant leaves: `kind` is "page" (a completion page of ours),
    "submit-form" (a form the page POSTs to `url` with `fields`, e.g. MTurk's
    externalSubmit) or "redirect" (to `url`, e.g. with a completion code)."""
    kind: str
    url: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    code: str | None = None  # the completion code shown to the participant, if any


@runtime_checkable
class Platform(Protocol):
    """What every platform provides. Requester operations (REQUESTER_OPERATIONS) are
    optional methods; a platform without a requester side leaves them out."""

    name: str
    # Submission statuses in the order a participant goes through them; the first is the
    # status a new participant gets.
    statuses: tuple[str, ...]
    # Statuses after which the participant's answers are refused (returned, expired).
    closed_statuses: frozenset[str]
    environments: tuple[str, ...]

    def identity(self, **entry: Any) -> Identity:
        """Return the participant's Identity from the entry parameters (URL or form)."""
        ...

    def exit_response(self, experiment, participant, /, **context: Any) -> ExitResponse:
        """Return how `participant` leaves `experiment` once every trial is answered."""
        ...


class TabledPlatform:
    """Base of the platforms: their statuses, closed statuses and environments are their
    row of provenance.PLATFORMS (by `name`), read there rather than copied."""

    name: str

    @property
    def statuses(self) -> tuple[str, ...]:
        """Its submission statuses, in the order a participant goes through them."""
        return FACTS[self.name].statuses

    @property
    def closed_statuses(self) -> frozenset[str]:
        """The statuses after which its participants' answers are refused."""
        return FACTS[self.name].closed_statuses

    @property
    def environments(self) -> tuple[str, ...]:
        """The environments it records."""
        return FACTS[self.name].environments


def supports(platform: Platform, operation: str) -> bool:
    """Return True when `platform` implements the requester `operation`."""
    if operation not in REQUESTER_OPERATIONS:
        raise UnknownName(f"unknown requester operation {operation!r} (one of "
                          f"{', '.join(REQUESTER_OPERATIONS)})")
    return callable(getattr(platform, operation, None))

"""The provenance tables: environments, and each platform's submission statuses,
closed statuses and environments. Pure data with no imports, read by the web side
(`server.recruitment`, which enforces them) and by the analysis (`analysis.counting`,
which counts by them), so that an unknown value is an error in both places and the
analysis and the machine side never load the web server to learn them.

A new platform adds one row to `PLATFORMS` here and its folder in server/recruitment/.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Environment:
    """Where answers are collected: `rehearsal` environments never reach a production
    table unless asked for by name."""
    name: str
    rehearsal: bool
    description: str


@dataclass(frozen=True)
class PlatformFacts:
    """What the tables know of a platform: its submission statuses in the order a
    participant goes through them (the first is a new participant's), the statuses after
    which answers are refused, and the environments it records."""
    statuses: tuple[str, ...]
    closed_statuses: frozenset[str]
    environments: tuple[str, ...]


ENVIRONMENTS: dict[str, Environment] = {e.name: e for e in (
    Environment("lab", False, "participants in the lab, entering with a code"),
    Environment("simulated", False, "simulated participants (scripts, load tests)"),
    # Anyone may call the JSON API: its participants count only when asked for by name.
    Environment("api", True, "participants the JSON API created (scripts, another front "
                             "end): counted only when named"),
    Environment("local-sandbox", True, "a dry run against the local MTurk-compatible endpoint"),
    Environment("sandbox", True, "a platform's sandbox: rehearsal with test workers"),
    Environment("production", False, "real recruitment on a platform"),
)}

PLATFORMS: dict[str, PlatformFacts] = {
    "lab": PlatformFacts(("recorded",), frozenset(), ("lab",)),
    "simulated": PlatformFacts(("recorded",), frozenset(), ("simulated",)),
    "api": PlatformFacts(("recorded",), frozenset(), ("api",)),
    # MTurk's life of an assignment; `abandoned` = accepted, never submitted, expired.
    "mturk": PlatformFacts(("accepted", "submitted", "approved", "rejected", "returned",
                            "abandoned"), frozenset({"returned", "abandoned"}),
                           ("local-sandbox", "sandbox", "production")),
    # A link-based panel (SONA, Connect, ...): no requester API, answers count as recorded.
    "panel": PlatformFacts(("recorded",), frozenset(), ("production",)),
    # Prolific's life of a submission (its API's statuses, lower case with hyphens):
    # `returned` = the participant gave it back, `timed-out` = over the maximum time.
    # local-sandbox: the local Prolific-compatible endpoint (`prolific emulate`).
    "prolific": PlatformFacts(("active", "awaiting-review", "approved", "rejected",
                               "returned", "timed-out", "screened-out",
                               "partially-approved"),
                              frozenset({"returned", "timed-out"}),
                              ("local-sandbox", "production")),
}

STATUSES: dict[str, tuple[str, ...]] = {name: f.statuses for name, f in PLATFORMS.items()}

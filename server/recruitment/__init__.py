"""Where participants come from and go back to: platforms registered by name, the one
table of environments, the submission statuses of each platform and the repeat policies.

- `platform(name) -> Platform` (UnknownName for a name not registered); `PLATFORMS`.
- `ENVIRONMENTS`: `lab`, `simulated`, `api`, `local-sandbox`, `sandbox`, `production`;
  `environment(name)`.
- `STATUSES`: {platform: its submission statuses}; `check_status(platform, status)`.
- `REPEATS`: the repeat policies (`none`, `per-hit`, `allow`); `repeat_key(...)` is the
  derived key that a unique index on participants enforces.
- `deployment.deployment_id()`: this deployment's identity, kept in its database.

The recording core and the analysis know platforms only as provenance columns.
"""
from __future__ import annotations

import provenance as _TABLES

from .base import REQUESTER_OPERATIONS, Environment, ExitResponse, Identity, Platform, UnknownName, supports
from .local import API, LAB, SIMULATED
from .mturk import MTURK
from .panel import PANEL
from .prolific import PROLIFIC

__all__ = ["ENVIRONMENTS", "PLATFORMS", "REPEATS", "STATUSES", "REQUESTER_OPERATIONS",
           "Environment", "ExitResponse", "Identity", "Platform", "UnknownName",
           "check_status", "environment", "platform", "register", "repeat_key", "supports"]

ENVIRONMENTS: dict[str, Environment] = _TABLES.ENVIRONMENTS

PLATFORMS: dict[str, Platform] = {}


def register(p: Platform) -> Platform:
    """Add platform `p` to the registry (its environments must be in ENVIRONMENTS)."""
    if p.name not in _TABLES.PLATFORMS:
        raise UnknownName(f"platform {p.name!r} has no row in provenance.PLATFORMS")
    unknown = [e for e in p.environments if e not in ENVIRONMENTS]
    if unknown:
        raise UnknownName(f"platform {p.name!r} names unknown environment(s) "
                          f"{', '.join(unknown)}")
    PLATFORMS[p.name] = p
    return p


for _p in (LAB, SIMULATED, API, MTURK, PANEL, PROLIFIC):
    register(_p)

STATUSES: dict[str, tuple[str, ...]] = {name: p.statuses for name, p in PLATFORMS.items()}


def platform(name: str) -> Platform:
    """Return the platform registered as `name`; UnknownName otherwise."""
    try:
        return PLATFORMS[name]
    except KeyError:
        raise UnknownName(f"unknown platform {name!r} (one of {', '.join(PLATFORMS)})") from None


def environment(name: str) -> Environment:
    """Return the environment `name`; UnknownName otherwise."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise UnknownName(f"unknown environment {name!r} (one of "
                          f"{', '.join(ENVIRONMENTS)})") from None


def check_status(platform_name: str, status: str) -> str:
    """Return `status` if it is one of the platform's submission statuses; UnknownName
    otherwise."""
    allowed = platform(platform_name).statuses
    if status not in allowed:
        raise UnknownName(f"unknown {platform_name} status {status!r} (one of "
                          f"{', '.join(allowed)})")
    return status


# Repeat policies: who may take part again in one experiment.
REPEATS: dict[str, str] = {
    "none": "once per experiment (one participant per person)",
    "per-hit": "at most once per HIT / study, any number of them (the paper's MTurk design)",
    "allow": "any number of times",
}


def check_repeats(policy: str) -> str:
    """Return `policy` if it is a repeat policy; UnknownName otherwise."""
    if policy not in REPEATS:
        raise UnknownName(f"unknown repeat policy {policy!r} (one of {', '.join(REPEATS)})")
    return policy


def repeat_key(policy: str, identity: Identity) -> str | None:
    """Return the key that participants of one experiment may not share under `policy`
    (None where anything goes): the person for `none`, the person and the HIT/study for
    `per-hit`. A unique index on (experiment_id, repeat_key) enforces it, so two tabs or
    two HITs opened at once cannot get around it."""
    check_repeats(policy)
    if policy == "allow" or not identity.external_participant_id:
        return None
    person = f"{identity.platform}:{identity.external_participant_id}"
    if policy == "none":
        return person
    return f"{person}:{identity.external_study_id or ''}"

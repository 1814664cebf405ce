"""Exclusion before accepting: one MTurk qualification type per experiment (and
environment) that marks the workers who may not take its HITs. `publish` creates or
reuses it, grants it to the workers of earlier studies (`--exclude-workers`), and makes
every HIT require it `DoesNotExist`; the worker page grants it to each worker who starts
when the repeat policy excludes past participants. MTurk then hides the HITs from those
workers: they are never offered a HIT only to be told to return it.
"""
from __future__ import annotations

import csv
import logging
import re
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..models import Experiment, MturkQualification, Participant, db
from .requester import Requester

log = logging.getLogger(__name__)
_WORKER_ID = re.compile(r"^[A-Z0-9]{6,64}$")
_ID_COLUMNS = ("WorkerId", "worker_id", "external_participant_id")
_REQUESTERS: dict[tuple[str, str | None], Requester] = {}
_LOCK = threading.Lock()


def qualification_name(deployment: str, experiment: Experiment) -> str:
    """Return the name of the experiment's exclusion qualification (names are unique
    per requester account, so the deployment is part of it)."""
    return f"tll {deployment[:12]} took part: {experiment.name}"[:200]


def excludes_past_participants(experiment: Experiment) -> bool:
    """Whether the experiment's repeat policy keeps a worker to one participation in the
    whole experiment (then its HITs are hidden from those who took part)."""
    from ..recruitment import check_repeats
    return check_repeats(experiment.repeats) == "none"


def requirement(qualification_type_id: str) -> dict:
    """Return the QualificationRequirement that keeps holders of the type out."""
    return {"QualificationTypeId": qualification_type_id, "Comparator": "DoesNotExist",
            "ActionsGuarded": "DiscoverPreviewAndAccept"}


def recorded(experiment: Experiment, environment: str) -> str | None:
    """Return the exclusion qualification type id recorded for (experiment, env)."""
    return db.session.execute(select(MturkQualification.qualification_type_id).where(
        MturkQualification.experiment_id == experiment.id,
        MturkQualification.environment == environment)).scalar_one_or_none()


def ensure(requester: Requester, experiment: Experiment, deployment: str,
           create: bool = True) -> str | None:
    """Return the experiment's exclusion qualification type id in the requester's
    environment, finding it on MTurk or creating it (when `create`), and record it."""
    known = recorded(experiment, requester.label)
    if known:
        return known
    name = qualification_name(deployment, experiment)
    if create:
        qid, _ = requester.qualification_type(
            name, f"Took part in (or is excluded from) the study {experiment.name!r}; "
                  "its HITs are not offered to holders.")
    else:
        qid = requester.find_qualification_type(name)
        if qid is None:
            return None
    db.session.add(MturkQualification(experiment_id=experiment.id,
                                      environment=requester.label, qualification_type_id=qid))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return recorded(experiment, requester.label)
    return qid


class ExclusionError(ValueError):
    """A --exclude-workers source that cannot be read; one message per problem."""


def excluded_workers(sources: list[str]) -> list[str]:
    """Return the sorted worker ids of each source: a file (one id a line, or a CSV with
    a WorkerId / worker_id / external_participant_id column) or the name of an
    experiment in this database (its MTurk workers)."""
    ids: set[str] = set()
    problems = []
    for src in sources:
        path = Path(src)
        if path.is_file():
            found, bad = _read_ids(path)
            problems += [f"{src}: {b!r} is not a worker id" for b in bad[:5]]
            ids |= found
            continue
        exp = db.session.execute(select(Experiment).where(Experiment.name == src)
                                 ).scalar_one_or_none()
        if exp is None:
            problems.append(f"--exclude-workers {src!r} is neither a file nor an experiment "
                            "of this database")
            continue
        ids |= set(db.session.execute(select(Participant.worker_id).where(
            Participant.experiment_id == exp.id, Participant.worker_id.is_not(None))
        ).scalars())
    if problems:
        raise ExclusionError(problems)
    return sorted(ids)


def _read_ids(path: Path) -> tuple[set[str], list[str]]:
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    if any(col in first.split(",") for col in _ID_COLUMNS):
        rows = list(csv.DictReader(text.splitlines()))
        col = next(c for c in _ID_COLUMNS if c in rows[0]) if rows else None
        values = [(r.get(col) or "").strip() for r in rows] if col else []
    else:
        values = [ln.strip() for ln in text.splitlines()]
    values = [v for v in values if v and not v.startswith("#")]
    good = {v for v in values if _WORKER_ID.match(v)}
    return good, [v for v in values if not _WORKER_ID.match(v)]


def _requester(environment: str, endpoint_url: str | None) -> Requester:
    # boto3 clients are thread-safe and slow to build: one per (environment, endpoint).
    key = (environment, endpoint_url)
    with _LOCK:
        if key not in _REQUESTERS:
            _REQUESTERS[key] = Requester(environment, endpoint_url, retries=2)
        return _REQUESTERS[key]


def mark_started(experiment: Experiment, environment_label: str, worker_id: str,
                 endpoint_url: str | None) -> bool:
    """Grant the experiment's exclusion qualification to a worker who starts, so MTurk
    hides its other HITs from them; return True when granted. Never raises: a failure is
    logged and `sync` grants it again later, so the participant's start is never lost."""
    try:
        if not excludes_past_participants(experiment):
            return False
        qid = recorded(experiment, environment_label)
        if qid is None:
            return False
        local = environment_label.startswith("local-")
        env = environment_label.removeprefix("local-")
        _requester(env, endpoint_url if local else None).grant(qid, worker_id)
        return True
    except Exception as exc:  # noqa: BLE001  (nothing here may cost the participant's start)
        db.session.rollback()
        log.warning("could not grant the exclusion qualification of %s to %s: %s",
                    experiment.name, worker_id, exc)
        return False

"""Answers export (docs/contracts.md §6): one row per answer joined with the trial's
metadata, as CSV or JSON, usable without HTTP (inside an app context)."""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json

from flask import current_app
from sqlalchemy import select

from spreadsheet import neutralise

from .models import Experiment, Participant, Response, Trial, db, iso_utc

COLUMNS = ["experiment", "participant", "population", "trial", "trial_order", "condition",
           "subset", "pair", "catch", "chosen_position", "true_position", "correct", "rt_ms",
           "received_at", "hit_id", "assignment_id", "worker_id",
           # Provenance (server.recruitment): what the analysis counts by.
           "platform", "environment", "external_participant_id", "external_session_id",
           "external_study_id", "submission_status", "status_synced_at", "viewport",
           "screen",
           # Withdrawal: empty unless the participant withdrew (rows present only when the
           # export was asked to include withdrawn participants).
           "withdrawn_at"]


def pseudonym(value: str | None, key: str | None = None) -> str:
    """Return the HMAC-SHA256 pseudonym (16 hex digits) of `value` under the instance's
    pseudonym key; '' for None."""
    if value is None or value == "":
        return ""
    k = (key or current_app.config["PSEUDONYM_KEY"]).encode()
    return hmac.new(k, value.encode(), hashlib.sha256).hexdigest()[:16]


def participant_label(p: Participant) -> str:
    """Return the raw identifier of a participant: the code, with the attempt number for
    repeated codes."""
    return p.code if p.attempt == 1 else f"{p.code}#{p.attempt}"


# Text cells a spreadsheet would read as a formula get a leading single quote in the CSV
# export (spreadsheet.py, shared with the analysis).
# Numeric columns are never touched; every other column holds text (ids, labels, codes).
NUMERIC_COLUMNS = frozenset(("trial_order", "catch", "chosen_position", "true_position",
                             "correct", "rt_ms"))


def _is_text(column: str) -> bool:
    return column not in NUMERIC_COLUMNS and not column.startswith("machine:")


def columns(experiment: Experiment) -> list[str]:
    """Return the export's columns: the fixed ones, then `machine:<key>` sorted."""
    return COLUMNS + [f"machine:{k}" for k in experiment.feature_set_keys()]


_iso = iso_utc


def _size(width: int | None, height: int | None) -> str:
    """Return 'WIDTHxHEIGHT' ('' when not recorded)."""
    return "" if width is None or height is None else f"{width}x{height}"


def export_rows(experiment: Experiment, raw: bool = False, include_withdrawn: bool = False,
                participant: Participant | None = None) -> list[dict]:
    """Return one dict per answer of `experiment` with exactly `columns(experiment)` keys,
    ordered by participant then trial order. Participant and worker ids are pseudonymised
    unless `raw`. Withdrawn participants' answers are left out unless
    `include_withdrawn` (their rows then carry `withdrawn_at`); `participant` keeps one
    participant's answers only."""
    keys = experiment.feature_set_keys()
    q = (select(Response, Participant, Trial)
         .join(Participant, Response.participant_id == Participant.id)
         .join(Trial, Response.trial_id == Trial.id)
         .where(Participant.experiment_id == experiment.id)
         .order_by(Participant.id, Response.trial_order))
    if not include_withdrawn:
        q = q.where(Participant.withdrawn_at.is_(None))
    if participant is not None:
        q = q.where(Participant.id == participant.id)
    rows = []
    for r, p, t in db.session.execute(q).all():
        label = participant_label(p)
        mc = json.loads(t.machine_choices or "{}")
        row = {
            "experiment": experiment.name,
            "participant": label if raw else pseudonym(label),
            "population": p.population,
            "trial": t.key,
            "trial_order": r.trial_order,
            "condition": t.condition,
            "subset": t.subset,
            "pair": t.pair,
            "catch": int(bool(t.catch)),
            "chosen_position": r.chosen_index + 1,
            "true_position": t.true_index + 1,
            "correct": int(r.chosen_index == t.true_index),
            "rt_ms": "" if r.rt_ms is None else r.rt_ms,
            "received_at": _iso(r.received_at),
            "hit_id": p.hit_id or "",
            "assignment_id": p.assignment_id or "",
            "worker_id": (p.worker_id or "") if raw else pseudonym(p.worker_id),
            "platform": p.platform,
            "environment": p.environment,
            "external_participant_id": ((p.external_participant_id or "") if raw
                                        else pseudonym(p.external_participant_id)),
            "external_session_id": p.external_session_id or "",
            "external_study_id": p.external_study_id or "",
            "submission_status": p.submission_status,
            "status_synced_at": _iso(p.status_synced_at),
            "viewport": _size(p.viewport_width, p.viewport_height),
            "screen": _size(p.screen_width, p.screen_height),
            "withdrawn_at": _iso(p.withdrawn_at),
        }
        for k in keys:
            v = mc.get(k)
            row[f"machine:{k}"] = "" if v is None else v + 1
        rows.append(row)
    return rows


def to_csv(experiment: Experiment, raw: bool = False, include_withdrawn: bool = False,
           participant: Participant | None = None) -> str:
    """Return the CSV export of `experiment` as text (header + one line per answer);
    withdrawn participants only when `include_withdrawn`, one participant's answers only
    when `participant` is given."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=columns(experiment), lineterminator="\n")
    w.writeheader()
    for row in export_rows(experiment, raw, include_withdrawn, participant):
        w.writerow({k: (neutralise(v) if _is_text(k) else v) for k, v in row.items()})
    return out.getvalue()


def trial_rows(experiment: Experiment) -> list[dict]:
    """Return the experiment's trials (ids, condition, subset, pair, catch, 1-based true
    and machine positions, HIT) in file order."""
    out = []
    for t in experiment.trials:
        mc = json.loads(t.machine_choices or "{}")
        out.append({"trial": t.key, "condition": t.condition, "subset": t.subset,
                    "pair": t.pair, "catch": int(bool(t.catch)),
                    "true_position": t.true_index + 1, "hit": t.hit_key,
                    "machine": {k: (None if v is None else v + 1) for k, v in sorted(mc.items())}})
    return out


def to_json(experiment: Experiment, raw: bool = False, include_withdrawn: bool = False) -> dict:
    """Return the JSON export: {"experiment": {...}, "trials": [...], "answers": [...]}
    (withdrawn participants' answers only when `include_withdrawn`)."""
    return {
        "experiment": {"name": experiment.name, "file_sha256": experiment.file_sha256,
                       "seed": experiment.seed, "design": json.loads(experiment.design or "{}"),
                       "feature_sets": experiment.feature_set_keys(),
                       "trial_order": experiment.trial_order,
                       "participant_ids": "raw" if raw else "pseudonymised",
                       "withdrawn": "included" if include_withdrawn else "left out"},
        "trials": trial_rows(experiment),
        "answers": export_rows(experiment, raw, include_withdrawn),
    }

"""Publishing an experiment as a Prolific study, idempotently: the study record is kept
before Prolific is called, the study is found again by its internal name when Prolific's
answer was lost, and a draft left by an interrupted run is published by the next one, so
that rerunning `publish` finishes the job and never makes a second study."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from ...models import db
from ..deployment import deployment_id
from . import shapes
from .client import Client
from .models import ProlificStudy
from .shapes import money


class PublishError(ValueError):
    """A publish that cannot go ahead (bad settings, a conflicting record)."""


@dataclass
class Plan:
    """What `publish` will create for one experiment on one API."""
    experiment: object
    environment: str
    api_url: str
    internal_name: str
    body: dict
    reward_cents: int
    places: int
    minutes: int
    completion_url: str
    completion_code: str
    failed_code: str | None
    fee_rate: Decimal

    def cost(self) -> tuple[int, int, int]:
        """Return (rewards, service fee, total) in pence/cents."""
        rewards = self.reward_cents * self.places
        fee = shapes.service_fee(rewards, self.fee_rate)
        return rewards, fee, rewards + fee

    def cost_line(self) -> str:
        rewards, fee, total = self.cost()
        return (f"Cost: {self.places} places x {money(self.reward_cents)} = {money(rewards)} "
                f"rewards + {money(fee)} service fee ({self.fee_rate * 100:.1f} %) = "
                f"{money(total)} in the workspace's currency (plus VAT where it applies)")


def parse_money(text: str) -> int:
    """Return a positive amount in pounds/dollars ("1.50") as pence/cents; ValueError."""
    try:
        value = Decimal(str(text).strip())
    except Exception:
        raise ValueError(f"{text!r} is not an amount (e.g. 1.50)") from None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{text!r} must be a positive amount with at most two decimals")
    if value > 10_000:
        raise ValueError(f"{text!r} is more than 10000")
    return int(value * 100)


def estimated_minutes(experiment) -> int:
    """Return the estimated completion time in minutes, as the participant pages state it
    (server.texts.minutes: trials times the seconds per trial — the researcher's, else
    measured on the experiment's answers, else the default — plus the reading)."""
    from ...texts import minutes
    return minutes(experiment)


def _code(experiment_name: str, kind: str) -> str:
    digest = hashlib.sha256(f"tll\x1f{deployment_id()}\x1f{experiment_name}\x1f{kind}"
                            .encode()).hexdigest()
    return ("C" if kind == "completed" else "F") + digest[:7].upper()


def internal_name(experiment_name: str) -> str:
    """Return the study's internal name: this deployment's and the experiment's, so that a
    rerun finds the study it made."""
    return f"tll:{deployment_id()[:16]}:{experiment_name}"


def make_plan(experiment, client: Client, *, base_url: str, places: int, reward_cents: int,
              minutes: int | None = None, max_minutes: int | None = None,
              title: str | None = None, description: str | None = None,
              screen_failed_catch: bool = False, filters: list | None = None,
              completion_url: str | None = None, fee_rate: Decimal = shapes.FEE_RATE) -> Plan:
    """Return the Plan of the study for `experiment`; PublishError for bad settings."""
    problems = []
    if not base_url or not base_url.startswith(("https://", "http://")):
        problems.append("--base-url must be the server's public http(s) URL")
    elif not base_url.startswith("https://") and not client.local:
        problems.append("Prolific needs an https study URL: give an https --base-url")
    if places < 1:
        problems.append("--places must be at least 1")
    minutes = minutes or estimated_minutes(experiment)
    max_minutes = max_minutes or max(minutes * 3, minutes + 10)
    if max_minutes < minutes:
        problems.append("--max-minutes must be at least the estimated minutes")
    if filters is not None and (not isinstance(filters, list)
                                or not all(isinstance(f, dict) for f in filters)):
        problems.append("filters must be a JSON list of Prolific filter objects")
    if problems:
        raise PublishError("; ".join(problems))
    completed = _code(experiment.name, "completed")
    failed = _code(experiment.name, "failed") if screen_failed_catch else None
    rec = recorded(experiment, client.api_url)
    if rec is not None:   # a rerun: the study keeps the codes it was made with
        completed, failed = rec.completion_code, rec.failed_code
    codes = [shapes.completion_code(completed)]
    if failed:
        codes.append(shapes.completion_code(failed, "FAILED_ATTENTION_CHECK"))
    url = shapes.study_url(f"{base_url.rstrip('/')}/lab/{experiment.name}/via/prolific")
    title = title or experiment.text("title")
    body = shapes.study_body(
        name=title or f"Which picture looks alike? ({experiment.name})",
        internal_name=internal_name(experiment.name),
        description=description or ("Look at a picture and choose, among five others, the "
                                     "one that looks most like it. A desktop or laptop "
                                     "computer with a wide window is needed."),
        external_study_url=url, places=places, reward_cents=reward_cents, minutes=minutes,
        max_minutes=max_minutes, codes=codes, filters=filters)
    completion = completion_url or (client.api_url + "/submissions/complete" if client.local
                                    else shapes.DEFAULT_COMPLETION_URL)
    return Plan(experiment, "local-sandbox" if client.local else "production",
                client.api_url, body["internal_name"], body, reward_cents, places, minutes,
                completion.rstrip("/"), completed, failed, fee_rate)


def recorded(experiment, api_url: str) -> ProlificStudy | None:
    """Return the study record of `experiment` on the API at `api_url`, or None."""
    return db.session.execute(select(ProlificStudy).where(
        ProlificStudy.experiment_id == experiment.id,
        ProlificStudy.api_url == api_url)).scalar_one_or_none()


def publish(plan: Plan, client: Client, say=print) -> ProlificStudy:
    """Create and publish the planned study, or finish what an interrupted run left
    (a record without a study id: the study is looked up by its internal name; a draft:
    it is published); return the record. ProlificFailure propagates with the record kept,
    so that the next run continues."""
    rec = recorded(plan.experiment, plan.api_url)
    if rec is None:
        rec = ProlificStudy(experiment_id=plan.experiment.id, environment=plan.environment,
                            api_url=plan.api_url, internal_name=plan.internal_name,
                            status="creating", completion_url=plan.completion_url,
                            completion_code=plan.completion_code, failed_code=plan.failed_code,
                            reward_cents=plan.reward_cents, places=plan.places,
                            minutes=plan.minutes, body=json.dumps(plan.body, sort_keys=True))
        db.session.add(rec)
        db.session.commit()
    elif (rec.reward_cents, rec.places) != (plan.reward_cents, plan.places):
        say(f"note: the study was created with {rec.places} places at "
            f"{money(rec.reward_cents)}; those stay (change them on Prolific)")
    if rec.study_id is None:
        found = [s for s in client.studies() if s.internal_name == rec.internal_name]
        if len(found) > 1:
            raise PublishError(f"Prolific has {len(found)} studies named "
                               f"{rec.internal_name!r} ({', '.join(s.id for s in found)}): "
                               "delete the extra ones on Prolific, then run publish again")
        if found:
            study = found[0]
            say(f"Found study {study.id} created by an interrupted run.")
        else:
            study = client.create_study(json.loads(rec.body))
            say(f"Created study {study.id}.")
        rec.study_id, rec.status = study.id, study.status
        db.session.commit()
    else:
        study = client.study(rec.study_id)
        rec.status = study.status
    if study.status == "UNPUBLISHED":
        study = client.transition_study(study.id, "PUBLISH")
        say(f"Published study {study.id}.")
    else:
        say(f"Study {study.id} is already published ({study.status}).")
    rec.status = study.status
    db.session.commit()
    return rec


def transition(client: Client, rec: ProlificStudy, action: str) -> shapes.Study:
    """Apply the study transition `action` (PAUSE, START, STOP) and record the status."""
    study = client.transition_study(rec.study_id, action)
    rec.status = study.status
    db.session.commit()
    return study

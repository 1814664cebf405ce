"""Prolific as a platform: the participant enters by the study URL
`/lab/<experiment>/via/prolific?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...`, is keyed
by (PROLIFIC_PID, SESSION_ID) and leaves by a redirect to Prolific's completion URL with
the study's completion code, or with its second code when the researcher screens failed
catch trials and the participant failed one."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import func, select

from ..base import EntryError, ExitResponse, Identity, TabledPlatform
from . import shapes

PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")


def study_record(experiment, study_id: str):
    """Return the ProlificStudy of `experiment` whose Prolific id is `study_id`, or None."""
    from ...models import db
    from .models import ProlificStudy
    return db.session.execute(select(ProlificStudy).where(
        ProlificStudy.experiment_id == experiment.id,
        ProlificStudy.study_id == study_id)).scalar_one_or_none()


def failed_catch(participant) -> int:
    """Return how many catch trials the participant answered wrongly."""
    from ...models import Response, Trial, db
    return int(db.session.execute(
        select(func.count()).select_from(Response).join(Trial, Trial.id == Response.trial_id)
        .where(Response.participant_id == participant.id, Trial.catch.is_(True),
               Response.chosen_index != Trial.true_index)).scalar_one())


@dataclass(frozen=True)
class ProlificPlatform(TabledPlatform):
    """Prolific (prolific.com), over its public API (server.recruitment.prolific)."""
    name: str = "prolific"
    link_entry: bool = True

    def identity(self, experiment, args=None, **_entry) -> Identity:
        """Return the Identity of a participant sent by Prolific with URL parameters
        `args`; EntryError when a parameter is missing or malformed, or the study is not
        one this server published for the experiment (its environment comes from that
        record: the local endpoint's studies are rehearsals)."""
        args = args or {}
        values = {k: (args.get(k) or "").strip() for k in PARAMS}
        missing = [k for k, v in values.items() if not v]
        if missing:
            raise EntryError(f"the link lacks {', '.join(missing)}: open the study from "
                             "Prolific again")
        bad = [k for k, v in values.items() if not shapes.ID_RE.match(v)]
        if bad:
            raise EntryError(f"the link's {', '.join(bad)} is not a Prolific id")
        record = study_record(experiment, values["STUDY_ID"])
        if record is None:
            raise EntryError("this link is not for a Prolific study of this experiment")
        return Identity(platform=self.name, environment=record.environment,
                        external_participant_id=values["PROLIFIC_PID"],
                        external_session_id=values["SESSION_ID"],
                        external_study_id=values["STUDY_ID"])

    def exit_response(self, experiment, participant, /, **_context) -> ExitResponse:
        """Return the redirect to Prolific's completion URL with the completion code (the
        failed-attention-check code when the study screens them and a catch trial was
        answered wrongly)."""
        record = study_record(experiment, participant.external_study_id or "")
        if record is None:   # the study record was deleted: nothing to send them to
            return ExitResponse(kind="page")
        code = record.completion_code
        if record.failed_code and failed_catch(participant):
            code = record.failed_code
        return ExitResponse(kind="redirect", code=code,
                            url=f"{record.completion_url}?cc={quote(code, safe='')}")

    # ---------------------------------------------------------------- requester side
    def publish(self, plan, client, say=print):
        """Create and publish the planned study (publishing.publish)."""
        from . import publishing
        return publishing.publish(plan, client, say)

    def status(self, client, record):
        """Return the study as Prolific has it now."""
        return client.study(record.study_id)

    def sync(self, client, record):
        """Bring the participants' statuses in line with Prolific (reviewing.sync)."""
        from . import reviewing
        return reviewing.sync(client, record)

    def review(self, client, record, statuses=("AWAITING REVIEW",)):
        """Return the submissions to review with their answers (reviewing.review)."""
        from . import reviewing
        return reviewing.review(client, record, statuses)

    def approve(self, client, record, items):
        """Approve the reviewed submissions in one bulk call (reviewing.approve)."""
        from . import reviewing
        return reviewing.approve(client, record, items)

    def reject(self, client, record, items, category, message):
        """Reject the reviewed submissions (reviewing.reject)."""
        from . import reviewing
        return reviewing.reject(client, record, items, category, message)

    def bonus(self, client, record, submission, cents):
        """Pay a bonus once per submission (reviewing.bonus)."""
        from . import reviewing
        return reviewing.bonus(client, record, submission, cents)

    def cost(self, plan):
        """Return (rewards, service fee, total) in pence/cents of a publishing Plan."""
        return plan.cost()


PROLIFIC = ProlificPlatform()

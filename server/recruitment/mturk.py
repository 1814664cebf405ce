"""Mechanical Turk as a platform: an adapter over the existing `server.mturk` modules
(worker page, requester, publishing, reviewing, fees), which keep today's commands and
behaviour. Identity comes from the ExternalQuestion URL (workerId, assignmentId, hitId);
the exit is the form POSTed to `turkSubmitTo/mturk/externalSubmit`."""
from __future__ import annotations

from dataclasses import dataclass

from .base import ExitResponse, Identity, TabledPlatform, UnknownName

# The requester's labels (server.mturk.requester.Requester.label, kept in hits.environment)
# -> the environment of the answers. A local endpoint is always a rehearsal, whatever
# environment it emulates.
HIT_ENVIRONMENTS = {"production": "production", "sandbox": "sandbox",
                    "local-sandbox": "local-sandbox", "local-production": "local-sandbox"}


def environment_of(hit_label: str) -> str:
    """Return the answers' environment for a HIT published under requester label
    `hit_label`; UnknownName for a label not in HIT_ENVIRONMENTS."""
    try:
        return HIT_ENVIRONMENTS[hit_label]
    except KeyError:
        raise UnknownName(f"unknown MTurk environment {hit_label!r} (one of "
                          f"{', '.join(HIT_ENVIRONMENTS)})") from None


@dataclass(frozen=True)
class MTurkPlatform(TabledPlatform):
    """Amazon Mechanical Turk (ExternalQuestion HITs). Its statuses are MTurk's life of an
    assignment (provenance.PLATFORMS): `abandoned` = accepted, never submitted, expired."""
    name: str = "mturk"

    def identity(self, workerId: str | None = None, assignmentId: str | None = None,
                 hitId: str | None = None, hit_environment: str = "sandbox",
                 **_entry) -> Identity:
        """Return the Identity of a worker from the ExternalQuestion URL parameters and
        the environment label of the HIT they opened."""
        return Identity(platform=self.name, environment=environment_of(hit_environment),
                        external_participant_id=workerId, external_session_id=assignmentId,
                        external_study_id=hitId)

    def exit_response(self, experiment, participant, /, submit_to: str = "",
                      **fields: str) -> ExitResponse:
        """Return the externalSubmit form (posted from inside MTurk's iframe)."""
        return ExitResponse(kind="submit-form", url=submit_to + "/mturk/externalSubmit",
                            fields={"assignmentId": participant.assignment_id or "",
                                    **fields})

    # ---------------------------------------------------------------- requester side
    def publish(self, plan, requester, progress=None):
        """Create the planned HITs (server.mturk.publishing.publish)."""
        from ..mturk import publishing
        return publishing.publish(plan, requester, progress)

    def status(self, requester, experiment=None):
        """Return each HIT with its assignments per status (publishing.status)."""
        from ..mturk import publishing
        return publishing.status(requester, experiment)

    def sync(self, requester, hits):
        """Bring the local assignment records in line with MTurk (reviewing.sync)."""
        from ..mturk import reviewing
        return reviewing.sync(requester, hits)

    def review(self, requester, hits, statuses=("Submitted",)):
        """Return the assignments to review with their answers (reviewing.review)."""
        from ..mturk import reviewing
        return reviewing.review(requester, hits, statuses)

    def approve(self, requester, items, **kw):
        """Approve the reviewed assignments (reviewing.decide)."""
        from ..mturk import reviewing
        return reviewing.decide(requester, items, True, **kw)

    def reject(self, requester, items, **kw):
        """Reject the reviewed assignments (reviewing.decide)."""
        from ..mturk import reviewing
        return reviewing.decide(requester, items, False, **kw)

    def bonus(self, requester, review, amount, reason, **kw):
        """Pay a bonus on one assignment (reviewing.pay_bonus)."""
        from ..mturk import reviewing
        return reviewing.pay_bonus(requester, review, amount, reason, **kw)

    def cost(self, reward, assignments: int, hits: int = 1, masters: bool = False):
        """Return what publishing costs, fees included (fees.publish_cost)."""
        from ..mturk import fees
        return fees.publish_cost(reward, assignments, hits, masters)


MTURK = MTurkPlatform()

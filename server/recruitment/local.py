"""The lab and simulated participants as platforms: identity is the participant code,
the environment is the platform's own, and the exit is the done page."""
from __future__ import annotations

from dataclasses import dataclass

from provenance import PLATFORMS

from .base import ExitResponse, Identity


@dataclass(frozen=True)
class LocalPlatform:
    """A platform without a requester side: answers count as recorded."""
    name: str

    @property
    def statuses(self) -> tuple[str, ...]:
        """Its statuses (provenance.PLATFORMS): answers count as recorded."""
        return PLATFORMS[self.name].statuses

    @property
    def closed_statuses(self) -> frozenset[str]:
        """None: a lab participant's answers are never refused by status."""
        return PLATFORMS[self.name].closed_statuses

    @property
    def environments(self) -> tuple[str, ...]:
        """The one environment of this platform (named like it)."""
        return PLATFORMS[self.name].environments

    def identity(self, code: str | None = None, **_entry) -> Identity:
        """Return the Identity of a participant who entered with `code`."""
        return Identity(platform=self.name, environment=self.name,
                        external_participant_id=code)

    def exit_response(self, experiment, participant, /, **_context) -> ExitResponse:
        """Return the done page as the way out."""
        return ExitResponse(kind="page")


LAB = LocalPlatform("lab")
SIMULATED = LocalPlatform("simulated")

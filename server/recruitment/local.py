"""The lab, simulated and JSON-API participants as platforms: identity is the participant code,
the environment is the platform's own, and the exit is the done page."""
from __future__ import annotations

from dataclasses import dataclass

from .base import ExitResponse, Identity, TabledPlatform


@dataclass(frozen=True)
class LocalPlatform(TabledPlatform):
    """A platform without a requester side: answers count as recorded, are never refused
    by status, and its one environment is named like it (provenance.PLATFORMS)."""
    name: str

    def identity(self, code: str | None = None, **_entry) -> Identity:
        """Return the Identity of a participant who entered with `code`."""
        return Identity(platform=self.name, environment=self.name,
                        external_participant_id=code)

    def exit_response(self, experiment, participant, /, **_context) -> ExitResponse:
        """Return the done page as the way out."""
        return ExitResponse(kind="page")


LAB = LocalPlatform("lab")
SIMULATED = LocalPlatform("simulated")
API = LocalPlatform("api")

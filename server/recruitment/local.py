"""The lab and simulated participants as platforms: identity is the participant code,
the environment is the platform's own, and the exit is the done page."""
from __future__ import annotations

from dataclasses import dataclass

from .base import ExitResponse, Identity


@dataclass(frozen=True)
class LocalPlatform:
    """A platform without a requester side: answers count as recorded."""
    name: str
    statuses: tuple[str, ...] = ("recorded",)
    closed_statuses: frozenset[str] = frozenset()

    @property
    def environments(self) -> tuple[str, ...]:
        """The one environment of this platform (named like it)."""
        return (self.name,)

    def identity(self, code: str | None = None, **_entry) -> Identity:
        """Return the Identity of a participant who entered with `code`."""
        return Identity(platform=self.name, environment=self.name,
                        external_participant_id=code)

    def exit_response(self, experiment, participant, /, **_context) -> ExitResponse:
        """Return the done page as the way out."""
        return ExitResponse(kind="page")


LAB = LocalPlatform("lab")
SIMULATED = LocalPlatform("simulated")

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


# What the JSON API's participants may count as (platform_settings["api"]["counts_as"]).
API_COUNTS_AS = ("api", "lab")


@dataclass(frozen=True)
class ApiPlatform(LocalPlatform):
    """The participants the JSON API creates: anyone may call it, so they are their own
    platform (`api`, counted by the analysis only when named) unless the experiment's
    setting `counts_as` says `lab` (a researcher's own front end over the API)."""
    name: str = "api"
    settings: tuple[str, ...] = ("counts_as",)

    def check_settings(self, conf: dict) -> list[str]:
        """Return one message per invalid api setting in `conf`."""
        problems = [f"unknown api setting {k!r} (one of {', '.join(self.settings)})"
                    for k in conf if k not in self.settings]
        value = conf.get("counts_as")
        if value is not None and value not in API_COUNTS_AS:
            problems.append(f"api counts as {value!r} must be one of "
                            f"{', '.join(API_COUNTS_AS)}")
        return problems

    def platform_for(self, experiment) -> str:
        """Return the platform of a participant the API creates in `experiment`."""
        return experiment.platform_setting(self.name).get("counts_as") or self.name


LAB = LocalPlatform("lab")
SIMULATED = LocalPlatform("simulated")
API = ApiPlatform()

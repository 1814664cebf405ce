"""Link-based panels (SONA, CloudResearch Connect, any pool that sends participants by a
link): the participant's id comes from a URL parameter the researcher names, and at the
end the participant is sent to the researcher's redirect URL template with the
completion code, or shown the code when there is no redirect.

Settings (experiment-settings --panel-*, kept in `platform_settings["panel"]`):
`id_param` (the URL parameter with the participant's id), `redirect` (a URL template
with `{code}` and `{participant}`), `code` (the completion code), `name` (which panel,
e.g. "SONA", kept as the participant's external study id).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .base import EntryError, ExitResponse, Identity, TabledPlatform

PARAM_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
CODE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9 _.\-]{1,100}$")
MAX_ID = 200
FIELDS = ("code", "participant")
SETTINGS = ("id_param", "redirect", "code", "name")


def check_redirect(template: str) -> list[str]:
    """Return the problems of a redirect URL template ([] when it is usable): an http(s)
    URL whose only fields are {code} and {participant}."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        return [f"redirect template {template!r}: {e}"]
    problems = [f"redirect template {template!r}: unknown field {{{f}}} (use "
                f"{', '.join('{' + x + '}' for x in FIELDS)})" for f in fields if f not in FIELDS]
    try:
        parts = urlsplit(template)
    except ValueError as e:  # e.g. an unclosed IPv6 bracket: "https://["
        return problems + [f"redirect template {template!r} is not a URL: {e}"]
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"redirect template {template!r} must be an http(s) URL")
    return problems


def fill_redirect(template: str, code: str, participant: str) -> str:
    """Return the redirect URL: `template` with {code} and {participant} URL-quoted."""
    return template.format(code=quote(code, safe=""), participant=quote(participant, safe=""))


@dataclass(frozen=True)
class PanelPlatform(TabledPlatform):
    """A panel that sends participants by a link and takes them back by a redirect."""
    name: str = "panel"
    # Participants enter by a link to /lab/<experiment>/via/panel?<id_param>=...
    link_entry: bool = True
    # The names of its settings (platform_settings["panel"]), in the settings form's order.
    settings: tuple[str, ...] = SETTINGS

    def check_settings(self, conf: dict) -> list[str]:
        """Return one message per invalid panel setting in `conf`."""
        problems = [f"unknown panel setting {k!r} (one of {', '.join(self.settings)})"
                    for k in conf if k not in self.settings]
        checks = (("id_param", PARAM_RE, "1-64 letters, digits, '_', '.', '-'"),
                  ("code", CODE_RE, "1-64 letters, digits, '_', '-'"),
                  ("name", NAME_RE, "1-100 letters, digits, spaces, '_', '.', '-'"))
        for key, rx, what in checks:
            v = conf.get(key)
            if v is not None and not (isinstance(v, str) and rx.match(v)):
                problems.append(f"panel {key.replace('_', ' ')} {v!r} must be {what}")
        if conf.get("redirect") is not None:
            problems += check_redirect(str(conf["redirect"]))
        return problems

    def identity(self, experiment, args=None, **_entry) -> Identity:
        """Return the Identity of a participant who came by the panel link with URL
        parameters `args`; EntryError when the experiment has no panel set up or the link
        lacks a usable id."""
        conf = experiment.platform_setting(self.name)
        param = conf.get("id_param")
        if not param:
            raise EntryError("this study takes no participants by a panel link")
        pid = (args or {}).get(param, "").strip()
        if not pid:
            raise EntryError(f"the link has no participant id (URL parameter {param!r}): "
                             "open the study from the panel's page again")
        if len(pid) > MAX_ID or any(ord(c) < 32 or ord(c) == 127 for c in pid):
            raise EntryError(f"the participant id in {param!r} is not usable")
        return Identity(platform=self.name, environment="production",
                        external_participant_id=pid, external_study_id=conf.get("name"))

    def exit_response(self, experiment, participant, /, **_context) -> ExitResponse:
        """Return the redirect with the completion code, or the done page showing the
        code when the panel has no redirect."""
        conf = experiment.platform_setting(self.name)
        code = conf.get("code", "")
        if conf.get("redirect"):
            url = fill_redirect(conf["redirect"], code, participant.external_participant_id or "")
            return ExitResponse(kind="redirect", url=url, code=code or None)
        return ExitResponse(kind="page", code=code or None)


PANEL = PanelPlatform()

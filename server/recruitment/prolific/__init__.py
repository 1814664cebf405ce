"""Prolific beside MTurk: the platform (entry by the study URL, exit by Prolific's
completion URL), the requester's commands over Prolific's public API and a local
Prolific-compatible endpoint for dry runs.

- `shapes.py`: every request and response shape of the API, in one module.
- `client.py`: the HTTP client (requests), the token from PROLIFIC_TOKEN or a file.
- `platform.py`: `PROLIFIC`, registered in `server.recruitment`.
- `models.py`: studies published and bonuses paid (migration 0006_prolific).
- `publishing.py`, `reviewing.py`: what the commands do; `cli.py`: `flask prolific ...`.
- `emulator.py`: the local endpoint (`flask --app server prolific emulate`).
"""
from __future__ import annotations

from . import models  # noqa: F401  (the tables belong to the app's metadata)
from .platform import PROLIFIC

__all__ = ["PROLIFIC", "init_app"]


def init_app(app) -> None:
    """Register the `flask prolific` command group on `app`."""
    from .cli import prolific
    app.cli.add_command(prolific)

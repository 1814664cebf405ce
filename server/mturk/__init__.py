"""Mechanical Turk: worker routes, requester commands, local emulator.

`init_app(app)` is called by `server.create_app`; it registers this package's blueprints
and the `flask mturk` command group."""


def init_app(app) -> None:
    """Register MTurk blueprints and commands on `app` (filled in by the MTurk work)."""
    return None

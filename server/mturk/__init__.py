"""Mechanical Turk: worker routes, requester commands, local emulator.

`init_app(app)` is called by `server.create_app`; it registers this package's blueprints
and the `flask mturk` command group.

- `worker.py`: the ExternalQuestion page and its answers (reuses `server.recording`).
- `requester.py`: boto3 client with safe retries and pagination; `publishing.py` and
  `reviewing.py`: what the commands do, recorded in the database; `cli.py`: the commands.
- `fees.py`: MTurk's commission; `question.py`: ExternalQuestion XML and allowed hosts.
- `emulator/`: the local MTurk-compatible endpoint (`flask --app server mturk emulate`).
"""


def init_app(app) -> None:
    """Register the worker blueprint and the `flask mturk` commands on `app`."""
    from .cli import mturk
    from .worker import bp

    app.register_blueprint(bp)
    app.cli.add_command(mturk)

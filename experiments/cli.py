"""`python -m experiments COMMAND`: one click group; each stage's commands live in the
module named for the stage and are added here."""
from __future__ import annotations

import sys

import click


class ExperimentsError(click.ClickException):
    """A problem the user can fix; printed as one clear message, exit status 2."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Machine side of the Totally-Looks-Like platform."""


def _register() -> None:
    from experiments import cli_data, cli_features, cli_humans, cli_trials

    for mod in (cli_data, cli_features, cli_trials, cli_humans):
        for cmd in mod.COMMANDS:
            cli.add_command(cmd)


def main() -> None:
    """Entry point: run the click group, turning expected errors into clean messages."""
    _register()
    try:
        cli.main(prog_name="python -m experiments", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        click.echo("interrupted", err=True)
        sys.exit(130)

"""`python -m experiments COMMAND`: one click group; each stage's commands live in the
module named for the stage (cli_data, cli_features, cli_trials, cli_humans), which import only
cli_base and the library, never this module."""
from __future__ import annotations

import sys

import click

from experiments import cli_data, cli_features, cli_humans, cli_trials
from experiments.cli_base import ExperimentsError

__all__ = ["ExperimentsError", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Machine side of the Totally-Looks-Like platform."""


for _mod in (cli_data, cli_features, cli_trials, cli_humans):
    for _cmd in _mod.COMMANDS:
        cli.add_command(_cmd)


def main() -> None:
    """Entry point: run the click group, turning expected errors into clean messages."""
    try:
        cli.main(prog_name="python -m experiments", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        click.echo("interrupted", err=True)
        sys.exit(130)

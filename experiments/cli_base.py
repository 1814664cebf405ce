"""What every command module shares: the clean-error type and wrapper, the STUDY_DIR
argument. Imports no other cli module, so the command modules form no cycle:
cli -> cli_data, cli_features, cli_trials -> cli_base -> the library."""
from __future__ import annotations

import functools
from pathlib import Path

import click


class ExperimentsError(click.ClickException):
    """A problem the user can fix; printed as one clear message, exit status 2."""

    exit_code = 2


def clean_errors(fn):
    """Turn the library's user errors (experiments.errors) and OS errors into
    ExperimentsError: one message, exit status 2, no traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from experiments.errors import user_errors

        try:
            return fn(*args, **kwargs)
        except user_errors() as exc:
            raise ExperimentsError(str(exc)) from None
        except OSError as exc:  # unreadable input, unwritable output folder, full disk
            raise ExperimentsError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    return wrapper


STUDY = click.argument("study_dir", type=click.Path(file_okay=False, path_type=Path))

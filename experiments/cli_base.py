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


def slurm_options(run: str, cpus_help: str, sbatch_example: str):
    """Return a decorator adding the Slurm options every sharded command takes (--slurm,
    --tasks, --cpus-per-task, --sbatch-arg, --no-submit); `run` says what the finalize job
    does after the array, `cpus_help` what a task's CPUs are for."""
    options = (
        click.option("--slurm", is_flag=True,
                     help="Do not compute here: write and submit (sbatch) a Slurm job array of "
                          f"--tasks shards{run}"),
        click.option("--tasks", type=click.IntRange(1, 100000), default=4, show_default=True,
                     help="--slurm: array tasks (shards)."),
        click.option("--cpus-per-task", type=click.IntRange(1, 1024), default=1,
                     show_default=True, help=cpus_help),
        click.option("--sbatch-arg", "sbatch_args", multiple=True, metavar="ARG",
                     help="--slurm: an extra #SBATCH line for both jobs, e.g. --sbatch-arg "
                          f"{sbatch_example} (repeatable)."),
        click.option("--no-submit", is_flag=True, help="--slurm: write the job folder only."),
    )

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def submit_slurm(study_dir, key: str, args: list[str], tasks: int, cpus_per_task: int,
                 sbatch_args, no_submit: bool, command: str = "features") -> None:
    """Write the Slurm job folder of `key` (an array of `command ARGS` tasks and its
    finalize job), submit it unless `no_submit`, and print what was done and the commands
    that follow it; a Slurm problem becomes an ExperimentsError."""
    from experiments import slurm as slurm_mod

    try:
        folder = slurm_mod.write_job(study_dir, key, args, tasks, cpus_per_task, sbatch_args,
                                     command=command)
        if no_submit:
            click.echo(f"wrote {folder}/task.sh and finalize.sh (not submitted): submit with "
                       f"`sbatch {folder}/task.sh`, then `sbatch --dependency=afterok:<ARRAY> "
                       f"{folder}/finalize.sh`")
            return
        sub = slurm_mod.submit(folder)
    except slurm_mod.SlurmError as exc:
        raise ExperimentsError(str(exc)) from None
    click.echo(f"{key}: submitted job array {sub['array']} (tasks {sub['tasks']}) and finalize "
               f"job {sub['finalize']} (afterok); job folder {folder}\n"
               f"state: python -m experiments slurm status {folder}\n"
               f"failed tasks: python -m experiments slurm resubmit {folder}")

"""Flask CLI commands: `load-experiment`, `experiment-settings`, `admin set-password`.
Bad input prints one line per problem and exits with status 2 (never a traceback)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.exc import OperationalError, ProgrammingError

from .loader import LoadError, load_experiment, response_count, validate_settings
from .models import db
from .recording import RecordingError, get_experiment


def fail(problems: list[str] | str) -> None:
    """Print each problem on its own line to stderr and exit with status 2."""
    for p in ([problems] if isinstance(problems, str) else problems):
        click.echo(f"error: {p}", err=True)
    sys.exit(2)


def _schema_guard(fn):
    """Turn a missing schema into a clear message naming `flask db upgrade`."""
    def wrapped(*a, **kw):
        try:
            return fn(*a, **kw)
        except (OperationalError, ProgrammingError) as e:
            db.session.rollback()
            if "no such table" in str(e) or "does not exist" in str(e):
                fail("the database has no tables yet: run `flask --app server db upgrade` first")
            raise
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _viewport(text: str) -> tuple[int, int]:
    """Return (width, height) from 'WIDTHxHEIGHT' in CSS pixels, or fail with a message."""
    w, sep, h = (text or "").lower().partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit():
        fail(f"--min-viewport must be WIDTHxHEIGHT in CSS pixels (e.g. 1000x600), not {text!r}")
    return int(w), int(h)


def _settings(consent_text, consent_file, order, repeats, break_every, practice,
              min_viewport=None, kiosk=None) -> dict:
    s = {}
    if kiosk is not None:
        s["kiosk"] = kiosk
    if consent_file is not None:
        try:
            s["consent_text"] = Path(consent_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            fail(f"cannot read the consent file {consent_file}: {e.strerror}")
    if consent_text is not None:
        s["consent_text"] = consent_text
    if order is not None:
        s["trial_order"] = order
    if repeats is not None:
        s["repeats"] = repeats
    if min_viewport is not None:
        s["min_viewport_width"], s["min_viewport_height"] = _viewport(min_viewport)
    if break_every is not None:
        s["break_every"] = break_every
    if practice is not None:
        s["practice"] = practice
    return s


def setting_options(fn):
    """Add the per-experiment setting options to a command."""
    opts = [
        click.option("--consent-text", default=None, help="Consent text shown to participants."),
        click.option("--consent-file", default=None, type=click.Path(dir_okay=False),
                     help="Read the consent text from this file."),
        click.option("--order", type=click.Choice(["random", "fixed"]), default=None,
                     help="Trial order per participant (default random, seed recorded)."),
        click.option("--repeats", "repeats", type=click.Choice(["none", "per-hit", "allow"]),
                     default=None,
                     help="Who may take part again: none = once per experiment (default), "
                          "per-hit = once per HIT (the paper's MTurk design), allow = anyone."),
        click.option("--allow-repeats", "repeats", flag_value="allow",
                     help="The same as --repeats allow."),
        click.option("--no-repeats", "repeats", flag_value="none",
                     help="The same as --repeats none."),
        click.option("--min-viewport", default=None, metavar="WxH",
                     help="Smallest browser window (CSS px) that may take part; default: "
                          "what shows the query and five candidates in one row."),
        click.option("--break-every", type=click.IntRange(min=0), default=None,
                     help="Offer a break after every N trials (0 = never, the default)."),
        click.option("--practice/--no-practice", default=None,
                     help="Show a practice trial with the instructions (default yes)."),
        click.option("--kiosk/--no-kiosk", default=None,
                     help="A shared lab computer: forget the participant at completion and "
                          "after inactivity (default no)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


@click.command("load-experiment")
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="Experiment name (default: the file's stem).")
@setting_options
@with_appcontext
@_schema_guard
def load_experiment_cmd(experiment_file, name, consent_text, consent_file, order, repeats,
                        min_viewport, break_every, practice, kiosk):
    """Validate EXPERIMENT_FILE (schema, every image with its sha256) and load it.
    Loading the same file again changes nothing; an experiment with answers is never
    overwritten."""
    from tqdm import tqdm

    settings = _settings(consent_text, consent_file, order, repeats, break_every, practice,
                         min_viewport, kiosk)
    try:
        exp, outcome = load_experiment(Path(experiment_file), name=name, settings=settings,
                                       progress=lambda it: tqdm(it, desc="images", unit="img",
                                                                leave=False))
    except LoadError as e:
        fail(e.problems)
    click.echo(f"experiment {exp.name!r}: {outcome} ({len(exp.trials)} trials, "
               f"image size {exp.image_width}x{exp.image_height})")


@click.command("experiment-settings")
@click.argument("name")
@setting_options
@with_appcontext
@_schema_guard
def experiment_settings_cmd(name, consent_text, consent_file, order, repeats, min_viewport,
                            break_every, practice, kiosk):
    """Show or change the settings of experiment NAME."""
    try:
        exp = get_experiment(name)
    except RecordingError as e:
        fail(e.reason)
    settings = _settings(consent_text, consent_file, order, repeats, break_every, practice,
                         min_viewport, kiosk)
    problems = validate_settings(settings)
    if problems:
        fail(problems)
    if "trial_order" in settings and settings["trial_order"] != exp.trial_order \
            and response_count(exp):
        click.echo("note: participants who already started keep their recorded order", err=True)
    for k, v in settings.items():
        setattr(exp, k, v)
    db.session.commit()
    vw, vh = exp.min_viewport()
    click.echo(f"experiment {exp.name!r}: order={exp.trial_order} "
               f"repeats={exp.repeats} break_every={exp.break_every} "
               f"practice={exp.practice} min_viewport={vw}x{vh} kiosk={exp.kiosk}")
    click.echo(f"consent: {exp.consent_text}")


admin = AppGroup("admin", help="Admin accounts.")


@admin.command("set-password")
@click.option("--user", default="admin", show_default=True)
@click.option("--password", default=None,
              help="The new password (for scripts; prompted for when left out).")
@_schema_guard
def set_password_cmd(user, password):
    """Set the admin password (stored as a werkzeug hash)."""
    from .manage import set_password

    if password is None:
        password = click.prompt("New admin password", hide_input=True,
                                confirmation_prompt=True)
    if len(password) < 8:
        fail("the password must have at least 8 characters")
    set_password(password, user)
    click.echo(f"password set for admin user {user!r}; log in at /manage/login")


def init_app(app) -> None:
    """Register the commands on `app`."""
    app.cli.add_command(load_experiment_cmd)
    app.cli.add_command(experiment_settings_cmd)
    app.cli.add_command(admin)

"""Flask CLI commands: `load-experiment`, `experiment-settings`, `admin set-password`.
Bad input prints one line per problem and exits with status 2 (never a traceback)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.exc import OperationalError, ProgrammingError

from .loader import LoadError, apply_settings, load_experiment, response_count, validate_settings
from .models import db
from .recording import RecordingError, get_experiment, new_code
from .recruitment import panel as panel_platform


def fail(problems: list[str] | str, code: int = 2) -> None:
    """Print each problem on its own line to stderr and exit with `code` (default 2)."""
    for p in ([problems] if isinstance(problems, str) else problems):
        click.echo(f"error: {p}", err=True)
    sys.exit(code)


def experiment_or_fail(name: str, no_tables: str):
    """Return the experiment called `name`; exit 2 with its reason if there is none, or
    with `no_tables` (the calling CLI's own message) if the database has no tables yet."""
    try:
        return get_experiment(name)
    except RecordingError as e:
        fail(e.reason)
    except (OperationalError, ProgrammingError):
        db.session.rollback()
        fail(no_tables)


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


# Setting options whose value is the setting's as given: (option, setting).
_PLAIN_OPTIONS = (("kiosk", "kiosk"), ("order", "trial_order"), ("repeats", "repeats"),
                  ("break_every", "break_every"), ("practice", "practice"),
                  ("practice_trials", "practice_trials"),
                  ("practice_feedback", "practice_feedback"),
                  ("seconds_per_trial", "seconds_per_trial"))


def _settings(opts: dict) -> dict:
    """Return the settings named by the setting options in `opts` (a command's keyword
    arguments; None = not given), read from files where an option names one."""
    s = {}
    opts = dict(opts)
    texts = _texts(opts)  # may set opts["consent_text"] from --text consent=FILE
    if texts:
        s["texts"] = texts
    s.update({setting: opts[option] for option, setting in _PLAIN_OPTIONS
              if opts.get(option) is not None})
    if opts.get("consent_file") is not None:
        s["consent_text"] = _read_text("consent", opts["consent_file"])
    if opts.get("consent_text") is not None:
        s["consent_text"] = opts["consent_text"]
    if opts.get("min_viewport") is not None:
        s["min_viewport_width"], s["min_viewport_height"] = _viewport(opts["min_viewport"])
    if opts.get("language") is not None:
        s["language"] = "" if opts["language"] in ("-", "browser") else opts["language"]
    if opts.get("practice_set"):
        s["practice_images"] = [] if opts["practice_set"] == ("-",) else [
            [x.strip() for x in v.split(",")] for v in opts["practice_set"]]
    panel = {k: opts.get(f"panel_{k}") for k in panel_platform.SETTINGS}
    panel = {k: ("" if v == "-" else v) for k, v in panel.items() if v is not None}
    if panel:
        # "-" clears a setting (e.g. --panel-redirect - shows the code instead).
        s["platform_settings"] = {"panel": {k: (v or None) for k, v in panel.items()}}
    return s


def _read_text(what: str, path: str) -> str:
    """Return the text of the file at `path` (UTF-8), or fail naming it."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        fail(f"cannot read the {what} file {path}: {e.strerror}")
    except UnicodeDecodeError:
        fail(f"the {what} file {path} is not UTF-8 text")


def _texts(opts: dict) -> dict:
    """Return the texts named by --title/--researcher/--contact and --text NAME=FILE
    ('-' clears a text: the page shows its default); consent goes to consent_text."""
    from .loader import TEXT_NAMES

    texts = {k: ("" if opts[k] == "-" else opts[k])
             for k in ("title", "researcher", "contact") if opts.get(k) is not None}
    for item in opts.get("text") or ():
        name, sep, path = item.partition("=")
        name = name.strip().lower()
        if not sep or not path:
            fail(f"--text must be NAME=FILE (NAME one of {', '.join(TEXT_NAMES)}, consent), "
                 f"not {item!r}")
        if name not in TEXT_NAMES and name != "consent":
            fail(f"unknown text {name!r} in --text (one of {', '.join(TEXT_NAMES)}, consent)")
        value = "" if path == "-" else _read_text(f"{name} text", path)
        if name == "consent":
            opts["consent_text"] = value
        else:
            texts[name] = value
    return texts


def _panel_code(exp, settings: dict) -> None:
    """Give a panel set up without a completion code a random one."""
    conf = settings.get("platform_settings", {}).get("panel")
    if conf is not None and conf.get("id_param") and not conf.get("code") \
            and (exp is None or not exp.platform_setting("panel").get("code")):
        conf["code"] = new_code(10)


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
        click.option("--title", default=None,
                     help="The study's title, on every participant page ('-' = the default)."),
        click.option("--researcher", default=None,
                     help="Who runs the study (name, lab), shown under the title."),
        click.option("--contact", default=None,
                     help="How to reach the researcher (an e-mail address or Markdown link)."),
        click.option("--text", "text", multiple=True, metavar="NAME=FILE",
                     help="A participant text from a Markdown file: welcome, consent, "
                          "instructions, debriefing (or title, researcher, contact); "
                          "NAME=- returns to the default. Repeatable."),
        click.option("--language", default=None, metavar="CODE",
                     help="Language of the participant pages: en or de; 'browser' (or -) "
                          "= the browser's choice (the default)."),
        click.option("--practice-trials", type=int, default=None,
                     help="How many practice trials (0..10, default 1)."),
        click.option("--practice-feedback/--no-practice-feedback", default=None,
                     help="Say after each practice trial which answer was right "
                          "(default yes)."),
        click.option("--practice-set", "practice_set", multiple=True,
                     metavar="QUERY,LOOKALIKE,D1,D2,D3,D4",
                     help="A practice trial from six image ids of the experiment file that "
                          "no trial shows: the query, its look-alike, four distractors "
                          "(repeatable; '-' = the built-in set)."),
        click.option("--seconds-per-trial", type=float, default=None,
                     help="Seconds one trial takes, for the duration the pages state "
                          "(default 8)."),
        click.option("--kiosk/--no-kiosk", default=None,
                     help="A shared lab computer: forget the participant at completion and "
                          "after inactivity (default no)."),
        click.option("--panel-param", "panel_id_param", default=None, metavar="PARAM",
                     help="Take participants from a link-based panel (SONA, Connect, ...) by "
                          "/lab/NAME/via/panel?PARAM=<their id>."),
        click.option("--panel-redirect", default=None, metavar="URL",
                     help="Where a panel participant goes at the end: a URL template with "
                          "{code} and {participant} ('-' = none: the page shows the code)."),
        click.option("--panel-code", default=None,
                     help="The panel's completion code (default: a random one)."),
        click.option("--panel-name", default=None,
                     help="Which panel (e.g. SONA), kept with each participant."),
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
def load_experiment_cmd(experiment_file, name, **opts):
    """Validate EXPERIMENT_FILE (schema, every image with its sha256) and load it.
    Loading the same file again changes nothing; an experiment with answers is never
    overwritten."""
    from tqdm import tqdm

    settings = _settings(opts)
    try:
        _panel_code(get_experiment(name or Path(experiment_file).stem), settings)
    except RecordingError:  # a new experiment
        _panel_code(None, settings)
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
def experiment_settings_cmd(name, **opts):
    """Show or change the settings of experiment NAME."""
    try:
        exp = get_experiment(name)
    except RecordingError as e:
        fail(e.reason)
    settings = _settings(opts)
    _panel_code(exp, settings)
    problems = validate_settings(settings)
    if not problems and settings.get("practice_images"):
        from .practice import check_loaded
        problems = check_loaded(exp, settings["practice_images"])
    if problems:
        fail(problems)
    if "trial_order" in settings and settings["trial_order"] != exp.trial_order \
            and response_count(exp):
        click.echo("note: participants who already started keep their recorded order", err=True)
    apply_settings(exp, settings)
    db.session.commit()
    vw, vh = exp.min_viewport()
    click.echo(f"experiment {exp.name!r}: order={exp.trial_order} "
               f"repeats={exp.repeats} break_every={exp.break_every} "
               f"practice={exp.practice} min_viewport={vw}x{vh} kiosk={exp.kiosk}")
    from .texts import consent_markdown, minutes, title

    click.echo(f"title: {title(exp)}; language={exp.language or 'browser'} "
               f"practice_trials={exp.practice_trials} "
               f"practice_feedback={exp.practice_feedback} "
               f"practice_sets={len(json.loads(exp.practice_images or '[]')) or 'built-in'} "
               f"duration=about {minutes(exp)} minutes")
    click.echo(f"texts set: {', '.join(sorted(json.loads(exp.texts or '{}'))) or 'none'}")
    click.echo(f"consent: {consent_markdown(exp)}")
    panel = exp.platform_setting("panel")
    if panel.get("id_param"):
        click.echo(f"panel: link /lab/{exp.name}/via/panel?{panel['id_param']}=<id>, "
                   f"code {panel.get('code', '')}, redirect {panel.get('redirect') or 'none'}")


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

"""`flask --app server prolific COMMAND`: the researcher's commands over Prolific's API.

Every command takes `--api-url` (env PROLIFIC_API_URL; default Prolific's) and
`--token-file` (env PROLIFIC_TOKEN_FILE; else the token in PROLIFIC_TOKEN). An API on this
machine (the local endpoint of `prolific emulate`) is a rehearsal (environment
local-sandbox); anything else is production: `publish` and `bonus` print the cost and ask
before spending money (or `--yes`). Bad input: one line per problem, exit 2; a Prolific
failure: its reason, exit 1. The token is never printed.
"""
from __future__ import annotations

import csv
import json
import sys
from decimal import Decimal, InvalidOperation

import click
from flask.cli import AppGroup

from spreadsheet import neutralise_row

from ...cli import experiment_or_fail, fail
from . import publishing as pub
from . import reviewing as rv
from . import shapes
from .client import Client, ProlificFailure, TokenError, read_token

prolific = AppGroup("prolific", help="Prolific: publish the experiment as a study, follow, "
                                     "review and pay its submissions, or run a local "
                                     "Prolific-compatible endpoint.")


def api_options(fn):
    fn = click.option("--token-file", envvar="PROLIFIC_TOKEN_FILE", default=None,
                      type=click.Path(dir_okay=False),
                      help="File holding the API token (else env PROLIFIC_TOKEN).")(fn)
    fn = click.option("--api-url", envvar="PROLIFIC_API_URL", default=shapes.DEFAULT_API_URL,
                      show_default=True,
                      help="Prolific's API, or the local endpoint of `prolific emulate`; "
                           "env PROLIFIC_API_URL.")(fn)
    return fn


def make_client(api_url: str, token_file: str | None) -> Client:
    """Return the API client; exit 2 without a usable token or URL."""
    if not api_url.startswith(("https://", "http://")):
        fail(f"--api-url {api_url!r} must be an http(s) URL")
    try:
        token = read_token(token_file)
    except TokenError as e:
        fail(str(e))
    client = Client(token, api_url)
    if not client.local and not api_url.startswith("https://"):
        fail("--api-url must use https unless it is on this machine")
    return client


def _experiment(name: str):
    return experiment_or_fail(name, "the database has no tables yet: run `flask --app server "
                                    "db upgrade` and load the experiment first")


def _record(exp, client: Client):
    rec = pub.recorded(exp, client.api_url)
    if rec is None or rec.study_id is None:
        fail(f"experiment {exp.name!r} has no Prolific study on {client.api_url}: run "
             "`flask --app server prolific publish` first")
    return rec


def _where(client: Client) -> str:
    return f"{'local-sandbox' if client.local else 'production'} ({client.api_url})"


def _confirm(client: Client, yes: bool, question: str, nothing: str) -> None:
    if client.local or yes:
        return
    if not click.confirm(question, default=False):
        click.echo(nothing)
        sys.exit(1)


def _guard(fn):
    """Turn a Prolific failure into its one-line reason and exit status 1."""
    import functools

    @functools.wraps(fn)
    def run(*a, **kw):
        try:
            return fn(*a, **kw)
        except ProlificFailure as e:
            fail(str(e), 1)
        except shapes.ShapeError as e:
            fail(f"unexpected answer from Prolific: {e}", 1)
        except pub.PublishError as e:
            fail(str(e))
    return run


def _money(ctx, param, value):
    if value is None:
        return None
    try:
        return pub.parse_money(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


# ------------------------------------------------------------------------- balance
@prolific.command("balance")
@api_options
@click.option("--workspace", default=None, help="Workspace id (default: your only one).")
@_guard
def balance_cmd(api_url, token_file, workspace):
    """Print the workspace's available balance."""
    client = make_client(api_url, token_file)
    if workspace is None:
        spaces = client.workspaces()
        if len(spaces) != 1:
            fail(f"you have {len(spaces)} workspaces: name one with --workspace "
                 f"({', '.join(str(w.get('id')) for w in spaces)})")
        workspace = spaces[0]["id"]
    b = client.balance(workspace)
    click.echo(f"{_where(client)}: available balance "
               f"{shapes.money(int(b.get('available_balance', 0)))} {b.get('currency_code', '')}")


# ------------------------------------------------------------------------- publish
@prolific.command("publish")
@click.argument("experiment")
@api_options
@click.option("--base-url", envvar="TLL_PUBLIC_URL", default=None,
              help="This server's public URL (https); env TLL_PUBLIC_URL.")
@click.option("--places", type=int, default=20, show_default=True,
              help="Participants wanted (total_available_places).")
@click.option("--reward", required=True, callback=_money,
              help="Reward per participant in the workspace's currency, e.g. 1.50.")
@click.option("--minutes", type=click.IntRange(min=1), default=None,
              help="Estimated minutes (default: trials x seconds per trial + overhead).")
@click.option("--max-minutes", type=click.IntRange(min=1), default=None,
              help="Maximum allowed minutes before Prolific times a submission out.")
@click.option("--title", default=None, help="Public title (default: the experiment's).")
@click.option("--description", default=None, help="Public description.")
@click.option("--screen-failed-catch", is_flag=True,
              help="A second completion code for participants who fail a catch trial.")
@click.option("--filters", "filters_path", type=click.Path(dir_okay=False), default=None,
              help="JSON file: a list of Prolific filter objects, passed through.")
@click.option("--completion-url", envvar="PROLIFIC_COMPLETION_URL", default=None,
              help="Where participants finish (default: Prolific's, or the local "
                   "endpoint's); env PROLIFIC_COMPLETION_URL.")
@click.option("--fee-rate", default=str(shapes.FEE_RATE), show_default=True,
              help="Prolific's service fee as a fraction, for the cost line.")
@click.option("--dry-run", is_flag=True, help="Print the study and its cost; create nothing.")
@click.option("--yes", is_flag=True, help="Do not ask before publishing to production.")
@_guard
def publish_cmd(experiment, api_url, token_file, base_url, places, reward, minutes,
                max_minutes, title, description, screen_failed_catch, filters_path,
                completion_url, fee_rate, dry_run, yes):
    """Create the experiment's study on Prolific and publish it; rerunning finishes an
    interrupted publish and never makes a second study."""
    try:
        rate = Decimal(fee_rate)
        if not (0 <= rate < 1):
            raise InvalidOperation
    except InvalidOperation:
        fail(f"--fee-rate {fee_rate!r} must be a fraction between 0 and 1")
    filters = None
    if filters_path:
        try:
            with open(filters_path, encoding="utf-8") as fh:
                filters = json.load(fh)
        except (OSError, ValueError) as e:
            fail(f"cannot read the filters file {filters_path!r}: {e}")
    client = make_client(api_url, token_file)
    exp = _experiment(experiment)
    plan = pub.make_plan(exp, client, base_url=base_url or "", places=places,
                         reward_cents=reward, minutes=minutes, max_minutes=max_minutes,
                         title=title, description=description,
                         screen_failed_catch=screen_failed_catch, filters=filters,
                         completion_url=completion_url, fee_rate=rate)
    click.echo(f"Study {plan.body['name']!r} on {_where(client)}: {plan.places} places, "
               f"{plan.minutes} min estimated, desktop only")
    click.echo(f"Study URL: {plan.body['external_study_url']}")
    codes = f"completion code {plan.completion_code}"
    if plan.failed_code:
        codes += f", failed catch trial {plan.failed_code}"
    click.echo(f"Participants finish at {plan.completion_url} ({codes})")
    click.echo(plan.cost_line())
    if dry_run:
        click.echo("Dry run: nothing was created.")
        return
    _confirm(client, yes, "Publish this study on Prolific and spend the money?",
             "Nothing was created.")
    rec = pub.publish(plan, client, say=click.echo)
    click.echo(f"Study {rec.study_id}: {rec.status}.")


# ------------------------------------------------------------------ study transitions
def _transition(experiment, api_url, token_file, action: str, verb: str):
    client = make_client(api_url, token_file)
    rec = _record(_experiment(experiment), client)
    study = pub.transition(client, rec, action)
    click.echo(f"Study {study.id} {verb}: {study.status}.")


@prolific.command("pause")
@click.argument("experiment")
@api_options
@_guard
def pause_cmd(experiment, api_url, token_file):
    """Pause the study (no new participants; those inside finish)."""
    _transition(experiment, api_url, token_file, "PAUSE", "paused")


@prolific.command("resume")
@click.argument("experiment")
@api_options
@_guard
def resume_cmd(experiment, api_url, token_file):
    """Resume a paused study."""
    _transition(experiment, api_url, token_file, "START", "resumed")


@prolific.command("stop")
@click.argument("experiment")
@api_options
@_guard
def stop_cmd(experiment, api_url, token_file):
    """Stop the study for good (it then awaits review)."""
    _transition(experiment, api_url, token_file, "STOP", "stopped")


@prolific.command("delete")
@click.argument("experiment")
@api_options
@_guard
def delete_cmd(experiment, api_url, token_file):
    """Delete the study, which Prolific allows only before it is published."""
    from ...models import db
    client = make_client(api_url, token_file)
    exp = _experiment(experiment)
    rec = pub.recorded(exp, client.api_url)
    if rec is None:
        fail(f"experiment {exp.name!r} has no Prolific study on {client.api_url}")
    if rec.study_id is not None:
        client.delete_study(rec.study_id)
    click.echo(f"Study {rec.study_id or '(never created)'} deleted.")
    db.session.delete(rec)
    db.session.commit()


# --------------------------------------------------------------------- status, sync
@prolific.command("status")
@click.argument("experiment")
@api_options
@_guard
def status_cmd(experiment, api_url, token_file):
    """Print the study's status and its submissions per status."""
    client = make_client(api_url, token_file)
    rec = _record(_experiment(experiment), client)
    study = client.study(rec.study_id)
    subs = client.submissions(rec.study_id)
    counts = {}
    for s in subs:
        counts[s.status] = counts.get(s.status, 0) + 1
    click.echo(f"Study {study.id} ({_where(client)}): {study.status}, "
               f"{study.total_available_places} places")
    click.echo("Submissions: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                                  or "none") + ".")


@prolific.command("sync")
@click.argument("experiment")
@api_options
@_guard
def sync_cmd(experiment, api_url, token_file):
    """Bring the participants' statuses in line with Prolific's submissions (returned and
    timed-out ones too)."""
    client = make_client(api_url, token_file)
    rec = _record(_experiment(experiment), client)
    res = rv.sync(client, rec)
    for m in res.mismatches:
        click.echo(f"mismatch: {m}")
    click.echo(f"{res.changed} status(es) changed, {len(res.mismatches)} mismatch(es).")
    click.echo("Participants: " + (", ".join(f"{n} {s}" for s, n in sorted(res.statuses.items()))
                                   or "none") + ".")


# ------------------------------------------------------------------------ reviewing
def _describe(r: rv.Review) -> str:
    got = f"{len(r.answers)}/{r.expected} answers" if r.participant else "never reached the server"
    catch = f", catch {r.catch_total - r.catch_failed}/{r.catch_total}" if r.catch_total else ""
    return (f"{r.submission.id} participant {r.submission.participant_id} "
            f"{r.submission.status} code {r.submission.study_code or '-'}: {got}{catch}")


@prolific.command("review")
@click.argument("experiment")
@api_options
@click.option("--status", "statuses", multiple=True, default=("AWAITING REVIEW",),
              show_default=True, help="Prolific submission status(es) to list.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the list as CSV.")
@_guard
def review_cmd(experiment, api_url, token_file, statuses, csv_path):
    """List the submissions to review with their answers and catch-trial results."""
    unknown = [s for s in statuses if s not in shapes.SUBMISSION_STATUSES]
    if unknown:
        fail(f"unknown status(es) {', '.join(unknown)} (one of "
             f"{', '.join(shapes.SUBMISSION_STATUSES)})")
    client = make_client(api_url, token_file)
    rec = _record(_experiment(experiment), client)
    items = rv.review(client, rec, tuple(statuses))
    for r in items:
        click.echo(_describe(r))
    click.echo(f"{len(items)} submission(s).")
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["submission_id", "participant_id", "status", "code", "answers",
                        "expected", "catch_total", "catch_failed"])
            for r in items:
                w.writerow(neutralise_row([
                    r.submission.id, r.submission.participant_id, r.submission.status,
                    r.submission.study_code or "", len(r.answers), r.expected,
                    r.catch_total, r.catch_failed]))


def _select(client, rec, ids, every: bool, rule=None) -> list[rv.Review]:
    items = rv.review(client, rec, answers=not ids and rule is not None)
    if ids:
        by_id = {r.submission.id: r for r in items}
        missing = [i for i in ids if i not in by_id]
        if missing:
            fail(f"not awaiting review in this study: {', '.join(missing)}")
        return [by_id[i] for i in ids]
    if not every and rule is None:
        fail("name the submissions, or choose --all or --passed-catch")
    return [r for r in items if rule is None or rule(r)]


@prolific.command("approve")
@click.argument("experiment")
@click.argument("submission_ids", nargs=-1)
@api_options
@click.option("--all", "every", is_flag=True, help="Every submission awaiting review.")
@click.option("--passed-catch", is_flag=True,
              help="Those awaiting review whose answers are complete and passed every "
                   "catch trial.")
@_guard
def approve_cmd(experiment, submission_ids, api_url, token_file, every, passed_catch):
    """Approve submissions (named, --all or --passed-catch) in one bulk call."""
    client = make_client(api_url, token_file)
    rec = _record(_experiment(experiment), client)
    rule = (lambda r: r.complete and r.catch_failed == 0) if passed_catch else None
    items = rv.approve(client, rec, _select(client, rec, submission_ids, every, rule))
    for r in items:
        click.echo(f"{r.submission.id}: approved")
    click.echo(f"{len(items)} submission(s) approved.")


@prolific.command("reject")
@click.argument("experiment")
@click.argument("submission_ids", nargs=-1)
@api_options
@click.option("--failed-catch", is_flag=True,
              help="Those awaiting review who failed a catch trial.")
@click.option("--category", required=True, type=click.Choice(shapes.REJECTION_CATEGORIES),
              help="Prolific's rejection category.")
@click.option("--message", required=True,
              help=f"To the participant, at least {shapes.MIN_REJECT_MESSAGE} characters.")
@click.option("--yes", is_flag=True, help="Do not ask before rejecting.")
@_guard
def reject_cmd(experiment, submission_ids, api_url, token_file, failed_catch, category,
               message, yes):
    """Reject submissions with Prolific's category and a message."""
    problems = shapes.check_rejection(category, message)
    if problems:
        fail(problems)
    client = make_client(api_url, token_file)
    rec = _record(_experiment(experiment), client)
    rule = (lambda r: r.catch_failed > 0) if failed_catch else None
    if not submission_ids and rule is None:
        fail("name the submissions to reject, or choose --failed-catch")
    items = _select(client, rec, submission_ids, False, rule)
    if not yes and items and not click.confirm(f"Reject {len(items)} submission(s)?",
                                               default=False):
        click.echo("Nothing was rejected.")
        sys.exit(1)
    bad = 0
    for r, err in rv.reject(client, rec, items, category, message):
        if err:
            bad += 1
            click.echo(f"{r.submission.id}: FAILED: {err}")
        else:
            click.echo(f"{r.submission.id}: rejected")
    click.echo(f"{len(items) - bad} of {len(items)} submission(s) rejected.")
    if bad:
        sys.exit(1)


@prolific.command("bonus")
@click.argument("experiment")
@click.argument("submission_id")
@api_options
@click.option("--amount", required=True, callback=_money, help="Bonus, e.g. 0.50.")
@click.option("--yes", is_flag=True, help="Do not ask before paying in production.")
@_guard
def bonus_cmd(experiment, submission_id, api_url, token_file, amount, yes):
    """Pay a bonus on one submission (once per submission)."""
    client = make_client(api_url, token_file)
    rec = _record(_experiment(experiment), client)
    sub = next((s for s in client.submissions(rec.study_id) if s.id == submission_id), None)
    if sub is None:
        fail(f"no submission {submission_id!r} in study {rec.study_id}")
    fee = int((Decimal(amount) * Decimal(str(shapes.FEE_RATE))).quantize(Decimal(1)))
    click.echo(f"Bonus {shapes.money(amount)} + {shapes.money(fee)} service fee to participant "
               f"{sub.participant_id} ({_where(client)})")
    _confirm(client, yes, "Pay this bonus?", "Nothing was paid.")
    try:
        row = rv.bonus(client, rec, sub, amount)
    except rv.BonusRefused as e:
        fail(str(e))
    click.echo(f"{submission_id}: bonus {shapes.money(row.amount_cents)} paid.")


# ------------------------------------------------------------------------ emulator
@prolific.command("emulate", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5060, type=int, show_default=True)
@click.option("--token", envvar="PROLIFIC_TOKEN", default=None,
              help="The token the endpoint accepts (env PROLIFIC_TOKEN; default a fixed "
                   "local one).")
@click.option("--balance", default="10000.00", show_default=True,
              help="The workspace balance, spent by publishing and bonuses.")
def emulate_cmd(host, port, token, balance):
    """Run a local Prolific-compatible endpoint: its API under /api/v1/ and a page that
    sends simulated participants to the study URL."""
    from .emulator import DEFAULT_TOKEN, create_emulator
    if host not in ("127.0.0.1", "localhost", "::1"):
        fail("the local endpoint listens on this machine only (--host 127.0.0.1)")
    try:
        app = create_emulator(token or DEFAULT_TOKEN, Decimal(balance))
    except InvalidOperation:
        fail(f"--balance {balance!r} is not an amount")
    from ...localserve import serve_until_stopped
    click.echo(f"Local Prolific on http://{host}:{port}/ (API http://{host}:{port}/api/v1/); "
               f"use --api-url http://{host}:{port} (or PROLIFIC_API_URL) with the same "
               "token. Stop with Ctrl-C.")
    serve_until_stopped(app, host, port)

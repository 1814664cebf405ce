"""`flask --app server mturk COMMAND`: the requester's commands.

Sandbox is the default; `--production` prints the full cost and asks before anything is
created (or `--yes`). `--endpoint-url` (env MTURK_ENDPOINT_URL) points every command at
another endpoint, e.g. the local one started by `mturk emulate`. Credentials come from
boto3's standard chain and are never printed. Bad input: one line per problem, exit 2;
an MTurk failure: its reason, exit 1.
"""
from __future__ import annotations

import csv
import os
import sys
from decimal import Decimal

import click
from flask import current_app
from flask.cli import AppGroup

from spreadsheet import neutralise_row

from ..cli import experiment_or_fail, fail
from . import publishing as pub
from . import reviewing as rv
from .fees import FeeError, dollars, parse_amount
from .requester import MTurkFailure, Requester

mturk = AppGroup("mturk", help="Mechanical Turk: publish HITs, follow, review and pay "
                               "them (sandbox by default), or run a local endpoint.")


def endpoint_options(fn):
    """--production, --endpoint-url."""
    fn = click.option("--endpoint-url", envvar="MTURK_ENDPOINT_URL", default=None,
                      help="Requester endpoint instead of MTurk's (e.g. the local one "
                           "from `mturk emulate`); env MTURK_ENDPOINT_URL.")(fn)
    fn = click.option("--production", is_flag=True,
                      help="Use the production marketplace (real money). Default: sandbox.")(fn)
    return fn


def make_requester(production: bool, endpoint_url: str | None) -> Requester:
    """Return the Requester for the chosen environment (retry delay from
    MTURK_RETRY_BACKOFF seconds, default 0.5)."""
    backoff = float(os.environ.get("MTURK_RETRY_BACKOFF", "0.5"))
    return Requester("production" if production else "sandbox", endpoint_url or None,
                     backoff=backoff)


def _experiment(name: str):
    return experiment_or_fail(name, "the database has no tables yet: run `flask --app server "
                                    "db upgrade` and load the experiment (`flask --app server "
                                    "load-experiment FILE`) first")


def _hits(exp, requester: Requester, keys) -> list:
    try:
        hits = pub.recorded_hits(exp, requester.label, list(keys) or None)
    except pub.PublishError as exc:
        fail(exc.problems)
    if not hits:
        fail(f"experiment {exp.name!r} has no HITs published in {requester.label}: run "
             "`flask --app server mturk publish` first")
    return hits


def _where(requester: Requester) -> str:
    return f"{requester.label} ({requester.endpoint_url})"


def _summarise(results, verb: str, noun: str, failed, done) -> None:
    """Print one line per (item, error) result (`failed(item)`: FAILED: error, or
    `done(item)`), then "k of n <noun> <verb>."; exit status 1 when any failed."""
    bad = 0
    for item, err in results:
        if err:
            bad += 1
            click.echo(f"{failed(item)}: FAILED: {err}")
        else:
            click.echo(done(item))
    click.echo(f"{len(results) - bad} of {len(results)} {noun} {verb}.")
    if bad:
        sys.exit(1)


def _report(results, verb: str) -> None:
    _summarise(results, verb, "HITs", lambda h: f"{h.key} {h.mturk_hit_id}",
               lambda h: f"{h.key} {h.mturk_hit_id}: {verb}")


def _confirm(requester: Requester, yes: bool, question: str) -> None:
    if requester.environment != "production" or yes:
        return
    if not click.confirm(question, default=False):
        click.echo("Nothing was created.")
        sys.exit(1)


# --------------------------------------------------------------------------- balance
@mturk.command("balance")
@endpoint_options
def balance_cmd(production, endpoint_url):
    """Print the requester account's available balance."""
    r = make_requester(production, endpoint_url)
    try:
        click.echo(f"{_where(r)}: available balance {dollars(parse_amount(r.balance()))}")
    except MTurkFailure as exc:
        fail(str(exc), 1)


# --------------------------------------------------------------------------- publish
def _duration(ctx, param, value):
    try:
        return pub.parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _money(ctx, param, value):
    try:
        return parse_amount(value)
    except FeeError as exc:
        raise click.BadParameter(str(exc)) from None


@mturk.command("publish")
@click.argument("experiment")
@endpoint_options
@click.option("--base-url", envvar="TLL_PUBLIC_URL", default=None,
              help="Public HTTPS address of this server (env TLL_PUBLIC_URL).")
@click.option("--reward", default="0.05", callback=_money, show_default=True,
              help="Reward per assignment in dollars.")
@click.option("--assignments", default=20, type=int, show_default=True,
              help="Assignments (different workers) per HIT.")
@click.option("--lifetime", default="7d", callback=_duration, show_default=True,
              help="How long the HITs stay on the market (s, m, h, d, w).")
@click.option("--duration", default="1h", callback=_duration, show_default=True,
              help="Time a worker has for one assignment.")
@click.option("--auto-approve", default="3d", callback=_duration, show_default=True,
              help="Submitted assignments are approved automatically after this delay.")
@click.option("--title", default=pub.HitSettings.title, show_default=True)
@click.option("--description", default=pub.HitSettings.description)
@click.option("--keywords", default=pub.HitSettings.keywords, show_default=True)
@click.option("--masters/--no-masters", default=False, show_default=True,
              help="Only Masters workers (+5 % fee); the paper used Masters.")
@click.option("--min-approval-rate", type=int, default=None,
              help="Minimum percentage of the worker's HITs approved.")
@click.option("--min-approved", type=int, default=None,
              help="Minimum number of the worker's HITs approved.")
@click.option("--locale", "locales", multiple=True,
              help="Allowed worker country (US, or US-NY); repeatable.")
@click.option("--frame-height", default=0, type=int, show_default=True,
              help="ExternalQuestion FrameHeight in pixels (0 = full height).")
@click.option("--hit", "keys", multiple=True, help="Publish only this HIT key; repeatable.")
@click.option("--exclude-workers", "exclude", multiple=True, metavar="FILE|EXPERIMENT",
              help="Keep out these workers (a file of worker ids, or the name of an earlier "
                   "experiment in this database): MTurk hides the HITs from them. "
                   "Repeatable.")
@click.option("--apply-changes", is_flag=True,
              help="When HITs already published differ from these settings (reward, "
                   "assignments, qualifications, texts), change them on MTurk. Without it, "
                   "publish says what differs and changes nothing.")
@click.option("--dry-run", is_flag=True, help="Print the plan and cost; create nothing.")
@click.option("--yes", is_flag=True, help="Do not ask before publishing to production.")
def publish_cmd(experiment, production, endpoint_url, base_url, reward, assignments,
                lifetime, duration, auto_approve, title, description, keywords, masters,
                min_approval_rate, min_approved, locales, frame_height, keys, exclude,
                apply_changes, dry_run, yes):
    """Publish one HIT per HIT key of EXPERIMENT (as grouped in the experiment file).

    Where the experiment's repeat policy keeps past participants out (or with
    --exclude-workers), the HITs require the experiment's own qualification to be
    absent, and the workers who start (or are excluded) are given it."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    base_url = base_url or current_app.config.get("PUBLIC_URL")
    settings = pub.HitSettings(base_url=base_url or "", reward=reward,
                               assignments=assignments, lifetime=lifetime, duration=duration,
                               auto_approval=auto_approve, title=title,
                               description=description, keywords=keywords, masters=masters,
                               min_approval_rate=min_approval_rate,
                               min_approved=min_approved, locales=list(locales),
                               frame_height=frame_height)
    try:
        plan = pub.plan_publish(exp, settings, r, list(keys) or None)
    except pub.PublishError as exc:
        fail(exc.problems)
    click.echo(f"Experiment {exp.name!r} on {_where(r)}")
    excluded = _exclusion(r, exp, settings, exclude, dry_run)
    if plan.already:
        click.echo(f"{len(plan.already)} HIT(s) already published there.")
        _published_differences(r, plan, apply_changes, dry_run)
    if excluded and not dry_run:
        _grant(r, settings.exclusion_qualification, excluded)
    if not plan.todo:
        click.echo("Nothing to publish.")
        return
    click.echo(f"Task pages: {pub.task_url(settings.base_url, exp.name, plan.todo[0][0])} …")
    for line in plan.cost.lines():
        click.echo(line)
    if dry_run:
        click.echo("Dry run: nothing was created.")
        return
    try:
        available = parse_amount(r.balance())
    except MTurkFailure as exc:
        fail(str(exc), 1)
    if plan.cost.total_cents > available:
        fail(f"insufficient funds: the balance is {dollars(available)} and these HITs cost "
             f"{dollars(plan.cost.total)}. Nothing was created.", 1)
    _confirm(r, yes, f"Publish {len(plan.todo)} HITs to PRODUCTION for "
                     f"{dollars(plan.cost.total)}?")
    from tqdm import tqdm

    made: list = []
    try:
        def progress(items):
            yield from tqdm(items, desc="publishing", unit="HIT", file=sys.stderr)
        made, found = pub.publish(plan, r, progress)
    except pub.PublishError as exc:
        fail(exc.problems, 1)
    except MTurkFailure as exc:
        done = pub.recorded_hits(exp, r.label)
        fail([str(exc), f"{len(done)} HIT(s) of {exp.name!r} are published and recorded; "
                        "fix the cause and run publish again to create the rest."], 1)
    click.echo(f"Published {len(made)} HITs"
               + (f" ({found} found already created by an earlier, interrupted run)"
                  if found else "") + ".")
    if r.local:
        click.echo(f"Workers' site: {r.endpoint_url.rstrip('/')}/")


def _exclusion(r: Requester, exp, settings, sources, dry_run: bool) -> list[str]:
    """Set up the experiment's exclusion qualification when needed; return the workers
    to exclude from the sources."""
    from . import exclusion
    try:
        workers = exclusion.excluded_workers(list(sources))
    except exclusion.ExclusionError as exc:
        fail(exc.args[0])
    if not workers and not exclusion.excludes_past_participants(exp):
        return []
    try:
        qid = exclusion.ensure(r, exp, pub.deployment(), create=not dry_run)
    except MTurkFailure as exc:
        fail(str(exc), 1)
    settings.exclusion_qualification = qid or "(created on publish)"
    click.echo(f"Exclusion qualification {settings.exclusion_qualification}: HITs hidden "
               f"from past participants" + (f" and {len(workers)} excluded worker(s)"
                                            if workers else "") + ".")
    return workers


def _grant(r: Requester, qid: str, workers: list[str]) -> None:
    from tqdm import tqdm
    try:
        for w in tqdm(workers, desc="excluding", unit="worker", file=sys.stderr):
            r.grant(qid, w)
    except MTurkFailure as exc:
        fail([str(exc), "Nothing was published; run publish again."], 1)


def _published_differences(r: Requester, plan, apply_changes: bool, dry_run: bool) -> None:
    """Say how the published HITs differ from the settings given now; change them only
    with --apply-changes, else stop with exit status 1."""
    try:
        diffs = pub.compare_published(plan, r)
    except pub.PublishError as exc:
        fail(exc.problems, 1)
    except MTurkFailure as exc:
        fail(str(exc), 1)
    if not diffs:
        return
    for d in diffs:
        note = "" if d.applicable else "  (cannot be changed on MTurk)"
        click.echo(f"DIFFERS {d.hit.key} {d.hit.mturk_hit_id} {d.field}: published "
                   f"{d.published}, now {d.wanted}{note}")
    hits = len({d.hit.id for d in diffs})
    if dry_run:
        click.echo(f"{hits} published HIT(s) differ. Dry run: nothing was changed.")
        sys.exit(0)
    if not apply_changes:
        fail(f"{hits} published HIT(s) differ from these settings; nothing was changed. "
             "Publish again with the settings they have, or add --apply-changes to change "
             "them on MTurk.", 1)
    blocked = [d for d in diffs if not d.applicable]
    if blocked:
        fail([f"{d.hit.key}: {d.field} cannot go from {d.published} to {d.wanted} on MTurk "
              "(fewer assignments, or from under 10 to 10 or more)" for d in blocked]
             + ["Nothing was changed."], 1)
    _report(pub.apply_changes(plan, r, diffs), "changed")


# --------------------------------------------------------------------------- status
@mturk.command("status")
@click.argument("experiment", required=False)
@endpoint_options
def status_cmd(experiment, production, endpoint_url):
    """Each HIT with its assignments per status (every HIT of the account when no
    EXPERIMENT is given)."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment) if experiment else None
    try:
        rows, seen = pub.status(r, exp)
    except MTurkFailure as exc:
        fail(str(exc), 1)
    cols = ("Available", "Pending", "Submitted", "Approved", "Rejected")
    click.echo(f"{'key':8} {'HIT':30} {'status':12} " + " ".join(f"{c:>9}" for c in cols))
    total = dict.fromkeys(cols, 0)
    for s in rows:
        click.echo(f"{(s.key or '-'):8} {s.hit_id:30} {s.status:12} "
                   + " ".join(f"{s.counts[c]:>9}" for c in cols))
        for c in cols:
            total[c] += s.counts[c]
    click.echo(f"{'total':8} {len(rows):<30} {'':12} " + " ".join(f"{total[c]:>9}" for c in cols))
    click.echo(f"{seen} HITs on the account ({_where(r)}), {len(rows)} listed.")


# --------------------------------------------------------------------------- sync
@mturk.command("sync")
@click.argument("experiment")
@endpoint_options
def sync_cmd(experiment, production, endpoint_url):
    """Pull the assignments from MTurk, update each participant's submission status
    (accepted, submitted, approved, rejected, returned, abandoned) and report every
    mismatch (exit status 1 when there is one)."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    hits = _hits(exp, r, ())
    try:
        rep = rv.sync(r, hits)
        _regrant(r, exp, hits)
    except MTurkFailure as exc:
        fail(str(exc), 1)
    for m in rep.mismatches:
        click.echo(f"MISMATCH {m}")
    click.echo("Participants: " + (", ".join(f"{n} {s}" for s, n in
                                             sorted(rep.statuses.items())) or "none") + ".")
    click.echo(f"{rep.hits} HITs, {rep.assignments} assignments on MTurk, {rep.updated} "
               f"updated here, {len(rep.mismatches)} mismatch(es).")
    if rep.mismatches:
        sys.exit(1)


def _regrant(r: Requester, exp, hits) -> None:
    """Grant the exclusion qualification again to every worker of the experiment (the
    worker page's grant may have failed; granting twice changes nothing)."""
    from . import exclusion
    qid = exclusion.recorded(exp, r.label)
    if qid is None or not exclusion.excludes_past_participants(exp):
        return
    for w in rv.experiment_workers(hits):
        r.grant(qid, w)


# --------------------------------------------------------------------------- review
def _describe(item: rv.Review) -> list[str]:
    catch = (f"catch {item.catch_total - item.catch_failed}/{item.catch_total} passed"
             if item.catch_total else "no catch trials")
    state = "" if item.complete else \
        f"  INCOMPLETE: {len(item.answers)} of {item.expected or '?'} answers here"
    lines = [f"{item.hit.key} {item.assignment_id} worker {item.worker_id} "
             f"[{item.status}] {catch}{state}"]
    for a in item.answers:
        mark = "correct" if a.correct else "wrong"
        lines.append(f"    {a.trial} {a.condition}{' (catch)' if a.catch else ''}: chose "
                     f"{a.chosen_position}, match at {a.true_position}: {mark}")
    return lines


@mturk.command("review")
@click.argument("experiment")
@endpoint_options
@click.option("--status", "statuses", multiple=True, default=("Submitted",),
              type=click.Choice(["Submitted", "Approved", "Rejected"]), show_default=True,
              help="Assignment status to list; repeatable.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write one row per answer to this CSV file.")
def review_cmd(experiment, production, endpoint_url, statuses, csv_path):
    """Submitted assignments with the worker's answers and catch-trial results."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    try:
        items = rv.review(r, _hits(exp, r, ()), tuple(statuses))
    except MTurkFailure as exc:
        fail(str(exc), 1)
    for item in items:
        for line in _describe(item):
            click.echo(line)
    failed = sum(1 for i in items if i.catch_failed)
    click.echo(f"{len(items)} assignment(s); {failed} failed a catch trial.")
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["hit", "assignment_id", "worker_id", "status", "trial", "condition",
                        "catch", "chosen_position", "true_position", "correct"])
            for i in items:
                for a in i.answers:
                    w.writerow(neutralise_row([
                        i.hit.key, i.assignment_id, i.worker_id, i.status, a.trial,
                        a.condition, int(a.catch), a.chosen_position, a.true_position,
                        int(a.correct)]))


# --------------------------------------------------------------------------- decide
def _select(r: Requester, exp, ids, rule) -> list:
    hits = _hits(exp, r, ())
    if ids and rule:
        fail("give assignment IDs or a rule, not both")
    if not ids and not rule:
        fail("give assignment IDs or a rule (see --help)")
    if ids:
        items, unknown = [], []
        for aid in ids:
            item = rv.find_review(r, hits, aid)
            (items.append(item) if item else unknown.append(aid))
        if unknown:
            fail([f"assignment {a} is not an assignment of {exp.name!r} in {r.label}"
                  for a in unknown])
        return items
    items = rv.review(r, hits, ("Submitted",))
    return [i for i in items if rule(i)]


def _decided(results, verb: str) -> None:
    _summarise(results, verb, "assignment(s)", lambda i: i.assignment_id,
               lambda i: f"{i.assignment_id} worker {i.worker_id}: {i.status}")


@mturk.command("approve")
@click.argument("experiment")
@click.argument("assignment_ids", nargs=-1)
@endpoint_options
@click.option("--all-submitted", is_flag=True, help="Every submitted assignment.")
@click.option("--passed-catch", is_flag=True,
              help="Every submitted assignment with all answers here and no failed catch trial.")
@click.option("--feedback", default=None, help="Message to the workers (optional).")
@click.option("--override-rejection", is_flag=True,
              help="Approve the given REJECTED assignments (MTurk allows it within 30 days "
                   "of submission, while the HIT is not deleted).")
def approve_cmd(experiment, assignment_ids, production, endpoint_url, all_submitted,
                passed_catch, feedback, override_rejection):
    """Approve assignments by ID, or in bulk by a rule."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    if override_rejection and not assignment_ids:
        fail("--override-rejection takes the IDs of the rejected assignments to approve")
    rule = None
    if all_submitted:
        rule = lambda i: True  # noqa: E731
    elif passed_catch:
        rule = lambda i: i.complete and not i.catch_failed  # noqa: E731
    try:
        items = _select(r, exp, assignment_ids, rule)
        if override_rejection:
            for i in items:
                if i.status != "Rejected":
                    fail(f"assignment {i.assignment_id} is {i.status}, not Rejected: "
                         "--override-rejection only undoes rejections")
        _decided(rv.decide(r, items, True, feedback, override_rejection), "approved")
    except MTurkFailure as exc:
        fail(str(exc), 1)


@mturk.command("reject")
@click.argument("experiment")
@click.argument("assignment_ids", nargs=-1)
@endpoint_options
@click.option("--failed-catch", is_flag=True,
              help="Every submitted assignment that failed at least one catch trial.")
@click.option("--feedback", required=True,
              help="Why: the worker reads this (required by MTurk).")
@click.option("--yes", is_flag=True, help="Do not ask before rejecting.")
def reject_cmd(experiment, assignment_ids, production, endpoint_url, failed_catch, feedback,
               yes):
    """Reject assignments by ID, or in bulk by a rule, with feedback. Prints what it will
    reject and asks first (a rejection costs the worker; --yes skips the question)."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    if not feedback.strip():
        fail("--feedback must say why the work is rejected")
    rule = (lambda i: i.catch_failed > 0) if failed_catch else None
    try:
        items = _select(r, exp, assignment_ids, rule)
        if not items:
            click.echo("Nothing to reject.")
            return
        click.echo(f"Will reject {len(items)} assignment(s) of {exp.name!r} on {_where(r)} "
                   f"with the feedback {feedback!r}:")
        for item in items:
            click.echo("  " + _describe(item)[0])
        if not yes and not click.confirm(f"Reject these {len(items)} assignment(s)?",
                                         default=False):
            click.echo("Nothing was rejected.")
            sys.exit(1)
        _decided(rv.decide(r, items, False, feedback), "rejected")
    except MTurkFailure as exc:
        fail(str(exc), 1)


# --------------------------------------------------------------------------- bonus
@mturk.command("bonus")
@click.argument("experiment")
@click.argument("assignment_id")
@endpoint_options
@click.option("--amount", required=True, callback=_money, help="Bonus in dollars.")
@click.option("--reason", required=True, help="Why (the worker reads this).")
@click.option("--additional", "--again", "additional", is_flag=True,
              help="Pay another bonus although this assignment has one.")
@click.option("--yes", is_flag=True, help="Do not ask before paying in production.")
def bonus_cmd(experiment, assignment_id, production, endpoint_url, amount, reason, additional,
              yes):
    """Pay a bonus on an assignment, once: a rerun never pays twice, and a second bonus
    (of any amount) needs --additional."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    if amount <= 0:
        fail("--amount must be positive")
    try:
        item = rv.find_review(r, _hits(exp, r, ()), assignment_id)
        if item is None:
            fail(f"assignment {assignment_id} is not an assignment of {exp.name!r} in "
                 f"{r.label}")
        click.echo(f"Bonus {dollars(amount)} + fee = {dollars(rv.bonus_cost(amount))} to "
                   f"worker {item.worker_id}")
        _confirm(r, yes, "Pay this bonus in PRODUCTION?")
        bonus, fresh = rv.pay_bonus(r, item, amount, reason, additional)
    except ValueError as exc:
        fail(str(exc))
    except MTurkFailure as exc:
        fail(str(exc), 1)
    click.echo(("Paid" if fresh else "Already paid earlier (same request token)")
               + f": {dollars(Decimal(bonus.amount))} on {assignment_id}.")


# --------------------------------------------------------------------------- notify
@mturk.command("notify")
@click.argument("experiment")
@endpoint_options
@click.option("--subject", required=True, help="Subject line (at most 200 characters).")
@click.option("--message", required=True, help="Message text (at most 4096 characters).")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["accepted", "finished", "submitted", "approved", "rejected",
                                 "returned", "abandoned"]),
              help="Only workers whose assignment has this status here; repeatable.")
@click.option("--yes", is_flag=True, help="Do not ask before sending.")
def notify_cmd(experiment, production, endpoint_url, subject, message, statuses, yes):
    """E-mail a message to the experiment's workers (MTurk NotifyWorkers, 100 a call)."""
    if not subject.strip() or len(subject) > 200:
        fail("--subject must be 1 to 200 characters")
    if not message.strip() or len(message) > 4096:
        fail("--message must be 1 to 4096 characters")
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    workers = rv.experiment_workers(_hits(exp, r, ()), tuple(statuses))
    if not workers:
        click.echo("No workers to notify.")
        return
    click.echo(f"Message {subject!r} to {len(workers)} worker(s) of {exp.name!r} on "
               f"{_where(r)}.")
    if not yes and not click.confirm("Send it?", default=False):
        click.echo("Nothing was sent.")
        sys.exit(1)
    from tqdm import tqdm
    try:
        failures = rv.notify(r, workers, subject, message,
                             progress=lambda xs: tqdm(xs, desc="notifying", unit="batch",
                                                      file=sys.stderr))
    except MTurkFailure as exc:
        fail(str(exc), 1)
    for f in failures:
        click.echo(f"{f.get('WorkerId')}: FAILED: {f.get('NotifyWorkersFailureMessage', '')}")
    click.echo(f"{len(workers) - len(failures)} of {len(workers)} worker(s) notified.")
    if failures:
        sys.exit(1)


# --------------------------------------------------------------------------- HIT life
@mturk.command("expire")
@click.argument("experiment")
@endpoint_options
@click.option("--hit", "keys", multiple=True, help="Only this HIT key; repeatable.")
def expire_cmd(experiment, production, endpoint_url, keys):
    """Expire HITs now (works with pending assignments; those may still submit)."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    _report(pub.expire(r, _hits(exp, r, keys)), "expired")


@mturk.command("extend")
@click.argument("experiment")
@endpoint_options
@click.option("--hit", "keys", multiple=True, help="Only this HIT key; repeatable.")
@click.option("--by", "by", default=None, callback=lambda c, p, v: None if v is None
              else _duration(c, p, v), help="New expiry: now plus this (e.g. 2d).")
@click.option("--assignments", type=click.IntRange(min=1), default=None,
              help="Add this many assignments to each HIT.")
@click.option("--yes", is_flag=True, help="Do not ask before paying in production.")
def extend_cmd(experiment, production, endpoint_url, keys, by, assignments, yes):
    """Extend HITs: a later expiry and/or more assignments."""
    if not by and not assignments:
        fail("give --by DURATION and/or --assignments N")
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    hits = _hits(exp, r, keys)
    if assignments:
        from .fees import publish_cost
        total = sum(publish_cost(h.reward, h.max_assignments + assignments, 1).fee_per_assignment
                    * assignments + Decimal(h.reward) * assignments for h in hits)
        click.echo(f"{assignments} more assignment(s) on {len(hits)} HIT(s): "
                   f"{dollars(total)} before any Masters fee")
        _confirm(r, yes, "Add these assignments in PRODUCTION?")
    _report(pub.extend(r, hits, by, assignments), "extended")


@mturk.command("delete")
@click.argument("experiment")
@endpoint_options
@click.option("--hit", "keys", multiple=True, help="Only this HIT key; repeatable.")
def delete_cmd(experiment, production, endpoint_url, keys):
    """Delete HITs on MTurk (each must be expired with every assignment decided)."""
    r = make_requester(production, endpoint_url)
    exp = _experiment(experiment)
    _report(pub.delete(r, _hits(exp, r, keys)), "deleted")


# --------------------------------------------------------------------------- emulate
@mturk.command("emulate", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5050, type=int, show_default=True)
@click.option("--allow-http-localhost", is_flag=True,
              help="Accept http://127.0.0.1 / localhost ExternalURLs (local runs).")
@click.option("--environment", type=click.Choice(["sandbox", "production"]),
              default="sandbox", show_default=True,
              help="Which marketplace to imitate (Masters qualification ID, balance).")
@click.option("--balance", default=None,
              help="Track a balance that publishing spends (default: the sandbox's "
                   "$10,000.00, never spent).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False), default=None,
              help="Keep the state in this JSON file (reloaded on start).")
def emulate_cmd(host, port, allow_http_localhost, environment, balance, state_path):
    """Run a local MTurk-compatible endpoint (requester API + simulated worker site)."""
    from ..localserve import serve_until_stopped
    from .emulator import create_emulator, request_handler
    from .question import is_loopback_url

    if not is_loopback_url(f"http://{host}/"):
        click.echo(f"warning: listening on {host}, not only on this machine", err=True)
    if balance is not None:
        try:
            parse_amount(balance)
        except FeeError as exc:
            fail(str(exc))
    app = create_emulator(environment, allow_http_localhost, balance, state_path)
    url = f"http://{host}:{port}"
    click.echo(f"Local MTurk endpoint ({environment}) on {url}\n"
               f"  requester commands: --endpoint-url {url}  (or MTURK_ENDPOINT_URL={url})\n"
               f"  worker site:        {url}/")
    serve_until_stopped(app, host, port, request_handler(app))

"""Command line (click): ``python -m analysis {report,accuracy,agreement,position,tests,
participants,fig4,simulate} ...``. Bad input prints one line per problem and exits with
status 2; a usage error (a missing or unknown option) exits with status 2 too."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import click
import pandas as pd

from analysis.errors import AnalysisError
from spreadsheet import neutralise_frame

SOURCES = ("db", "csv", "json")


def _source_options(fn):
    """Add the options that choose and filter the answers (one source of --db, --csv,
    --json) to a command."""
    opts = [
        # From the environment too: a URL with a password in argv is visible to every
        # user in the process list, the environment only to the process's owner.
        click.option("--db", metavar="URL", envvar="TLL_ANALYSIS_DB", show_envvar=True,
                     help="database URL, e.g. sqlite:////abs/path/server.sqlite3"),
        click.option("--csv", metavar="FILE", help="answers export (docs/contracts.md §6)"),
        click.option("--json", "json", metavar="FILE",
                     help="JSON answers export ({experiment, trials, answers})"),
        click.option("--experiment", metavar="NAME",
                     help="experiment name (needed when the source holds several)"),
        click.option("--population", metavar="NAME", multiple=True,
                     help="keep only this population (lab, mturk, simulated or a label); "
                          "repeat or comma-separate for several"),
        click.option("--environment", metavar="NAME", multiple=True,
                     help="count answers of this environment (lab, simulated, local-sandbox, "
                          "sandbox, production) instead of the default, per platform; repeat "
                          "or comma-separate. Rehearsals count only when named"),
        click.option("--status", metavar="NAME", multiple=True,
                     help="count answers of this submission status (e.g. submitted, approved, "
                          "rejected, returned, abandoned, accepted) instead of the default, "
                          "per platform; repeat or comma-separate"),
        click.option("--include-withdrawn", is_flag=True,
                     help="count the answers of participants who withdrew (left out by "
                          "default: counting rule 'withdrawn')"),
        click.option("--exclude", metavar="RULE", multiple=True,
                     help="drop participants by a declared rule: failed-catch, "
                          "position-bias, fast (median response time under --fast-ms); "
                          "repeat or comma-separate; off unless named, counted in what "
                          "was counted"),
        click.option("--fast-ms", type=float, default=500.0, metavar="MS", show_default=True,
                     help="the 'fast' exclusion's median response time"),
        click.option("--include-catch", is_flag=True,
                     help="count catch trials in accuracy, agreement and position tables"),
        click.option("--majority", type=click.Choice(["strict", "half"]), default="strict",
                     show_default=True,
                     help="a majority is more than half of a trial's answers (strict) or "
                          "half or more (half)"),
        click.option("--bootstrap", type=int, default=2000, metavar="B", show_default=True,
                     help="bootstrap resamples for intervals (where the design calls for a bootstrap)"),
        click.option("--seed", type=int, default=0, metavar="S", show_default=True,
                     help="seed of the bootstrap"),
    ]
    return _with_options(fn, opts)


def _with_options(fn, options):
    """Return `fn` with the click `options` applied, shown in the order given."""
    for o in reversed(options):
        fn = o(fn)
    return fn


def _one_source(kw: dict) -> None:
    given = [f"--{k}" for k in SOURCES if kw.get(k)]
    if len(given) != 1:
        raise click.UsageError(
            "one of the options --db --csv --json is required" if not given
            else f"choose one source, not {' and '.join(given)}")


def _run(fn, **kw) -> None:
    """Run the command body `fn` on the options `kw` (as attributes, as the bodies read
    them)."""
    fn(SimpleNamespace(**kw))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Accuracy, agreement, position bias and a report for a TLL experiment."""


def _populations(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def _counted(args):
    """Load what counts under the command's --environment / --status and print what was
    counted before anything else."""
    from analysis.exclusions import exclude_participants
    from analysis.load import load_answers
    answers = load_answers(db=args.db, csv=args.csv, experiment=args.experiment,
                           populations=_populations(args.population),
                           environments=_populations(args.environment),
                           statuses=_populations(args.status), json_export=args.json,
                           include_withdrawn=args.include_withdrawn)
    answers = exclude_participants(answers, _populations(args.exclude), args.fast_ms)
    print("== counting")
    for line in answers.counting.lines():
        print(line)
    print()
    return answers


def _load(args):
    from analysis.load import require_answers
    answers = _counted(args)
    require_answers(answers, args.include_catch)
    df = answers.df if args.include_catch else answers.without_catch()
    return answers, df


def _print(title: str, df: pd.DataFrame, digits: int = 3) -> None:
    from analysis.stats import format_p_columns
    print(f"== {title}")
    df = format_p_columns(df) if len(df) else df
    with pd.option_context("display.max_rows", 500, "display.max_columns", 50,
                           "display.width", 200):
        print(df.to_string(float_format=lambda v: f"{v:.{digits}f}") if len(df) else "(empty)")
    print()


def cmd_accuracy(args) -> None:
    from analysis import accuracy
    answers, df = _load(args)
    if args.bootstrap < 10:
        raise AnalysisError(f"--bootstrap must be at least 10 resamples, got {args.bootstrap}")
    long = accuracy.accuracy_long(df, answers.condition_features, args.bootstrap, args.seed)
    _print(f"accuracy (%), experiment {answers.experiment}", accuracy.accuracy_table(long),
           digits=2)
    _print(f"accuracy with the design's 95 % intervals ({args.bootstrap} resamples where "
           f"bootstrapped, seed {args.seed}). {accuracy.intervals_used(long)}",
           accuracy.accuracy_table(long, "text"))
    _print("accuracy with 95 % Wilson intervals (assume independent answers)",
           accuracy.accuracy_table(long, "wilson"))
    catch = accuracy.catch_summary(answers.catch_only())
    if len(catch):
        _print("catch trials", catch)


def cmd_agreement(args) -> None:
    from analysis import agreement
    _, df = _load(args)
    per_trials = agreement.by_population(df, args.majority)
    _print(f"majority rule: {agreement.MAJORITY_RULES[args.majority]}; Fleiss' kappa "
           f"(95 % bootstrap interval over trials)",
           agreement.kappa_table(per_trials, max(10, args.bootstrap), args.seed))
    for pop, per_trial in per_trials.items():
        s = agreement.summarize(per_trial)
        _print(f"agreement, population {pop}", pd.DataFrame([s.as_dict()]).T.rename(
            columns={0: "value"}))
        hist = agreement.agreement_histogram(per_trial)
        _print(f"k of n agreed, population {pop}", hist)


def cmd_position(args) -> None:
    from analysis import position
    answers, df = _load(args)
    per_pos, tests = position.position_table(df, n_resamples=args.bootstrap, seed=args.seed)
    _print(f"answers per display position, experiment {answers.experiment}", per_pos)
    _print("chi-square goodness of fit against no bias", tests)


def cmd_tests(args) -> None:
    from analysis import comparisons
    answers, df = _load(args)
    t = comparisons.comparison_table(df, n_resamples=args.bootstrap, seed=args.seed)
    _print(f"comparisons, experiment {answers.experiment} (p Holm-corrected within each "
           f"holm_family)", t)
    for note in t.attrs.get("notes", []):
        click.echo(note)


def cmd_participants(args) -> None:
    from analysis import participants
    answers, _ = _load(args)
    _print(f"participants, experiment {answers.experiment}",
           participants.participant_table(answers.df))


def cmd_report(args) -> None:
    from analysis.report import write_report
    answers = _counted(args)
    path = write_report(answers, args.out, include_catch=args.include_catch,
                        majority=args.majority, n_resamples=args.bootstrap, seed=args.seed,
                        dpi=args.dpi, experiment_file=args.experiment_file,
                        model_intervals=args.model_intervals)
    print(f"report written: {path}")


def cmd_fig4(args) -> None:
    from pathlib import Path

    from analysis import items
    from analysis.gallery import save_gallery
    answers, _ = _load(args)
    if args.trials < 1:
        raise AnalysisError(f"--trials must be at least 1, got {args.trials}")
    plain = items.item_table(answers.without_catch(), None, args.majority)
    hi, lo = items.agreement_extremes(plain, args.trials)
    if args.experiment_file:
        images = items.from_experiment_file(args.experiment_file)
    elif answers.url:
        images = items.from_database(answers.url, answers.experiment,
                                     set(hi["trial"]) | set(lo["trial"]))
    else:
        images = None
    table = items.with_images(plain, images).set_index("trial", drop=False)
    drawings = items.drawings(table.loc[hi["trial"]], images) + \
        items.drawings(table.loc[lo["trial"]], images)
    for i, d in enumerate(drawings):
        d.title = ("highest" if i < len(hi) else "lowest") + " agreement · " + d.title
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalysisError(f"cannot write to {out}: {exc.strerror or exc}") from None
    png = save_gallery(drawings, out / "fig4.png", dpi=args.dpi)
    neutralise_frame(pd.concat([table.loc[hi["trial"]].assign(end="highest"),
                                table.loc[lo["trial"]].assign(end="lowest")])
                     ).to_csv(out / "fig4.csv", index=False)
    print(f"Fig. 4 written: {png} (+ .pdf, .svg, fig4.csv); images: "
          f"{images.source if images else 'none (grey boxes)'}")


def cmd_simulate(args) -> None:
    from analysis.simulate import simulate
    weights = None
    if args.position_bias:
        try:
            weights = [float(w) for w in args.position_bias.split(",")]
        except ValueError:
            raise AnalysisError(f"--position-bias: not numbers: {args.position_bias!r}") from None
    password = args.admin_password
    if args.admin_password_file:
        try:
            password = open(args.admin_password_file, encoding="utf-8").read().strip()
        except OSError as exc:
            raise AnalysisError(f"--admin-password-file: cannot read "
                                f"{args.admin_password_file}: {exc.strerror}") from None
    result = simulate(args.server, args.experiment, args.participants,
                      accuracy=args.accuracy, position_bias=weights, seed=args.seed,
                      admin_password=password, concurrency=args.concurrency)
    print(f"{result['participants']} simulated participants gave {result['answers']} "
          f"answers ({result['correct']} correct) to experiment {args.experiment!r} "
          f"at {args.server}")


def _table_command(name: str, body, text: str, short_help: str | None = None,
                   options: tuple = ()):
    """Register a command that reads answers (one source, see _source_options) and runs
    `body` on them; `options` are click options added after the source options, in the
    order given."""
    def command(**kw):
        _one_source(kw)
        _run(body, **kw)
    command = _source_options(_with_options(command, options))
    return cli.command(name, help=text,
                       short_help=short_help or text.rstrip("."))(command)


for _name, _body, _text in (
        ("accuracy", cmd_accuracy, "Table 2b: accuracy with machine rows."),
        ("agreement", cmd_agreement, "Agreement between participants (Fig. 5)."),
        ("position", cmd_position, "Answers per display position, chi-square test."),
        ("tests", cmd_tests, "The paper's comparisons, Holm-corrected, with effect sizes."),
        ("participants", cmd_participants, "Per-participant accuracy, times and flags.")):
    _table_command(_name, _body, _text)

_table_command(
    "report", cmd_report, "Every table, figure and one HTML report into --out.",
    options=(
        click.option("--out", required=True, metavar="DIR",
                     help="folder to write the report to"),
        click.option("--dpi", type=int, default=300, metavar="DPI", show_default=True,
                     help="resolution of the PNG figures (PDF and SVG are vector)"),
        click.option("--experiment-file", metavar="FILE",
                     help="the experiment file: trial images for the galleries, candidate "
                          "distances for the human-likeness table (default: images from "
                          "--db)"),
        click.option("--model-intervals", type=click.Choice(["profile", "wald", "boot"]),
                     default="wald", show_default=True,
                     help="the mixed model's fixed-effect intervals: Wald (coverage tested, "
                          "fast), likelihood profile, or a parametric bootstrap")))

_table_command(
    "fig4", cmd_fig4,
    "Fig. 4: the trials with the highest and the lowest agreement, drawn with their\n"
    "candidates (PNG, PDF, SVG).",
    short_help="Fig. 4: the trials with the highest and lowest agreement",
    options=(
        click.option("--experiment-file", metavar="FILE",
                     help="the experiment file whose study folder holds the images "
                          "(default with --db: the images in the database)"),
        click.option("--out", required=True, metavar="DIR",
                     help="folder for fig4.png/.pdf/.svg"),
        click.option("--trials", type=int, default=3, metavar="K", show_default=True,
                     help="trials at each end"),
        click.option("--dpi", type=int, default=300, metavar="DPI", show_default=True)))


@cli.command("simulate", short_help="Answer through the server as simulated participants")
@click.option("--server", required=True, metavar="URL", help="e.g. http://127.0.0.1:5000")
@click.option("--experiment", required=True, metavar="NAME")
@click.option("--participants", required=True, type=int, metavar="N")
@click.option("--accuracy", type=float, default=0.75, metavar="P", show_default=True,
              help="probability of choosing the true match")
@click.option("--position-bias", metavar="w1,w2,w3,w4,w5",
              help="relative weights of the display positions for wrong or guessed "
                   "answers (default: equal)")
@click.option("--seed", type=int, default=0, metavar="S", show_default=True)
@click.option("--concurrency", type=int, default=4, metavar="K", show_default=True,
              help="participants answering at the same time")
@click.option("--admin-password", metavar="PASSWORD",
              help="the server's admin password: the answer key is read from the admin "
                   "API (or set env TLL_ADMIN_PASSWORD)")
@click.option("--admin-password-file", metavar="FILE",
              help="read the admin password from FILE (make demo keeps it in "
                   "build/demo/instance/admin_password)")
def simulate_command(**kw):
    """Answer through the server's HTTP endpoints as simulated participants."""
    if kw["admin_password"] and kw["admin_password_file"]:
        raise click.UsageError("choose --admin-password or --admin-password-file, not both")
    _run(cmd_simulate, **kw)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input). A usage error
    prints click's message and raises SystemExit(2), as any click program does."""
    try:
        rv = cli.main(args=argv, prog_name="python -m analysis", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except AnalysisError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader has gone, nothing left to say
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    # --help and a group without a command end with click's exit code (0 or 2).
    return rv if isinstance(rv, int) else 0

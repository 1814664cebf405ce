"""The full report: CSV (and LaTeX) tables, PNG/PDF/SVG figures and one self-contained
HTML page (PNG figures embedded as base64 data URIs) that a researcher can email.

Each section is one function plus one Jinja2 template (analysis/templates/report/),
registered in SECTIONS: a new table is one new function, one new template and one line.
The page is written into a temporary folder beside ``out`` and renamed into place at the
end, so a failure never leaves a half-written report.
"""
from __future__ import annotations

import base64
import datetime as _dt
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from analysis import (
    accuracy,
    agreement,
    comparisons,
    error_agreement,
    glmm,
    items,
    likeness,
    participants,
    plots,
    position,
    response_times,
)
from analysis.errors import AnalysisError
from analysis.gallery import save_gallery
from analysis.load import Answers, order_populations, require_answers
from analysis.stats import format_p, format_p_columns
from spreadsheet import neutralise_frame

REPORT_HTML = "report.html"
TEMPLATES = Path(__file__).resolve().parent / "templates" / "report"
GALLERY_K = 2  # trials per condition in the easiest / hardest galleries
TESTS_FIRST = ["family", "population", "subset", "condition", "a", "b", "difference_pp",
               "low_pp", "high_pp", "p", "p_holm", "significant"]
FIG4_K = 3     # trials with the highest and with the lowest agreement


@dataclass
class Options:
    """What the analyst chose: catch trials, majority rule, bootstrap, figures (the
    images come with the report's Context, parsed once)."""

    include_catch: bool = False
    majority: str = "strict"
    n_resamples: int = accuracy.DEFAULT_RESAMPLES
    seed: int = 0
    dpi: int = plots.DEFAULT_DPI
    model_intervals: str = "wald"


@dataclass
class Figure:
    """A figure written as PNG, PDF and SVG; the page embeds the PNG and links all three."""

    png: Path
    alt: str

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png.read_bytes()).decode()

    @property
    def pdf(self) -> str:
        return self.png.with_suffix(".pdf").name

    @property
    def svg(self) -> str:
        return self.png.with_suffix(".svg").name


@dataclass
class Context:
    """Everything a section needs: the answers, the chosen options, the output folder,
    and results shared between sections (``shared``)."""

    answers: Answers
    options: Options
    out: Path
    shared: dict = field(default_factory=dict)
    # the experiment file, parsed once by write_report (None without one)
    experiment: items.TrialImages | None = None

    @property
    def df_all(self) -> pd.DataFrame:
        return self.answers.df

    @property
    def df(self) -> pd.DataFrame:
        return self.answers.df if self.options.include_catch else self.answers.without_catch()

    def csv(self, name: str, table: pd.DataFrame, index: bool = False) -> pd.DataFrame:
        """Write ``table`` as ``name``.csv; return it."""
        neutralise_frame(table).to_csv(self.out / f"{name}.csv", index=index)
        return table

    def latex(self, name: str, table: pd.DataFrame, index: bool = False,
              digits: int = 2) -> None:
        """Write ``table`` as ``name``.tex (a LaTeX tabular, booktabs rules)."""
        tex = table.to_latex(index=index, float_format=lambda v: f"{v:.{digits}f}",
                             na_rep="—", escape=True)
        # pandas escapes & % $ # _ { } ~ ^ \ but not < and >, which LaTeX's default
        # font encoding prints as ¡ and ¿ ("< 0.001")
        tex = tex.replace("<", r"\textless{}").replace(">", r"\textgreater{}")
        (self.out / f"{name}.tex").write_text(tex, encoding="utf-8")

    def figure(self, png: Path, alt: str) -> Figure:
        return Figure(png=png, alt=alt)


# --------------------------------------------------------------------------- sections
def section_counting(ctx: Context) -> dict:
    """What was counted (analysis/counting.py): the summary lines and the table per
    platform, environment and status, also written as counting.csv."""
    c = ctx.answers.counting
    if c is None:
        return {"lines": [], "table": None, "n_answers": len(ctx.df_all)}
    return {"lines": c.lines(), "table": ctx.csv("counting", c.table),
            "n_answers": len(ctx.df_all)}


def section_overview(ctx: Context) -> dict:
    d = ctx.df_all
    overview = pd.DataFrame([{
        "population": p,
        "participants": d.loc[d["population"] == p, "participant"].nunique(),
        "answers": int((d["population"] == p).sum()),
        "catch answers": int(((d["population"] == p) & d["catch"]).sum()),
        "trials answered": d.loc[d["population"] == p, "trial"].nunique()}
        for p in ctx.answers.populations])
    return {"overview": ctx.csv("overview", overview),
            "include_catch": ctx.options.include_catch}


def section_accuracy(ctx: Context) -> dict:
    o = ctx.options
    long = accuracy.accuracy_long(ctx.df, ctx.answers.condition_features, o.n_resamples, o.seed)
    ctx.csv("accuracy", long)
    pct = accuracy.accuracy_table(long, "percent")
    ctx.csv("accuracy_table", pct, index=True)
    flat = pct.copy()
    flat.columns = [f"{s} {c}" for s, c in flat.columns]
    ctx.latex("accuracy_table", flat, index=True)
    cf = ctx.answers.condition_features
    return {"percent": pct, "boot": accuracy.accuracy_table(long, "text"),
            "wilson": accuracy.accuracy_table(long, "wilson"),
            "intervals_used": accuracy.intervals_used(long),
            "fig": ctx.figure(plots.accuracy_plot(long, ctx.out / "accuracy.png", o.dpi),
                              "accuracy with the design's 95 % intervals"),
            "paper_row": ", ".join(f"{c}: {k}" for c, k in sorted(cf.items())),
            "paper_row_name": accuracy.PAPER_MACHINE_ROW, "n_resamples": o.n_resamples}


def section_tests(ctx: Context) -> dict:
    tests = comparisons.comparison_table(ctx.df, n_resamples=ctx.options.n_resamples,
                                         seed=ctx.options.seed)
    ctx.csv("tests", tests)
    shown = format_p_columns(tests)
    ctx.latex("tests", shown, digits=3)
    fit = glmm.fit_glmm(ctx.df, ctx.options.seed, ctx.options.model_intervals)
    if fit is None:
        notes = ["not fitted: needs at least 3 trials and both right and wrong answers"]
        model = variances = pd.DataFrame()
    else:
        notes = fit.notes()
        model, variances = fit.effects, fit.variances
    ctx.csv("mixed_model", model)
    ctx.csv("mixed_model_random", variances)
    # on screen the answer comes first, so that p is in view without scrolling; the CSV
    # and LaTeX keep the columns in COLUMNS' order
    key = [c for c in TESTS_FIRST if c in shown.columns]
    on_screen = shown[key + [c for c in shown.columns if c not in key]]
    return {"tests": on_screen, "test_notes": tests.attrs.get("notes", []),
            "model": format_p_columns(model), "model_notes": notes,
            "variances": variances}


def section_agreement(ctx: Context) -> dict:
    o = ctx.options
    per_trials = agreement.by_population(ctx.df, o.majority)
    pops, summaries, hists = [], [], []
    for pop, per_trial in per_trials.items():
        s = agreement.summarize(per_trial)
        hist = agreement.agreement_histogram(per_trial)
        summaries.append({"population": pop, "majority_rule": o.majority, **s.as_dict()})
        hists.append(hist.assign(population=pop))
        name = plots.slug(pop)
        pops.append({"name": pop, "s": s, "per_n": s.as_dict()["answers_per_trial"],
                     "hist": ctx.figure(plots.agreement_histogram_plot(
                         hist, pop, ctx.out / f"agreement_hist_{name}.png", o.dpi),
                         f"agreement histogram {pop}"),
                     "scatter": ctx.figure(plots.agreement_scatter_plot(
                         per_trial, pop, s.pearson_r, s.pearson_p,
                         ctx.out / f"agreement_vs_correct_{name}.png", o.dpi),
                         f"agreement vs correct {pop}")})
    ctx.csv("agreement_summary", pd.DataFrame(summaries))
    ctx.csv("agreement_histogram", _concat(hists))
    per_trial_all = ctx.csv("agreement_per_trial", _concat(
        [t.assign(population=p) for p, t in per_trials.items()]))
    kappa = ctx.csv("agreement_kappa", agreement.kappa_table(per_trials, o.n_resamples, o.seed))
    errors = ctx.csv("agreement_on_errors",
                     error_agreement.error_agreement_table(ctx.df, o.n_resamples, o.seed))
    return {"pops": pops, "kappa": kappa, "errors": errors, "per_trial": per_trial_all,
            "majority": o.majority,
            "majority_text": agreement.MAJORITY_RULES[o.majority]}


def section_position(ctx: Context) -> dict:
    per_pos, tests = position.position_table(ctx.df, n_resamples=ctx.options.n_resamples,
                                             seed=ctx.options.seed)
    ctx.csv("position", per_pos)
    ctx.csv("position_tests", tests)
    plain = ctx.csv("position_all_answers", position.plain_counts(per_pos), index=True)
    return {"per_pos": per_pos, "tests": tests, "plain": plain,
            "fig": ctx.figure(plots.position_plot(per_pos, ctx.out / "position.png",
                                                  ctx.options.dpi),
                              "wrong answers per display position, observed / expected")}


def section_participants(ctx: Context) -> dict:
    ptab = ctx.csv("participants", participants.participant_table(ctx.df_all))
    return {"ptab": ptab, "flagged": ptab[ptab["failed_catch"] | ptab["position_bias"]],
            "n": len(ptab), "failed": int(ptab["failed_catch"].sum()),
            "biased": int(ptab["position_bias"].sum()), "alpha": participants.POSITION_ALPHA}


def _images(ctx: Context, only: set[str] | None = None) -> items.TrialImages | None:
    if ctx.experiment is not None:
        return ctx.experiment
    if ctx.answers.url:
        return items.from_database(ctx.answers.url, ctx.answers.experiment, only)
    return None


def section_items(ctx: Context) -> dict:
    """Item analysis per population (people are not pooled: a trial's agreement is among
    one population's answers, as the paper's AMT figures are)."""
    o = ctx.options
    df = ctx.answers.without_catch()
    machine = _gallery_machine(ctx)
    plain, shown, fig4 = {}, {}, {}
    for pop in order_populations(df["population"].unique()):
        plain[pop] = items.item_table(df[df["population"] == pop], None, o.majority)
        sel: dict[str, pd.DataFrame] = dict(items.easiest_hardest(plain[pop], GALLERY_K))
        sel["people agree on a distractor"] = items.agreed_on_distractor(plain[pop])
        if machine:
            sel[f"{machine} disagrees with the people"] = \
                items.machine_disagrees(plain[pop], machine)
        shown[pop] = sel
        fig4[pop] = items.agreement_extremes(plain[pop], FIG4_K)
    # Read image bytes only for the trials some gallery shows.
    wanted = set().union(*[set(t["trial"]) for sel in shown.values() for t in sel.values()],
                         *[set(hi["trial"]) | set(lo["trial"]) for hi, lo in fig4.values()])
    images = _images(ctx, wanted)
    tables = {pop: items.with_images(t, images) for pop, t in plain.items()}
    table = ctx.csv("items", _concat([t.assign(population=pop)[["population", *t.columns]]
                                      for pop, t in tables.items()]))
    galleries = []
    for pop, sel in shown.items():
        by_trial = tables[pop].set_index("trial", drop=False)
        for i, (title, trials) in enumerate(sel.items()):
            fig = None
            if len(trials):
                png = save_gallery(
                    items.drawings(by_trial.loc[trials["trial"]], images,
                                   machine if "disagrees" in title else None),
                    # the index keeps names apart; the words say what it shows
                    ctx.out / f"gallery_{plots.slug(pop)}_{i + 1:02d}_{_words(title)}.png",
                    dpi=o.dpi)
                fig = ctx.figure(png, f"gallery: {pop}: {title}")
            galleries.append({"title": f"{pop}: {title}", "fig": fig})
    ctx.shared.update(items=tables, images=images, fig4=fig4)
    return {"items": table, "galleries": galleries,
            "image_source": images.source if images else
            "none (give --experiment-file, or read the database): grey boxes"}


def _gallery_machine(ctx: Context) -> str | None:
    """The feature set whose disagreements with people are drawn: the generic
    condition's own features where the design says, else the first feature set."""
    keys = ctx.answers.machine_keys
    own = ctx.answers.condition_features.get("generic")
    return own if own in keys else (keys[0] if keys else None)


def section_fig4(ctx: Context) -> dict:
    figs = []
    for pop, (hi, lo) in ctx.shared["fig4"].items():
        table = ctx.shared["items"][pop].set_index("trial", drop=False)
        drawings = (items.drawings(table.loc[hi["trial"]], ctx.shared["images"])
                    + items.drawings(table.loc[lo["trial"]], ctx.shared["images"]))
        for d in drawings[:len(hi)]:
            d.title = "highest agreement · " + d.title
        for d in drawings[len(hi):]:
            d.title = "lowest agreement · " + d.title
        if drawings:
            png = save_gallery(drawings, ctx.out / f"fig4_{plots.slug(pop)}.png",
                               dpi=ctx.options.dpi)
            figs.append({"population": pop,
                         "fig": ctx.figure(png, f"Fig. 4 ({pop}): highest and lowest agreement")})
    return {"figs": figs}


def section_likeness(ctx: Context) -> dict:
    dist, notes = ({}, [])
    if ctx.experiment is not None:
        from analysis.distances import document_distances
        dist, notes = document_distances(ctx.experiment.document, ctx.experiment.root)
    tables = []
    for pop, items_table in ctx.shared["items"].items():
        t = likeness.likeness_table(items_table, ctx.answers.machine_keys, dist,
                                    ctx.options.n_resamples, ctx.options.seed)
        tables.append((t.attrs.get("ordered_by", "same_as_human"),
                       t.assign(population=pop)[["population", *t.columns]]))
    table = ctx.csv("likeness", _concat([t for _, t in tables]))
    ordered_by = tables[0][0] if tables else "same_as_human"
    note = ("Distances from the study's feature store. " if dist else
            "Spearman needs the candidates' distances: give --experiment-file (its study "
            "folder's feature store). ") + " ".join(notes)
    return {"likeness": table, "ordered_by": {"spearman_mean": "mean Spearman",
                                              "same_as_human": "share as the people"}[
        ordered_by], "distance_note": note}


def section_response_times(ctx: Context) -> dict:
    rt = ctx.csv("response_times", response_times.rt_table(ctx.df))
    conds = accuracy._order(ctx.df["condition"].unique(), accuracy.CONDITION_ORDER)
    png = plots.rt_plot(ctx.df, conds, ctx.answers.populations,
                        ctx.out / "response_times.png", ctx.options.dpi)
    return {"rt": rt, "fig": ctx.figure(png, "response times")}


def section_catch(ctx: Context) -> dict:
    return {"catch": ctx.csv("catch", accuracy.catch_summary(ctx.answers.catch_only()))}


# (id, title, function); the template is templates/report/<id>.html
SECTIONS: list[tuple[str, str, Callable[[Context], dict]]] = [
    ("counting", "What was counted", section_counting),
    ("overview", "Overview", section_overview),
    ("accuracy", "Accuracy (Table 2b)", section_accuracy),
    ("tests", "Tests of the paper's comparisons", section_tests),
    ("agreement", "Agreement between participants (Fig. 5)", section_agreement),
    ("position", "Position bias", section_position),
    ("participants", "Participants", section_participants),
    ("items", "Item analysis and galleries", section_items),
    ("fig4", "Fig. 4: queries with full and with spread agreement", section_fig4),
    ("likeness", "How human-like is each model", section_likeness),
    ("response_times", "Response times by condition", section_response_times),
    ("catch", "Catch trials", section_catch),
]


# --------------------------------------------------------------------------- rendering
def _table(df: pd.DataFrame, index: bool = False, digits: int = 3) -> Markup:
    if df is None or len(df) == 0:
        return Markup("<p>(empty)</p>")
    if index:
        df = df.rename_axis(index=None)  # no empty header row for the index name
    df = format_p_columns(df)
    return Markup('<div class="scroll">' + df.to_html(
        index=index, escape=True, na_rep="—", float_format=lambda v: f"{v:.{digits}f}",
        border=0, classes="t") + "</div>")


def _pct(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:.1f} %"


def _num(x: float, digits: int = 3) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _pval(p: float) -> str:
    s = format_p(p)
    return s if s.startswith("<") or s == "—" else "= " + s


def environment() -> Environment:
    """Return the Jinja2 environment of the report templates (autoescaped, with the
    filters table, pct, num, pval)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters.update(table=_table, pct=_pct, num=_num, pval=_pval)
    return env


def write_report(answers: Answers, out: Path, include_catch: bool = False,
                 majority: str = "strict", n_resamples: int = accuracy.DEFAULT_RESAMPLES,
                 seed: int = 0, dpi: int = plots.DEFAULT_DPI,
                 experiment_file: str | Path | None = None,
                 model_intervals: str = "wald") -> Path:
    """Compute every section, write CSV, LaTeX, PNG/PDF/SVG and report.html into ``out``.

    Parameters
    ----------
    answers : Answers
        From analysis.load.load_answers.
    out : Path
        Folder; replaced only if it is empty or an earlier report.
    include_catch : bool
        Count catch trials in accuracy, agreement and position tables.
    majority : {"strict", "half"}
        Majority rule of the agreement tables.
    n_resamples, seed : int
        Bootstrap resamples and seed (intervals where the design needs a bootstrap,
        permutations; R's seed for the mixed model).
    model_intervals : {"profile", "wald", "boot"}
        The mixed model's interval (analysis.glmm.fit_glmm; Wald by default).
    dpi : int
        Resolution of the PNG figures.
    experiment_file : path, optional
        The experiment file: trial images for the galleries and the feature store for
        the human-likeness distances. Without it, images come from the database when the
        answers do.

    Returns
    -------
    Path
        The path of report.html.

    Examples
    --------
    >>> write_report(load_answers(csv="answers.csv"), "report", experiment_file="demo.json")  # doctest: +SKIP
    """
    agreement.check_majority(majority)
    if n_resamples < 10:
        raise AnalysisError(f"--bootstrap must be at least 10 resamples, got {n_resamples}")
    if not 20 <= dpi <= 1200:
        raise AnalysisError(f"--dpi must be between 20 and 1200, got {dpi}")
    require_answers(answers, include_catch)
    if model_intervals not in glmm.INTERVALS:
        raise AnalysisError(f"--model-intervals must be one of {', '.join(glmm.INTERVALS)}, "
                            f"got {model_intervals!r}")
    options = Options(include_catch, majority, n_resamples, seed, dpi, model_intervals)
    # parsed once, for the galleries and the distances; a bad file fails before writing
    experiment = items.from_experiment_file(experiment_file) if experiment_file else None
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / REPORT_HTML).is_file())):
        raise AnalysisError(f"{out} exists and is not an earlier report: choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise AnalysisError(f"cannot write the report to {out}: "
                            f"{exc.strerror or exc} ({exc.filename or out.parent})") from None
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report is meant to be shared
    try:
        _write(answers, tmp, options, experiment)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name[-8:]}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out / REPORT_HTML


def _write(answers: Answers, d: Path, options: Options,
           experiment: items.TrialImages | None = None) -> None:
    ctx = Context(answers=answers, options=options, out=d, experiment=experiment)
    env = environment()
    rendered = []
    for sid, title, fn in SECTIONS:
        values = fn(ctx)
        rendered.append({"id": sid, "title": title,
                         "html": Markup(env.get_template(f"{sid}.html").render(**values))})
    (d / "answers.csv").write_text(neutralise_frame(answers.df).to_csv(index=False))
    page = env.get_template("base.html").render(
        title=f"Report: experiment {answers.experiment}", source=answers.source,
        now=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=rendered, majority_text=agreement.MAJORITY_RULES[options.majority],
        n_resamples=options.n_resamples, seed=options.seed, dpi=options.dpi)
    (d / REPORT_HTML).write_text(page, encoding="utf-8")


def _words(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:50]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

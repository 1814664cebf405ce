"""The full report: CSV tables, PNG figures and one self-contained HTML page (figures
embedded as base64 data URIs) that a researcher can email.

Written into a temporary folder beside ``out`` and renamed into place at the end, so a
failure never leaves a half-written report.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from analysis import accuracy, agreement, participants, plots, position, response_times
from analysis.errors import AnalysisError
from analysis.load import Answers, require_answers

REPORT_HTML = "report.html"


def _fmt(x, digits=3):
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"
    return str(x)


def _table_html(df: pd.DataFrame, index: bool = False, digits: int = 3) -> str:
    if index:
        df = df.rename_axis(index=None)  # no empty header row for the index name
    return ('<div class="scroll">' + df.to_html(index=index, escape=True, na_rep="–",
                                                float_format=lambda v: f"{v:.{digits}f}",
                                                border=0, classes="t") + "</div>")


def _img(path: Path, alt: str, cls: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    c = f' class="{cls}"' if cls else ""
    return f'<img alt="{html.escape(alt)}"{c} src="data:image/png;base64,{data}">'


def write_report(answers: Answers, out: Path, include_catch: bool = False) -> Path:
    """Compute every part, write CSVs, PNGs and report.html into ``out``; return the
    path of report.html. ``out`` is replaced only if it is empty or an earlier report."""
    require_answers(answers)
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / REPORT_HTML).is_file())):
        raise AnalysisError(f"{out} exists and is not an earlier report: choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report is meant to be shared
    try:
        _write(answers, tmp, include_catch)
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


def _write(answers: Answers, d: Path, include_catch: bool) -> None:
    df_all = answers.df
    df = df_all if include_catch else answers.without_catch()
    catch = answers.catch_only()
    sections: list[str] = []
    figs: dict[str, Path] = {}

    if answers.counting is not None:
        # What was counted comes first, in the page and beside it (counting.csv).
        answers.counting.table.to_csv(d / "counting.csv", index=False)
        sections.append("<h2>What was counted</h2><ul>" + "".join(
            f"<li>{html.escape(line)}</li>" for line in answers.counting.lines())
            + "</ul>" + _table_html(answers.counting.table))

    pops = answers.populations
    overview = pd.DataFrame([{
        "population": p,
        "participants": df_all.loc[df_all["population"] == p, "participant"].nunique(),
        "answers": int((df_all["population"] == p).sum()),
        "catch answers": int(((df_all["population"] == p) & df_all["catch"]).sum()),
        "trials answered": df_all.loc[df_all["population"] == p, "trial"].nunique()}
        for p in pops])
    overview.to_csv(d / "overview.csv", index=False)
    sections.append("<h2>Overview</h2>" + _table_html(overview) + (
        "<p>Catch trials are <b>included</b> in the tables below.</p>" if include_catch else
        "<p>Catch trials are excluded from accuracy, agreement and position tables; "
        "they are reported in their own section.</p>"))

    # Accuracy (Table 2b)
    long = accuracy.accuracy_long(df, answers.condition_features)
    long.to_csv(d / "accuracy.csv", index=False)
    pct = accuracy.accuracy_table(long, "percent")
    text = accuracy.accuracy_table(long, "text")
    pct.to_csv(d / "accuracy_table.csv")
    if not df.empty:
        figs["accuracy"] = plots.accuracy_plot(long, d / "accuracy.png")
    paper_row = ""
    if answers.condition_features:
        used = ", ".join(f"{c}: {k}" for c, k in sorted(answers.condition_features.items()))
        paper_row = (f" The row <i>{html.escape(accuracy.PAPER_MACHINE_ROW)}</i> is the paper's "
                     f"machine row: each column judged by the feature set that built its "
                     f"distractors ({html.escape(used)}; random: the generic one).")
    sections.append(
        "<h2>Accuracy (Table 2b)</h2><p>% choosing the true match, rows = populations and "
        "machine feature sets (machine correct = its top-ranked candidate is the true match, "
        "each trial once; a feature set with no choice, e.g. no face found, counts as "
        f"wrong), columns = subset × condition.{paper_row}</p>"
        + _table_html(pct, index=True, digits=1)
        + "<p>With 95 % Wilson intervals and counts:</p>" + _table_html(text, index=True)
        + (_img(figs["accuracy"], "accuracy") if "accuracy" in figs else ""))

    # Agreement (Fig. 5)
    summaries, hists, per_trials = [], [], []
    parts = ["<h2>Agreement between participants (Fig. 5)</h2><p>Per trial, agreement = "
             "share of answers choosing the most chosen candidate (k of n). Majority: "
             "k &gt; n/2 strictly; total: k = n.</p>"]
    for pop, per_trial in agreement.by_population(df).items():
        s = agreement.summarize(per_trial)
        hist = agreement.agreement_histogram(per_trial)
        summaries.append({"population": pop, **s.as_dict()})
        hists.append(hist.assign(population=pop))
        per_trials.append(per_trial.assign(population=pop))
        safe = _slug(pop)
        fa = plots.agreement_histogram_plot(hist, pop, d / f"agreement_hist_{safe}.png")
        fb = plots.agreement_scatter_plot(per_trial, pop, s.pearson_r, s.pearson_p,
                                          d / f"agreement_vs_correct_{safe}.png")
        parts.append(
            f"<h3>{html.escape(pop)}</h3><p>{s.trials} trials, {s.answers} answers "
            f"({html.escape(s.as_dict()['answers_per_trial'])}). Majority on "
            f"{_pct(s.majority_share)} of trials, total agreement on "
            f"{_pct(s.total_share)}; mean agreement {_pct(s.mean_agreement)}. Pearson r "
            f"(agreement vs share correct) = {_fmt(s.pearson_r)}, p = {_fmt(s.pearson_p)}."
            + (f" Note: {html.escape(s.note)}." if s.note else "") + "</p>"
            + _img(fa, f"agreement histogram {pop}", "half")
            + _img(fb, f"agreement vs correct {pop}", "half"))
    pd.DataFrame(summaries).to_csv(d / "agreement_summary.csv", index=False)
    _concat(hists).to_csv(d / "agreement_histogram.csv", index=False)
    _concat(per_trials).to_csv(d / "agreement_per_trial.csv", index=False)
    sections.append("".join(parts))

    # Position bias
    per_pos, tests = position.position_table(df)
    per_pos.to_csv(d / "position.csv", index=False)
    tests.to_csv(d / "position_tests.csv", index=False)
    if not per_pos.empty:
        figs["position"] = plots.position_plot(per_pos, d / "position.png")
    sections.append(
        "<h2>Position bias</h2><p>Answers per display position against n/5 each (no bias); "
        "ratio = chosen / expected; <i>true</i> = how often the true match was shown "
        "there. Chi-square goodness of fit against uniform (chi2, p). When the true match "
        "was not shown evenly, accurate answers alone look biased: the <i>wrong</i> columns "
        "test wrong answers only, where each of the four other positions is expected alike "
        "(chi2_wrong, p_wrong).</p>" + _table_html(tests) +
        _table_html(per_pos) + (_img(figs["position"], "position bias")
                                if "position" in figs else ""))

    # Participants
    ptab = participants.participant_table(df_all)
    ptab.to_csv(d / "participants.csv", index=False)
    flagged = ptab[ptab["failed_catch"] | ptab["position_bias"]]
    sections.append(
        f"<h2>Participants</h2><p>{len(ptab)} participants; {int(ptab['failed_catch'].sum())} "
        f"failed at least one catch trial; {int(ptab['position_bias'].sum())} chose one "
        f"display position far more than chance (one-sided binomial test of their most "
        f"chosen position against 1/5, Bonferroni × 5, p &lt; {participants.POSITION_ALPHA})."
        f"</p>" + ("<h3>Flagged</h3>" + _table_html(flagged) if len(flagged) else "")
        + "<details><summary>All participants</summary>" + _table_html(ptab) + "</details>")

    # Response times
    rt = response_times.rt_table(df)
    rt.to_csv(d / "response_times.csv", index=False)
    conds = accuracy._order(df["condition"].unique(), accuracy.CONDITION_ORDER)
    if not df.empty:
        figs["rt"] = plots.rt_plot(df, conds, answers.populations, d / "response_times.png")
    sections.append("<h2>Response times by condition</h2>" + _table_html(rt, digits=0) +
                    (_img(figs["rt"], "response times") if "rt" in figs else ""))

    # Catch trials
    cs = accuracy.catch_summary(catch)
    cs.to_csv(d / "catch.csv", index=False)
    sections.append("<h2>Catch trials</h2>" + (_table_html(cs) if len(cs) else
                                                "<p>No catch-trial answers.</p>"))

    (d / "answers.csv").write_text(df_all.to_csv(index=False))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Report: experiment {answers.experiment}"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Source: {html.escape(answers.source)}. Written {now} by "
            f"<code>python -m analysis report</code>. The CSV tables beside this file hold "
            f"the same numbers.</p>" + "".join(sections) + "</body></html>\n")
    (d / REPORT_HTML).write_text(page, encoding="utf-8")


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)[:40] or "population"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table.t{border-collapse:collapse;margin:.6em 0;font-size:.85em}
table.t th,table.t td{border:1px solid #ccc;padding:.2em .5em;text-align:right}
table.t th{background:#f3f3f3}
img{max-width:100%;margin:.5em 0;display:block}
img.half{max-width:49%;display:inline-block;vertical-align:top}
div.scroll{overflow-x:auto}
h2{border-bottom:1px solid #ddd;margin-top:1.8em}
"""

"""The report end to end: CSV tables, PNG figures, one self-contained HTML."""
from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

from analysis.cli import main


def test_report_from_csv(tmp_path, small_export, capsys):
    out = tmp_path / "report"
    assert main(["report", "--csv", str(small_export), "--out", str(out), "--dpi", "72",
                 "--bootstrap", "200"]) == 0
    assert "report written" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    for csv in ("overview.csv", "accuracy.csv", "accuracy_table.csv", "agreement_summary.csv",
                "agreement_histogram.csv", "agreement_per_trial.csv", "position.csv",
                "position_tests.csv", "participants.csv", "response_times.csv", "catch.csv",
                "answers.csv"):
        assert csv in names, csv
    pngs = sorted(n for n in names if n.endswith(".png"))
    assert pngs == ["accuracy.png", "agreement_hist_lab.png", "agreement_hist_mturk.png",
                    "agreement_vs_correct_lab.png", "agreement_vs_correct_mturk.png",
                    # per population, as the paper's AMT figures
                    "fig4_lab.png", "fig4_mturk.png",
                    *[f"gallery_{pop}_{name}.png" for pop in ("lab", "mturk") for name in (
                        "01_easiest_random", "02_hardest_random", "03_easiest_generic",
                        "04_hardest_generic", "06_face_dlib_hog_disagrees_with_the_people")],
                    "position.png", "response_times.png"]
    for png in pngs:  # every figure also as vector graphics
        assert (out / png).with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        assert b"<svg" in (out / png).with_suffix(".svg").read_bytes()[:2000]
    # one style fit for a paper: no text under 9 pt at the size drawn (SVG units are pt);
    # simple figures one column wide (3.5 in = 252 pt), the rest at most the text width
    for svg in out.glob("*.svg"):
        text = svg.read_text()
        sizes = [float(x) for x in re.findall(r"font-size: ([0-9.]+)px", text)]
        assert sizes and min(sizes) >= 9, svg.name
        width = float(re.search(r'<svg[^>]* width="([0-9.]+)pt"', text).group(1))
        single = svg.name.startswith(("position", "agreement"))
        assert width <= (3.5 if single else 7.2) * 72 + 3, (svg.name, width)
    for tex in ("accuracy_table.tex", "tests.tex"):
        assert "\\begin{tabular}" in (out / tex).read_text()
        # no bare < or > (LaTeX's OT1 encoding prints them as ¡ and ¿)
        assert not re.search(r"[<>]", (out / tex).read_text()), tex

    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == len(pngs)
    decoded = {base64.b64decode(i) for i in images}
    assert decoded == {(out / p).read_bytes() for p in pngs}  # the very files, embedded
    assert all(d.startswith(b"\x89PNG\r\n\x1a\n") for d in decoded)
    assert 'src="' not in re.sub(r'src="data:[^"]*"', "", html)  # nothing fetched from outside
    assert "Accuracy (Table 2b)" in html and "machine: face/dlib_hog" in html
    assert "Catch trials" in html and "Position bias" in html
    # no trial where people agree on a distractor: said, not drawn
    assert "people agree on a distractor</h3><p>No such trials." in html

    table = pd.read_csv(out / "accuracy_table.csv", header=[0, 1], index_col=0)
    assert table.loc["lab", ("TLL_obj", "random")] == 87.5
    summary = pd.read_csv(out / "agreement_summary.csv").set_index("population")
    assert summary.loc["lab", "trials"] == 4 and summary.loc["mturk", "answers"] == 24
    participants = pd.read_csv(out / "participants.csv")
    assert len(participants) == 10
    assert participants.set_index("participant").loc["L003", "failed_catch"]
    assert len(pd.read_csv(out / "answers.csv")) == 44

    # A second run replaces the earlier report in place.
    assert main(["report", "--csv", str(small_export), "--out", str(out),
                 "--population", "mturk", "--dpi", "72", "--bootstrap", "200",
                 "--model-intervals", "wald"]) == 0
    assert "agreement_hist_lab.png" not in {p.name for p in out.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.csv", "report"]


def test_items_and_galleries_are_per_population(tmp_path, kit):
    # t1: MTurk agrees on distractor 3, the lab on the true match 1: pooled, the majority
    # would be the true match and "people agree on a distractor" would find nothing
    rows = []
    for t, true in (("t1", 1), ("t2", 2), ("t3", 1)):
        mturk = [0, 1, 6, 0, 0] if t == "t1" else [1, 1, 1, 1, 2]
        lab = [0] * 5
        lab[true - 1] = 8 if t == "t1" else 4  # the lab always right
        rows += kit.answer_rows(t, mturk, true, population="mturk", participant_prefix="w",
                                machine={"g/a": true})
        rows += kit.answer_rows(t, lab, true, population="lab", participant_prefix="L",
                                machine={"g/a": true})
    out = tmp_path / "report"
    assert main(["report", "--csv", str(kit.write_csv(rows, tmp_path / "a.csv")),
                 "--out", str(out), "--dpi", "50", "--bootstrap", "50",
                 "--model-intervals", "wald"]) == 0
    it = pd.read_csv(out / "items.csv").set_index(["population", "trial"])
    assert it.loc[("mturk", "t1"), "human_choice"] == 3
    assert it.loc[("lab", "t1"), "human_choice"] == 1
    names = {p.name for p in out.iterdir()}
    assert "gallery_mturk_03_people_agree_on_a_distractor.png" in names
    assert "gallery_lab_03_people_agree_on_a_distractor.png" not in names
    assert {"fig4_lab.png", "fig4_mturk.png"} <= names
    likeness = pd.read_csv(out / "likeness.csv").set_index("population")
    # the feature set always picks the truth: the lab's choice every time, MTurk's on t1 never
    assert likeness.loc["lab", "same_as_human"] == 1.0
    assert likeness.loc["mturk", "same_as_human"] < 1.0


def test_latex_tables_escape_comparison_signs(tmp_path):
    from analysis.report import Context, Options
    ctx = Context(answers=None, options=Options(), out=tmp_path)
    ctx.latex("t", pd.DataFrame({"p": ["< 0.001", "0.250"], "a_b": ["x & y", "50 %"]}))
    tex = (tmp_path / "t.tex").read_text()
    assert r"\textless{} 0.001" in tex and "<" not in tex
    assert r"x \& y" in tex and r"50 \%" in tex and r"a\_b" in tex


@pytest.mark.browser
def test_the_tests_table_shows_its_p_values_without_scrolling(tmp_path, small_export, browser):
    out = tmp_path / "report"
    assert main(["report", "--csv", str(small_export), "--out", str(out), "--dpi", "50",
                 "--bootstrap", "50", "--model-intervals", "wald"]) == 0
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        page.goto((out / "report.html").as_uri())
        table = page.locator("#tests table.t").first
        headers = table.locator("th").all_inner_texts()
        assert headers.index("p") < headers.index("test")  # the answer before the details
        for name in ("p", "p_holm", "significant"):
            box = table.locator("th").filter(has_text=re.compile(f"^{name}$")).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, (name, box)
    finally:
        ctx.close()

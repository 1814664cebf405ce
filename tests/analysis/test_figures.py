"""Figures readable by colour-blind readers and fit for a page: the palette and the
galleries' marks stay apart under a deuteranopia simulation, the saved figures use that
palette, no two texts of any report figure overlap, and Fig. 4 fits one page."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import matplotlib
import matplotlib.figure
import matplotlib.text
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from skimage.color import deltaE_ciede2000, rgb2lab

from analysis import gallery, plots

# Machado, Oliveira & Fernandes (2009): deuteranopia, severity 1, on linear RGB
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968],
                         [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])
MIN_DELTA_E = 10  # CIEDE2000: about where two small patches are told apart at a glance


def _deuteranope_lab(colour) -> np.ndarray:
    c = np.asarray(to_rgb(colour))
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    sim = np.clip(linear @ DEUTERANOPIA.T, 0, 1)
    srgb = np.where(sim <= 0.0031308, 12.92 * sim, 1.055 * sim ** (1 / 2.4) - 0.055)
    return rgb2lab(srgb[None, None, :])[0, 0]


def _closest_pair(colours) -> float:
    labs = [_deuteranope_lab(c) for c in colours]
    return min(float(deltaE_ciede2000(a, b)) for a, b in itertools.combinations(labs, 2))


def test_the_palette_stays_apart_under_deuteranopia():
    assert _closest_pair(plots.PALETTE) >= MIN_DELTA_E
    # the check can fail: matplotlib's default cycle collapses its green and red
    default = matplotlib.rcParamsDefault["axes.prop_cycle"].by_key()["color"]
    assert _closest_pair(default[:4]) < MIN_DELTA_E


def test_gallery_marks_stay_apart_under_deuteranopia():
    assert _closest_pair([gallery.MARK_COLOUR, gallery.HIGHLIGHT_COLOUR]) >= MIN_DELTA_E


def test_the_saved_accuracy_figure_draws_its_bars_in_the_palette(tmp_path):
    import pandas as pd
    rows = [{"row": r, "kind": "human", "subset": "TLL_d", "condition": c, "n": 10,
             "trials": 5, "correct": 5, "accuracy": 0.5, "low": 0.3, "high": 0.7,
             "interval": "wilson", "ci_low": 0.3, "ci_high": 0.7, "no_choice": pd.NA}
            for r in ("lab", "mturk", "pilot", "simulated") for c in ("random", "generic")]
    png = plots.accuracy_plot(pd.DataFrame(rows), tmp_path / "accuracy.png", dpi=50)
    svg = png.with_suffix(".svg").read_text()
    fills = {to_hex(f) for f in re.findall(r"fill: (#[0-9a-fA-F]{6})", svg)}
    used = fills & {to_hex(c) for c in plots.PALETTE}
    assert len(used) == 4  # one colour per row, all from the palette
    greys = {f for f in fills if f[1:3] == f[3:5] == f[5:7]}  # white, black, greys
    assert not fills - {to_hex(c) for c in plots.PALETTE} - greys


def _report_figures(tmp_path, small_export, monkeypatch) -> dict[str, matplotlib.figure.Figure]:
    """Every figure the report saves, by file name, as the Figure object it drew."""
    from analysis.cli import main
    figures = {}
    real = plots.save_figure

    def keep(fig, path, *args, **kwargs):
        figures[Path(path).with_suffix(".png").name] = fig
        return real(fig, path, *args, **kwargs)
    monkeypatch.setattr(plots, "save_figure", keep)
    monkeypatch.setattr(gallery, "save_figure", keep)
    assert main(["report", "--csv", str(small_export), "--out", str(tmp_path / "r"),
                 "--dpi", "50", "--bootstrap", "50", "--model-intervals", "wald"]) == 0
    return figures


def _overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts whose drawn boxes overlap (by more than 0.5 px at
    72 dpi, so that two boxes that only touch pass)."""
    fig.set_dpi(72)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = [(t.get_text(), t.get_window_extent(renderer))
             for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip() and t.figure is fig]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
            if min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 0.5
            and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 0.5]


def test_no_two_texts_overlap_in_any_report_figure(tmp_path, small_export, monkeypatch):
    figures = _report_figures(tmp_path, small_export, monkeypatch)
    assert len(figures) >= 10 and any(n.startswith("fig4_") for n in figures)
    overlaps = {name: pairs for name, fig in figures.items()
                if (pairs := _overlapping_texts(fig))}
    assert not overlaps, overlaps
    # Fig. 4 fits one page at its printed width: at most 9 in tall at 7.16 in wide
    for name, fig in figures.items():
        if name.startswith("fig4_"):
            w, h = fig.get_size_inches()
            assert w <= plots.DOUBLE + 0.01 and h <= 9, (name, w, h)


def test_the_overlap_check_finds_overlapping_texts():
    fig = matplotlib.figure.Figure(figsize=(3, 2))
    fig.text(0.1, 0.5, "one label")
    fig.text(0.15, 0.5, "another label")
    fig.text(0.1, 0.1, "apart")
    assert _overlapping_texts(fig) == [("one label", "another label")]


def test_a_six_row_gallery_fits_one_page_without_overlapping_texts():
    from analysis import N_CANDIDATES
    from analysis.report import FIG4_K
    rows = [gallery.TrialDrawing(
        None, [None] * N_CANDIDATES, marked=1, bars=[0.1, 0.6, 0.1, 0.1, 0.1],
        labels=[f"pos. {p + 1}" for p in range(N_CANDIDATES - 1)]
        + ["TLL_obj_right_0123456789"], query_label="q12345",
        title=f"lowest agreement · t{r:03d} · TLL_obj generic · 40 answers, 55 % right")
        for r in range(2 * FIG4_K)]
    fig = gallery.gallery_figure(rows, title="Fig. 4 (mturk)")
    w, h = fig.get_size_inches()
    assert w == plots.DOUBLE and 8 < h <= gallery.PAGE_HEIGHT == 9
    assert _overlapping_texts(fig) == []
    # the long id keeps its end after an ellipsis
    assert any(t.get_text().startswith("10 %\n…") and t.get_text().endswith("6789")
               for t in fig.findobj(matplotlib.text.Text))
    # one row keeps the full width
    assert gallery.gallery_figure(rows[:1]).get_size_inches()[1] < 3

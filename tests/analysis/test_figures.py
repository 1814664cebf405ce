"""Figures readable by colour-blind readers: the palette and the galleries' marks stay
apart under a deuteranopia simulation, and the saved figures use that palette."""
from __future__ import annotations

import itertools
import re

import matplotlib
import numpy as np
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

"""Drawing trials as the paper's galleries (Fig. 3, 4, 5c): per trial, the query image
and its candidates as thumbnails, one candidate marked (the true match), optionally a
second one highlighted (e.g. the machine's choice), and a bar under each candidate (the
share of people who chose it, or a distance).

The interface knows nothing of where images come from: images are PIL images, numpy
arrays (H x W or H x W x 3/4) or None (drawn as a grey box with its label), so the
machine side can draw its retrieval galleries with the same function.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis.plots import DEFAULT_DPI, DOUBLE, save_figure, style, styled

THUMB_PX = 160  # longest side of a thumbnail: enough at 300 dpi for ~1 inch, keeps PDFs small
# bluish green and orange of plots.PALETTE: told apart under deuteranopia too
MARK_COLOUR = "#009E73"
HIGHLIGHT_COLOUR = "#E69F00"


@dataclass
class TrialDrawing:
    """One trial to draw.

    query : image or None
    candidates : list of images or None, in display order
    marked : int or None
        0-based index of the candidate framed in green (the true match).
    bars : list of float
        One value per candidate, drawn as a bar under it (e.g. share of answers, 0..1).
    labels : list of str
        One label per candidate (image id, or a missing image's id); shown under its bar.
    title : str
        Shown above the row.
    query_label : str
        Shown under the query (its id).
    highlight : int or None
        0-based index of a candidate framed in orange dashes (e.g. the machine's choice).
    bar_texts : list of str, optional
        Text on each bar; default: the value as a percentage.
    """

    query: object
    candidates: Sequence[object]
    marked: int | None
    bars: Sequence[float]
    labels: Sequence[str] = field(default_factory=list)
    title: str = ""
    query_label: str = "query"
    highlight: int | None = None
    bar_texts: Sequence[str] | None = None


def as_array(image) -> np.ndarray | None:
    """Return ``image`` (PIL image, ndarray or None) as an RGB uint8 thumbnail array of at
    most THUMB_PX on its longest side, or None."""
    if image is None:
        return None
    from PIL import Image
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255 if arr.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
        image = Image.fromarray(arr)
    image = image.convert("RGB")
    image.thumbnail((THUMB_PX, THUMB_PX))
    return np.asarray(image)


PAGE_HEIGHT = 9.0  # inches: the tallest a figure may be to fit a page with its caption
BOX_H = 1.225  # height of a missing image's box, in image widths (TLL images: 245 / 200)


def _cell(ax, image, label: str, frame: str | None = None, dashed: bool = False,
          bar: float | None = None, bar_text: str = "", bar_colour: str = "#7f7f7f") -> None:
    """Draw one image (or a grey box naming it) with an optional frame and, below it, a
    bar of length ``bar`` (0..1 of the image's width) and its text. One axes per image,
    axis off: far cheaper to draw than separate axes for image and bar."""
    from matplotlib.patches import Rectangle
    ax.set_axis_off()
    arr = as_array(image)
    if arr is None:
        h = BOX_H
        ax.add_patch(Rectangle((0, 0), 1, h, facecolor="#bdbdbd", edgecolor="none"))
        # the label is written under the box: inside, it would not fit a narrow column
        ax.text(0.5, h / 2, "missing", ha="center", va="center", fontsize=9,
                color="#333333")
    else:
        h = arr.shape[0] / arr.shape[1]
        ax.imshow(arr, extent=(0, 1, h, 0), interpolation="antialiased")
    ax.add_patch(Rectangle((0, 0), 1, h, fill=False, lw=3 if frame else 0.5,
                           edgecolor=frame or "#999999",
                           linestyle=(0, (3, 2)) if dashed else "solid"))
    y = BOX_H + 0.06
    if bar is not None:
        ax.add_patch(Rectangle((0, y), max(0.0, min(1.0, bar)), 0.14, facecolor=bar_colour,
                               edgecolor="none"))
        ax.plot([0, 1], [y + 0.16, y + 0.16], color="#444444", lw=0.6)
        ax.text(0.5, y + 0.2, f"{bar_text}\n{label}" if label else bar_text, ha="center",
                va="top", fontsize=9)
    else:
        ax.text(0.5, y + 0.02, label, ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(BOX_H + 0.62, -0.02)
    ax.set_aspect("equal")


def _fit(label: str, chars: int) -> str:
    """Return ``label``, or its last ``chars`` - 1 characters after an ellipsis when longer
    (an image id's end tells it from its neighbours)."""
    label = str(label)
    return label if len(label) <= chars else "…" + label[-(chars - 1):]


@styled
def gallery_figure(trials: Sequence[TrialDrawing], title: str = "",
                   bar_max: float | None = 1.0):
    """Draw trials as the paper's galleries.

    Parameters
    ----------
    trials : sequence of TrialDrawing
        One row each: the query, the candidates (PIL images, numpy arrays or None for a
        grey box naming the image), the marked candidate (framed green), an optional
        highlighted one (framed orange, dashed), one bar value per candidate.
    title : str
        Figure title.
    bar_max : float or None
        Scale of the bars (1.0 for shares; None: the largest value, e.g. for distances).

    Returns
    -------
    matplotlib.figure.Figure
        Double-column width (7.16 in), at most PAGE_HEIGHT (9 in) tall (many rows get
        narrower thumbnails; a label wider than its column keeps its end after an
        ellipsis), 9-pt text; save it with plots.save_figure or use
        save_gallery.

    Examples
    --------
    >>> drawing = TrialDrawing(query, cands, marked=1, bars=[.1, .6, .1, .1, .1])  # doctest: +SKIP
    >>> fig = gallery_figure([drawing])  # doctest: +SKIP
    """
    n = max(1, len(trials))
    k = max([len(t.candidates) for t in trials] or [5])
    width = used = DOUBLE
    cell_h = used / (k + 1) * (BOX_H + 0.64) / 1.04
    extra = 0.35 if title else 0.0
    if n * (cell_h + 0.3) + extra > PAGE_HEIGHT:
        # many rows: narrower thumbnails, centred, so that the figure fits one page
        cell_h = (PAGE_HEIGHT - extra) / n - 0.3
        used = cell_h * (k + 1) * 1.04 / (BOX_H + 0.64)
    height = n * (cell_h + 0.3) + extra
    side = 0.5 - 0.495 * used / width
    # 9-pt characters are at most ~5.7 pt wide: a longer label would run into its neighbour
    fits = max(4, int(used * 0.99 / (k + 1 + k * 0.06) * 72 / 5.7))
    with style():
        # A fixed grid, not constrained layout: long titles must not widen a column.
        fig = Figure(figsize=(width, height))
    top_margin = (0.35 if title else 0.0) + 0.25
    grid = fig.add_gridspec(n, k + 1, left=side, right=1 - side, bottom=0.05 / height,
                            top=1 - top_margin / height, wspace=0.06,
                            hspace=0.3 / cell_h)
    top = bar_max or max([max(t.bars, default=0) for t in trials] + [1e-9])
    for r, t in enumerate(trials):
        qax = fig.add_subplot(grid[r, 0])
        _cell(qax, t.query, _fit(t.query_label, fits))
        qax.text(0, -0.06, t.title, fontsize=9, ha="left", va="bottom", clip_on=False)
        for j, cand in enumerate(t.candidates):
            label = _fit(t.labels[j], fits) if j < len(t.labels) else ""
            v = float(t.bars[j]) if j < len(t.bars) else 0.0
            text = (t.bar_texts[j] if t.bar_texts is not None and j < len(t.bar_texts)
                    else f"{100 * v:.0f} %")
            frame = MARK_COLOUR if j == t.marked else (
                HIGHLIGHT_COLOUR if j == t.highlight else None)
            _cell(fig.add_subplot(grid[r, j + 1]), cand, label, frame,
                  dashed=(j == t.highlight and j != t.marked), bar=v / top, bar_text=text,
                  bar_colour=MARK_COLOUR if j == t.marked else "#7f7f7f")
    if title:
        fig.suptitle(title, y=1 - 0.05 / height, va="top")
    return fig


def save_gallery(trials: Sequence[TrialDrawing], path: Path, title: str = "",
                 dpi: int = DEFAULT_DPI, **kwargs) -> Path:
    """Draw ``trials`` with gallery_figure and write PNG (at ``dpi``), PDF and SVG.

    Parameters
    ----------
    trials : sequence of TrialDrawing
    path : Path
        Where the PNG goes; the PDF and SVG get the same stem.
    title : str
    dpi : int
    **kwargs
        Passed to gallery_figure (bar_max).

    Returns
    -------
    Path
        The PNG's path.

    Examples
    --------
    >>> save_gallery(drawings(selection, images), Path("fig4.png"))  # doctest: +SKIP
    """
    return save_figure(gallery_figure(trials, title, **kwargs), path, dpi, tight=False)

"""The demo pair set: TLL-like pairs made offline from photographs that installed packages
ship (scikit-image's data folder with its LFW face crops, matplotlib's Grace Hopper,
scikit-learn's China and flower), in the TLL download layout `left/`, `right/`.

Every pair is a recipe below (no randomness at run time), rendered to 200 x 245 px JPEGs
with fixed quality and no metadata, so two runs write the same bytes. Kinds of pairs:
- `face`: a face on both sides that dlib's HOG detector finds (two LFW faces that
  dlib's face descriptor puts close, the same person's two LFW crops, or two portraits);
- `view`: two views (crop, zoom, flip, rotation) of the same photograph;
- `alike`: two different photographs that look alike in shape, colour or texture.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments import files

WIDTH, HEIGHT = 200, 245            # TLL image size (w, h)
JPEG_QUALITY = 90

# LFW face crops of scikit-image's lfw_subset.npy (rows 0..99 are faces). Chosen offline
# with dlib: HOG finds each rendered face (upsample 0 and 1), and the chosen faces are
# more than 0.45 apart in dlib's descriptor space except within a pair, so the near-
# duplicate rules of the subsets (face distance <= 0.4) keep them.
# Same person, two crops (dlib distance < 0.45 and the same look): left, right.
LFW_SAME_PERSON = [(36, 90), (61, 77), (3, 97)]
# Different people that dlib's descriptor puts close: left, right.
LFW_LOOKALIKE = [(39, 59), (10, 89), (60, 65), (32, 38), (76, 95), (8, 58), (35, 81),
                 (16, 78), (24, 86), (11, 56), (43, 64), (54, 55), (25, 80), (52, 91),
                 # added for the paper's design in the demo (six cells of at least 5
                 # trials, TLL_d needing faces on both sides): the closest pairs of the
                 # remaining crops that HOG finds, dlib distance 0.49 .. 0.64
                 (6, 21), (0, 73), (20, 48), (66, 87), (40, 44), (19, 63), (7, 47),
                 (85, 94), (12, 23), (79, 98), (27, 41), (31, 75), (37, 57), (46, 53),
                 (45, 99), (42, 62), (34, 71), (1, 33), (69, 70), (5, 51), (26, 84),
                 (50, 96), (14, 29), (72, 88), (22, 93), (17, 74)]

# (tint black, tint white) for the gray LFW crops: old-photo tones.
TINTS = [((30, 20, 10), (255, 238, 205)), ((10, 18, 35), (225, 238, 255)),
         ((20, 20, 20), (250, 250, 250)), ((35, 15, 20), (255, 228, 225)),
         ((15, 28, 15), (235, 255, 230)), ((40, 30, 0), (255, 250, 200))]


class DemoDataError(Exception):
    """A source photograph is missing from the installed packages; says which package."""


# --------------------------------------------------------------------------- sources
def _skimage_dir() -> Path:
    try:
        import skimage.data as skd
    except ImportError:  # pragma: no cover - scikit-image is a requirement
        raise DemoDataError("scikit-image is not installed: pip install scikit-image") from None
    return Path(getattr(skd, "data_dir", os.path.dirname(skd.__file__)))


def _source_path(name: str) -> Path:
    if name == "grace_hopper":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if name in ("china", "flower"):
        import sklearn.datasets

        return Path(os.path.dirname(sklearn.datasets.__file__)) / "images" / f"{name}.jpg"
    folder = _skimage_dir()
    for ext in (".png", ".jpg"):
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    return folder / f"{name}.png"


_CACHE: dict[str, object] = {}


def source_image(name: str):
    """Return the named source photograph as an RGB PIL image (cached)."""
    from PIL import Image

    if name not in _CACHE:
        path = _source_path(name)
        if not path.is_file():
            raise DemoDataError(f"source photograph {name!r} not found at {path}: reinstall "
                                "scikit-image, matplotlib and scikit-learn")
        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA", "P"):
                # transparent logos/silhouettes go on white, as on a web page
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                _CACHE[name] = Image.alpha_composite(bg, rgba).convert("RGB")
            else:
                _CACHE[name] = im.convert("RGB")
    return _CACHE[name]


def lfw_faces() -> np.ndarray:
    """Return scikit-image's 100 LFW face crops, uint8 `100 x 25 x 25`."""
    path = _skimage_dir() / "lfw_subset.npy"
    if not path.is_file():
        raise DemoDataError(f"{path} not found: reinstall scikit-image")
    if "lfw" not in _CACHE:
        _CACHE["lfw"] = (np.load(path)[:100] * 255).round().astype(np.uint8)
    return _CACHE["lfw"]


# --------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class View:
    """A TLL-shaped crop of a source photograph: centre (cx, cy) and height h as fractions
    of the source, optional rotation (degrees), mirror and gray/tint."""

    source: str
    cx: float
    cy: float
    h: float
    angle: float = 0.0
    flip: bool = False
    gray: bool = False

    def render(self):
        """Return the 200 x 245 RGB PIL image of this view."""
        from PIL import Image, ImageOps

        src = source_image(self.source)
        w0, h0 = src.size
        cx, cy = self.cx * w0, self.cy * h0
        if self.angle:
            src = src.rotate(self.angle, resample=Image.BICUBIC, center=(cx, cy),
                             fillcolor=(0, 0, 0))
        ch = min(self.h * h0, h0, w0 * HEIGHT / WIDTH)
        cw = ch * WIDTH / HEIGHT
        left = min(max(cx - cw / 2, 0), w0 - cw)
        top = min(max(cy - ch / 2, 0), h0 - ch)
        img = src.resize((WIDTH, HEIGHT), Image.LANCZOS,
                         box=(left, top, left + cw, top + ch))
        if self.flip:
            img = ImageOps.mirror(img)
        if self.gray:
            img = ImageOps.grayscale(img).convert("RGB")
        return img

    def describe(self) -> str:
        """Return a short provenance string."""
        extra = "".join([f" rot{self.angle:g}" if self.angle else "",
                         " mirrored" if self.flip else "", " gray" if self.gray else ""])
        return f"{self.source} crop c=({self.cx:.2f},{self.cy:.2f}) h={self.h:.2f}{extra}"


@dataclass(frozen=True)
class Face:
    """One LFW face crop upscaled into a TLL-shaped portrait: tinted like an old photo and
    set on a blurred background cut from another photograph."""

    index: int
    background: View
    tint: int = 0
    size: int = 160
    dx: int = 0
    dy: int = 0
    blur: float = 5.0

    def render(self):
        """Return the 200 x 245 RGB PIL image of this portrait."""
        from PIL import Image, ImageDraw, ImageFilter, ImageOps

        face = Image.fromarray(lfw_faces()[self.index], "L").resize(
            (self.size, self.size), Image.BICUBIC)
        black, white = TINTS[self.tint % len(TINTS)]
        face = ImageOps.colorize(face, black=black, white=white)
        canvas = self.background.render().filter(ImageFilter.GaussianBlur(self.blur))
        # a soft oval vignette so the square crop sits in the picture like a portrait
        mask = Image.new("L", (self.size, self.size), 0)
        m = self.size // 14
        ImageDraw.Draw(mask).ellipse((-m, -m, self.size + m, self.size + m), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(self.size // 24))
        x = (WIDTH - self.size) // 2 + self.dx
        y = (HEIGHT - self.size) // 2 + self.dy
        canvas.paste(face, (x, y), mask)
        return canvas

    def describe(self) -> str:
        """Return a short provenance string."""
        return f"lfw_subset[{self.index}] on {self.background.source}"


@dataclass(frozen=True)
class DemoPair:
    """A recipe: the kind (`face`, `view`, `alike`), the two images and why they match."""

    kind: str
    left: object
    right: object
    note: str


def _lfw_background(k: int) -> View:
    """Return the k-th background view for LFW portraits (blurred later)."""
    backs = [View("china", 0.3, 0.5, 0.6), View("grass", 0.5, 0.5, 0.5),
             View("brick", 0.4, 0.5, 0.6), View("coffee", 0.2, 0.3, 0.6),
             View("flower", 0.8, 0.3, 0.7), View("rocket", 0.2, 0.4, 0.7),
             View("hubble_deep_field", 0.5, 0.5, 0.3), View("motorcycle_left", 0.8, 0.3, 0.5),
             View("ihc", 0.5, 0.5, 0.6), View("chelsea", 0.1, 0.5, 0.8),
             View("gravel", 0.5, 0.5, 0.4), View("color", 0.5, 0.5, 0.5)]
    return backs[k % len(backs)]


def _face(index: int, k: int) -> Face:
    """Return the k-th LFW portrait: background, tint, size and place vary with k so that
    portraits differ beyond the face (chosen offline so that few of them fall within the
    generic near-duplicate thresholds of the subsets)."""
    sizes = (150, 160, 166, 155, 165)
    return Face(index, _lfw_background(5 * k + 1), tint=3 * k + 1, size=sizes[k % 5],
                dx=(7 * k) % 21 - 10, dy=(11 * k) % 31 - 15, blur=5.0)


def demo_pairs() -> list[DemoPair]:
    """Return the demo pair recipes in id order (ids are 1-based positions)."""
    pairs: list[DemoPair] = []
    # faces ----------------------------------------------------------------
    pairs.append(DemoPair("face", View("astronaut", 0.46, 0.30, 0.62),
                          View("grace_hopper", 0.48, 0.36, 0.62),
                          "two portraits in US uniform before the flag"))
    k = 0
    for a, b in LFW_SAME_PERSON:
        pairs.append(DemoPair("face", _face(a, k), _face(b, k + 7),
                              "the same person, two LFW crops"))
        k += 1
    for a, b in LFW_LOOKALIKE:
        pairs.append(DemoPair("face", _face(a, k), _face(b, k + 5),
                              "two LFW faces that dlib's descriptor puts close"))
        k += 1
    # two views of one photograph ------------------------------------------
    views = [
        ("chelsea", View("chelsea", 0.55, 0.35, 0.55), View("chelsea", 0.5, 0.6, 1.0, flip=True)),
        ("coffee", View("coffee", 0.45, 0.35, 0.75), View("coffee", 0.6, 0.55, 1.0, angle=12)),
        ("rocket", View("rocket", 0.5, 0.35, 0.45), View("rocket", 0.45, 0.6, 1.0)),
        ("china", View("china", 0.45, 0.45, 0.85), View("china", 0.7, 0.6, 0.6, flip=True)),
        ("flower", View("flower", 0.45, 0.35, 0.55), View("flower", 0.5, 0.6, 1.0, angle=-8)),
        ("hubble", View("hubble_deep_field", 0.25, 0.3, 0.35),
         View("hubble_deep_field", 0.75, 0.7, 0.5)),
        ("retina", View("retina", 0.25, 0.45, 0.4), View("retina", 0.6, 0.5, 0.8, angle=20)),
        ("ihc", View("ihc", 0.3, 0.3, 0.5), View("ihc", 0.7, 0.7, 0.6, flip=True)),
        ("stereo motorcycle", View("motorcycle_left", 0.45, 0.6, 0.8),
         View("motorcycle_right", 0.55, 0.65, 0.6)),
        ("moon", View("moon", 0.3, 0.3, 0.5), View("moon", 0.65, 0.7, 0.6)),
        ("coins", View("coins", 0.3, 0.35, 0.6), View("coins", 0.7, 0.65, 0.5)),
        ("cameraman's field", View("camera", 0.6, 0.8, 0.45), View("camera", 0.75, 0.7, 0.6)),
        ("brick", View("brick", 0.3, 0.3, 0.5), View("brick", 0.6, 0.7, 0.4, angle=90)),
        ("cell", View("cell", 0.4, 0.4, 0.5), View("cell", 0.6, 0.6, 0.7)),
        ("logo", View("logo", 0.35, 0.4, 0.6), View("logo", 0.6, 0.6, 0.7, flip=True)),
        ("colour wheel", View("color", 0.4, 0.5, 0.7), View("color", 0.6, 0.45, 0.5)),
        ("page", View("page", 0.25, 0.5, 1.0), View("page", 0.75, 0.5, 1.0)),
        ("horse", View("horse", 0.75, 0.35, 0.6), View("horse", 0.5, 0.5, 1.0, flip=True)),
        ("chessboard", View("chessboard_RGB", 0.5, 0.5, 0.6),
         View("chessboard_RGB", 0.4, 0.5, 1.0, angle=30)),
        ("phantom", View("phantom", 0.5, 0.5, 1.0), View("phantom", 0.5, 0.4, 0.5)),
        ("retinal vessels", View("microaneurysms", 0.4, 0.5, 0.9),
         View("microaneurysms", 0.6, 0.45, 0.6, angle=90)),
    ]
    for name, left, right in views:
        pairs.append(DemoPair("view", left, right, f"two views of {name}"))
    # different photographs that look alike --------------------------------
    alike = [
        ("coins and gravel: rounded pebbles", View("coins", 0.75, 0.6, 0.6),
         View("gravel", 0.4, 0.6, 0.35)),
        ("retina and dahlia: warm round", View("retina", 0.5, 0.5, 1.0),
         View("flower", 0.52, 0.9, 0.35)),
        ("espresso and clock: a round thing from above", View("coffee", 0.4, 0.25, 0.55),
         View("clock_motion", 0.5, 0.45, 0.7)),
        ("shuttle and rocket on the pad", View("astronaut", 0.82, 0.25, 0.55),
         View("rocket", 0.55, 0.5, 0.8)),
        ("rows of bricks and lines of print", View("brick", 0.5, 0.5, 0.3),
         View("text", 0.5, 0.5, 1.0)),
        ("chessboard and a grid of coins", View("chessboard_RGB", 0.3, 0.3, 0.45),
         View("coins", 0.2, 0.3, 0.5, gray=True)),
        ("a bright sphere on gray", View("cell", 0.7, 0.65, 0.5), View("moon", 0.2, 0.1, 0.3)),
        ("black figure on three legs", View("horse", 0.3, 0.6, 0.9),
         View("camera", 0.5, 0.6, 1.0)),
        ("fur and grass", View("chelsea", 0.15, 0.8, 0.4), View("grass", 0.5, 0.4, 0.3)),
        ("colour wheel and a colourful logo", View("color", 0.5, 0.5, 1.0),
         View("logo", 0.5, 0.5, 1.0)),
        ("orange uniform and orange petals", View("astronaut", 0.35, 0.8, 0.4),
         View("flower", 0.55, 0.5, 0.4)),
        ("medals and a mission patch", View("grace_hopper", 0.72, 0.9, 0.2),
         View("astronaut", 0.6, 0.82, 0.25)),
        ("a pagoda and a launch tower", View("china", 0.5, 0.4, 0.7),
         View("rocket", 0.15, 0.5, 0.9)),
        ("handwriting and print", View("text", 0.3, 0.5, 1.0), View("page", 0.5, 0.4, 0.8)),
        ("stars and speckled tissue", View("hubble_deep_field", 0.5, 0.5, 0.6),
         View("ihc", 0.5, 0.2, 0.4, flip=True)),
        ("scan of a head and a crater field", View("phantom", 0.5, 0.6, 0.7),
         View("moon", 0.5, 0.5, 1.0)),
        ("a red motorcycle and a red cup", View("motorcycle_right", 0.45, 0.55, 0.5),
         View("coffee", 0.3, 0.6, 0.6)),
        ("cobbles and bricks", View("gravel", 0.6, 0.3, 0.6), View("brick", 0.5, 0.4, 0.9)),
    ]
    for note, left, right in alike:
        pairs.append(DemoPair("alike", left, right, note))
    return pairs


def _jpeg_bytes(img) -> bytes:
    buf = io.BytesIO()
    # fixed quality and subsampling, no EXIF or timestamps: same pixels give same bytes
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    return buf.getvalue()


def write_demo_data(out_dir: str | os.PathLike, progress: bool = True) -> list[dict]:
    """Render the demo pairs into `out_dir/left/NNNNN.jpg` and `out_dir/right/NNNNN.jpg`,
    write `out_dir/provenance.csv`; return one dict per pair (id, kind, note, sources)."""
    from tqdm import tqdm

    out = Path(out_dir)
    files.make_dirs(out / "left")
    files.make_dirs(out / "right")
    rows = []
    recipes = _interleaved(demo_pairs())
    for i, pair in enumerate(tqdm(recipes, desc="demo pairs", unit="pair",
                                  disable=None if progress else True), start=1):
        pid = f"{i:05d}"
        for side, recipe in (("left", pair.left), ("right", pair.right)):
            files.write_bytes(out / side / f"{pid}.jpg", _jpeg_bytes(recipe.render()))
        rows.append({"id": pid, "kind": pair.kind, "note": pair.note,
                     "left_source": pair.left.describe(),
                     "right_source": pair.right.describe()})
    # a folder written by an older, larger demo set must not keep its extra pairs
    written = {f"{r['id']}.jpg" for r in rows}
    for side in ("left", "right"):
        for stale in (out / side).glob("[0-9][0-9][0-9][0-9][0-9].jpg"):
            if stale.name not in written:
                stale.unlink()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "kind", "note", "left_source", "right_source"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(out / "provenance.csv", buf.getvalue())
    return rows


def _interleaved(pairs: list[DemoPair]) -> list[DemoPair]:
    """Return the pairs in a fixed mixed order (kinds spread out), as in a real dataset
    where ids say nothing about content."""
    order = np.random.default_rng(20180702).permutation(len(pairs))
    return [pairs[i] for i in order]

"""Pictures as the models and the participants should see them: upright 8-bit RGB.

Ingest decodes every image once through `to_rgb` and, where the file is not already a
plain upright RGB or greyscale picture, keeps the converted pixels (PNG) as the study's
copy, so the feature extractors and the server, which only `convert("RGB")`, see the
same right picture. What a bare `convert("RGB")` gets wrong:

- 16-bit greyscale (`I;16*`, `I`): Pillow clips to 0..255, so nearly every pixel turns
  white; here the 16-bit range is scaled to 8 bits;
- 32-bit float (`F`): clipped the same way; values in 0..1 are scaled to 0..255;
- transparency (`RGBA`, `LA`, `PA`, a palette with a transparent index): the hidden
  colour under the transparent pixels shows (often black); here they go on white, as on
  a web page;
- EXIF orientation: a phone photo stored sideways stays sideways; here it is turned.
Palette (`P`), CMYK and `1`-bit pictures convert correctly with Pillow's own conversion.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# EXIF tag 0x0112 Orientation; 1 means "already upright"
ORIENTATION_TAG = 0x0112
_PLAIN_MODES = ("RGB", "L")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def orientation(im: Image.Image) -> int:
    """Return the EXIF orientation of ``im`` (1 when absent or unreadable)."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block must not make the picture unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def needs_conversion(im: Image.Image) -> bool:
    """Return whether ``im`` differs from what a plain ``convert("RGB")`` of its file
    shows the right way: any mode other than 8-bit RGB/greyscale, or an EXIF rotation."""
    return im.mode not in _PLAIN_MODES or orientation(im) != 1


def _has_transparency(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_8bit(values: np.ndarray, top: float) -> Image.Image:
    scaled = np.clip(np.rint(values.astype(np.float64) * (255.0 / top)), 0, 255)
    return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Return ``im`` upright (EXIF orientation applied) as 8-bit RGB, with 16-bit and
    float greyscale scaled to 8 bits and transparent pixels on white."""
    if orientation(im) != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode == "RGB":
        return im.copy()
    if im.mode in _SIXTEEN_BIT:
        return _to_8bit(np.asarray(im), 65535.0)
    if im.mode == "I":
        # 32-bit integers: PNG and TIFF 16-bit greyscale may also open as "I"
        arr = np.asarray(im)
        return _to_8bit(arr, 65535.0 if arr.max(initial=0) > 255 else 255.0)
    if im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        return _to_8bit(arr, 1.0 if arr.max(initial=0) <= 1.0 else 255.0)
    if _has_transparency(im):
        return _on_white(im)
    return im.convert("RGB")

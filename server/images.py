"""Images by opaque token: `/i/<token>`, and their re-encoding at load time.

Every image of an experiment is encoded the same way (one size, one JPEG quality, one
chroma subsampling, catch trials' queries included) from its pixels only: no COM, EXIF,
XMP, ICC or other APPn segment survives, only the plain JFIF APP0 header. An image whose
shape differs from the experiment's common size is scaled to fit and letterboxed, never
squashed. Every image gets the same headers apart from its length."""
from __future__ import annotations

import io
import re

from flask import Blueprint, Response, abort
from sqlalchemy import select

from .models import Image, db

bp = Blueprint("images", __name__)
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 2  # 4:2:0, for every image of every experiment
LETTERBOX_FILL = (246, 246, 244)  # the page background (static/style.css)


def fit_box(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """Return the largest (w, h) with the aspect ratio of `size` that fits in `box`."""
    w, h = size
    scale = min(box[0] / w, box[1] / h)
    return max(1, min(box[0], round(w * scale))), max(1, min(box[1], round(h * scale)))


def _jpeg(pixels) -> bytes:
    out = io.BytesIO()
    pixels.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING,
                optimize=False, progressive=False)
    return out.getvalue()


def encode_image(src, size: tuple[int, int]) -> bytes:
    """Return the JPEG bytes served for the image file `src`: its pixels scaled to fit
    `size` (aspect ratio kept, centred on LETTERBOX_FILL), nothing but pixels."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    with PILImage.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        inner = fit_box(im.size, size)
        if im.size != inner:
            im = im.resize(inner, PILImage.Resampling.LANCZOS)
        # A new canvas has no `info`: Pillow would otherwise write the source's comment
        # (and with it e.g. where the image was downloaded) into the output.
        canvas = PILImage.new("RGB", size, LETTERBOX_FILL)
        canvas.paste(im, ((size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2))
        return _jpeg(canvas)


def reencode(data: bytes) -> bytes:
    """Return `data` (a JPEG made by encode_image) decoded and encoded again with the same
    settings: other bytes, the same quantisation and subsampling. Used for a catch trial's
    query, so it is not byte-identical to its candidate copy yet encoded alike."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as im:
        canvas = PILImage.new("RGB", im.size)
        canvas.paste(im.convert("RGB"))
        return _jpeg(canvas)
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@bp.get("/i/<token>")
def image(token: str):
    """Return the image stored under `token` (404 for anything else)."""
    if not TOKEN_RE.match(token):
        abort(404, "unknown image")
    row = db.session.execute(select(Image.data, Image.mime).where(Image.token == token)).first()
    if row is None:
        abort(404, "unknown image")
    resp = Response(row.data, mimetype=row.mime)
    # Tokens never change meaning, so browsers may keep the bytes; `private` keeps shared
    # caches out of a study's images.
    resp.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp

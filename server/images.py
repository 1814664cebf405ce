"""Images by opaque token: `/i/<token>`. The bytes were re-encoded at load time; every
image gets the same headers apart from its length."""
from __future__ import annotations

import re

from flask import Blueprint, Response, abort
from sqlalchemy import select

from .models import Image, db

bp = Blueprint("images", __name__)
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

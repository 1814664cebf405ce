"""Served images carry pixels only, are all encoded alike (catch trials included) and keep
their aspect ratio (letterboxed to the experiment's common size)."""
from __future__ import annotations

import hashlib
import io
import json
import struct

from PIL import Image

from server.models import Image as ImageRow
from server.models import db
from tests.server.conftest import make_app, write_experiment


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """Return (marker, payload) of every segment before the scan, then SOS and EOI."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    out, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF, f"no marker at {i}"
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, b""))
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((marker, data[i + 4:i + 2 + length]))
        i += 2 + length
        if marker == 0xDA:  # entropy-coded data up to EOI
            end = data.rfind(b"\xff\xd9")
            assert end > i
            out.append((0xD9, b""))
            break
    return out


def _study_with_metadata(folder):
    """The small study, with two images replaced by JPEGs carrying a comment, EXIF, XMP
    and an ICC profile, one of them four times wider than tall."""
    exp = write_experiment(folder)
    doc = json.loads(exp.read_text())
    for image_id, size in (("R00001", (400, 100)), ("L00002", (200, 245))):
        entry = next(im for im in doc["images"] if im["id"] == image_id)
        path = folder / entry["path"]
        im = Image.new("RGB", size, (200, 30, 30))
        exif = Image.Exif()
        exif[0x010E] = "downloaded from https://example.org/secret"
        out = io.BytesIO()
        im.save(out, "JPEG", quality=75, comment=b"source: https://example.org/pair-00001",
                exif=exif, icc_profile=b"\x00" * 128, xmp=b"<x:xmpmeta>leak</x:xmpmeta>")
        path.write_bytes(out.getvalue())
        entry["sha256"] = hashlib.sha256(out.getvalue()).hexdigest()
    exp.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    return exp


def test_every_served_image_is_pixels_only_and_encoded_alike(tmp_path):
    from server.loader import load_experiment

    exp_file = _study_with_metadata(tmp_path / "study")
    app = make_app(tmp_path)
    with app.app_context():
        load_experiment(exp_file, name="meta", settings={"trial_order": "fixed"})
        rows = db.session.query(ImageRow).all()
        tokens = {r.key: r.token for r in rows}
        width, height = rows[0].width, rows[0].height
    c = app.test_client()
    tables, sampling = set(), set()
    assert any("@" in k for k in tokens), "the catch trial's query copy is served too"
    for key, token in tokens.items():
        r = c.get(f"/i/{token}")
        assert r.status_code == 200 and r.mimetype == "image/jpeg"
        data = r.get_data()
        assert b"example.org" not in data and b"xmpmeta" not in data
        segs = jpeg_segments(data)
        markers = [m for m, _ in segs]
        assert 0xFE not in markers, f"{key}: COM segment"
        app_segments = [(m, p) for m, p in segs if 0xE0 <= m <= 0xEF]
        assert all(m == 0xE0 and p.startswith(b"JFIF\x00") for m, p in app_segments), \
            f"{key}: APP segments {[hex(m) for m, _ in app_segments]}"
        assert set(markers) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA, 0xD9}, [hex(m) for m in markers]
        tables.add(b"".join(p for m, p in segs if m == 0xDB))
        sof = next(p for m, p in segs if m == 0xC0)
        h, w = struct.unpack(">HH", sof[1:5])
        assert (w, h) == (width, height), key
        sampling.add(sof[5:])  # component ids and sampling factors
    assert len(tables) == 1, "one JPEG quality for every image, catch trials included"
    assert len(sampling) == 1, "one chroma subsampling for every image"

    # The 400x100 image is letterboxed: its content keeps the 4:1 shape.
    with Image.open(io.BytesIO(c.get(f"/i/{tokens['R00001']}").get_data())) as im:
        px = im.convert("RGB")
        red = [(x, y) for y in range(0, height, 2) for x in range(0, width, 2)
               if px.getpixel((x, y))[0] > 150 and px.getpixel((x, y))[1] < 90]
        xs = [x for x, _ in red]
        ys = [y for _, y in red]
        content_w, content_h = max(xs) - min(xs) + 2, max(ys) - min(ys) + 2
        assert abs(content_w / content_h - 4.0) < 0.4, (content_w, content_h)
        assert px.getpixel((width // 2, 2)) == px.getpixel((width // 2, height - 3))  # bars

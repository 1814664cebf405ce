"""Image modes at ingest: 16-bit, palette, CMYK, greyscale, transparency and EXIF
orientation reach the models and the participants as the right upright RGB picture."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.features.faces import load_rgb
from experiments.features.generic import open_rgb
from experiments.ingest import ingest
from experiments.manifest import load_manifest, pixel_sha256
from server.images import JPEG_QUALITY, JPEG_SUBSAMPLING, encode_image

W, H = 40, 30


def base() -> np.ndarray:
    """A 40 x 30 RGB picture with gradients in every channel and a dark square."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([x * 6, y * 8, 255 - x * 3 - y * 2], axis=-1).clip(0, 255).astype(np.uint8)
    rgb[5:12, 25:33] = (20, 30, 40)
    return rgb


def png16_rgb(arr16: np.ndarray) -> bytes:
    """Return a 48-bit (16 bits per channel) RGB PNG of ``arr16``; Pillow cannot write one."""
    h, w, _ = arr16.shape
    raw = b"".join(b"\x00" + arr16[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def variants() -> dict[str, tuple[bytes, str, np.ndarray, float]]:
    """id -> (file bytes, extension, the RGB the study must show, tolerance)."""
    rgb = base()
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    out = {}

    def save(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    out["g16"] = (save(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"), ".png",
                  np.repeat(grey[..., None], 3, -1), 0)
    out["rgb16"] = (png16_rgb(rgb.astype(np.uint16) * 257), ".png", rgb, 0)
    pal = Image.fromarray(rgb).quantize(16)
    out["palette"] = (save(pal, "PNG"), ".png", np.asarray(pal.convert("RGB")), 0)
    # palette index 0 transparent: those pixels go on white, not their hidden colour
    tp = pal.copy()
    tp.info["transparency"] = 0
    want = np.asarray(pal.convert("RGB")).copy()
    want[np.asarray(pal) == 0] = 255
    out["palette_transparent"] = (save(tp, "PNG", transparency=0), ".png", want, 0)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out["cmyk_tiff"] = (save(cmyk, "TIFF"), ".tif", np.asarray(cmyk.convert("RGB")), 0)
    out["cmyk_jpeg"] = (save(cmyk, "JPEG", quality=95), ".jpg", rgb, 12)
    out["grey"] = (save(Image.fromarray(grey), "PNG"), ".png", np.repeat(grey[..., None], 3, -1), 0)
    la = Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), "LA")
    la.putpixel((0, 0), (0, 0))  # one transparent pixel: white
    want = np.repeat(grey[..., None], 3, -1).copy()
    want[0, 0] = 255
    out["grey_alpha"] = (save(la, "PNG"), ".png", want, 0)
    # stored turned a quarter: EXIF orientation 6 says "turn 90° clockwise to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    out["exif6"] = (save(stored, "PNG", exif=exif.tobytes()), ".png", rgb, 0)
    out["exif6_jpeg"] = (save(stored, "JPEG", quality=95, exif=exif.tobytes()), ".jpg", rgb, 12)
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    src = root / "src"
    cases = variants()
    plain = Image.fromarray(base()[::-1].copy())  # a right image for every pair
    for side in ("left", "right"):
        (src / side).mkdir(parents=True)
    for pid, (data, ext, _, _) in cases.items():
        (src / "left" / f"{pid}{ext}").write_bytes(data)
        plain.save(src / "right" / f"{pid}.png")
    work = root / "study"
    ingest(src, work, progress=False)
    return work, cases


def test_the_generated_files_have_the_modes_they_test():
    modes = {pid: Image.open(io.BytesIO(data)).mode for pid, (data, *_rest) in variants().items()}
    assert modes["g16"].startswith("I;16") and modes["cmyk_tiff"] == "CMYK"
    assert modes["palette"] == "P" and modes["grey"] == "L" and modes["grey_alpha"] == "LA"
    # what went wrong before: Pillow's own conversion of 16-bit grey is (nearly) all white
    g16 = Image.open(io.BytesIO(variants()["g16"][0]))
    assert np.asarray(g16.convert("RGB")).mean() > 250


@pytest.mark.parametrize("pid", list(variants()))
def test_models_and_participants_see_the_right_picture(study, pid):
    work, cases = study
    _, _, want, tol = cases[pid]
    pair = load_manifest(work).by_id()[pid]
    path = pair.left.abspath(work)
    assert tuple(pair.left.size) == (W, H)  # upright: the EXIF turn is applied
    for seen in (np.asarray(open_rgb(str(path))), load_rgb(str(path))):   # the models' loaders
        assert seen.shape == want.shape
        err = np.abs(seen.astype(int) - want)
        # lossless files: exact; JPEG: close on average (its block edges stray further)
        assert (err.max() == 0) if tol == 0 else (err.mean() < tol / 3), pid
    # the server's re-encoding for participants: the JPEG of exactly the right pixels
    served = encode_image(path, (W, H))
    if tol == 0:
        expected = io.BytesIO()
        Image.fromarray(want).save(expected, "JPEG", quality=JPEG_QUALITY,
                                   subsampling=JPEG_SUBSAMPLING, optimize=False,
                                   progressive=False)
        assert served == expected.getvalue(), pid
    else:
        seen = np.asarray(Image.open(io.BytesIO(served)).convert("RGB"))
        assert np.abs(seen.astype(int) - want).mean() < tol / 2, pid
    assert pair.left.sha256 == pixel_sha256(Image.fromarray(np.asarray(open_rgb(str(path)))))


def test_plain_pictures_keep_their_bytes(study):
    work, _ = study
    right = load_manifest(work).by_id()["grey"].right
    assert right.path.endswith(".png")
    src = Path(right.source).read_bytes()
    assert right.abspath(work).read_bytes() == src

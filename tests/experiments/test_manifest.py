"""The pair manifest: pixel hash, round trip, canonical bytes, clear errors."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from experiments.manifest import (
    ImageRef,
    Manifest,
    ManifestError,
    Pair,
    load_manifest,
    pixel_sha256,
    save_manifest,
)


def _ref(side: str, pid: str, sha: str = "ab" * 32) -> ImageRef:
    return ImageRef(path=f"images/{side}/{pid}.jpg", sha256=sha, size=(200, 245),
                    source=f"/src/{side}/{pid}.jpg", box=None)


def test_pixel_sha256_is_the_contract_formula_and_format_independent(tmp_path):
    arr = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(4, 3, 3)  # h=4, w=3
    img = Image.fromarray(arr, "RGB")
    expected = hashlib.sha256(b"RGB3x4:" + arr.tobytes()).hexdigest()
    assert pixel_sha256(img) == expected
    img.save(tmp_path / "a.png")
    img.convert("RGBA").save(tmp_path / "b.png")
    assert pixel_sha256(Image.open(tmp_path / "a.png")) == expected
    assert pixel_sha256(Image.open(tmp_path / "b.png")) == expected
    arr2 = arr.copy()
    arr2[0, 0, 0] ^= 1
    assert pixel_sha256(Image.fromarray(arr2, "RGB")) != expected


def test_round_trip_sorted_and_canonical_bytes(tmp_path):
    pairs = [Pair("00002", _ref("left", "00002"), _ref("right", "00002"), {"up": 3, "down": 1}),
             Pair("00001", _ref("left", "00001"),
                  ImageRef("images/right/00001.png", "cd" * 32, (200, 245), "/c.jpg",
                           (201, 0, 401, 245)), None)]
    m = Manifest(layout="tll", source="/src", pairs=pairs)
    assert m.ids == ["00001", "00002"]
    path = save_manifest(tmp_path, m)
    data = path.read_bytes()
    assert data.endswith(b"}\n")
    assert data == (json.dumps(json.loads(data), sort_keys=True, indent=2) + "\n").encode()
    assert m.sha256 == hashlib.sha256(data).hexdigest()
    loaded = load_manifest(tmp_path)
    assert loaded.sha256 == m.sha256
    assert loaded.ids == ["00001", "00002"]
    assert loaded.pairs[0].right.box == (201, 0, 401, 245)
    assert loaded.pairs[1].votes == {"up": 3, "down": 1}
    assert loaded.pairs[0].left.abspath(tmp_path) == (tmp_path / "images/left/00001.jpg").resolve()
    assert loaded.pairs == m.pairs
    # saving again gives the same bytes and leaves no temp file behind
    save_manifest(tmp_path, loaded)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_missing_manifest_names_the_ingest_command(tmp_path):
    with pytest.raises(ManifestError, match="python -m experiments ingest"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("content", [b"{not json", b'{"format": "other"}',
                                     b'{"format": "tll-manifest", "version": 1, "pairs": [{}]}'])
def test_malformed_manifest_raises_manifest_error(tmp_path, content):
    (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(ManifestError):
        load_manifest(tmp_path)

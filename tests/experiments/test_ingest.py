"""`python -m experiments ingest`: the three layouts, the votes join, bad input (listed,
skipped, or with --strict nothing written) and re-ingesting into an existing study."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.manifest import load_manifest, pixel_sha256

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m experiments ARGS`; return the completed process (not checked)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "experiments", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def ok(*args: str) -> subprocess.CompletedProcess:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def fails(*args: str) -> subprocess.CompletedProcess:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc


def noise(seed: int, size=(200, 245)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def make_tll(root: Path, ids, ext=".png") -> Path:
    for side in ("left", "right"):
        (root / side).mkdir(parents=True, exist_ok=True)
    for i, pid in enumerate(ids):
        noise(2 * i).save(root / "left" / f"{pid}{ext}")
        noise(2 * i + 1).save(root / "right" / f"{pid}{ext}")
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(path: Path) -> dict[str, str]:
    """Return {relative file path: sha256 of bytes} of everything under path."""
    return {str(p.relative_to(path)): sha(p) for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- layouts
def test_tll_layout_on_the_demo_images(demo_images, tmp_path):
    work = tmp_path / "study"
    proc = ok("ingest", demo_images, "--workdir", work)
    left_files = sorted((demo_images / "left").glob("*.jpg"))
    assert f"kept {len(left_files)} of {len(left_files)} pairs" in proc.stdout
    m = load_manifest(work)
    assert m.layout == "tll" and m.source == str(demo_images.absolute())
    assert m.ids == [f.stem for f in left_files]
    for pair in m.pairs:
        for side in ("left", "right"):
            ref = pair.side(side)
            src = demo_images / side / f"{pair.id}.jpg"
            assert ref.path == f"images/{side}/{pair.id}.jpg" and ref.box is None
            assert ref.source == str(src.absolute())
            # the study's copy is the file's bytes; the hash is of the decoded pixels
            assert ref.abspath(work).read_bytes() == src.read_bytes()
            with Image.open(src) as im:
                assert ref.sha256 == pixel_sha256(im)
                assert ref.size == im.size == (200, 245)
        assert pair.votes is None
    assert sorted(p.name for p in work.iterdir()) == ["images", "manifest.json"]


def combined_picture(seed: int, w=401, h=271) -> np.ndarray:
    """A combined picture whose every pixel is known: random halves, a marked last
    column and a marked caption strip."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
    arr[:, -1] = (255, 0, 255)          # the column that is dropped
    arr[h - 26:, :] = (250, 250, 250)   # the caption strip that is dropped
    return arr


def test_combined_layout_splits_and_crops_exactly(tmp_path):
    src = tmp_path / "tll" / "Images"
    src.mkdir(parents=True)
    arrays = {f"{i:05d}": combined_picture(i) for i in (1, 2, 7)}
    for pid, arr in arrays.items():
        Image.fromarray(arr, "RGB").save(src / f"{pid}.png")
    work = tmp_path / "study"
    proc = ok("ingest", tmp_path / "tll", "--workdir", work)   # layout detected
    assert "kept 3 of 3 pairs" in proc.stdout
    m = load_manifest(work)
    assert m.layout == "combined" and m.ids == sorted(arrays)
    for pair in m.pairs:
        arr = arrays[pair.id]
        expect = {"left": arr[:245, :200], "right": arr[:245, 200:400]}
        boxes = {"left": (0, 0, 200, 245), "right": (200, 0, 400, 245)}
        for side in ("left", "right"):
            ref = pair.side(side)
            assert ref.path == f"images/{side}/{pair.id}.png"
            assert ref.box == boxes[side] and ref.size == (200, 245)
            assert ref.source == str((src / f"{pair.id}.png").absolute())
            got = np.asarray(Image.open(ref.abspath(work)).convert("RGB"))
            np.testing.assert_array_equal(got, expect[side])
            assert ref.sha256 == hashlib.sha256(
                b"RGB200x245:" + np.ascontiguousarray(expect[side]).tobytes()).hexdigest()
            # neither the dropped column nor the caption strip survives
            assert not (got == (255, 0, 255)).all(axis=2).any()


def test_combined_geometry_is_a_parameter(tmp_path):
    src = tmp_path / "pics"
    src.mkdir()
    arr = combined_picture(3, w=303, h=100)
    Image.fromarray(arr, "RGB").save(src / "a1.png")
    Image.fromarray(combined_picture(4), "RGB").save(src / "b2.png")   # 401 wide: wrong here
    work = tmp_path / "study"
    proc = ok("ingest", src, "--workdir", work, "--layout", "combined", "--crop-width", 150,
              "--caption-rows", 10, "--drop-columns", 3)
    assert "kept 1 of 2 pairs" in proc.stdout
    assert "b2.png" in proc.stderr and "401x271" in proc.stderr
    pair = load_manifest(work).pairs[0]
    assert pair.right.box == (150, 0, 300, 90)
    np.testing.assert_array_equal(np.asarray(Image.open(pair.left.abspath(work))), arr[:90, :150])
    np.testing.assert_array_equal(np.asarray(Image.open(pair.right.abspath(work))),
                                  arr[:90, 150:300])


def test_csv_layout_relative_and_absolute_paths_ids_and_votes(tmp_path):
    base = tmp_path / "mine"
    (base / "photos" / "a").mkdir(parents=True)
    noise(1).save(base / "photos" / "a" / "cat.png")
    noise(2).save(base / "photos" / "dog.jpg", quality=95)
    elsewhere = tmp_path / "elsewhere.png"
    noise(3, (120, 80)).save(elsewhere)
    noise(4).save(base / "photos" / "owl.png")
    (base / "pairs.csv").write_text(
        "id,left,right,up,down\n"
        f"cat,photos/a/cat.png,{elsewhere},5,2\n"
        "dog,photos/dog.jpg,photos/owl.png,,\n")
    work = tmp_path / "study"
    ok("ingest", base / "pairs.csv", "--workdir", work)
    m = load_manifest(work)
    assert m.layout == "csv" and m.ids == ["cat", "dog"]
    cat, dog = m.pairs
    assert cat.votes == {"up": 5, "down": 2} and dog.votes is None
    assert cat.left.source == str((base / "photos/a/cat.png").absolute())
    assert cat.right.source == str(elsewhere) and cat.right.size == (120, 80)
    assert cat.right.path == "images/right/cat.png"
    assert dog.left.path == "images/left/dog.jpg"
    assert dog.left.abspath(work).read_bytes() == (base / "photos/dog.jpg").read_bytes()
    with Image.open(elsewhere) as im:
        assert cat.right.sha256 == pixel_sha256(im)

    # without an id column the pair id is the row number
    (base / "noid.csv").write_text("left,right\nphotos/a/cat.png,photos/owl.png\n"
                                   "photos/owl.png,photos/dog.jpg\n")
    ok("ingest", base / "noid.csv", "--workdir", tmp_path / "study2")
    m2 = load_manifest(tmp_path / "study2")
    assert m2.ids == ["00001", "00002"]
    assert m2.pairs[1].left.source == str((base / "photos/owl.png").absolute())


def test_votes_join_by_pair_id(tmp_path):
    src = make_tll(tmp_path / "tll", ["00001", "00002", "00003"])
    votes = tmp_path / "votes.csv"
    # TLL's votes file names pairs by number; 99 is not a pair, 00003 has no row
    votes.write_text("id,wins,fails\n1,12,3\n00002,0,7\n99,1,1\n")
    work = tmp_path / "study"
    proc = ok("ingest", src, "--workdir", work, "--votes", votes)
    m = load_manifest(work)
    assert [p.votes for p in m.pairs] == [{"up": 12, "down": 3}, {"up": 0, "down": 7}, None]
    assert "99" in proc.stderr and "1 pair(s) have no row" in proc.stderr
    raw = json.loads((work / "manifest.json").read_text())
    assert raw["pairs"][0]["votes"] == {"up": 12, "down": 3}


def test_bad_votes_rows_are_listed(tmp_path):
    src = make_tll(tmp_path / "tll", ["00001", "00002"])
    votes = tmp_path / "votes.csv"
    votes.write_text("id,wins,fails\n00001,many,3\n00002,4,1\n00002,5,5\n00001,inf,-1\n")
    work = tmp_path / "study"
    proc = fails("ingest", src, "--workdir", work, "--votes", votes, "--strict")
    for line in (2, 4, 5):
        assert f"votes.csv line {line}" in proc.stderr
    assert not work.exists()
    ok("ingest", src, "--workdir", work, "--votes", votes)
    assert [p.votes for p in load_manifest(work).pairs] == [None, {"up": 4, "down": 1}]


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def bad_tll(tmp_path) -> Path:
    """A TLL folder with 2 good pairs and 4 bad ones of every kind."""
    src = make_tll(tmp_path / "bad", ["00001", "00002"], ext=".jpg")
    noise(10).save(src / "left" / "00003.jpg")                      # no partner
    noise(11).save(src / "left" / "00004.jpg")
    data = (src / "left" / "00001.jpg").read_bytes()
    (src / "right" / "00004.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    (src / "left" / "00005.jpg").write_text("this is not a picture\n")  # text named .jpg
    noise(12).save(src / "right" / "00005.jpg")
    noise(13).save(src / "right" / "00006.jpg")                     # no partner either side
    noise(14).save(src / "right" / "00006.png")                     # ... and a duplicate id
    noise(15).save(src / "left" / "00006.jpg")
    (src / "left" / "notes.txt").write_text("ignored\n")
    return src


def test_bad_pairs_are_listed_and_skipped(bad_tll, tmp_path):
    work = tmp_path / "study"
    proc = ok("ingest", bad_tll, "--workdir", work)
    err = proc.stderr
    assert "left/00003.jpg: no partner" in err
    assert "right/00004.jpg: unreadable or truncated" in err
    assert "left/00005.jpg: not an image" in err
    assert "right/00006.jpg, right/00006.png: duplicate id '00006'" in err
    assert "notes.txt" in err
    assert "kept 2 of 6 pairs (4 skipped" in proc.stdout
    assert load_manifest(work).ids == ["00001", "00002"]
    assert sorted(p.name for p in (work / "images" / "left").iterdir()) == ["00001.jpg",
                                                                           "00002.jpg"]


def test_strict_lists_everything_and_writes_nothing(bad_tll, tmp_path):
    work = tmp_path / "study"
    proc = fails("ingest", bad_tll, "--workdir", work, "--strict")
    for name in ("left/00003.jpg", "right/00004.jpg", "left/00005.jpg", "right/00006.png"):
        assert name in proc.stderr
    assert "nothing written" in proc.stderr
    assert not work.exists()

    # into an existing study: the manifest, images and features stay as they were
    ok("ingest", make_tll(tmp_path / "good", ["00001", "00002"]), "--workdir", work)
    (work / "features" / "generic" / "x").mkdir(parents=True)
    (work / "features" / "generic" / "x" / "left.npy").write_bytes(b"features")
    before = tree(work)
    fails("ingest", bad_tll, "--workdir", work, "--strict")
    assert tree(work) == before
    assert sorted(p.name for p in work.iterdir()) == ["features", "images", "manifest.json"]


def test_truncated_file_found_by_a_full_decode(tmp_path):
    src = make_tll(tmp_path / "tll", ["00001", "00002"], ext=".jpg")
    data = (src / "right" / "00002.jpg").read_bytes()
    # the header is intact (PIL opens it lazily), only the decode of the data fails
    (src / "right" / "00002.jpg").write_bytes(data[: int(len(data) * 0.8)])
    proc = fails("ingest", src, "--workdir", tmp_path / "s", "--strict")
    assert "right/00002.jpg: unreadable or truncated image" in proc.stderr


def test_duplicate_ids_in_csv(tmp_path):
    for name, seed in (("a.png", 1), ("b.png", 2), ("c.png", 3)):
        noise(seed).save(tmp_path / name)
    listing = tmp_path / "pairs.csv"
    listing.write_text("id,left,right\n7,a.png,b.png\n8,b.png,c.png\n7,c.png,a.png\n"
                       "9,a.png,missing.png\n")
    work = tmp_path / "study"
    proc = fails("ingest", listing, "--workdir", work, "--strict")
    assert "pairs.csv lines 2, 4: duplicate id '7'" in proc.stderr
    assert "missing.png: file not found" in proc.stderr
    assert not work.exists()
    proc = ok("ingest", listing, "--workdir", work)
    assert "kept 1 of 4 pairs" in proc.stdout
    assert load_manifest(work).ids == ["8"]


@pytest.mark.parametrize("shape", ["empty", "empty_sides", "only_text"])
def test_empty_folder(tmp_path, shape):
    src = tmp_path / "src"
    src.mkdir()
    if shape == "empty_sides":
        (src / "left").mkdir()
        (src / "right").mkdir()
    if shape == "only_text":
        (src / "readme.txt").write_text("no pictures here\n")
    work = tmp_path / "study"
    proc = fails("ingest", src, "--workdir", work)
    assert str(src) in proc.stderr
    assert ("empty folder" in proc.stderr) == (shape != "only_text")
    assert not work.exists()


def test_no_good_pair_left_is_an_error(tmp_path):
    src = tmp_path / "tll"
    (src / "left").mkdir(parents=True)
    (src / "right").mkdir()
    (src / "left" / "00001.jpg").write_text("text")
    noise(1).save(src / "right" / "00001.jpg")
    work = tmp_path / "study"
    proc = fails("ingest", src, "--workdir", work)
    assert "left/00001.jpg: not an image" in proc.stderr and "no pair left" in proc.stderr
    assert not work.exists()


def test_layout_flag_mismatch_and_bad_csv(tmp_path):
    src = make_tll(tmp_path / "tll", ["00001"])
    proc = fails("ingest", src, "--workdir", tmp_path / "s", "--layout", "csv")
    assert "--layout csv needs a CSV file" in proc.stderr
    proc = fails("ingest", src / "left", "--workdir", tmp_path / "s", "--layout", "tll")
    assert "no left/ folder" in proc.stderr
    (src / "right" / "00001.png").unlink()
    (src / "right").rmdir()
    proc = fails("ingest", src, "--workdir", tmp_path / "s")
    assert "has a left/ folder but no right/ folder" in proc.stderr
    bad = tmp_path / "pairs.csv"
    bad.write_text("first,second\na.png,b.png\n")
    proc = fails("ingest", bad, "--workdir", tmp_path / "s")
    assert "missing column(s) left, right" in proc.stderr
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- re-ingest
def test_reingest_replaces_manifest_and_keeps_features(tmp_path):
    src = make_tll(tmp_path / "tll", ["00001", "00002", "00003"])
    work = tmp_path / "study"
    ok("ingest", src, "--workdir", work)
    first = load_manifest(work)
    feats = work / "features" / "generic" / "efficientnet_lite0"
    feats.mkdir(parents=True)
    (feats / "meta.json").write_text("{}\n")

    noise(99).save(src / "right" / "00002.png")         # one image changes
    (src / "left" / "00003.png").unlink()               # one pair goes
    (src / "right" / "00003.png").unlink()
    make_tll(tmp_path / "more", ["00004"])
    os.replace(tmp_path / "more" / "left" / "00004.png", src / "left" / "00004.png")
    os.replace(tmp_path / "more" / "right" / "00004.png", src / "right" / "00004.png")
    ok("ingest", src, "--workdir", work)
    second = load_manifest(work)
    assert second.ids == ["00001", "00002", "00004"]
    assert second.sha256 != first.sha256
    a, b = first.by_id(), second.by_id()
    assert a["00001"] == b["00001"]
    assert a["00002"].left.sha256 == b["00002"].left.sha256
    assert a["00002"].right.sha256 != b["00002"].right.sha256
    assert (feats / "meta.json").read_text() == "{}\n"
    assert not (work / "images" / "left" / "00003.png").exists()
    assert sorted(p.name for p in work.iterdir()) == ["features", "images", "manifest.json"]


def test_reingest_after_an_image_went_bad_keeps_the_good_copy_and_says_so(tmp_path):
    """A pair ingested once whose source image is damaged later: re-ingesting lists the
    problem, keeps the study's previous (good) copy and manifest entry, and warns; a pair
    that was never ingested is still skipped; --strict still writes nothing."""
    src = make_tll(tmp_path / "tll", ["00001", "00002", "00003"], ext=".jpg")
    work = tmp_path / "study"
    ok("ingest", src, "--workdir", work)
    before = load_manifest(work)
    copy = (work / before.pairs[1].right.path).read_bytes()
    data = (src / "right" / "00002.jpg").read_bytes()
    (src / "right" / "00002.jpg").write_bytes(data[: len(data) // 2])   # went bad
    proc = ok("ingest", src, "--workdir", work)
    assert "right/00002.jpg: unreadable or truncated" in proc.stderr
    assert "warning: pair 00002 is bad in the source now; the study keeps its previous copy" \
        in proc.stderr
    after = load_manifest(work)
    assert after.ids == ["00001", "00002", "00003"]
    assert after.pairs[1] == before.pairs[1]
    assert (work / after.pairs[1].right.path).read_bytes() == copy
    assert "kept 3 of 3 pairs" in proc.stdout
    # --strict: stops, the study unchanged
    snapshot = tree(work)
    fails("ingest", src, "--workdir", work, "--strict")
    assert tree(work) == snapshot

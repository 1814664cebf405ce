"""The feature store: files and meta.json per docs/contracts.md §3, the Python API, and
incremental runs (resume after an interruption, skip unchanged, recompute changed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.features import extract
from experiments.manifest import load_manifest
from experiments.store import FeatureStore, StoreError, features_command, parse_key
from tests.conftest import copy_demo_pairs, run_cli

KEYS = ["face/dlib_hog", "face_generic/efficientnet_lite0_hog", "generic/efficientnet_lite0"]


class Interrupted(Exception):
    """Raised by a test's on_batch callback to simulate a run killed mid-way."""



@pytest.fixture
def small_study(tmp_path, demo_images) -> tuple[Path, Path]:
    """(source folder, study) for five demo pairs, three of them (00001, 00003, 00004)
    with a face on both sides."""
    src = copy_demo_pairs(demo_images, tmp_path / "src", ["00001", "00002", "00003", "00004", "00010"])
    study = tmp_path / "study"
    run_cli("experiments", "ingest", str(src), "--workdir", str(study))
    return src, study


# ------------------------------------------------------------------ contract, read side
def test_demo_study_feature_sets_follow_the_contract(demo_study):
    manifest = load_manifest(demo_study)
    store = FeatureStore(demo_study)
    assert store.keys() == KEYS
    n = len(manifest.pairs)
    lefts = [p.left.sha256 for p in manifest.pairs]
    for key in KEYS:
        fs = store.load(key)
        meta = json.loads((demo_study / "features" / key / "meta.json").read_text())
        assert meta == fs.meta
        assert (demo_study / "features" / key / "meta.json").read_text().endswith("}\n")
        for field in ("key", "kind", "name", "model", "dim", "preprocessing", "manifest_sha256",
                      "ids", "left_sha256", "right_sha256", "versions", "created", "complete"):
            assert field in meta, (key, field)
        assert meta["key"] == key and f"{meta['kind']}/{meta['name']}" == key
        assert meta["complete"] is True
        assert meta["manifest_sha256"] == manifest.sha256
        assert fs.ids == meta["ids"] == manifest.ids
        assert meta["left_sha256"] == lefts
        assert meta["right_sha256"] == [p.right.sha256 for p in manifest.pairs]
        assert {"torch", "numpy", "dlib"} <= set(meta["versions"])
        assert meta["created"][:2] == "20" and "T" in meta["created"]
        if meta["kind"] != "generic":
            assert meta["detector"] == "hog"

    generic = store.load("generic/efficientnet_lite0")
    assert generic.left.dtype == np.float32 and generic.left.shape == (n, 1280)
    assert generic.right.shape == (n, 1280)
    assert np.isfinite(generic.left).all() and np.abs(generic.left).sum(axis=1).min() > 0
    assert generic.meta["preprocessing"]["crop"] == 224

    face = store.load("face/dlib_hog")
    fgen = store.load("face_generic/efficientnet_lite0_hog")
    for side in ("left", "right"):
        fs, fg = face.side(side), fgen.side(side)
        assert fs.offsets.dtype == np.int64 and fs.offsets.shape == (n + 1,)
        assert fs.offsets[0] == 0 and (np.diff(fs.offsets) >= 0).all()
        assert fs.vectors.dtype == np.float32 and fs.vectors.shape == (fs.offsets[-1], 128)
        assert fs.boxes.dtype == np.int32 and fs.boxes.shape == (fs.offsets[-1], 4)
        assert (fs.boxes[:, 2] > fs.boxes[:, 0]).all() and (fs.boxes[:, 3] > fs.boxes[:, 1]).all()
        assert (fs.boxes[:, :2] >= 0).all()
        sizes = [getattr(p, side).size for p in manifest.pairs]
        for i in range(n):
            for box in fs.face_boxes(i):
                assert box[2] <= sizes[i][0] and box[3] <= sizes[i][1]
        assert np.isfinite(fs.vectors).all() and (np.linalg.norm(fs.vectors, axis=1) > 0.1).all()
        # face_generic rows sit on the same faces, in the same order
        np.testing.assert_array_equal(fg.offsets, fs.offsets)
        np.testing.assert_array_equal(fg.boxes, fs.boxes)
        assert fg.vectors.shape == (fs.offsets[-1], 1280)
        assert fs.has_face.dtype == bool and (fs.has_face == (fs.counts > 0)).all()
    # the demo set has faces on both sides of some pairs and none on others
    both = face.left.has_face & face.right.has_face
    assert 0 < both.sum() < n


def test_missing_and_malformed_keys_name_the_command(demo_study):
    store = FeatureStore(demo_study)
    assert not store.has("generic/resnet50")
    with pytest.raises(StoreError) as err:
        store.load("generic/resnet50")
    assert f"python -m experiments features {demo_study} --kind generic --model resnet50" in str(err.value)
    with pytest.raises(StoreError) as err:
        store.load("face_generic/densenet121_cnn")
    assert "--kind face_generic --model densenet121 --detector cnn" in str(err.value)
    with pytest.raises(StoreError):
        store.load("generic")
    assert parse_key("face_generic/efficientnet_lite0_hog") == {
        "kind": "face_generic", "name": "efficientnet_lite0_hog",
        "model": "efficientnet_lite0", "detector": "hog"}
    assert (features_command("S", "face/dlib_cnn")
            == "python -m experiments features S --kind face --detector cnn")


# ------------------------------------------------------------------ incremental runs
def test_generic_run_resumes_after_an_interruption(small_study, demo_study):
    _, study = small_study
    calls = []

    def stop_after_first_batch(done: int) -> None:
        calls.append(done)
        raise Interrupted

    with pytest.raises(Interrupted):
        extract.extract_generic(study, batch_size=4, workers=0, progress=False,
                                on_batch=stop_after_first_batch)
    assert calls == [4]
    store = FeatureStore(study)
    assert store.keys() == [] and not store.has("generic/efficientnet_lite0")
    with pytest.raises(StoreError, match="incomplete"):
        store.load("generic/efficientnet_lite0")
    meta = json.loads((study / "features/generic/efficientnet_lite0/meta.json").read_text())
    assert meta["complete"] is False

    summary = extract.extract_generic(study, batch_size=4, workers=0, progress=False)
    assert (summary.images, summary.computed, summary.reused) == (10, 6, 4)
    fs = FeatureStore(study).load("generic/efficientnet_lite0")
    # same pixels give the same features as the uninterrupted demo run
    demo = FeatureStore(demo_study).load("generic/efficientnet_lite0")
    rows = [demo.ids.index(i) for i in fs.ids]
    np.testing.assert_allclose(fs.left, demo.left[rows], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fs.right, demo.right[rows], rtol=1e-4, atol=1e-5)


def test_face_run_resumes_after_an_interruption(small_study):
    _, study = small_study

    def stop(done: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        extract.extract_faces(study, batch_size=3, workers=0, progress=False, on_batch=stop)
    summary = extract.extract_faces(study, batch_size=3, workers=0, progress=False)
    assert (summary.computed, summary.reused) == (7, 3)
    face = FeatureStore(study).load("face/dlib_hog")
    ids = face.ids
    has = dict(zip(ids, face.left.has_face & face.right.has_face))
    assert has["00001"] and has["00003"] and not has["00002"] and not has["00010"]


def test_rerun_computes_nothing_and_keeps_the_arrays(demo_study, copy_study):
    study = copy_study(demo_study)
    before = {p.relative_to(study): p.read_bytes()
              for p in (study / "features").rglob("*.npy")}
    for kind in ("generic", "face", "face_generic"):
        proc = run_cli("experiments", "features", str(study), "--kind", kind, "--quiet")
        lines = proc.stdout.strip().splitlines()
        assert lines and all(" 0 computed" in line for line in lines), proc.stdout
    after = {p.relative_to(study): p.read_bytes() for p in (study / "features").rglob("*.npy")}
    assert after == before
    assert FeatureStore(study).keys() == KEYS


def test_changed_image_is_the_only_one_recomputed(tmp_path, small_study):
    src, study = small_study
    extract.extract_generic(study, progress=False)
    extract.extract_faces(study, workers=0, progress=False)
    old = FeatureStore(study).load("generic/efficientnet_lite0")
    old_face = FeatureStore(study).load("face/dlib_hog")

    # change the right image of pair 00003 at the source and ingest again
    path = src / "right" / "00003.jpg"
    Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path, quality=95)
    run_cli("experiments", "ingest", str(src), "--workdir", str(study))
    store = FeatureStore(study)
    assert not store.has("generic/efficientnet_lite0")  # stale until recomputed
    with pytest.raises(StoreError, match="out of date"):
        store.load("generic/efficientnet_lite0")

    proc = run_cli("experiments", "features", str(study), "--kind", "generic", "--quiet")
    assert "1 computed, 9 from cache" in proc.stdout
    proc = run_cli("experiments", "features", str(study), "--kind", "face", "--quiet")
    assert "1 computed, 9 from cache" in proc.stdout
    new = FeatureStore(study).load("generic/efficientnet_lite0")
    row = new.ids.index("00003")
    assert new.meta["manifest_sha256"] == load_manifest(study).sha256
    np.testing.assert_array_equal(np.delete(new.right, row, 0), np.delete(old.right, row, 0))
    np.testing.assert_array_equal(new.left, old.left)
    assert not np.allclose(new.right[row], old.right[row])
    # the cache keeps only what the study still uses
    face = FeatureStore(study).load("face/dlib_hog")
    np.testing.assert_array_equal(face.left.offsets, old_face.left.offsets)
    cache = json.loads((study / "features/generic/efficientnet_lite0/cache/config.json").read_text())
    assert cache["model"] == "efficientnet_lite0"
    chunks = list((study / "features/generic/efficientnet_lite0/cache").glob("chunk-*.npz"))
    assert len(chunks) == 1
    with np.load(chunks[0]) as z:
        assert sorted(z["sha256"]) == sorted(set(new.meta["left_sha256"] + new.meta["right_sha256"]))


def test_other_detector_settings_recompute_every_image(small_study):
    _, study = small_study
    first = extract.extract_faces(study, upsample=0, workers=0, progress=False)
    assert first.computed == 10
    again = extract.extract_faces(study, workers=0, progress=False)  # keeps upsample 0
    assert again.computed == 0
    other = extract.extract_faces(study, upsample=1, workers=0, progress=False)
    assert other.computed == 10
    assert FeatureStore(study).load("face/dlib_hog").meta["upsample"] == 1


def test_features_without_a_manifest_is_one_clear_error(tmp_path):
    proc = run_cli("experiments", "features", str(tmp_path / "nowhere"), "--kind", "generic",
                   check=False)
    assert proc.returncode == 2
    assert "ingest" in proc.stderr and "Traceback" not in proc.stderr

"""The machine side at scale and on many machines: a bad weights file leaves the store
as it was, shards computed concurrently into one store give the bytes of a single run,
the cache never lists its folder per batch, faces are found on images scaled to a
maximum side, and half precision is checked against float32."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments import store as store_mod
from experiments.features import backbones, extract, faces
from experiments.features.generic import ImageItem
from tests.conftest import ROOT, copy_demo_pairs, run_cli


def snapshot(folder: Path) -> dict:
    """Every file and folder under `folder`: relative path -> bytes (None for folders)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------ safe weights
def test_a_bad_weights_file_leaves_the_store_exactly_as_it_was(demo_study, copy_study, tmp_path):
    import torch
    import torchvision

    study = copy_study(demo_study)
    before = snapshot(study / "features")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    torch.manual_seed(0)
    other_net = tmp_path / "resnet18-for-lite0.pth"     # a real state dict, another net
    torch.save(torchvision.models.resnet18().state_dict(), other_net)
    for kind in ("generic", "face_generic"):
        for bad, why in ((garbage, "not a PyTorch state dict"), (other_net, "does not fit")):
            proc = run_cli("experiments", "features", str(study), "--kind", kind,
                           "--weights", str(bad), "--quiet", check=False)
            assert proc.returncode == 2, proc.stderr
            assert bad.name in proc.stderr and why in proc.stderr
            assert "Traceback" not in proc.stderr + proc.stdout
            # one line, not torch's list of every missing key
            assert len(proc.stderr.strip().splitlines()) == 1 and len(proc.stderr) < 600
            assert snapshot(study / "features") == before, (kind, bad.name)
    # and the finished sets are still there, complete
    assert store_mod.FeatureStore(study).keys() == store_mod.FeatureStore(demo_study).keys()


def test_check_weights_reads_and_fits_without_building_the_model(tmp_path):
    import torch
    import torchvision

    torch.manual_seed(1)
    good = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    assert backbones.check_weights("resnet18", good) == good
    state = torch.load(good, weights_only=True)
    state["fc.weight"] = state["fc.weight"][:10]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(backbones.weights_mod.WeightsError, match="does not fit resnet18"):
        backbones.check_weights("resnet18", tmp_path / "short.pth")


# ------------------------------------------------------------------ the cache's index
def test_adding_a_batch_never_lists_the_cache_folder(tmp_path, monkeypatch):
    cache = store_mod.FeatureCache(tmp_path / "set", {"kind": "generic", "v": 1})
    assert not (tmp_path / "set").exists()          # opening writes nothing
    listed = []
    real = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: listed.append(self) or real(self))
    for b in range(20):
        cache.add([f"{b:064x}"], [np.full((1, 3), b, np.float32)])
    assert listed == []
    monkeypatch.undo()
    names = sorted(p.name for p in (tmp_path / "set" / "cache").iterdir())
    assert names[:2] == ["chunk-000001.npz", "chunk-000002.npz"] and len(names) == 21
    again = store_mod.FeatureCache(tmp_path / "set", {"kind": "generic", "v": 1})
    assert len(again) == 20 and again.get(f"{7:064x}").vectors.tolist() == [[7, 7, 7]]
    # another configuration: ignored on open, removed only by the first add
    other = store_mod.FeatureCache(tmp_path / "set", {"kind": "generic", "v": 2})
    assert len(other) == 0 and len(list((tmp_path / "set" / "cache").iterdir())) == 21
    other.add(["a" * 64], [np.zeros((1, 3), np.float32)])
    assert sorted(p.name for p in (tmp_path / "set" / "cache").iterdir()) == [
        "chunk-000001.npz", "config.json"]


# ------------------------------------------------------------------ shards
def test_shards_partition_the_images_by_hash():
    import hashlib

    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(200)]
    parts = [[s for s in shas if extract.in_shard(s, (i, 3))] for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(shas) and all(len(p) > 40 for p in parts)
    assert extract.parse_shard("2/5") == (2, 5) and extract.parse_shard(None) is None
    for bad in ("0/2", "3/2", "a/b", "1"):
        with pytest.raises(ValueError, match="--shard"):
            extract.parse_shard(bad)


def test_two_shards_run_concurrently_give_the_bytes_of_a_single_run(tmp_path, demo_images):
    src = copy_demo_pairs(demo_images, tmp_path / "src", ["00001", "00002", "00003", "00004",
                                                          "00010", "00011"])
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    for study in (single, sharded):
        run_cli("experiments", "ingest", str(src), "--workdir", str(study))
    run_cli("experiments", "features", str(single), "--kind", "face", "--workers", "0", "--quiet")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "experiments", "features", str(sharded),
                               "--kind", "face", "--workers", "0", "--quiet", "--shard", f"{i}/2"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    computed = [int(o.split(" computed")[0].rsplit(", ", 1)[1]) for o, _ in outs]
    assert sum(computed) == 12 and min(computed) > 0, outs
    assert all("shard" in o for o, _ in outs)
    a, b = (s / "features" / "face" / "dlib_hog" for s in (single, sharded))
    arrays = sorted(p.name for p in a.glob("*.npy"))
    assert len(arrays) == 6
    for name in arrays:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    meta_a, meta_b = (json.loads((f / "meta.json").read_text()) for f in (a, b))
    meta_a.pop("created"), meta_b.pop("created")
    assert meta_a == meta_b and meta_b["complete"] is True
    assert store_mod.FeatureStore(sharded).keys() == ["face/dlib_hog"]


# ------------------------------------------------------------------ faces at a maximum side
def test_faces_on_an_upscaled_image_are_found_scaled_down_and_mapped_back(demo_images, tmp_path):
    path = demo_images / "left" / "00001.jpg"
    small = faces.load_rgb(str(path))
    big = np.ascontiguousarray(np.asarray(Image.fromarray(small).resize(
        (small.shape[1] * 8, small.shape[0] * 8), Image.BILINEAR)))
    full = faces.FaceModels("hog")
    ref_vecs, ref_boxes = full.faces(small)
    assert len(ref_boxes) == 1
    capped = faces.FaceModels("hog", max_side=small.shape[0])   # back to the original size
    vecs, boxes = capped.faces(big)
    assert len(boxes) == 1
    # the box is in the big image's pixels: 8 times the small one's, to a few pixels
    np.testing.assert_allclose(boxes[0], ref_boxes[0] * 8, atol=8 * 3)
    assert np.linalg.norm(vecs[0] - ref_vecs[0]) < 0.2          # same face, same person
    # images within the limit are untouched
    assert (capped.detect(small) == ref_boxes).all()


# ------------------------------------------------------------------ devices and precision
def test_half_precision_check():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 32)).astype(np.float32)
    assert backbones.check_half_features(ref, ref + 1e-4, "float16") > 0.999
    bad = ref.copy()
    bad[3] = ref[3] + 0.2 * np.abs(ref[3]).mean() * rng.normal(size=32)
    with pytest.raises(backbones.PrecisionError, match=r"smallest cosine 0\.9[0-8]\d+ < 0.999"):
        backbones.check_half_features(ref, bad, "bfloat16")
    with pytest.raises(ValueError):
        backbones.check_precision("float8")


def test_half_precision_backbone_on_the_cpu_is_checked_against_float32(demo_images):
    """On the CPU, torch runs EfficientNet-Lite0 in bfloat16 (float16 convolutions take
    minutes on a CPU, so only bfloat16 here; on a GPU both are fast): the backbone is only
    returned when its features keep cosine >= 0.999 with float32."""
    import torch

    precision = "bfloat16"
    items = [ImageItem(str(demo_images / "left" / "00001.jpg"))]
    bb = backbones.build_backbone(device="auto")
    assert bb.device == ("cuda" if torch.cuda.is_available() else "cpu")
    from experiments.features.generic import iter_features

    ref = np.concatenate([f for _, f in iter_features(bb, items)])
    try:
        half = backbones.half_precision(bb, precision, items)
    except backbones.PrecisionError as exc:
        assert precision in str(exc)
        return
    got = np.concatenate([f for _, f in iter_features(half, items)])
    assert half.dtype == precision and got.dtype == np.float32
    assert backbones.min_row_cosine(ref, got) >= 0.999
    assert not np.array_equal(ref, got)         # it did run in another precision

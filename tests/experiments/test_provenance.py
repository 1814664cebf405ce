"""Features whose provenance is recorded: the compute settings in meta.json, a set that
refuses to mix results of different settings, batch composition within the stated
tolerance (or none at all with deterministic batching), and `--device auto` deciding
without torch where no GPU can exist."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import store as store_mod
from experiments.features import compute, extract
from experiments.manifest import load_manifest
from tests.conftest import ROOT, copy_demo_pairs, run_cli

PAIRS = ["00001", "00002", "00003", "00004", "00010"]


@pytest.fixture
def study(tmp_path, demo_images) -> Path:
    src = copy_demo_pairs(demo_images, tmp_path / "src", PAIRS)
    work = tmp_path / "study"
    run_cli("experiments", "ingest", str(src), "--workdir", str(work))
    return work


def _meta(work: Path, key: str) -> dict:
    return json.loads((store_mod.FeatureStore(work).folder(key) / "meta.json").read_text())


def test_meta_records_device_dtype_math_batch_and_versions(study):
    extract.extract_generic(study, workers=0, progress=False,
                            opts=extract.ComputeOptions(threads=1))
    meta = _meta(study, "generic/efficientnet_lite0")
    assert meta["mixed_settings"] is False and len(meta["compute"]) == 1
    rec = meta["compute"][0]
    assert rec["images"] == 2 * len(PAIRS)
    assert rec["device"] == "cpu" and rec["device_name"] == "cpu" and rec["precision"] == "float32"
    assert rec["math"] == {"tf32_matmul": False, "tf32_cudnn": False,
                           "float32_matmul_precision": "highest"}
    assert rec["autocast"] is False and rec["batch_size"] == compute.DEFAULT_CPU_BATCH
    assert rec["threads"] == 1 and rec["deterministic"] is False
    assert rec["versions"]["torch"] and rec["versions"]["numpy"] == np.__version__
    extract.extract_faces(study, workers=0, progress=False)
    face = _meta(study, "face/dlib_hog")["compute"][0]
    assert face["kind"] == "face" and face["versions"]["dlib"] and face["deterministic"] is True


def test_a_set_refuses_to_mix_two_settings_unless_told(study):
    """Shard 1 computed with TF32 off (the default), shard 2 with --allow-tf32: settling
    the set refuses, and it stays unusable; `allow` writes it with both settings listed;
    `recompute` recomputes the odd results and the set has one setting again."""
    shas = {s for p in load_manifest(study).pairs for s in (p.left.sha256, p.right.sha256)}
    shares = [{s for s in shas if extract.in_shard(s, (i, 2))} for i in (1, 2)]
    assert all(shares)                                   # both shards have work
    key = "generic/efficientnet_lite0"
    first = extract.extract_generic(study, workers=0, progress=False, shard=(1, 2))
    assert first.pending == len(shares[1])
    tf32 = extract.ComputeOptions(allow_tf32=True)
    with pytest.raises(store_mod.MixedSettingsError, match="TF32 on.*TF32 off|TF32 off.*TF32 on"):
        extract.extract_generic(study, workers=0, progress=False, shard=(2, 2), opts=tf32)
    assert key not in store_mod.FeatureStore(study).keys()
    # the CLI says it in one line and exits 2, leaving the set as it was
    proc = run_cli("experiments", "features", str(study), "--kind", "generic", "--quiet",
                   "--allow-tf32", check=False)
    assert proc.returncode == 2 and "--mixed-settings" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert key not in store_mod.FeatureStore(study).keys()
    extract.extract_generic(study, workers=0, progress=False, shard=(2, 2),
                            opts=extract.ComputeOptions(allow_tf32=True, on_mixed="allow"))
    meta = _meta(study, key)
    assert meta["mixed_settings"] is True
    assert sorted(r["math"]["tf32_matmul"] for r in meta["compute"]) == [False, True]
    assert sum(r["images"] for r in meta["compute"]) == len(shas)
    again = extract.extract_generic(study, workers=0, progress=False,
                                    opts=extract.ComputeOptions(on_mixed="recompute"))
    assert again.computed == len(shares[1])              # only the TF32 results
    meta = _meta(study, key)
    assert meta["mixed_settings"] is False and meta["compute"][0]["math"]["tf32_matmul"] is False
    assert key in store_mod.FeatureStore(study).keys()


def test_batch_composition_stays_within_the_stated_tolerance(demo_images):
    """An image computed in a batch of one and in a batch of eight differs by at most
    BATCH_TOLERANCE of its largest component; deterministic batching gives the same
    bytes whatever the batch size."""
    from experiments.features import backbones
    from experiments.features.generic import ImageItem, iter_features, set_torch_threads

    set_torch_threads(2)
    bb = backbones.build_backbone(device="cpu")
    items = [ImageItem(str(p)) for p in sorted((demo_images / "left").glob("*.jpg"))[:8]]

    def feats(batch_size, deterministic=False):
        return np.concatenate([f for _, f in iter_features(bb, items, batch_size=batch_size,
                                                           deterministic=deterministic)])
    one, eight = feats(1), feats(8)
    worst = (np.abs(one - eight).max(1) / np.abs(one).max(1)).max()
    assert worst <= compute.BATCH_TOLERANCE
    assert feats(8, deterministic=True).tobytes() == feats(1, deterministic=True).tobytes()


def test_device_auto_decides_without_torch_where_no_gpu_can_exist(tmp_path, monkeypatch):
    code = (
        "import os, sys, tempfile\n"
        "os.environ.pop('CUDA_VISIBLE_DEVICES', None)\n"
        "from experiments.features import compute\n"
        "compute.DEV_DIR = tempfile.mkdtemp()\n"
        "from experiments import distance_sources as ds\n"
        "from experiments.features import backbones\n"
        "assert compute.device_for('auto') == 'cpu'\n"
        "assert backbones.resolve_device('auto') == 'cpu'\n"
        "assert ds.resolve_retrieval_device('auto', 100_000, 2048) == 'cpu'\n"
        "print('torch imported:', 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "torch imported: False"
    # where a GPU may exist, auto asks torch
    monkeypatch.setattr(compute, "DEV_DIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert compute.gpu_possible() is False
    (tmp_path / "nvidia0").touch()
    assert compute.gpu_possible() is True
    (tmp_path / "nvidia0").unlink()
    for value, possible in (("0", True), ("", False), ("-1", False)):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert compute.gpu_possible() is possible
    with pytest.raises(ValueError, match="unknown device"):
        compute.device_for("tpu")


def test_bench_gpu_runs_on_the_cpu_path(tmp_path):
    """`make bench-gpu`'s script with --device cpu --tiny: the same code as on a GPU, one
    line per backbone with images/s, GFLOP per image and the share of the device's
    measured matmul rate, in seconds."""
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--device", "cpu", "--tiny",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("device cpu (cpu), TF32 off") and "GFLOP/s" in proc.stdout
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["efficientnet_lite0", "resnet18"]
    for r in rows:
        assert r["images_per_s"] > 0 and r["gflops_per_image"] > 0 and r["share_of_matmul"] > 0
        assert f"{r['model']:<20}" in proc.stdout and "share of matmul rate" in proc.stdout
    # resnet18: 1.82 G multiply-adds at 224 px, counted twice, scaled by (64/224)^2
    assert rows[1]["gflops_per_image"] == pytest.approx(2 * 1.82 * (64 / 224) ** 2, rel=0.1)

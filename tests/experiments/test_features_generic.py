"""Generic backbones: the penultimate-layer cuts, the packaged ImageNet weights, the
preprocessing, and the weights lookup (hub cache, --weights, the missing-file error)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.features import backbones, weights
from experiments.features.generic import (
    ImageItem,
    iter_features,
    naive_features,
    normalize_batch,
    resize_center_crop,
)
from experiments.store import FeatureStore
from tests.conftest import copy_demo_pairs, run_cli


@pytest.fixture(scope="module")
def small_study(tmp_path_factory, demo_images) -> Path:
    """Three demo pairs ingested into a study of their own (read-only for tests)."""
    base = tmp_path_factory.mktemp("small-generic")
    src = copy_demo_pairs(demo_images, base / "src", ["00001", "00002", "00003"])
    run_cli("experiments", "ingest", str(src), "--workdir", str(base / "study"))
    return base / "study"


def test_every_backbone_gives_its_penultimate_dimension_with_random_weights():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    dims = {}
    for name in backbones.MODELS:
        bb = backbones.build_backbone(name, pretrained=False, optimize=False)
        with torch.inference_mode():
            out = bb.module(x)
        dims[name] = tuple(out.shape)
        assert bool(torch.isfinite(out).all()), name
        # two different images give two different rows: the cut keeps per-sample features
        assert float((out[0] - out[1]).abs().max()) > 1e-3 * float(out.abs().max()), name
        del bb
    assert dims == {name: (2, d) for name, d in backbones.DIMS.items()}
    assert backbones.DIMS == {"efficientnet_lite0": 1280, "alexnet": 4096, "vgg16": 4096,
                              "resnet18": 512, "resnet50": 2048, "resnet152": 2048,
                              "densenet121": 1024, "densenet169": 1664, "densenet201": 1920}


def test_cuts_follow_the_notebook():
    torch.manual_seed(1)
    x = torch.randn(1, 3, 224, 224)
    import torchvision

    with torch.inference_mode():
        # ResNet: everything but fc == torchvision's forward without fc
        net = torchvision.models.resnet18().eval()
        bb = backbones._feature_module("resnet18", net)[0].eval()
        ref = torch.flatten(net.avgpool(net.layer4(net.layer3(net.layer2(net.layer1(
            net.maxpool(net.relu(net.bn1(net.conv1(x))))))))), 1)
        assert torch.allclose(bb(x), ref, atol=1e-6)
        assert torch.allclose(net.fc(bb(x)), net(x), atol=1e-5)
        # DenseNet: features then 7x7 average pool, NO ReLU (so negative values survive)
        net = torchvision.models.densenet121().eval()
        feats = backbones._feature_module("densenet121", net)[0].eval()(x)
        assert torch.allclose(feats, net.features(x).mean(dim=(2, 3)), atol=1e-5)
        assert bool((feats < 0).any())
        # AlexNet: classifier without its last two modules ends at the second Linear
        net = torchvision.models.alexnet().eval()
        cut, head = backbones._feature_module("alexnet", net)
        f = cut.eval()(x)
        assert f.shape == (1, 4096) and bool((f < 0).any())
        assert torch.allclose(head(f), net(x), atol=1e-5)


def test_optimised_backbone_matches_the_plain_one():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 224, 224)
    for name in ("resnet18", "efficientnet_lite0"):
        plain = backbones.build_backbone(name, pretrained=name != "resnet18", optimize=False)
        state = plain.module.state_dict()
        fast = backbones.build_backbone(name, pretrained=name != "resnet18", optimize=False)
        fast.module.load_state_dict(state)
        fast_mod = backbones._optimize(name, fast.module)
        with torch.inference_mode():
            a = plain.module(x)
            b = fast_mod(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max())), name


def _logits(bb, image: np.ndarray):
    im = resize_center_crop(Image.fromarray(image).convert("RGB"), 256, 224)
    batch = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return bb.head(bb.module(normalize_batch(batch, bb.preprocessing, bb.channels_last)))[0]


def test_packaged_efficientnet_lite0_knows_imagenet():
    from skimage import data

    bb = backbones.build_backbone("efficientnet_lite0")
    assert bb.weights.endswith(".pth") and bb.weights_sha256 and len(bb.weights_sha256) == 64
    cat = int(_logits(bb, data.chelsea()).argmax())
    coffee = int(_logits(bb, data.coffee()).argmax())
    assert 281 <= cat <= 285, cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee == 967  # espresso


def test_pipeline_features_equal_the_notebooks_one_by_one_loop(tmp_path):
    from skimage import data

    paths = []
    for name in ("chelsea", "coffee", "astronaut"):
        p = tmp_path / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(p)
        paths.append(str(p))
    fast = backbones.build_backbone("efficientnet_lite0")
    plain = backbones.build_backbone("efficientnet_lite0", optimize=False)
    got = np.concatenate([f for _, f in iter_features(fast, [ImageItem(p) for p in paths],
                                                      batch_size=2, workers=1)])
    ref = naive_features(plain.module, paths, plain.preprocessing)
    assert got.shape == (3, 1280)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_resize_center_crop_equals_torchvision():
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                             transforms.PILToTensor()])
    rng = np.random.default_rng(0)
    for w, h in [(200, 245), (245, 200), (401, 271), (256, 256), (120, 90)]:
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ours = np.asarray(resize_center_crop(im, 256, 224))
        ref = tf(im).permute(1, 2, 0).numpy()
        assert ours.shape == (224, 224, 3)
        np.testing.assert_array_equal(ours, ref)


def test_weight_file_names_are_torchvisions():
    import torchvision

    for name, fname in weights.TORCHVISION_FILES.items():
        url = torchvision.models.get_model_weights(name)["IMAGENET1K_V1"].url
        assert os.path.basename(url) == fname


def test_missing_weights_name_the_file_and_folder(tmp_path, copy_study, demo_study):
    study = copy_study(demo_study)
    home = tmp_path / "torch-home"
    home.mkdir()
    proc = run_cli("experiments", "features", str(study), "--kind", "generic", "--model",
                   "resnet50", env={"TORCH_HOME": str(home)}, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "resnet50-0676ba61.pth" in proc.stderr
    assert str(home / "hub" / "checkpoints") in proc.stderr
    assert "--weights" in proc.stderr
    assert not (study / "features" / "generic" / "resnet50").exists()
    # face_generic with a paper backbone fails the same way, before any face work
    proc = run_cli("experiments", "features", str(study), "--kind", "face_generic",
                   "--model", "densenet121", env={"TORCH_HOME": str(home)}, check=False)
    assert proc.returncode == 2 and "densenet121-a639ec97.pth" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_weights_from_hub_cache_and_from_path(tmp_path, small_study, copy_study, monkeypatch):
    import torchvision

    from experiments.features import extract

    torch.manual_seed(3)
    net = torchvision.models.resnet18()
    home = tmp_path / "torch-home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(net.state_dict(), home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    study = copy_study(small_study)
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert weights.hub_checkpoints_dir() == home / "hub" / "checkpoints"
    summary = extract.extract_generic(study, model="resnet18", progress=False)
    assert summary.computed == 6
    fs = FeatureStore(study).load("generic/resnet18")
    assert fs.left.shape == (3, 512) and fs.right.shape == (3, 512)
    assert fs.meta["weights"]["file"] == "resnet18-f37072fd.pth"
    # the features are those of the saved weights, cut before fc
    net.eval()
    ref = naive_features(backbones._feature_module("resnet18", net)[0].eval(),
                         [str(study / f"images/left/{i}.jpg") for i in fs.ids],
                         backbones.preprocessing("resnet18"))
    np.testing.assert_allclose(fs.left, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())

    # other weights through --weights: the cache notices and recomputes every image
    torch.manual_seed(4)
    other = tmp_path / "my-resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    summary = extract.extract_generic(study, model="resnet18", weights=other, progress=False)
    assert summary.computed == 6
    fs2 = FeatureStore(study).load("generic/resnet18")
    assert fs2.meta["weights"]["file"] == "my-resnet18.pth"
    assert not np.allclose(fs.left, fs2.left)

    # a file that is not a state dict of the model: one clear line, exit 2
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    proc = run_cli("experiments", "features", str(study), "--kind", "generic", "--model",
                   "resnet18", "--weights", str(bad), check=False)
    assert proc.returncode == 2 and "bad.pth" in proc.stderr and "Traceback" not in proc.stderr


def test_densenet_loads_torchvisions_published_key_names(tmp_path):
    import torchvision

    torch.manual_seed(5)
    net = torchvision.models.densenet121().eval()
    legacy = {}
    # the published file predates num_batches_tracked and names 'denselayer1.norm1.weight'
    # 'denselayer1.norm.1.weight'
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        legacy[re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k)] = v
    assert any(".norm.1." in k for k in legacy)
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(legacy, path)
    bb = backbones.build_backbone("densenet121", weights=path, optimize=False)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        ref = backbones._feature_module("densenet121", net)[0].eval()(x)
        assert torch.allclose(bb.module(x), ref, atol=1e-5)

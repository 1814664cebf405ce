"""The generic CNN backbones, each cut at its penultimate layer the way the authors'
notebook cut it, with the preprocessing that goes with it.

torch, torchvision and efficientnet_lite_pytorch are imported inside the functions, so
importing this module is cheap."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from experiments.features import weights as weights_mod
from experiments.manifest import file_sha256

DEFAULT_MODEL = "efficientnet_lite0"
PAPER_MODELS = ("alexnet", "vgg16", "resnet18", "resnet50", "resnet152",
                "densenet121", "densenet169", "densenet201")
MODELS = (DEFAULT_MODEL,) + PAPER_MODELS
DIMS = {"efficientnet_lite0": 1280, "alexnet": 4096, "vgg16": 4096, "resnet18": 512,
        "resnet50": 2048, "resnet152": 2048, "densenet121": 1024, "densenet169": 1664,
        "densenet201": 1920}

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# EfficientNet-Lite was trained in TensorFlow on pixels scaled as (x - 127) / 128; these
# weights give far more confident ImageNet answers with that scaling than with ImageNet's.
LITE_MEAN = [127.0 / 255] * 3
LITE_STD = [128.0 / 255] * 3


def preprocessing(model: str) -> dict:
    """Return the preprocessing of `model` as stored in a feature set's meta.json: resize
    the shorter side to 256, centre-crop 224, then scale by mean/std (per channel, on
    pixels in [0, 1])."""
    lite = model.startswith("efficientnet")
    return {"resize": 256, "crop": 224, "interpolation": "bilinear",
            "mean": list(LITE_MEAN if lite else IMAGENET_MEAN),
            "std": list(LITE_STD if lite else IMAGENET_STD)}


@dataclass
class Backbone:
    """A feature extractor: `module` maps a normalised float batch N x 3 x 224 x 224 to
    N x `dim` features. `head` (when set) maps those features to the ImageNet logits of
    the original classifier. `weights` is the weights file used, or "random"."""

    name: str
    module: object
    dim: int
    preprocessing: dict
    weights: str
    weights_sha256: str | None = None
    head: object | None = None
    channels_last: bool = False
    config: dict = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"


PRECISIONS = ("float32", "float16", "bfloat16")
# Half-precision features must point where float32's do (paper-level retrieval is
# decided by cosine distances; 0.999 keeps rank changes to near-ties).
MIN_HALF_COSINE = 0.999


class PrecisionError(weights_mod.WeightsError):
    """Half-precision features deviate from float32 beyond MIN_HALF_COSINE."""


def check_precision(precision: str) -> None:
    """Raise ValueError unless `precision` is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def resolve_device(device: str = "auto") -> str:
    """Return the torch device to run a backbone on: `cpu`, `cuda`, or for `auto` CUDA
    when torch sees a GPU, else the CPU (without importing torch where no GPU can exist).
    Raise WeightsError for `cuda` without a GPU."""
    from experiments.features.compute import device_for

    try:
        return device_for(device)
    except RuntimeError as exc:
        raise weights_mod.WeightsError(str(exc)) from None


def min_row_cosine(reference, other) -> float:
    """Return the smallest cosine similarity between matching rows of two feature arrays
    (1.0 for no rows)."""
    import numpy as np

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"feature shapes differ: {a.shape} vs {b.shape}")
    if len(a) == 0:
        return 1.0
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.where(na * nb > 0, na * nb, 1)
    cos[(na == 0) & (nb == 0)] = 1.0
    return float(cos.min())


def check_half_features(reference, half, precision: str,
                        threshold: float = MIN_HALF_COSINE) -> float:
    """Return the smallest row cosine between float32 `reference` features and `half`
    ones; raise PrecisionError naming it when it is below `threshold`."""
    c = min_row_cosine(reference, half)
    if not c >= threshold:
        raise PrecisionError(f"--precision {precision}: features deviate from float32 "
                             f"(smallest cosine {c:.5f} < {threshold}) on the first images; "
                             "use --precision float32")
    return c


def half_precision(backbone: Backbone, precision: str, items) -> Backbone:
    """Return `backbone` running in `precision` (float16 or bfloat16) after checking, on
    `items` (a few ImageItems), that its features keep a cosine of at least
    MIN_HALF_COSINE with the float32 ones; raise PrecisionError otherwise."""
    import copy

    import numpy as np
    import torch

    from experiments.features.generic import iter_features

    check_precision(precision)
    if precision == "float32":
        return backbone
    ref = [f for _, f in iter_features(backbone, items, batch_size=len(items) or 1)]
    half = copy.copy(backbone)
    half.module = copy.deepcopy(backbone.module).to(getattr(torch, precision))
    half.dtype = precision
    try:
        got = [f for _, f in iter_features(half, items, batch_size=len(items) or 1)]
    except RuntimeError as exc:  # an operator without a half kernel on this device
        raise PrecisionError(f"--precision {precision} is not supported on "
                             f"{backbone.device} by this torch ({str(exc).splitlines()[0]})") from None
    check_half_features(np.concatenate(ref) if ref else np.zeros((0, backbone.dim)),
                        np.concatenate(got) if got else np.zeros((0, backbone.dim)), precision)
    return half


def check_weights(name: str, weights: str | os.PathLike | None = None) -> Path:
    """Read the weights file of `name` (packaged, hub cache or `weights`) and check it
    against the architecture, allocating nothing (the model is built on torch's meta
    device); return its path. Raise WeightsError naming the file when it is missing, is
    not a state dict, or does not fit."""
    check_model(name)
    path = (weights_mod.efficientnet_lite0_weights(weights) if name == DEFAULT_MODEL
            else weights_mod.torchvision_weights(name, weights))
    _fit(_construct(name, on_meta=True), _load_state_dict(path, name), path, name)
    return path


def _fit(net, state: dict, path: Path, name: str) -> None:
    """Load `state` into `net` strictly; raise WeightsError with a one-line summary of
    what does not fit (counts and the first names, never torch's whole key list)."""
    expected = net.state_dict()
    # BatchNorm fills a missing num_batches_tracked itself (torchvision's older files)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and hasattr(state[k], "shape")
              and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = [f"{len(v)} {what} (e.g. {', '.join(v[:2])})" for what, v in
             (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if v]
    if parts:
        raise weights_mod.WeightsError(
            f"{path}: does not fit {name}: {'; '.join(parts)} of its "
            f"{len(expected)} tensors; give --weights the file of {name}")
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise weights_mod.WeightsError(f"{path}: does not fit {name} ({first})") from None
    leftover = [n for n, t in list(net.named_parameters()) + list(net.named_buffers())
                if t.is_meta]
    if leftover:
        raise weights_mod.WeightsError(f"{path}: no values for {', '.join(leftover[:3])}")


def check_model(name: str) -> None:
    """Raise ValueError unless `name` is one of MODELS."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


# ----------------------------------------------------------------------- the cuts
def _feature_module(name: str, net):
    """Return (features module, head) for a full classifier `net`, cut as the notebook
    does."""
    import torch
    from torch import nn

    class ResNetFeatures(nn.Module):
        # notebook: nn.Sequential(*list(model.children())[:-1]) -> global-pooled vector
        def __init__(self, net):
            super().__init__()
            self.body = nn.Sequential(*list(net.children())[:-1])

        def forward(self, x):
            return torch.flatten(self.body(x), 1)

    class DenseNetFeatures(nn.Module):
        # notebook: nn.Sequential(model.features, nn.AvgPool2d(7, stride=1)); no ReLU
        # before the pool, unlike torchvision's own forward.
        def __init__(self, net):
            super().__init__()
            self.features = net.features
            self.pool = nn.AvgPool2d(7, stride=1)

        def forward(self, x):
            return torch.flatten(self.pool(self.features(x)), 1)

    class ClassifierCutFeatures(nn.Module):
        # notebook's VGG_features: features, flatten, classifier without its last two
        # modules (VGG16 ends after ReLU, AlexNet after the second Linear).
        def __init__(self, net):
            super().__init__()
            self.features = net.features
            self.avgpool = net.avgpool  # identity at 224 x 224; older torchvision had none
            self.classifier = nn.Sequential(*list(net.classifier.children())[:-2])

        def forward(self, x):
            x = torch.flatten(self.avgpool(self.features(x)), 1)
            return self.classifier(x)

    class EfficientNetFeatures(nn.Module):
        # everything up to the final dropout + fc: head conv, BN, ReLU6, global average
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.flatten(nn.functional.adaptive_avg_pool2d(
                self.net.extract_features(x), 1), 1)

    if name.startswith("resnet"):
        return ResNetFeatures(net), net.fc
    if name.startswith("densenet"):
        return DenseNetFeatures(net), None
    if name in ("alexnet", "vgg16"):
        last_two = list(net.classifier.children())[-2:]
        head = nn.Sequential(*[m for m in last_two if not isinstance(m, nn.Dropout)])
        return ClassifierCutFeatures(net), head
    return EfficientNetFeatures(net), net._fc


# ----------------------------------------------------------------------- loading
def _load_state_dict(path: Path, name: str) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which
        first = " ".join(str(exc).split())[:160]   # torch's message runs to many lines
        raise weights_mod.WeightsError(f"{path}: not a PyTorch state dict for {name} "
                                       f"({type(exc).__name__}: {first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise weights_mod.WeightsError(f"{path}: not a state dict for {name}")
    if name.startswith("densenet"):
        state = _densenet_legacy_keys(state)
    return state


_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _densenet_legacy_keys(state: dict) -> dict:
    """Return the state dict with torchvision's published DenseNet key names
    ('norm.1.weight') renamed to the module names of current torchvision ('norm1.weight')."""
    out = {}
    for key, value in state.items():
        m = _DENSENET_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _construct(name: str, on_meta: bool):
    """Return the full classifier `name` with fresh (or, on_meta, unallocated) weights."""
    import torch

    if name == DEFAULT_MODEL:
        from efficientnet_lite_pytorch import EfficientNet

        if on_meta:
            with torch.device("meta"):
                return EfficientNet.from_name("efficientnet-lite0")
        return EfficientNet.from_name("efficientnet-lite0")
    import torchvision

    if on_meta:  # the random init of a big net costs seconds; loaded weights replace it
        with torch.device("meta"):
            return torchvision.models.get_model(name, weights=None)
    return torchvision.models.get_model(name, weights=None)


def build_backbone(name: str = DEFAULT_MODEL, weights: str | os.PathLike | None = None,
                   pretrained: bool = True, optimize: bool = True,
                   device: str = "cpu") -> Backbone:
    """Return the Backbone `name` in eval mode with its ImageNet weights (from the
    packaged file, the torch hub cache or `weights`), or with random weights when
    `pretrained` is False. `optimize` folds BatchNorm into the convolutions and switches
    to channels_last memory, which is what makes CPU inference fast; the features agree
    with the plain model to float rounding. Raise WeightsError when weights are missing."""
    check_model(name)
    sha = None
    if pretrained:
        if name == DEFAULT_MODEL:
            path = weights_mod.efficientnet_lite0_weights(weights)
        else:
            path = weights_mod.torchvision_weights(name, weights)
        state = _load_state_dict(path, name)
        net = _construct(name, on_meta=name != DEFAULT_MODEL)
        _fit(net, state, path, name)
        sha = file_sha256(path)
        wlabel = str(path)
    else:
        net = _construct(name, on_meta=False)
        wlabel = "random"
    net.eval()
    module, head = _feature_module(name, net)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    if head is not None:
        head.eval()
    if optimize:
        module = _optimize(name, module)
    dev = resolve_device(device)
    if dev != "cpu":
        module = module.to(dev)
        head = head.to(dev) if head is not None else None
    return Backbone(name=name, module=module, dim=DIMS[name], preprocessing=preprocessing(name),
                    weights=wlabel, weights_sha256=sha, head=head, channels_last=optimize,
                    config={"optimize": optimize}, device=dev)


# ----------------------------------------------------------------------- CPU speed
def _fold_bn_pairs(module, pairs) -> None:
    """Fold each (conv, bn) attribute pair of `module` (names) into the conv, in place."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for conv_name, bn_name in pairs:
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if conv is None or not isinstance(bn, nn.BatchNorm2d):
            continue
        setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(module, bn_name, nn.Identity())


def _optimize(name: str, module):
    """Return `module` with BatchNorm folded into the preceding convolutions where the
    graph allows it, in channels_last memory format."""
    import torch

    if name == DEFAULT_MODEL:
        net = module.net
        # EfficientNet's conv subclasses are not fx leaf modules; the pairs are known.
        _fold_bn_pairs(net, [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")])
        for block in net._blocks:
            _fold_bn_pairs(block, [("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                   ("_project_conv", "_bn2")])
    else:
        from torch.fx.experimental.optimization import fuse

        try:
            module = fuse(module, inplace=True)
        except Exception:  # tracing is an optimisation only: keep the plain module
            pass
    return module.to(memory_format=torch.channels_last)

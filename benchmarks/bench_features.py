"""Feature-extraction speed on this CPU, measured in one run.

For efficientnet_lite0 (packaged weights) and resnet50 (random weights: timing only):
  * naive: the authors' notebook loop: PIL open, transform, unsqueeze, forward, one by one
    (plain model, contiguous NCHW, torch's default threads);
  * pipeline: experiments.features.generic.iter_features with the defaults of
    `python -m experiments features` (batches of 8, uint8 -> float normalisation per
    batch, BatchNorm folded into the convolutions, channels_last, inference_mode; on
    <= 4 cores decoding stays in-process, see default_loader_workers), end to end over
    the same image files.
Also this machine's fp32 matmul GFLOP/s (torch, large square matrices), and each model's
GFLOPs per image counted with torch's FlopCounterMode (2 x multiply-adds).

Every figure is the best of a few interleaved repetitions, because other processes share
the two cores. Runs in about two minutes: `python benchmarks/bench_features.py`.

On a GPU machine, `--device cuda [--precision float16]` runs the pipeline (and the matmul
it is compared with) on the GPU; the notebook loops stay on the CPU as the reference.
No GPU was available when this option was written: it has not been measured yet."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(folder: Path, n: int) -> list[str]:
    """Write n different 200 x 245 JPEGs (TLL size) cut from scikit-image's photographs."""
    import numpy as np
    from PIL import Image
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(),
               np.stack([data.camera()] * 3, axis=-1)]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        src = Image.fromarray(sources[i % len(sources)])
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.4, 0.9)), int(h * rng.uniform(0.4, 0.9))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        p = folder / f"{i:05d}.jpg"
        src.crop((x, y, x + cw, y + ch)).resize((200, 245), Image.BILINEAR).save(p, quality=90)
        paths.append(str(p))
    return paths


def matmul_gflops(n: int = 2048, seconds: float = 1.0, reps: int = 3, device: str = "cpu",
                  dtype: str = "float32") -> float:
    """Return the best matmul GFLOP/s of torch on n x n matrices on `device` in `dtype`."""
    import torch

    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b
    sync()
    best = 0.0
    for _ in range(reps):
        t0, k = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            a @ b
            k += 1
        sync()
        best = max(best, 2 * n ** 3 * k / (time.perf_counter() - t0) / 1e9)
    return best


def gflops_per_image(module, channels_last: bool = False) -> float:
    """Return the GFLOPs of one 224 x 224 forward pass, counted by FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, 3, 224, 224)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module(x)
    return counter.get_total_flops() / 1e9


def time_naive(module, paths, prep, grad: bool) -> float:
    """Images per second of the notebook's one-image loop (autograd on when `grad`)."""
    from experiments.features.generic import naive_features

    naive_features(module, paths[:1], prep, grad=grad)  # warm-up: oneDNN primitives
    t0 = time.perf_counter()
    naive_features(module, paths, prep, grad=grad)
    return len(paths) / (time.perf_counter() - t0)


def time_pipeline(backbone, paths, batch_size: int, workers: int) -> float:
    """Images per second of experiments.features over the same files."""
    from experiments.features.generic import ImageItem, iter_features

    items = [ImageItem(p) for p in paths]
    for _ in iter_features(backbone, items[:batch_size], batch_size=batch_size, workers=0):
        pass  # warm-up at this batch shape
    t0 = time.perf_counter()
    n = sum(len(idx) for idx, _ in iter_features(backbone, items, batch_size=batch_size,
                                                 workers=workers))
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions (best kept)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu",
                    help="where the pipeline runs (auto: CUDA when present)")
    ap.add_argument("--precision", choices=["float32", "float16", "bfloat16"], default="float32")
    args = ap.parse_args(argv)

    import torch

    from experiments.features import backbones
    from experiments.features.extract import DEFAULT_BATCH_SIZE, default_loader_workers
    from experiments.features.generic import cpu_count, set_torch_threads

    threads = set_torch_threads()
    device = backbones.resolve_device(args.device)
    mm_n = 8192 if device == "cuda" else 2048
    workers = default_loader_workers() if args.workers is None else args.workers
    batch = args.batch_size or DEFAULT_BATCH_SIZE
    counts = {"efficientnet_lite0": 64, "resnet50": 24}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        paths = make_images(Path(tmp), max(counts.values()))
        mm = matmul_gflops(mm_n, device=device, dtype=args.precision)
        rows = []
        for name, n in counts.items():
            pretrained = name == "efficientnet_lite0"
            # the notebook's model: a fresh classifier (parameters require grad), cut
            plain = backbones.build_backbone(name, pretrained=pretrained, optimize=False)
            fast = backbones.build_backbone(name, pretrained=False, optimize=False)
            fast.module.load_state_dict(plain.module.state_dict())  # same weights in both
            fast.module = backbones._optimize(name, fast.module)
            fast.channels_last = True
            if device != "cpu":
                fast.module, fast.device = fast.module.to(device), device
            if args.precision != "float32":
                fast.module = fast.module.to(getattr(torch, args.precision))
                fast.dtype = args.precision
            for p in plain.module.parameters():
                p.requires_grad_(True)
            gfl = gflops_per_image(plain.module)
            best = {"grad": 0.0, "nograd": 0.0, "pipe": 0.0}
            for _ in range(args.reps):
                best["grad"] = max(best["grad"], time_naive(plain.module, paths[:n],
                                                            plain.preprocessing, grad=True))
                best["nograd"] = max(best["nograd"], time_naive(plain.module, paths[:n],
                                                                plain.preprocessing, grad=False))
                best["pipe"] = max(best["pipe"], time_pipeline(fast, paths[:n], batch, workers))
            mm = max(mm, matmul_gflops(mm_n, reps=1, device=device, dtype=args.precision))
            rows.append((name, n, best, gfl))
    total = time.perf_counter() - t_start

    print(f"\nfeature extraction on {cpu_count()} CPUs, torch {torch.__version__}, "
          f"{threads} threads, batch {batch}, {workers} DataLoader decoding worker(s), "
          f"best of {args.reps}")
    print(f"pipeline on {device} in {args.precision}; {args.precision} matmul on {device} "
          f"({mm_n} x {mm_n}): {mm:.1f} GFLOP/s\n")
    head = (f"{'model':<19}{'imgs':>5}{'notebook':>10}{'no_grad':>9}{'pipeline':>10}"
            f"{'ratio':>7}{'ratio*':>8}{'GFLOP/img':>11}{'GFLOP/s':>9}{'/matmul':>9}")
    print(head)
    print(f"{'':<19}{'':>5}{'img/s':>10}{'img/s':>9}{'img/s':>10}")
    print("-" * len(head))
    for name, n, b, gfl in rows:
        print(f"{name:<19}{n:>5}{b['grad']:>10.1f}{b['nograd']:>9.1f}{b['pipe']:>10.1f}"
              f"{b['pipe'] / b['grad']:>7.2f}{b['pipe'] / b['nograd']:>8.2f}{gfl:>11.2f}"
              f"{gfl * b['pipe']:>9.1f}{gfl * b['pipe'] / mm:>9.2f}")
    print("\nnotebook: one image at a time with autograd on, as the notebook's m(Variable(x));"
          "\nno_grad: the same loop under torch.no_grad(); ratio = pipeline / notebook, "
          "ratio* = pipeline / no_grad.\nGFLOP/img counted by FlopCounterMode (2 x multiply-adds); "
          "GFLOP/s = GFLOP/img x pipeline img/s.")
    print(f"targets: ratio >= 1.5; resnet50 GFLOP/s / matmul >= 0.5. Took {total:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Images per second of every generic backbone on one device, as a share of the same
device's measured float32 matrix-product rate: `make bench-gpu` (under 5 minutes on one
GPU; `--device cpu --tiny` runs the same code on the CPU in seconds).

For each backbone (random weights: timing only, nothing is downloaded) the forward pass
runs on synthetic batches already on the device, under the settings `features` uses
(TF32 off unless --allow-tf32, optional --autocast, the device's default batch size),
so the figure is the model's compute, not the JPEG decoding. FLOPs per image are counted
with torch's FlopCounterMode (2 x multiply-adds); `share` = images/s x FLOPs per image /
the device's float32 matmul FLOP/s: how much of the device's dense arithmetic the model
keeps busy."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("efficientnet_lite0", "alexnet", "vgg16", "resnet18", "resnet50", "resnet152",
          "densenet121", "densenet169", "densenet201")
TINY_MODELS = ("efficientnet_lite0", "resnet18")


def _sync(dev: str) -> None:
    import torch

    if dev == "cuda":
        torch.cuda.synchronize()


def matmul_rate(dev: str, n: int, seconds: float, dtype: str = "float32") -> float:
    """Return the FLOP/s of n x n matrix products of ``dtype`` on ``dev`` (best of the
    repetitions that fit in ``seconds``)."""
    import torch

    a = torch.randn(n, n, device=dev, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, device=dev, dtype=getattr(torch, dtype))
    a @ b
    _sync(dev)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() > t_end:
            break
    return 2.0 * n ** 3 / best


def model_rate(name: str, dev: str, batch: int, size: int, seconds: float,
               autocast: bool) -> dict:
    """Return images/s and GFLOPs per image of backbone ``name`` on ``dev``."""
    import contextlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from experiments.features import backbones

    bb = backbones.build_backbone(name, pretrained=False, device=dev)
    x = torch.randn(batch, 3, size, size, device=dev)
    if bb.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    amp = (torch.autocast(device_type=dev, dtype=torch.float16 if dev == "cuda" else torch.bfloat16)
           if autocast else contextlib.nullcontext())
    with torch.inference_mode(), amp:
        with FlopCounterMode(display=False) as fc:
            bb.module(x[:1])
        flops = fc.get_total_flops()
        bb.module(x)
        _sync(dev)
        n, t0 = 0, time.perf_counter()
        while True:
            bb.module(x)
            n += 1
            _sync(dev)
            if time.perf_counter() - t0 >= seconds:
                break
        dt = time.perf_counter() - t0
    del bb, x
    if dev == "cuda":
        torch.cuda.empty_cache()
    return {"model": name, "images_per_s": n * batch / dt, "gflops_per_image": flops / 1e9}


def main(argv=None) -> list[dict]:
    """Run the benchmark, print one line per backbone and return the rows."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--tiny", action="store_true",
                    help="two backbones, 64-px inputs, batch 2, a fraction of a second each")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--seconds", type=float, default=None, help="timing per backbone")
    ap.add_argument("--allow-tf32", action="store_true")
    ap.add_argument("--autocast", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)

    from experiments.features import compute
    from experiments.features.generic import set_torch_threads

    dev = compute.device_for(args.device)
    set_torch_threads()
    math = compute.set_math_mode(args.allow_tf32)
    models = args.models or (TINY_MODELS if args.tiny else MODELS)
    seconds = args.seconds if args.seconds is not None else (0.2 if args.tiny else 8.0)
    batch = 2 if args.tiny else compute.default_batch_size(dev)
    size = 64 if args.tiny else 224
    n = 256 if args.tiny else (8192 if dev == "cuda" else 2048)
    rate = matmul_rate(dev, n, max(seconds, 0.2))
    print(f"device {dev} ({compute.device_name(dev)}), TF32 "
          f"{'on' if math['tf32_matmul'] else 'off'}, autocast {'on' if args.autocast else 'off'}, "
          f"batch {batch}, {size} px; float32 matmul {n}x{n}: {rate / 1e9:.1f} GFLOP/s")
    rows = []
    for name in models:
        r = model_rate(name, dev, batch, size, seconds, args.autocast)
        r["share_of_matmul"] = r["images_per_s"] * r["gflops_per_image"] * 1e9 / rate
        r.update(device=dev, batch=batch, size=size, matmul_gflops=rate / 1e9)
        rows.append(r)
        print(f"{name:<20} {r['images_per_s']:10.1f} images/s  {r['gflops_per_image']:7.2f} "
              f"GFLOP/image  share of matmul rate {100 * r['share_of_matmul']:6.1f} %", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

"""Benchmark of retrieval (experiments/retrieval.py), reported as ratios measured in one run.

1. Time of recall@k (true-match ranks by cosine in row chunks, then recall at
   1..100) for N pairs, against the time of one N x N x d matmul (the floor of any exact
   method). Target: ratio <= 3 at N = 6016 (TLL), d = 1024 (DenseNet121).
2. Peak memory of the same computation at N = 50,000, d = 512, measured as the peak RSS
   of a fresh subprocess (resource.getrusage), against the 10 GB a dense float32 N x N
   matrix would take. Target: under 2 GB.
3. A full `evaluate` of one generic feature set at N = 100,000, d = 1,024 (features
   memory-mapped from .npy files as the store serves them; ranks, Table 1, exact Table
   2a, the votes correlation and the Euclidean ranks of Fig. 2a), in a fresh subprocess,
   against one N x N x d matrix product measured in the same run (row block by row
   block: the N x N result would take 40 GB). Targets: time <= 4 x the product, peak
   RSS under 3 GB. `--full-n 0` skips it (it takes minutes on a few cores).

Usage: python benchmarks/bench_retrieval.py [--n 6016 --d 1024 --big-n 50000 --big-d 512
                                             --full-n 100000 --full-d 1024]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import retrieval  # noqa: E402

KS = (1, 5, 10, 20, 50, 100)


def data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random left/right features where right = left + noise (float32)."""
    rng = np.random.default_rng(seed)
    left = rng.standard_normal((n, d), dtype=np.float32)
    right = left + 2.0 * rng.standard_normal((n, d), dtype=np.float32)
    return left, right


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speed(n: int, d: int, chunk: int) -> dict:
    left, right = data(n, d)
    t_matmul = best_of(lambda: left @ right.T)

    def recall():
        ranks = retrieval.feature_ranks(left, right, "cosine", "mean", chunk=chunk)
        return retrieval.recall_at_k(ranks, KS)
    t_recall = best_of(recall)
    return {"n": n, "d": d, "chunk": chunk, "matmul_s": t_matmul, "recall_s": t_recall,
            "ratio": t_recall / t_matmul, "recall": recall()}


def _child(n: int, d: int, chunk: int) -> None:
    import resource
    left, right = data(n, d)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    ranks = retrieval.feature_ranks(left, right, "cosine", "mean", chunk=chunk)
    rec = retrieval.recall_at_k(ranks, KS)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"n": n, "d": d, "chunk": chunk, "peak_rss_mb": peak / 1024,
                      "data_rss_mb": base / 1024, "seconds": elapsed, "recall@1": rec[1]}))


def _full_child(folder: str) -> None:
    """Evaluate one generic feature set memory-mapped from `folder` (a child process, so
    its peak RSS is the evaluation's)."""
    import resource
    from types import SimpleNamespace

    from experiments.evaluate import evaluate_feature_sets

    left = np.load(Path(folder) / "left.npy", mmap_mode="r")
    right = np.load(Path(folder) / "right.npy", mmap_mode="r")
    n = len(left)
    ids = [f"{i:06d}" for i in range(n)]
    fs = SimpleNamespace(key="generic/bench", kind="generic", ids=ids, left=left, right=right)
    rng = np.random.default_rng(1)
    votes = {pid: {"up": int(u), "down": int(v)}
             for pid, u, v in zip(ids, rng.integers(0, 100, n), rng.integers(0, 20, n))}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    ev = evaluate_feature_sets({"generic/bench": fs}, ids, votes, device="cpu")
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"n": n, "seconds": elapsed, "peak_rss_mb": peak / 1024,
                      "start_rss_mb": base / 1024, "R@1": float(ev.table1["R@1"][0]),
                      "m=2": float(ev.table2a["m=2"][0])}))


def full_evaluate(n: int, d: int, chunk: int) -> dict:
    """Time one N x N x d product here, then a full evaluate in a child process."""
    import tempfile

    left, right = data(n, d)

    def product(lhs: np.ndarray, rhs: np.ndarray) -> None:
        out = np.empty((chunk, n), dtype=np.float32)
        rt = np.ascontiguousarray(rhs.T)
        for start in range(0, n, chunk):
            a = lhs[start:start + chunk]
            np.matmul(a, rt, out=out[:len(a)])
    t = time.perf_counter()
    product(left, right)
    t_product = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        np.save(Path(tmp) / "left.npy", left)
        np.save(Path(tmp) / "right.npy", right)
        del left, right
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, __file__, "--full-child", tmp],
                             capture_output=True, text=True, env=env, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(d=d, product_s=t_product, ratio=res["seconds"] / t_product)
    return res


def memory(n: int, d: int, chunk: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, __file__, "--child", str(n), str(d), str(chunk)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6016)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--big-n", type=int, default=50_000)
    ap.add_argument("--big-d", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--full-n", type=int, default=100_000)
    ap.add_argument("--full-d", type=int, default=1024)
    ap.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--full-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.full_child:
        _full_child(args.full_child)
        return
    s = speed(args.n, args.d, args.chunk)
    m = memory(args.big_n, args.big_d, args.chunk)
    dense_gb = args.big_n ** 2 * 4 / 1e9
    print(f"retrieval benchmark ({os.cpu_count()} CPUs, numpy {np.__version__})")
    print(f"{'measure':<48} {'value':>12} {'target':>10}")
    print(f"{'N x N x d matmul, N=%d d=%d (s)' % (s['n'], s['d']):<48} {s['matmul_s']:>12.3f}")
    print(f"{'recall@k incl. ranks, same N, d (s)':<48} {s['recall_s']:>12.3f}")
    print(f"{'ratio recall@k / matmul':<48} {s['ratio']:>12.2f} {'<= 3':>10}")
    print(f"{'peak RSS, N=%d d=%d chunk=%d (MB)' % (m['n'], m['d'], m['chunk']):<48} "
          f"{m['peak_rss_mb']:>12.0f} {'< 2048':>10}")
    print(f"{'  of which input features + interpreter (MB)':<48} {m['data_rss_mb']:>12.0f}")
    print(f"{'  time at that size (s)':<48} {m['seconds']:>12.1f}")
    print(f"{'dense float32 N x N matrix would take (GB)':<48} {dense_gb:>12.1f}")
    ok = s["ratio"] <= 3 and m["peak_rss_mb"] < 2048
    if args.full_n:
        f = full_evaluate(args.full_n, args.full_d, args.chunk)
        print(f"{'N x N x d product, N=%d d=%d (s)' % (f['n'], f['d']):<48} {f['product_s']:>12.1f}")
        print(f"{'full evaluate of one generic set, same N, d (s)':<48} {f['seconds']:>12.1f}")
        print(f"{'ratio evaluate / product':<48} {f['ratio']:>12.2f} {'<= 4':>10}")
        print(f"{'peak RSS of that evaluate (MB)':<48} {f['peak_rss_mb']:>12.0f} {'< 3072':>10}")
        ok = ok and f["ratio"] <= 4 and f["peak_rss_mb"] < 3072
    print("targets met" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()

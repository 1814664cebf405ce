"""Scale of `evaluate` with every feature set of the paper's design, measured on this machine.

Synthetic features (seeded), memory-mapped from .npy files as the store serves them, with
the dimensions of the project's feature sets: ``generic/efficientnet_lite0`` (the default
backbone, d = 1280), ``face/dlib_hog`` (dlib's descriptors, d = 128) and
``face_generic/efficientnet_lite0_dlib_hog`` (the backbone on each face crop, d = 1280).
Faces per image are drawn 0, 1, 2 or 3 with probabilities FACE_COUNT_P.

Default mode: each feature set's whole evaluation (ranks, Table 1, exact Table 2a, the
votes correlation, for generic also Fig. 2a's Euclidean ranks) runs in a child process of
its own (`evaluate` holds one set at a time), timed in wall-clock and CPU seconds and with
its peak RSS (the child's own VmHWM). The floor is one N x N x d float32
product (numpy matmul in blocks of 1024 rows, d of the default backbone) timed in a child
in the same run; the figures are ratios to it. ``--product-rows R`` times R of its N rows
and scales by N / R (the blocks are all alike, so the time is linear in rows).

``--shards K``: the row-sharded evaluation of `evaluate --slurm --tasks K`: the K tasks
(`evaluate --shard I/K`) one after another, each in a child (peak RSS and CPU time per
task), then the finalize step (`--from-shards K`) in a child, and the projection of the
same job to ``--project`` pairs (default 1,000,000) with its arithmetic: per-task memory
is a fixed part (the interpreter and libraries, measured) plus a part taken to grow
linearly with N (every task holds the whole right side; the row blocks, which do not
grow, make this an upper bound), CPU grows with N² (every query against every right
image).
``--run-tasks M`` runs only the first M tasks (all tasks hold equal row counts give or
take a block) and scales their CPU time by K / M; the merge then is not run.

Writes a CSV (``--csv``) and prints a table. Usage:
  python benchmarks/bench_evaluate_scale.py [--pairs 100000] [--product-rows R]
  python benchmarks/bench_evaluate_scale.py --pairs 200000 --shards 8 [--run-tasks M]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.features.backbones import DIMS  # noqa: E402
from experiments.features.faces import DESCRIPTOR_DIM  # noqa: E402
from experiments.store import feature_key  # noqa: E402

MODEL, DETECTOR = "efficientnet_lite0", "hog"
SETS = {feature_key("generic", model=MODEL): ("generic", DIMS[MODEL]),
        feature_key("face", detector=DETECTOR): ("face", DESCRIPTOR_DIM),
        feature_key("face_generic", model=MODEL, detector=DETECTOR): ("face_generic", DIMS[MODEL])}
FACE_COUNT_P = (0.35, 0.5, 0.12, 0.03)
PRODUCT_BLOCK = 1024


# --------------------------------------------------------------------------- data
def _dir(folder: Path, key: str) -> Path:
    return folder / key.replace("/", "-")


def write_data(folder: Path, n: int, seed: int = 0) -> dict:
    """Write the synthetic feature sets of n pairs under ``folder``; return faces per side."""
    rng = np.random.default_rng(seed)
    faces = {}
    for key, (kind, d) in SETS.items():
        out = _dir(folder, key)
        out.mkdir(parents=True)
        if kind == "generic":
            left = rng.standard_normal((n, d), dtype=np.float32)
            np.save(out / "left.npy", left)
            left += 2.0 * rng.standard_normal((n, d), dtype=np.float32)
            np.save(out / "right.npy", left)
            del left
            continue
        if not faces:  # face and face_generic describe the same faces
            for side in ("left", "right"):
                counts = rng.choice(len(FACE_COUNT_P), size=n, p=FACE_COUNT_P)
                faces[side] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        lo, ro = faces["left"], faces["right"]
        lv = rng.standard_normal((int(lo[-1]), d), dtype=np.float32)
        rv = rng.standard_normal((int(ro[-1]), d), dtype=np.float32)
        both = np.flatnonzero((np.diff(lo) > 0) & (np.diff(ro) > 0))
        # a pair's first faces resemble each other: the true match is findable
        rv[ro[both]] = lv[lo[both]] + 0.5 * rng.standard_normal((len(both), d), dtype=np.float32)
        for side, v, o in (("left", lv, lo), ("right", rv, ro)):
            np.save(out / f"{side}_vectors.npy", v)
            np.save(out / f"{side}_offsets.npy", o)
        del lv, rv
    return {"left_faces": int(faces["left"][-1]), "right_faces": int(faces["right"][-1])}


def _load_set(folder: Path, key: str):
    """Return feature set ``key`` memory-mapped from ``folder`` (ids filled in later)."""
    from experiments.store import FaceSets, FeatureSet

    kind, _ = SETS[key]
    src = _dir(folder, key)

    def arr(name):
        return np.load(src / name, mmap_mode="r")
    if kind == "generic":
        left, right = arr("left.npy"), arr("right.npy")
    else:
        left, right = (FaceSets(arr(f"{s}_vectors.npy"), arr(f"{s}_offsets.npy"),
                                np.zeros((0, 4), np.int32)) for s in ("left", "right"))
    return FeatureSet(key=key, kind=kind, name=key.split("/", 1)[1],
                      meta={"created": "bench"}, ids=[], left=left, right=right)


class LazySets(Mapping):
    """Feature sets mapped when asked for and not kept, as `evaluate` reads the store
    (experiments.evaluate.LazyFeatureSets): a task's RSS holds one set's pages at a time."""

    def __init__(self, folder: Path, keys, ids: list[str]):
        self.folder, self.keys_, self.ids = folder, list(keys), ids

    def __getitem__(self, key: str):
        fs = _load_set(self.folder, key)
        fs.ids = self.ids
        return fs

    def __iter__(self):
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)


def load_sets(folder: Path, keys) -> tuple[LazySets, list[str], dict]:
    """Return (key -> FeatureSet memory-mapped from ``folder`` when read, pair ids, votes)."""
    n = len(np.load(_dir(folder, next(iter(SETS))) / "left.npy", mmap_mode="r"))
    ids = [f"{i:07d}" for i in range(n)]
    rng = np.random.default_rng(1)
    votes = {pid: {"up": int(u), "down": int(v)}
             for pid, u, v in zip(ids, rng.integers(0, 100, n), rng.integers(0, 20, n))}
    return LazySets(folder, keys, ids), ids, votes


# --------------------------------------------------------------------------- children
def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _usage() -> tuple[float, float, float]:
    """Return (CPU seconds of this process, all threads; its RSS now; its peak RSS), in
    MB. The peak is VmHWM, this process's own: getrusage's ru_maxrss survives exec and
    can report the parent's size at fork."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, _status_mb("VmRSS"), _status_mb("VmHWM")


def child(argv: list[str]) -> None:
    """One measured step in this process; print its figures as one JSON line."""
    mode, folder = argv[0], Path(argv[1])
    from experiments import evaluate as E

    cpu0, base, _ = _usage()
    t = time.perf_counter()
    out: dict = {}
    if mode == "product":
        n, d, rows = (int(x) for x in argv[2:5])
        rng = np.random.default_rng(2)
        b = rng.standard_normal((n, d), dtype=np.float32)
        a = b[:rows].copy()
        cpu0, base, _ = _usage()
        t = time.perf_counter()
        res = np.empty((PRODUCT_BLOCK, n), dtype=np.float32)
        bt = b.T
        for s in range(0, rows, PRODUCT_BLOCK):
            blk = a[s:s + PRODUCT_BLOCK]
            np.matmul(blk, bt, out=res[:len(blk)])
    elif mode == "data":
        print(json.dumps(write_data(folder, int(argv[2]))))
        return
    elif mode == "set":
        sets, ids, votes = load_sets(folder, [argv[2]])
        ev = E.evaluate_feature_sets(sets, ids, votes, device="cpu")
        out = {"R@1": float(ev.table1["R@1"][0]), "queries": int(ev.table1["queries"][0])}
    elif mode == "shard":
        i, k = int(argv[2]), int(argv[3])
        sets, ids, _ = load_sets(folder, list(SETS))
        path = E.evaluate_shard(sets, ids, (i, k), folder / "shards")
        out = {"shard_mb": path.stat().st_size / 2**20}
    elif mode == "merge":
        k = int(argv[2])
        sets, ids, votes = load_sets(folder, list(SETS))
        stats = E.merge_shards(sets, ids, k, folder / "shards")
        ev = E.evaluate_feature_sets(sets, ids, votes, stats=stats)
        out = {"R@1": [float(x) for x in ev.table1["R@1"]]}
    wall = time.perf_counter() - t
    cpu, _, peak = _usage()
    print(json.dumps(dict(out, wall_s=wall, cpu_s=cpu - cpu0, peak_rss_mb=peak,
                          start_rss_mb=base)))


def run_child(*args) -> dict:
    """Run one step in a fresh interpreter; return its JSON figures."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, __file__, "--child", *map(str, args)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"step {args[:1]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- modes
def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def measure_product(folder: Path, n: int, rows: int) -> dict:
    """Time one N x N x d product (d of the default backbone), scaled from ``rows``."""
    p = run_child("product", folder, n, DIMS[MODEL], rows)
    scale = n / rows
    return {"step": f"product N x N x {DIMS[MODEL]}", "rows_timed": rows,
            "wall_s": p["wall_s"] * scale, "cpu_s": p["cpu_s"] * scale,
            "peak_rss_mb": p["peak_rss_mb"]}


def whole(args, folder: Path, info: dict, save) -> list[dict]:
    """Each feature set's evaluation in a child, against one product: the table rows
    (``save``d after each step, so a run cut short keeps what it measured)."""
    prod = measure_product(folder, args.pairs, args.product_rows or args.pairs)
    save([dict(prod, N=args.pairs, d=DIMS[MODEL])])
    print(f"{prod['step']} ({prod['rows_timed']} of {args.pairs} rows timed): "
          f"{prod['wall_s']:.1f} s wall, {prod['cpu_s']:.1f} s CPU", flush=True)
    rows = []
    for key in SETS:
        r = run_child("set", folder, key)
        rows.append({"step": f"evaluate {key}", "N": args.pairs, "d": SETS[key][1],
                     "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                     "wall_ratio": r["wall_s"] / prod["wall_s"],
                     "cpu_ratio": r["cpu_s"] / prod["cpu_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "start_rss_mb": r["start_rss_mb"], "R@1": r["R@1"]})
        print(f"  {key}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak "
              f"{r['peak_rss_mb']:.0f} MB", flush=True)
        save([dict(prod, N=args.pairs, d=DIMS[MODEL])] + rows)
    total = {"step": "evaluate (all three sets)", "N": args.pairs,
             "wall_s": sum(r["wall_s"] for r in rows), "cpu_s": sum(r["cpu_s"] for r in rows),
             "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}
    total.update(wall_ratio=total["wall_s"] / prod["wall_s"],
                 cpu_ratio=total["cpu_s"] / prod["cpu_s"])
    rows = [dict(prod, N=args.pairs, d=DIMS[MODEL])] + rows + [total]
    print(f"\nevaluate at N = {args.pairs:,} pairs ({os.cpu_count()} CPUs, numpy "
          f"{np.__version__}; faces: {info['left_faces']:,} left, {info['right_faces']:,} "
          "right)")
    print(f"{'step':<52} {'wall s':>9} {'CPU s':>9} {'x product':>16} {'peak RSS MB':>12}")
    for r in rows:
        ratio = (f"{r['wall_ratio']:.2f} / {r['cpu_ratio']:.2f}" if "wall_ratio" in r else "1")
        print(f"{r['step']:<52} {r['wall_s']:>9.1f} {r['cpu_s']:>9.1f} {ratio:>16} "
              f"{r['peak_rss_mb']:>12.0f}")
    print("(x product: wall / CPU time as a multiple of the product's; the whole evaluation's "
          "peak is the largest set's, as evaluate holds one set at a time)")
    return rows


def sharded(args, folder: Path, save) -> list[dict]:
    """The K tasks of a sharded evaluate in sequence, the merge, the projection (the rows
    ``save``d after each step)."""
    k, m = args.shards, args.run_tasks or args.shards
    rows = []
    for i in range(1, m + 1):
        r = run_child("shard", folder, i, k)
        rows.append({"step": f"task {i}/{k}", "N": args.pairs, "wall_s": r["wall_s"],
                     "cpu_s": r["cpu_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "start_rss_mb": r["start_rss_mb"], "shard_mb": r["shard_mb"]})
        print(f"  task {i}/{k}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak "
              f"{r['peak_rss_mb']:.0f} MB (start {r['start_rss_mb']:.0f} MB)", flush=True)
        save(rows)
    if m == k:
        r = run_child("merge", folder, k)
        rows.append({"step": "finalize (merge)", "N": args.pairs, "wall_s": r["wall_s"],
                     "cpu_s": r["cpu_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "start_rss_mb": r["start_rss_mb"]})
        print(f"  finalize: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak "
              f"{r['peak_rss_mb']:.0f} MB", flush=True)
    tasks = [r for r in rows if r["step"].startswith("task")]
    cpu_tasks = sum(r["cpu_s"] for r in tasks) * k / m
    peak = max(r["peak_rss_mb"] for r in tasks)
    fixed = max(r["start_rss_mb"] for r in tasks)
    n1, n = args.project, args.pairs
    f = n1 / n
    k1 = int(np.ceil(k * f))                       # the same query rows per task
    mem1 = fixed + (peak - fixed) * f
    cpu1 = cpu_tasks * f * f
    print(f"\nsharded evaluate at N = {n:,}, {k} tasks ({m} run here, in sequence), all three sets")
    print(f"  CPU, all tasks: {cpu_tasks:,.0f} s" + (f" ({m} tasks measured x {k}/{m})" if m < k else ""))
    print(f"  peak RSS per task: {peak:,.0f} MB, of which {fixed:,.0f} MB before computing "
          "(interpreter and libraries)")
    print(f"projection to N = {n1:,} (f = {n1:,} / {n:,} = {f:g}):")
    print(f"  tasks: {k} x f = {k1} (the same {n // k:,} query rows per task)")
    print(f"  memory per task: {fixed:,.0f} + ({peak:,.0f} - {fixed:,.0f}) x f = {mem1:,.0f} MB "
          "(every task holds the whole right side: it grows with N, not with the tasks;\n"
          "   linear from one run, an upper bound: the row blocks in it do not grow with N)")
    print(f"  CPU, all tasks: {cpu_tasks:,.0f} s x f^2 = {cpu1:,.0f} s = {cpu1 / 3600:,.1f} CPU hours "
          f"({cpu1 / k1 / 3600:,.2f} per task)")
    rows.append({"step": f"projection N={n1}", "N": n1, "tasks": k1, "peak_rss_mb": mem1,
                 "cpu_s": cpu1, "cpu_hours": cpu1 / 3600})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark with command-line ``argv``; return the CSV's rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--product-rows", type=int, default=None,
                    help="rows of the product timed (default: all N)")
    ap.add_argument("--shards", type=int, default=None, help="sharded mode: K tasks")
    ap.add_argument("--run-tasks", type=int, default=None,
                    help="sharded mode: run only the first M tasks")
    ap.add_argument("--project", type=int, default=1_000_000)
    ap.add_argument("--csv", type=Path, default=None,
                    help="default build/bench/evaluate_scale[_shards].csv")
    ap.add_argument("--tmp", default=None, help="folder for the synthetic features")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
        return []
    if args.pairs < 2 or (args.shards is not None and args.shards < 1):
        ap.error("--pairs must be at least 2 and --shards at least 1")
    name = "evaluate_scale_shards.csv" if args.shards else "evaluate_scale.csv"
    out = args.csv or ROOT / "build" / "bench" / name

    def save(rows: list[dict]) -> None:
        _write_csv(out, rows)
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-", dir=args.tmp) as tmp:
        t = time.perf_counter()
        info = run_child("data", tmp, args.pairs)  # the parent stays small
        print(f"synthetic features of {args.pairs:,} pairs written in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        rows = (sharded(args, Path(tmp), save) if args.shards
                else whole(args, Path(tmp), info, save))
    save(rows)
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()

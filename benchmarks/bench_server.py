"""Answer-recording throughput of the experiment server.

gunicorn (2 workers) on loopback serves a small synthetic experiment from SQLite (or
`--database-url`); simulated participants (server/simclient.py, plain HTTP) answer every
trial, 10, 50 and 100 at a time. The same participants then answer a trivial Flask app
with the same endpoints, served the same way in the same run. Reported: answers per
second, p50/p99 answer latency, and the ratio of answers/s to the trivial app's
(target >= 0.5; p99 < 100 ms at 50 participants).

    .venv/bin/python benchmarks/bench_server.py [--levels 10 50 100] [--trials 30]
        [--threads 4] [--think-ms 0] [--database-url URL] [--out build/bench]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- trivial app
def trivial_app():
    """A Flask app with the participant API's endpoints doing no work (the baseline)."""
    import secrets

    from flask import Flask, jsonify, request

    app = Flask("trivial")
    trial = {"n": 1, "total": 1, "answered": 0, "query": "/i/q",
             "candidates": [f"/i/c{i}" for i in range(5)], "next": None}

    @app.post("/api/v1/experiments/<name>/participants")
    def start(name):
        request.get_json()
        return jsonify(participant=secrets.token_urlsafe(24), code="x", total=1, answered=0), 201

    @app.get("/api/v1/participants/<token>/next")
    def next_(token):
        return jsonify(done=False, trial=trial)

    @app.post("/api/v1/participants/<token>/answers")
    def answer(token):
        body = request.get_json()
        return jsonify(stored=True, duplicate=False, n=body["n"], choice=body["choice"]), 201

    return app


# --------------------------------------------------------------------------- set-up
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_study(folder: Path, trials: int) -> Path:
    """Write a synthetic study (PNG pairs) and its experiment file; return the file."""
    from PIL import Image, ImageDraw

    n_pairs = max(8, trials)
    images = []
    for side in ("left", "right"):
        (folder / "images" / side).mkdir(parents=True, exist_ok=True)
        for k in range(n_pairs):
            pid = f"{k:05d}"
            im = Image.new("RGB", (200, 245), (37 * k % 256, 80 if side == "left" else 170, 11 * k % 256))
            ImageDraw.Draw(im).ellipse([10 + k % 40, 20, 150, 150 + k % 60], fill=(250, 200, 30))
            p = folder / "images" / side / f"{pid}.png"
            im.save(p)
            images.append({"id": ("L" if side == "left" else "R") + pid, "path": str(p.relative_to(folder)),
                           "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "pair": pid, "side": side})
    tr = []
    for t in range(trials):
        true = t % 5
        others = [f"R{(t + j) % n_pairs:05d}" for j in range(1, 5)]
        cands = others[:true] + [f"R{t:05d}"] + others[true:]
        tr.append({"id": f"t{t + 1:04d}", "condition": ["random", "generic"][t % 2], "subset": "TLL_d",
                   "pair": f"{t:05d}", "query": f"L{t:05d}", "candidates": cands, "true_index": true,
                   "catch": False, "machine_choices": {}})
    doc = {"format": "tll-experiment", "schema_version": 1, "seed": 0, "image_root": "..",
           "manifest_sha256": "", "design": {"name": "bench"}, "feature_sets": [], "images": images,
           "trials": tr, "hits": [{"id": f"h{i + 1:04d}", "trials": [x["id"]]} for i, x in enumerate(tr)]}
    out = folder / "experiments" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    return out


def flask(env, *args):
    subprocess.run([sys.executable, "-m", "flask", "--app", "server", *args], cwd=ROOT, env=env,
                   check=True, capture_output=True, text=True)


def gunicorn(env, target: str, port: int, threads: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", str(threads),
                             "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                             "--backlog", "512", target],
                            cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn {target} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/participants/x/next", timeout=5)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.2)
    # Warm both workers (first requests import and connect).
    for _ in range(20):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/participants/x/next", timeout=10)
        except urllib.error.HTTPError:
            pass
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0..100) of `values`, nearest rank."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]


def run_level(base: str, experiment: str, participants: int, trials: int, key, seed: int,
              think_ms: float = 0.0) -> dict:
    """Run `participants` simulated participants at once, each answering `trials` trials."""
    from server.simclient import simulate

    t0 = time.perf_counter()
    res = simulate(base, experiment, participants=participants, key=key, accuracy=0.8,
                   seed=seed, concurrency=participants, code_prefix=f"bench{participants}",
                   think_ms=think_ms)
    wall = time.perf_counter() - t0
    lat = res["latencies_ms"]
    return {"answers": res["answers"], "seconds": wall, "answers_per_s": res["answers"] / wall,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--trials", type=int, default=30, help="trials per participant")
    ap.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    ap.add_argument("--repeat", type=int, default=2, help="runs per level and app (best kept)")
    ap.add_argument("--think-ms", type=float, default=0.0,
                    help="mean time a participant looks at a trial before answering "
                         "(0: answer back to back, a saturation test)")
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench"))
    a = ap.parse_args(argv)
    if max(a.levels) > 500 or a.trials > 200 or not 1 <= a.repeat <= 5:
        ap.error("levels are bounded to 500 participants and 200 trials")

    from tqdm import tqdm

    from server.simclient import fetch_answer_key

    tmp = Path(tempfile.mkdtemp(prefix="tll-bench-"))
    exp_file = write_study(tmp / "study", a.trials)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TLL_INSTANCE=str(tmp / "instance"),
               DATABASE_URL=a.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}")
    flask(env, "db", "upgrade")
    flask(env, "load-experiment", str(exp_file), "--name", "bench")
    flask(env, "admin", "set-password", "--password", "bench-password")

    rows = []
    targets = [("server", "server:create_app()"), ("trivial", "benchmarks.bench_server:trivial_app()")]
    results: dict[tuple[str, int], dict] = {}
    procs, bases = {}, {}
    try:
        for name, target in targets:
            port = free_port()
            bases[name] = f"http://127.0.0.1:{port}"
            procs[name] = gunicorn(env, target, port, a.threads)
        key = fetch_answer_key(bases["server"], "bench", "bench-password")
        # The two apps take turns level by level, best of --repeat: this machine's load
        # drifts, and alternating keeps both measured under the same conditions.
        with tqdm(total=len(a.levels) * a.repeat * 2, desc="bench", unit="run") as bar:
            for level in a.levels:
                for rep in range(a.repeat):
                    for name, _ in targets:
                        if name == "server":
                            r = run_level(bases[name], "bench", level, a.trials, key,
                                          seed=level * 10 + rep, think_ms=a.think_ms)
                        else:
                            r = run_trivial(bases[name], level, a.trials, a.think_ms)
                        best = results.get((name, level))
                        if best is None or r["answers_per_s"] > best["answers_per_s"]:
                            results[(name, level)] = r
                        bar.update(1)
    finally:
        for proc in procs.values():
            stop(proc)
    for level in a.levels:
        s, t = results[("server", level)], results[("trivial", level)]
        rows.append({"participants": level, "answers": s["answers"],
                     "answers_per_s": round(s["answers_per_s"], 1), "p50_ms": round(s["p50_ms"], 1),
                     "p99_ms": round(s["p99_ms"], 1),
                     "trivial_answers_per_s": round(t["answers_per_s"], 1),
                     "trivial_p99_ms": round(t["p99_ms"], 1),
                     "ratio": round(s["answers_per_s"] / t["answers_per_s"], 2)})
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "bench_server.csv" if not a.think_ms else f"bench_server_think{a.think_ms:g}.csv"
    with open(out / name, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    db_kind = "PostgreSQL" if (a.database_url or "").startswith("postgres") else "SQLite (WAL)"
    print(f"\nserver: gunicorn 2 workers x {a.threads} threads, {db_kind}, {a.trials} trials per "
          f"participant, think time {a.think_ms:g} ms, best of {a.repeat}; baseline: trivial Flask app, same "
          f"gunicorn, same run")
    print("| participants | answers | answers/s | p50 ms | p99 ms | trivial answers/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['participants']} | {r['answers']} | {r['answers_per_s']} | {r['p50_ms']} | "
              f"{r['p99_ms']} | {r['trivial_answers_per_s']} | {r['ratio']} |")
    print(f"\nwritten: {out / name}")
    return 0


def run_trivial(base: str, participants: int, trials: int, think_ms: float = 0.0) -> dict:
    """The same simulated participants against the trivial app (bounded by `trials`)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from server.simclient import run_participant

    lat: list[float] = []
    lock = threading.Lock()

    def one(i):
        local: list[float] = []
        r = run_participant(base, "bench", key=None, accuracy=0.0, seed=i, max_trials=trials,
                            latencies=local, think_ms=think_ms)
        with lock:
            lat.extend(local)
        return r["answers"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=participants) as pool:
        answers = sum(pool.map(one, range(participants)))
    wall = time.perf_counter() - t0
    return {"answers": answers, "seconds": wall, "answers_per_s": answers / wall,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99)}


if __name__ == "__main__":
    sys.exit(main())

"""Profile the server's gunicorn workers under answer load with py-spy (sampling, no
change to the server), and print where the CPU goes: the functions with the most samples
on the stack (inclusive) and at the top of it (self).

    .venv/bin/python benchmarks/profile_server.py [--path api] [--participants 50]
        [--seconds 20] [--database sqlite|postgresql] [--out build/bench/profile]

Needs py-spy (in requirements-dev.txt).
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_server as bs  # noqa: E402
from benchmarks.loadgen import run_load  # noqa: E402


def summarise(raw: Path, top: int = 25) -> tuple[list, list, int]:
    """Return (inclusive, self, total samples) from py-spy's collapsed-stack output."""
    incl: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        n = int(n)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        for f in set(frames):
            incl[f] += n
        own[frames[-1]] += n
    return incl.most_common(top), own.most_common(top), total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--path", choices=["api", "lab", "mturk"], default="api")
    ap.add_argument("--participants", type=int, default=50)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=4, help="rounds of fresh participants")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "profile"))
    a = ap.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("py-spy not found: pip install py-spy")
    tmp = Path(tempfile.mkdtemp(prefix="tll-profile-"))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{a.path}-{a.database}.txt"
    procs, pg = [], None
    try:
        exp = bs.write_study(tmp / "study", a.trials)
        env = dict(os.environ, PYTHONPATH=str(ROOT), TLL_INSTANCE=str(tmp / "inst"),
                   TLL_SQLITE_SYNCHRONOUS="FULL", DATABASE_URL=f"sqlite:///{tmp / 'p.sqlite3'}")
        if a.database == "postgresql":
            pg = bs.PostgresCluster()
            env["DATABASE_URL"] = pg.url
        bs.prepare_database(env, exp)
        port = bs.free_port()
        server = bs.gunicorn(env, "server:create_app()", port, 4)
        procs.append(server)
        rounds = [bs.server_scripts(a.path, port, a.participants, a.trials, True, f"p{k}")
                  for k in range(a.rounds)]  # set-up before sampling: answers only
        rec = subprocess.Popen([spy, "record", "--pid", str(server.pid), "--subprocesses",
                                "--format", "raw", "--gil", "--rate", "250", "--duration",
                                str(int(a.seconds)), "--output", str(raw), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        answers = 0
        for k, scripts in enumerate(rounds):
            if rec.poll() is not None:
                break
            r = run_load(bs.HOST, port, scripts, keepalive=True, expect=bs.EXPECT[a.path], seed=k)
            answers += r["requests"]
        rec.wait(timeout=a.seconds + 60)
    finally:
        for p in procs:
            bs.stop(p)
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    incl, own, total = summarise(raw)
    print(f"{answers} answers; {total} samples of the workers "
          "(answers only; after the rounds the workers idle)")
    print("\ninclusive (share of samples with the function on the stack):")
    for f, n in incl:
        print(f"  {n / total:6.1%}  {f}")
    print("\nself (share of samples at the top of the stack):")
    for f, n in own:
        print(f"  {n / total:6.1%}  {f}")
    print(f"\nraw collapsed stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

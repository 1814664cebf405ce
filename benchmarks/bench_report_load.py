"""The answer path while the researcher's home makes a report, in one run.

gunicorn (2 workers, gthread) serves a synthetic experiment from SQLite (as in
benchmarks/bench_server.py, whose functions this reuses); some answers are given first
so that the report has something to read. Then, taking turns, the JSON API's answers are
played (`--participants` at once, `--trials` answers each) with no report running
("idle") and right after the admin's "Make the report" button was pressed ("report":
`python -m analysis report` in its background process, started through the admin area
like a browser does). It prints answers/s, p50/p99 and their ratio report/idle, and
whether the report was still running when each timed phase ended (else the overlap was
partial and the row says so).

    .venv/bin/python benchmarks/bench_report_load.py [--participants 20] [--trials 30]
        [--repeat 3] [--seed-participants 30] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_server import (
    EXPECT,
    HOST,
    ROOT,
    CpuMeter,
    Http,
    csrf_field,
    free_port,
    gunicorn,
    measure,
    prepare_database,
    server_scripts,
    stop,
    write_study,
)
from benchmarks.loadgen import run_load
from spreadsheet import neutralise_row

PASSWORD = "bench-report-password"


def admin_session(port: int) -> tuple[Http, str]:
    """Log in to the admin area as a browser does; return the session and the CSRF token
    of the experiment's home page."""
    h = Http(port)
    _, page, _ = h("GET", "/manage/login")
    form = "application/x-www-form-urlencoded"
    h("POST", "/manage/login", urlencode({"username": "admin", "password": PASSWORD,
                                          **csrf_field(page)}).encode(), form)
    _, page, _ = h("GET", "/manage/home/bench")
    return h, csrf_field(page)["csrf_token"]


def report_state(h: Http) -> dict:
    """Return the admin area's report status (current job, latest finished one)."""
    _, text, _ = h("GET", "/manage/api/experiments/bench/report")
    return json.loads(text)


def start_report(h: Http, token: str) -> str:
    """Press the home's report button; return the new job's id once it is running."""
    h("POST", "/manage/home/bench/report", urlencode({"csrf_token": token}).encode(),
      "application/x-www-form-urlencoded")
    cur = report_state(h)["current"]
    if cur is None or cur["state"] != "running":
        raise SystemExit(f"the report did not start: {cur}")
    return cur["id"]


def wait_report(h: Http, seconds: float = 600) -> dict:
    """Wait (bounded) until no report is running; return the last job's state."""
    end = time.time() + seconds
    while time.time() < end:
        cur = report_state(h)["current"]
        if cur["state"] != "running":
            return cur
        time.sleep(0.2)
    raise SystemExit(f"the report did not finish within {seconds:g} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=20, help="participants answering at once")
    ap.add_argument("--trials", type=int, default=30, help="answers per participant")
    ap.add_argument("--repeat", type=int, default=3, help="idle/report pairs (all reported)")
    ap.add_argument("--seed-participants", type=int, default=30,
                    help="participants who answer before timing, for the report to read")
    ap.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    ap.add_argument("--client-processes", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "build" / "bench"))
    a = ap.parse_args(argv)
    if not (1 <= a.participants <= 200 and 1 <= a.trials <= 200 and 1 <= a.repeat <= 10
            and 1 <= a.seed_participants <= 500):
        ap.error("bounded: 1-200 participants, 1-200 trials, 1-10 repeats, 1-500 seed participants")
    from tqdm import tqdm

    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="tll-bench-report-"))
    proc = None
    rows = []
    try:
        exp_file = write_study(tmp / "study", a.trials)
        env = dict(os.environ, PYTHONPATH=str(ROOT), TLL_INSTANCE=str(tmp / "instance"),
                   DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}")
        prepare_database(env, exp_file)
        subprocess.run([sys.executable, "-m", "flask", "--app", "server", "admin", "set-password",
                        "--password", PASSWORD], cwd=ROOT, env=env, check=True, capture_output=True)
        port = free_port()
        proc = gunicorn(env, "server:create_app()", port, a.threads)
        # Answers for the report to read (untimed).
        run_load(HOST, port, server_scripts("api", port, a.seed_participants, a.trials, True, "seed"),
                 processes=a.client_processes, expect=EXPECT["api"])
        h, token = admin_session(port)
        t0 = time.time()
        start_report(h, token)
        first = wait_report(h)
        if first["state"] != "done":
            raise SystemExit(f"the report failed: {first['stage']}")
        print(f"a report alone takes {time.time() - t0:.1f} s here")
        seq = 0
        with tqdm(total=2 * a.repeat, desc="bench", unit="run") as bar:
            for rep in range(a.repeat):
                for phase in ("idle", "report"):
                    seq += 1
                    scripts = server_scripts("api", port, a.participants, a.trials, True,
                                             f"r{seq}-{os.getpid()}")
                    job = start_report(h, token) if phase == "report" else None
                    s = measure(port, scripts, [CpuMeter([proc.pid])], a.client_processes, True,
                                0.0, 0.0, EXPECT["api"], seed=seq)
                    overlap = None
                    if job is not None:
                        cur = report_state(h)["current"]
                        overlap = cur["id"] == job and cur["state"] == "running"
                        end = wait_report(h)
                        if end["state"] != "done":
                            raise SystemExit(f"the report failed: {end['stage']}")
                    rows.append({"repeat": rep + 1, "phase": phase, "answers": s["requests"],
                                 "answers_per_s": round(s["per_s"], 1),
                                 "p50_ms": round(s["p50_ms"], 2), "p99_ms": round(s["p99_ms"], 2),
                                 "errors": s["errors"], "worker_cpu_ms": round(s["cpu_ms"][0], 3),
                                 "report_running_throughout": "" if overlap is None else overlap})
                    bar.update(1)
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, old)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_report_load.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(neutralise_row(r) for r in rows)
    print(f"\n{a.participants} participants x {a.trials} answers (JSON API, kept-alive), "
          f"gunicorn 2 workers x {a.threads} threads, SQLite; {os.cpu_count()} CPUs")
    print(f"{'repeat':>6} {'phase':>7} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'report running throughout':>26}")
    for r in rows:
        print(f"{r['repeat']:>6} {r['phase']:>7} {r['answers_per_s']:>10} {r['p50_ms']:>8} "
              f"{r['p99_ms']:>8} {r['errors']:>6} {r['report_running_throughout']!s:>26}")
    for rep in range(1, a.repeat + 1):
        idle, rpt = (next(r for r in rows if r["repeat"] == rep and r["phase"] == p)
                     for p in ("idle", "report"))
        print(f"repeat {rep}: answers/s with a report / without = "
              f"{rpt['answers_per_s'] / idle['answers_per_s']:.2f}")
    tot = {p: sum(r["answers"] for r in rows if r["phase"] == p) /
           sum(r["answers"] / r["answers_per_s"] for r in rows if r["phase"] == p)
           for p in ("idle", "report")}
    print(f"all repeats: {tot['report']:.1f} / {tot['idle']:.1f} answers/s = "
          f"ratio {tot['report'] / tot['idle']:.2f}")
    print(f"written: {out / 'bench_report_load.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Answer-recording throughput of the experiment server against a floor, in one run.

The server (gunicorn, 2 workers) on loopback serves a small synthetic experiment from
SQLite (WAL, synchronous=FULL) and from PostgreSQL (a throw-away cluster with fsync on);
the floor is a trivial Flask app with the same endpoints under the same gunicorn. A lean
load generator (benchmarks/loadgen.py: several processes, pre-built requests) plays the
participants' answers, 10, 50 and 100 participants at once, over kept-alive and over new
connections, for three paths: the JSON API (`POST /api/v1/participants/<t>/answers`), the
lab flow's form POST (`POST /lab/<name>/answer`, the no-JavaScript path) and the MTurk
worker page's answer (`POST /mturk/task/<name>/<hit>/answer`). Participants are created
before timing: the timed phase is the answers only.

For every level it reports the floor's requests/s, the server's answers/s, their ratio,
CPU ms per answer of the gunicorn workers (from /proc schedstat; PostgreSQL's backends apart)
against the floor's, p50 and p99, and the client's CPU share. A level whose floor run
spent more than 25 % of its CPU (client + floor processes, from getrusage and /proc) in
the client is marked NOT VALID instead of given a ratio: the client, not the floor, would
have set the pace.

With `--capacity`, participants who think `--capacity-think-ms` (default 1 s) before each
answer are added until p99 reaches 100 ms: the number held is reported.

    .venv/bin/python benchmarks/bench_server.py [--levels 10 50 100] [--trials 30]
        [--paths api lab mturk] [--modes keepalive new] [--databases sqlite postgresql]
        [--nginx] [--capacity 250 500 1000 ...] [--think-ms 0] [--burn-us 0] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import html
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import build_request, run_load  # noqa: E402
from spreadsheet import neutralise_row  # noqa: E402

MAX_CLIENT_SHARE = 0.25
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
SUBMIT_TO = "https://workersandbox.mturk.com"
EXPECT = {"api": (201,), "lab": (303,), "mturk": (303,)}


# --------------------------------------------------------------------------- floor
def trivial_app():
    """A Flask app with the three answer endpoints doing no work (the floor)."""
    from flask import Flask, jsonify, redirect, request

    app = Flask("trivial")

    @app.post("/api/v1/participants/<token>/answers")
    def answer(token):
        body = request.get_json()
        return jsonify(stored=True, duplicate=False, n=body["n"], choice=body["choice"]), 201

    @app.post("/lab/<name>/answer")
    def lab_answer(name):
        request.form.get("choice")
        return redirect(f"/lab/{name}/trial", 303)

    @app.post("/mturk/task/<name>/<hit>/answer")
    def mturk_answer(name, hit):
        request.form.get("choice")
        return redirect(f"/mturk/task/{name}/{hit}?" + urlencode(request.args), 303)

    @app.get("/ping")
    def ping():
        return "ok"

    return app


# --------------------------------------------------------------------------- set-up
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def write_study(folder: Path, trials: int) -> Path:
    """Write a synthetic study (PNG pairs) and its experiment file (one HIT holding every
    trial); return the file."""
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
           "trials": tr, "hits": [{"id": "h0001", "trials": [x["id"] for x in tr]}]}
    out = folder / "experiments" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    return out


ADD_HIT = """
from server import create_app
from server.models import Experiment, Hit, db
app = create_app()
with app.app_context():
    exp = db.session.query(Experiment).filter_by(name="bench").one()
    db.session.add(Hit(experiment_id=exp.id, key="h0001", mturk_hit_id="BENCHHIT",
                       environment="sandbox", status="assignable"))
    db.session.commit()
"""


def prepare_database(env: dict, exp_file: Path) -> None:
    """Create the schema, load the experiment, record its HIT and set the admin password."""
    def run(*args):
        subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True)
    run("-m", "flask", "--app", "server", "db", "upgrade")
    run("-m", "flask", "--app", "server", "load-experiment", str(exp_file), "--name", "bench")
    run("-c", ADD_HIT)


def pg_bin(name: str) -> str | None:
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else shutil.which(name)


class PostgresCluster:
    """A throw-away PostgreSQL cluster on loopback with durable settings (fsync on,
    synchronous_commit on): an acknowledged answer survives an OS crash."""

    def __init__(self):
        initdb, self.pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not self.pg_ctl:
            raise SystemExit("PostgreSQL server binaries not found: apt-get install postgresql "
                             "(or leave postgresql out of --databases)")
        # A folder of its own: the postgres user must own it (the bench's is root's, 0700).
        base = Path(tempfile.mkdtemp(prefix="tll-bench-pg-", dir="/tmp"))
        self.base, self.data, self.port = base, base / "data", free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as postgres
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres", "postgres")
        subprocess.run(self.prefix + [initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                      "-E", "UTF8"], check=True, capture_output=True)
        opts = f"-h {HOST} -p {self.port} -k {base} -c max_connections=100"
        subprocess.run(self.prefix + [self.pg_ctl, "-D", str(self.data), "-o", opts, "-l",
                                      str(base / "log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True)
        import psycopg

        with psycopg.connect(f"host={HOST} port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute('CREATE DATABASE "bench"')
        self.url = f"postgresql+psycopg://postgres@{HOST}:{self.port}/bench"

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run(self.prefix + [self.pg_ctl, "-D", str(self.data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def wait_http(port: int, proc: subprocess.Popen | None, path: str = "/ping", seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the process serving port {port} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port} within {seconds:g} s")


def gunicorn(env: dict, target: str, port: int, threads: int) -> subprocess.Popen:
    """Start gunicorn with the production settings (deploy/gunicorn.conf.py: gthread) and
    2 workers x `threads` serving `target` on loopback; return it once both workers
    answer. Server and floor get exactly the same settings. Beyond production's: room for
    the benchmark's thousands of client connections (nginx keeps a few to gunicorn) and
    kept-alive ones that idle through a think time."""
    env = dict(env, TLL_WORKERS="2", TLL_THREADS=str(threads), TLL_BIND=f"{HOST}:{port}")
    env.pop("TLL_ACCESS_LOG", None)
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn",
                             "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                             "--worker-connections", "4000", "--keep-alive", "30",
                             "--log-level", "warning", "--backlog", "2048", target],
                            cwd=ROOT, env=env, start_new_session=True)
    wait_http(port, proc, "/api/v1/participants/x/next")
    for _ in range(20):  # warm both workers (first requests import and connect)
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}/api/v1/participants/x/next", timeout=10)
        except urllib.error.HTTPError:
            pass
    return proc


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    keepalive_timeout 30s;
    keepalive_requests 100000;
{servers}
}}
"""
NGINX_SERVER = """
    upstream up{port} {{ server {host}:{upstream}; keepalive 64; }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://up{port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
"""


def start_nginx(base: Path, upstreams: dict[str, int]) -> tuple[subprocess.Popen, dict[str, int]]:
    """Start Debian's nginx as a reverse proxy on loopback in front of each upstream port;
    return (process, {name: nginx port})."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        raise SystemExit("nginx not found: apt-get install nginx (or drop --nginx)")
    base.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in upstreams}
    servers = "".join(NGINX_SERVER.format(host=HOST, port=ports[n], upstream=up)
                      for n, up in upstreams.items())
    conf = base / "nginx.conf"
    conf.write_text(NGINX_CONF.format(base=base, servers=servers))
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(base)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for name in ports:
        wait_http(ports[name], proc, "/api/v1/participants/x/next", 30)
    return proc, ports


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --------------------------------------------------------------------------- CPU time
def children(pid: int) -> list[int]:
    """Return the ids of `pid`'s child processes (from /proc)."""
    out: list[int] = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            out += [int(x) for x in Path(task).read_text().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """Return {pid: CPU seconds} summed over each process's threads from
    /proc/<pid>/task/*/schedstat (nanoseconds on a CPU), or from /proc/<pid>/stat (user +
    system, in clock ticks of 10 ms: too coarse for a short run) where schedstat is missing."""
    out = {}
    for pid in pids:
        total, ok = 0, False
        for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            try:
                total += int(Path(f).read_text().split()[0])
                ok = True
            except (OSError, ValueError, IndexError):
                pass
        if ok:
            out[pid] = total / 1e9
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


class CpuMeter:
    """CPU seconds used by the children of some parent processes between two readings."""

    def __init__(self, parents: list[int]):
        self.parents = parents
        self.t0: dict[int, float] = {}
        self.used = 0.0

    def start(self) -> None:
        self.t0 = cpu_seconds([c for p in self.parents for c in children(p)])

    def stop(self) -> None:
        t1 = cpu_seconds([c for p in self.parents for c in children(p)])
        self.used = sum(v - self.t0.get(pid, 0.0) for pid, v in t1.items())


# --------------------------------------------------------------------------- participants
class Http:
    """A small kept-alive HTTP client for the untimed set-up (cookies by hand)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.cookie = ""

    def __call__(self, method: str, path: str, body: bytes | None = None,
                 ctype: str | None = None) -> tuple[int, str, dict]:
        headers = {"Accept": "text/html"}
        if ctype:
            headers["Content-Type"] = ctype
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                self.cookie = v.split(";", 1)[0]
        if r.status >= 400:
            raise SystemExit(f"set-up: {method} {path}: HTTP {r.status}: {text[:300]}")
        return r.status, text, dict(r.getheaders())


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_field(page: str) -> dict:
    """Return {"csrf_token": value} when the page's form carries one (CSRF protection)."""
    m = CSRF_RE.search(page)
    return {"csrf_token": html.unescape(m.group(1) or m.group(2))} if m else {}


def session_participant(cookie: str) -> str:
    """Return the participant token held in a Flask session cookie `session=...` (signed,
    not encrypted: the payload reads without the key), as the server reads it."""
    from itsdangerous.encoding import base64_decode

    value = cookie.split("=", 1)[1]
    data = base64_decode(value.lstrip(".").split(".", 1)[0])
    if value.startswith("."):
        data = zlib.decompress(data)
    return json.loads(data)["participant"]["t"]


def trial_tokens(participant: str, answers) -> list[dict]:
    """Return, for each answer, the trial token field its trial's page carries (the set-up
    cannot open pages of trials not yet answered, so it computes what they would show)."""
    from server.recording import trial_token_for

    return [{"trial_token": trial_token_for(participant, n)} for n, _, _ in answers]


def answer_bodies(trials: int, seed: int) -> list[tuple[int, int, float]]:
    import random

    rng = random.Random(seed)
    return [(n, rng.randrange(5), round(rng.uniform(600, 3000), 1)) for n in range(1, trials + 1)]


def server_scripts(path: str, port: int, participants: int, trials: int, keepalive: bool,
                   tag: str) -> list[list[bytes]]:
    """Create `participants` participants on the server (untimed) and return each one's
    answer requests for `path` (api, lab or mturk)."""
    host = f"{HOST}:{port}"
    scripts = []
    for i in range(participants):
        code = f"{tag}-{i:05d}"
        h = Http(port)
        answers = answer_bodies(trials, zlib.crc32(code.encode()))
        if path == "api":
            body = json.dumps({"consent": True, "code": code, "population": "bench"}).encode()
            _, text, _ = h("POST", "/api/v1/experiments/bench/participants", body, "application/json")
            tok = json.loads(text)["participant"]
            scripts.append([build_request(
                "POST", f"/api/v1/participants/{tok}/answers", host,
                json.dumps({"n": n, "choice": c, "rt_ms": rt}).encode(), "application/json",
                keepalive) for n, c, rt in answers])
        elif path == "lab":
            _, page, _ = h("GET", "/lab/bench/")
            form = "application/x-www-form-urlencoded"
            h("POST", "/lab/bench/start", urlencode({"code": code, **csrf_field(page)}).encode(), form)
            _, page, _ = h("GET", "/lab/bench/consent")
            h("POST", "/lab/bench/consent", urlencode({"agree": "yes", **csrf_field(page)}).encode(), form)
            _, page, _ = h("GET", "/lab/bench/trial")
            extra = csrf_field(page)
            toks = trial_tokens(session_participant(h.cookie), answers)
            scripts.append([build_request(
                "POST", "/lab/bench/answer", host,
                urlencode({"n": n, "choice": c, "rt_ms": rt, **extra, **t}).encode(), form,
                keepalive, {"Cookie": h.cookie}) for (n, c, rt), t in zip(answers, toks)])
        else:
            params = urlencode({"assignmentId": f"A{code}", "hitId": "BENCHHIT",
                                "workerId": f"W{code}", "turkSubmitTo": SUBMIT_TO})
            _, page, _ = h("GET", f"/mturk/task/bench/h0001?{params}")
            actions = [html.unescape(a) for a in re.findall(r'action="([^"]+)"', page)]
            action = next((a for a in actions if "/answer?" in a), None)
            if action is None:
                raise SystemExit("set-up: the MTurk task page has no answer form")
            extra = csrf_field(page)
            toks = trial_tokens(re.search(r"[?&]p=([^&]+)", action).group(1), answers)
            scripts.append([build_request(
                "POST", action, host,
                urlencode({"n": n, "choice": c, "rt_ms": rt, **extra, **t}).encode(),
                "application/x-www-form-urlencoded", keepalive)
                for (n, c, rt), t in zip(answers, toks)])
        h.conn.close()
    return scripts


def floor_scripts(path: str, port: int, participants: int, trials: int, keepalive: bool,
                  tag: str) -> list[list[bytes]]:
    """Return requests of the same shape and size for the floor (which stores nothing)."""
    host = f"{HOST}:{port}"
    form = "application/x-www-form-urlencoded"
    scripts = []
    for i in range(participants):
        code = f"{tag}-{i:05d}"
        answers = answer_bodies(trials, zlib.crc32(code.encode()))
        tok = hashlib.sha256(code.encode()).hexdigest()[:32]
        if path == "api":
            s = [build_request("POST", f"/api/v1/participants/{tok}/answers", host,
                               json.dumps({"n": n, "choice": c, "rt_ms": rt}).encode(),
                               "application/json", keepalive) for n, c, rt in answers]
        elif path == "lab":
            s = [build_request("POST", "/lab/bench/answer", host,
                               urlencode({"n": n, "choice": c, "rt_ms": rt,
                                          "trial_token": tok}).encode(), form,
                               keepalive, {"Cookie": "session=" + tok * 3}) for n, c, rt in answers]
        else:
            params = urlencode({"p": tok, "assignmentId": f"A{code}", "hitId": "BENCHHIT",
                                "workerId": f"W{code}", "turkSubmitTo": SUBMIT_TO})
            s = [build_request("POST", f"/mturk/task/bench/h0001/answer?{params}", host,
                               urlencode({"n": n, "choice": c, "rt_ms": rt,
                                          "trial_token": tok}).encode(), form,
                               keepalive) for n, c, rt in answers]
        scripts.append(s)
    return scripts


# --------------------------------------------------------------------------- one run
def percentile(values, q: float) -> float:
    """Return the q-th percentile (0..100) of `values`, nearest rank."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]


def client_share(client_cpu_s: float, server_cpu_s: float) -> float:
    """Return the client's share (0..1) of the CPU the run used (client + server
    processes). Counted against the run's own CPU, not the machine's capacity, so other
    work on a shared machine neither hides a heavy client nor flags a lean one."""
    total = client_cpu_s + server_cpu_s
    return client_cpu_s / total if total > 0 else 1.0


def verdict(floor_client_share: float, limit: float = MAX_CLIENT_SHARE) -> bool:
    """Return True when a level is valid: the client used at most `limit` of the CPU of
    the floor's run (so the floor measured the server stack, not the client)."""
    return floor_client_share <= limit


def measure(port: int, scripts, meters: list[CpuMeter], processes: int, keepalive: bool,
            think_ms: float, burn_us: float, expect, seed: int) -> dict:
    """Play `scripts` on `port`; return requests/s, latencies, CPU per request, shares."""
    r = run_load(HOST, port, scripts, processes=processes, keepalive=keepalive,
                 think_ms=think_ms, burn_us=burn_us, expect=expect, seed=seed,
                 before=lambda: [m.start() for m in meters],
                 after=lambda: [m.stop() for m in meters])
    n = max(1, r["requests"])
    lat = r["latencies_ms"]
    return {"requests": r["requests"], "seconds": r["seconds"], "per_s": r["requests"] / r["seconds"],
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "cpu_ms": [m.used * 1000 / n for m in meters], "errors": r["errors"],
            "first_error": r["first_error"], "timed_out": r["timed_out"],
            "client_share": client_share(r["client_cpu_s"], sum(m.used for m in meters)),
            "client_cpu_ms": r["client_cpu_s"] * 1000 / n}


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 50, 100],
                    help="participants answering at once")
    ap.add_argument("--trials", type=int, default=30, help="answers per participant")
    ap.add_argument("--paths", nargs="+", default=["api", "lab", "mturk"],
                    choices=["api", "lab", "mturk"])
    ap.add_argument("--modes", nargs="+", default=["keepalive", "new"], choices=["keepalive", "new"])
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"],
                    choices=["sqlite", "postgresql"])
    ap.add_argument("--nginx", action="store_true",
                    help="also run the API path through nginx (reverse proxy on loopback)")
    ap.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    ap.add_argument("--client-processes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each level (all reported)")
    ap.add_argument("--think-ms", type=float, default=0.0,
                    help="mean time a participant looks at a trial before answering "
                         "(0: answer back to back, a saturation test)")
    ap.add_argument("--capacity", type=int, nargs="*", default=[],
                    help="participant counts for the think-time capacity search")
    ap.add_argument("--capacity-think-ms", type=float, default=1000.0)
    ap.add_argument("--capacity-trials", type=int, default=10)
    ap.add_argument("--burn-us", type=float, default=0.0,
                    help="CPU microseconds the client burns per request (a deliberately slow "
                         "client, to test the validity check)")
    ap.add_argument("--floor-only", action="store_true", help="measure the floor only")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench"))
    a = ap.parse_args(argv)
    if (max(a.levels) > 500 or a.trials > 200 or not 1 <= a.repeat <= 5
            or any(c > 5000 for c in a.capacity) or a.capacity_trials > 100):
        ap.error("levels are bounded to 500 participants, 200 trials, 5 repeats and "
                 "5000 participants for --capacity")
    from tqdm import tqdm

    # SIGTERM (timeout, kill) unwinds through `finally`: servers and cluster are stopped.
    old_handler = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="tll-bench-"))
    procs: list[subprocess.Popen] = []
    pg = None
    try:
        exp_file = write_study(tmp / "study", max(a.trials, a.capacity_trials))
        # Every benchmark participant starts from the one loopback address.
        base_env = dict(os.environ, PYTHONPATH=str(ROOT), TLL_SQLITE_SYNCHRONOUS="FULL",
                        TLL_PARTICIPANT_RATE="100000 per minute")
        base_env.pop("DATABASE_URL", None)
        ports: dict[str, int] = {}
        masters: dict[str, list[int]] = {}
        db_meters: dict[str, list[int]] = {}
        floor_env = dict(base_env, TLL_INSTANCE=str(tmp / "floor"))
        ports["floor"] = free_port()
        procs.append(gunicorn(floor_env, "benchmarks.bench_server:trivial_app()", ports["floor"],
                              a.threads))
        masters["floor"] = [procs[-1].pid]
        if not a.floor_only:
            for dbname in a.databases:
                env = dict(base_env, TLL_INSTANCE=str(tmp / f"instance-{dbname}"))
                if dbname == "postgresql":
                    pg = PostgresCluster()
                    env["DATABASE_URL"] = pg.url
                    db_meters[dbname] = [pg.pid()]
                else:
                    env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
                    db_meters[dbname] = []
                prepare_database(env, exp_file)
                ports[dbname] = free_port()
                procs.append(gunicorn(env, "server:create_app()", ports[dbname], a.threads))
                masters[dbname] = [procs[-1].pid]
        nginx_ports: dict[str, int] = {}
        if a.nginx:
            ups = {"floor": ports["floor"]}
            if "sqlite" in ports:
                ups["sqlite"] = ports["sqlite"]
            ng, nginx_ports = start_nginx(tmp / "nginx", ups)
            procs.append(ng)

        plan = []  # (path, mode, level, via)
        for path in a.paths:
            for mode in a.modes:
                for level in a.levels:
                    plan.append((path, mode, level, "gunicorn"))
        if a.nginx:
            for mode in a.modes:
                for level in a.levels:
                    plan.append(("api", mode, level, "nginx"))
        targets = ["floor"] + ([] if a.floor_only else list(a.databases))
        rows = []
        seq = 0
        with tqdm(total=len(plan) * a.repeat, desc="bench", unit="level") as bar:
            for path, mode, level, via in plan:
                for rep in range(a.repeat):
                    keep = mode == "keepalive"
                    results = {}
                    # The floor and the servers take turns within a level: this machine's
                    # load drifts, and back-to-back runs keep them under the same conditions.
                    for target in targets:
                        if via == "nginx" and target not in nginx_ports:
                            continue
                        seq += 1
                        port = nginx_ports[target] if via == "nginx" else ports[target]
                        tag = f"b{seq}-{os.getpid()}"
                        if target == "floor":
                            scripts = floor_scripts(path, port, level, a.trials, keep, tag)
                        else:
                            scripts = server_scripts(path, port, level, a.trials, keep, tag)
                        meters = [CpuMeter(masters[target] + ([ng.pid] if via == "nginx" else [])),
                                  CpuMeter(db_meters.get(target, []))]
                        results[target] = measure(port, scripts, meters, a.client_processes, keep,
                                                  a.think_ms, a.burn_us, EXPECT[path], seed=seq)
                    fl = results["floor"]
                    valid = verdict(fl["client_share"])
                    for target in targets:
                        if target == "floor" or target not in results:
                            continue
                        s = results[target]
                        rows.append(row(path, mode, level, via, target, rep, s, fl, valid))
                    if a.floor_only:
                        rows.append(row(path, mode, level, via, "-", rep, None, fl, valid))
                    bar.update(1)
        capacity_rows = []
        if a.capacity and not a.floor_only:
            with tqdm(total=len(a.capacity) * len(a.databases), desc="capacity", unit="level") as bar:
                for dbname in a.databases:
                    for level in sorted(a.capacity):
                        seq += 1
                        port = ports[dbname]
                        scripts = server_scripts("api", port, level, a.capacity_trials, True,
                                                 f"c{seq}-{os.getpid()}")
                        s = measure(port, scripts, [CpuMeter(masters[dbname]), CpuMeter(db_meters[dbname])],
                                    a.client_processes, True, a.capacity_think_ms, 0.0, EXPECT["api"], seq)
                        capacity_rows.append({
                            "database": dbname, "participants": level,
                            "think_ms": a.capacity_think_ms,
                            "answers": s["requests"], "answers_per_s": round(s["per_s"], 1),
                            "p50_ms": round(s["p50_ms"], 1), "p99_ms": round(s["p99_ms"], 1),
                            "errors": s["errors"], "client_share": round(s["client_share"], 3),
                            "held": s["p99_ms"] < 100 and not s["errors"]})
                        bar.update(1)
                        if s["p99_ms"] >= 100 or s["errors"]:
                            bar.update(len([c for c in a.capacity if c > level]))
                            break
    finally:
        for p in reversed(procs):
            stop(p)
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, old_handler)
    report(a, rows, capacity_rows)
    return 0


def row(path, mode, level, via, target, rep, s, fl, valid) -> dict:
    """Return one result row (a server run against the floor run of the same level)."""
    r = {"path": path, "connections": mode, "via": via, "database": target,
         "participants": level, "repeat": rep + 1,
         "floor_req_per_s": round(fl["per_s"], 1), "floor_cpu_ms": round(fl["cpu_ms"][0], 3),
         "floor_p99_ms": round(fl["p99_ms"], 1), "floor_client_share": round(fl["client_share"], 3),
         "floor_client_cpu_ms": round(fl["client_cpu_ms"], 3),
         "valid": valid}
    if s is not None:
        r.update({"answers": s["requests"], "answers_per_s": round(s["per_s"], 1),
                  "ratio": round(s["per_s"] / fl["per_s"], 3) if valid else None,
                  "cpu_ms": round(s["cpu_ms"][0], 3), "db_cpu_ms": round(s["cpu_ms"][1], 3),
                  "p50_ms": round(s["p50_ms"], 1), "p99_ms": round(s["p99_ms"], 1),
                  "client_share": round(s["client_share"], 3),
                  "errors": s["errors"] + fl["errors"],
                  "first_error": s["first_error"] or fl["first_error"]})
    else:
        r.update({"errors": fl["errors"], "first_error": fl["first_error"]})
    return r


def report(a, rows: list[dict], capacity_rows: list[dict]) -> None:
    """Write the CSV files and print the tables."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if not a.think_ms else f"_think{a.think_ms:g}"
    fields = sorted({k for r in rows for k in r}, key=lambda k: list(ROW_ORDER).index(k)
                    if k in ROW_ORDER else 99)
    write_csv(out / f"bench_server{suffix}.csv", rows, fields)
    cpus = os.cpu_count()
    print(f"\ngunicorn 2 workers x {a.threads} threads (gthread) on loopback, {cpus} CPUs; client: "
          f"{a.client_processes} processes; {a.trials} answers per participant, think time "
          f"{a.think_ms:g} ms; floor: a trivial Flask app, same gunicorn, measured beside each "
          f"level. SQLite: WAL, synchronous=FULL; PostgreSQL: fsync on. CPU ms: the gunicorn "
          f"workers' (and nginx's) CPU per request from /proc; db: PostgreSQL's backends. "
          f"client CPU: the load generator's share of the floor run's CPU (client + floor); a level "
          f"is NOT VALID when it exceeds {MAX_CLIENT_SHARE:.0%}.")
    print("| path | conn | via | db | participants | floor req/s | answers/s | ratio | CPU ms "
          "(floor) | db CPU ms | p50 ms | p99 ms | client CPU (floor run) | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = (f"{r['ratio']:.2f}" if r.get("ratio") is not None else
                 ("-" if r["valid"] else "NOT VALID"))
        print(f"| {r['path']} | {r['connections']} | {r['via']} | {r['database']} | "
              f"{r['participants']} | {r['floor_req_per_s']:.0f} | {r.get('answers_per_s', '-')} | "
              f"{ratio} | {r.get('cpu_ms', '-')} ({r['floor_cpu_ms']}) | {r.get('db_cpu_ms', '-')} | "
              f"{r.get('p50_ms', '-')} | {r.get('p99_ms', '-')} | {r['floor_client_share']:.0%} | "
              f"{r['errors']} |")
    if a.repeat > 1:
        medians = median_rows(rows)
        write_csv(out / f"bench_server{suffix}_median.csv", medians)
        print(f"\nmedian of {a.repeat} runs (each ratio is a server run over the floor run "
              "beside it; the median ratio is the median of those, not a ratio of medians)")
        print("| path | conn | via | db | participants | floor req/s | answers/s | ratio "
              "(min-max) | CPU ms (floor) | db CPU ms | p99 ms |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for m in medians:
            ratio = "NOT VALID" if m["ratio"] is None else \
                f"{m['ratio']:.2f} ({m['ratio_min']:.2f}-{m['ratio_max']:.2f})"
            print(f"| {m['path']} | {m['connections']} | {m['via']} | {m['database']} | "
                  f"{m['participants']} | {m['floor_req_per_s']:.0f} | {m['answers_per_s']:.0f} | "
                  f"{ratio} | {m['cpu_ms']:.3f} ({m['floor_cpu_ms']:.3f}) | {m['db_cpu_ms']:.3f} | "
                  f"{m['p99_ms']:.1f} |")
    bad = [r for r in rows if r["errors"]]
    if bad:
        print(f"\nerrors: {sum(r['errors'] for r in bad)}; first: {bad[0]['first_error'][:200]!r}")
    if capacity_rows:
        write_csv(out / "bench_server_capacity.csv", capacity_rows)
        print(f"\ncapacity: participants answering with a mean think time of "
              f"{a.capacity_think_ms:g} ms, {a.capacity_trials} answers each, kept-alive, API path")
        print("| db | participants | answers/s | p50 ms | p99 ms | errors | held (p99 < 100 ms) |")
        print("|---|---|---|---|---|---|---|")
        for r in capacity_rows:
            print(f"| {r['database']} | {r['participants']} | {r['answers_per_s']} | {r['p50_ms']} | "
                  f"{r['p99_ms']} | {r['errors']} | {'yes' if r['held'] else 'no'} |")
        for dbname in dict.fromkeys(r["database"] for r in capacity_rows):
            held = [r["participants"] for r in capacity_rows if r["database"] == dbname and r["held"]]
            print(f"{dbname}: held {max(held) if held else 0} simultaneous participants with p99 < 100 ms")
    print(f"\nwritten: {out}")


def write_csv(path: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    """Write `rows` to the CSV file `path` (columns: `fields`, else the first row's keys)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields or list(rows[0]))
        w.writeheader()
        w.writerows(neutralise_row(r) for r in rows)


# The columns that name one cell of the table; the CSV's columns start with them.
CELL = ("path", "connections", "via", "database", "participants")


def median_rows(rows: list[dict]) -> list[dict]:
    """Return one row per cell (path, connections, via, database, participants) with the
    median of each figure over its repeated runs; the ratio is None when any run of the
    cell was not valid."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        if "answers_per_s" in r:
            cells.setdefault(tuple(r[k] for k in CELL), []).append(r)
    out = []
    for key, runs in cells.items():
        m = dict(zip(CELL, key, strict=True))
        m["runs"] = len(runs)
        for k in ("floor_req_per_s", "answers_per_s", "cpu_ms", "floor_cpu_ms", "db_cpu_ms",
                  "p50_ms", "p99_ms"):
            m[k] = statistics.median(r[k] for r in runs)
        ratios = [r["ratio"] for r in runs]
        valid = all(x is not None for x in ratios)
        m["ratio"] = statistics.median(ratios) if valid else None
        m["ratio_min"] = min(ratios) if valid else None
        m["ratio_max"] = max(ratios) if valid else None
        m["errors"] = sum(r["errors"] for r in runs)
        out.append(m)
    return out


ROW_ORDER = CELL + ("repeat", "answers",
             "answers_per_s", "floor_req_per_s", "ratio", "valid", "cpu_ms", "floor_cpu_ms",
             "db_cpu_ms", "p50_ms", "p99_ms", "floor_p99_ms", "client_share",
             "floor_client_share", "floor_client_cpu_ms", "errors", "first_error")


if __name__ == "__main__":
    sys.exit(main())

"""A participant's answer latency while clients guess the admin password over HTTP Basic.

The server runs as deployed (gunicorn with deploy/gunicorn.conf.py: 2 gthread workers,
`TLL_ENV=production`, here with `TLL_ADMIN_BASIC_AUTH=1` so that Basic is on at all) on
loopback, on SQLite. One participant answers trials through the JSON API, one answer
after another with a short think time; phases without and with `--guessers` client
processes alternate, the guessers sending wrong Basic passwords to
/manage/api/experiments/<name>/stats as fast as the server answers them. With
`--many-addresses` the server trusts one proxy (`TLL_PROXIES=1`) and every guess comes
from a new X-Forwarded-For address (a botnet's view); otherwise all come from 127.0.0.1.

With `--nginx` everything goes through the production front instead: Debian's nginx with
the deploy/nginx configuration itself (rendered by tests/server/deploy_stack.py: TLS with
a throw-away certificate for study.test, the per-address limit_req/limit_conn) in front
of gunicorn (`TLL_PROXIES=1`, nginx sets X-Forwarded-For). The participant and the
guessers all talk HTTPS to nginx on loopback: the participant from 127.0.0.2, the
guessers from 127.0.0.1, or with `--many-addresses` from 127.0.0.3-254 by binding their
client sockets (each connection from the next address, GUESSES_PER_CONNECTION guesses
on it), so nginx sees real source addresses and no header can be spoofed through it.

It prints the participant's median and p90 answer latency per phase kind, their ratio
(the target: guessing raises the median no more than 2x), and what the guessers got
(401 = a password checked, 429 = throttled before any hash).

    .venv/bin/python benchmarks/bench_guessing.py [--guessers 8] [--seconds 15]
        [--rounds 2] [--think-ms 20] [--many-addresses] [--control] [--nginx]
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_server import (  # noqa: E402
    HOST,
    free_port,
    gunicorn,
    prepare_database,
    stop,
    write_study,
)

TRIALS = 400
PARTICIPANT_ADDRESS = "127.0.0.2"  # behind nginx: not the guessers' address
GUESSER_ADDRESSES = [f"127.0.0.{i}" for i in range(3, 255)]  # --nginx --many-addresses
GUESSES_PER_CONNECTION = 10  # --nginx --many-addresses: then the next address
GUESS_PATH = "/manage/api/experiments/bench/stats"
CONTROL_PATH = "/api/v1/participants/nobody/next"  # a cheap 404: no password, no hash
PASSWORD = "the right password"


def connect(port: int, cert: str | None, source: str, timeout: float):
    """Return a new client connection: plain HTTP to gunicorn on `port`, or with `cert`
    (the path of the test certificate) HTTPS to nginx on `port` from loopback address
    `source`."""
    if cert is None:
        return http.client.HTTPConnection(HOST, port, timeout=timeout)
    from tests.server.deploy_stack import Connection, tls_context

    class NoDelay(Connection):
        # http.client sends a request's headers and body in two writes; with Nagle on,
        # the body waits for nginx's delayed ACK (40 ms), which HTTPConnection avoids.
        def connect(self):
            super().connect()
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    return NoDelay(port, tls_context(Path(cert)), source=source, timeout=timeout)


def _guesser(port: int, cert: str | None, seconds: float, k: int, many: bool, control: bool,
             out) -> None:
    """Send wrong Basic passwords (with `control`: requests for an unknown participant,
    no password) until `seconds` have passed; put a Counter of the statuses in `out`.
    With `cert` the guesses go over HTTPS to nginx, with `many` from rotating source
    addresses; without, with `many`, each from a new X-Forwarded-For address."""
    seen: Counter = Counter()
    # Index into GUESSER_ADDRESSES: each guesser starts in its own stretch of them.
    address = k * (len(GUESSER_ADDRESSES) // 8) - 1

    def fresh():
        nonlocal address
        address += 1
        source = GUESSER_ADDRESSES[address % len(GUESSER_ADDRESSES)] if many else HOST
        return connect(port, cert, source, 30)

    conn = fresh()
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        n += 1
        auth = base64.b64encode(f"admin:guess-{k}-{n}".encode()).decode()
        headers = {} if control else {"Authorization": f"Basic {auth}"}
        if many and cert is None:
            headers["X-Forwarded-For"] = f"10.{k}.{n // 250 % 250}.{n % 250 + 1}"
        elif many and n % GUESSES_PER_CONNECTION == 0:
            conn.close()
            conn = fresh()
        try:
            conn.request("GET", CONTROL_PATH if control else GUESS_PATH, headers=headers)
            r = conn.getresponse()
            r.read()
            seen[r.status] += 1
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException):
            seen["error"] += 1
            conn.close()
            conn = fresh()
    seen["client_cpu_s"] = time.process_time()
    out.put(dict(seen))


class Participant:
    """A participant answering through the JSON API over one kept-alive connection."""

    def __init__(self, port: int, cert: str | None = None):
        self.port = port
        self.conn = connect(port, cert, PARTICIPANT_ADDRESS, 60)
        self._start()

    def _post(self, path: str, body: dict) -> tuple[int, dict]:
        self.conn.request("POST", path, body=json.dumps(body),
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")

    def _start(self) -> None:
        status, body = self._post("/api/v1/experiments/bench/participants", {"consent": True})
        if status not in (200, 201):
            raise SystemExit(f"could not start a participant: {status} {body}")
        self.token, self.n = body["participant"], 0

    def answer(self) -> float:
        """Answer the next trial; return the round trip in milliseconds."""
        if self.n >= TRIALS:
            self._start()
        self.n += 1
        t0 = time.perf_counter()
        status, body = self._post(f"/api/v1/participants/{self.token}/answers",
                                  {"n": self.n, "choice": self.n % 5, "rt_ms": 900})
        ms = (time.perf_counter() - t0) * 1000
        if status != 201:
            raise SystemExit(f"answer {self.n} refused: {status} {body}")
        return ms


def phase(port: int, cert: str | None, seconds: float, think_s: float, guessers: int,
          many: bool, control: bool, participant: Participant) -> tuple[list[float], Counter]:
    """Run one phase; return (answer latencies in ms, the guessers' statuses)."""
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_guesser, args=(port, cert, seconds, k, many, control, out))
             for k in range(guessers)]
    for p in procs:
        p.start()
    if procs:
        time.sleep(1.0)  # the guessers are at full pace before the timing starts
    latencies = []
    end = time.time() + seconds - (1.0 if procs else 0)
    while time.time() < end:
        latencies.append(participant.answer())
        time.sleep(think_s)
    seen: Counter = Counter()
    for _ in procs:
        seen.update(out.get(timeout=seconds + 60))
    seen["client_s"] += seconds if procs else 0
    for p in procs:
        p.join(timeout=30)
    return latencies, seen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--guessers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    ap.add_argument("--rounds", type=int, default=2, help="phase pairs (without, with)")
    ap.add_argument("--think-ms", type=float, default=20.0)
    ap.add_argument("--many-addresses", action="store_true",
                    help="every guess from a new X-Forwarded-For address (TLL_PROXIES=1); "
                         "with --nginx from many loopback source addresses")
    ap.add_argument("--control", action="store_true",
                    help="the clients send no password, only requests answered 404 at once: "
                         "what a flood of the cheapest requests costs the participant")
    ap.add_argument("--nginx", action="store_true",
                    help="everyone talks HTTPS to the deploy/nginx configuration in front "
                         "of gunicorn, as in production")
    a = ap.parse_args(argv)
    if a.guessers < 0 or a.seconds <= 1 or a.rounds < 1 or a.think_ms < 0:
        ap.error("need --guessers >= 0, --seconds > 1, --rounds >= 1, --think-ms >= 0")

    import os

    tmp = Path(tempfile.mkdtemp(prefix="tll-bench-guess-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), TLL_INSTANCE=str(tmp / "instance"),
               DATABASE_URL=f"sqlite:///{tmp / 'server.sqlite3'}", TLL_ENV="production",
               SECRET_KEY="bench-secret-key-" + "x" * 32, TLL_COOKIE_SECURE="0",
               TLL_ADMIN_BASIC_AUTH="1",
               TLL_PROXIES="1" if a.many_addresses or a.nginx else "0")
    prepare_database(env, write_study(tmp / "study", TRIALS))
    import subprocess
    subprocess.run([sys.executable, "-m", "flask", "--app", "server", "admin", "set-password",
                    "--password", PASSWORD], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    if a.nginx:
        from tests.server.deploy_stack import NGINX, start_stack

        if not Path(NGINX).exists():
            raise SystemExit(f"{NGINX} not found: apt-get install nginx (or drop --nginx)")

        # gunicorn as in the default mode (deploy/gunicorn.conf.py, 2 workers x 4 threads)
        stack = start_stack(tmp, env["DATABASE_URL"], TLL_WORKERS="2", TLL_THREADS="4",
                            TLL_ADMIN_BASIC_AUTH="1", SECRET_KEY=env["SECRET_KEY"])
        port, cert, halt = stack.ports.https, str(stack.cert), stack.stop
    else:
        port, cert = free_port(), None
        server = gunicorn(env, "server:create_app()", port, 4)
        halt = lambda: stop(server)  # noqa: E731
    try:
        participant = Participant(port, cert)
        for _ in range(20):  # warm-up
            participant.answer()
        runs: dict[str, list[float]] = {"without": [], "with": []}
        seen: Counter = Counter()
        for _ in range(a.rounds):
            for kind, n in (("without", 0), ("with", a.guessers)):
                lat, s = phase(port, cert, a.seconds, a.think_ms / 1000, n,
                               a.many_addresses, a.control, participant)
                runs[kind] += lat
                seen.update(s)
    finally:
        halt()
    front = ("nginx (deploy/nginx, TLS, participant from 127.0.0.2) in front of "
             if a.nginx else "")
    addresses = "one address"
    if a.many_addresses:
        addresses = (f"{len(GUESSER_ADDRESSES)} source addresses, {GUESSES_PER_CONNECTION} "
                     "guesses per connection" if a.nginx else "a new address per guess")
    print(f"{front}gunicorn (deploy/gunicorn.conf.py, 2 workers x 4 threads), SQLite, "
          f"TLL_ENV=production, {os.cpu_count()} CPUs; {a.guessers} "
          f"{'control clients (404s, no password)' if a.control else 'guessers'} "
          f"({addresses}), "
          f"{a.rounds} x {a.seconds:g} s per phase kind, think {a.think_ms:g} ms")
    med = {}
    for kind, lat in runs.items():
        lat.sort()
        med[kind] = statistics.median(lat)
        print(f"  {kind:>7} guessers: {len(lat):5d} answers, median {med[kind]:7.1f} ms, "
              f"p90 {lat[int(0.9 * (len(lat) - 1))]:7.1f} ms")
    print(f"  ratio of medians (with / without): {med['with'] / med['without']:.2f}")
    cpu, wall = seen.pop("client_cpu_s", 0.0), seen.pop("client_s", 0.0)
    print(f"  guessers' responses: {dict(sorted(seen.items(), key=str))}")
    # The clients run on the same machine: what they burn is CPU the server lacks.
    if wall:
        print(f"  the guessing clients themselves used {cpu / wall:.2f} CPUs of "
              f"{os.cpu_count()} while guessing")
    return 0


if __name__ == "__main__":
    sys.exit(main())

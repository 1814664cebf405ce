"""A simulated participant that answers through the server's real HTTP endpoints only
(no server imports), with a given accuracy and position bias. Reused by the load
benchmark (benchmarks/bench_server.py) and by `python -m analysis simulate`.

To answer with a given accuracy it needs the answer key, which it fetches from the
admin-authenticated endpoint `GET /manage/api/experiments/<name>/key` with HTTP Basic
auth (user `admin`, the password set by `flask --app server admin set-password`).

    from server.simclient import fetch_answer_key, simulate
    key = fetch_answer_key("http://127.0.0.1:5000", "demo", password="...")
    summary = simulate("http://127.0.0.1:5000", "demo", participants=20, key=key,
                       accuracy=0.8, position_bias=[0.3, 0.2, 0.2, 0.15, 0.15], seed=1)

`simulate` returns {"participants": [...codes], "answers": N, "correct": M,
"latencies_ms": [...]}. `Participant` drives one participant step by step.
"""
from __future__ import annotations

import base64
import json
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

__all__ = ["SimError", "fetch_answer_key", "choose", "Participant", "run_participant",
           "simulate"]


class SimError(RuntimeError):
    """The server answered with an error (status and reason in the message)."""


def _request(url: str, method: str = "GET", body: dict | None = None,
             headers: dict | None = None, timeout: float = 30.0) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            payload = json.loads(e.read() or b"{}")
        except ValueError:
            payload = {}
        raise SimError(f"{method} {url}: HTTP {e.code}: {payload.get('error', e.reason)}") from None


def fetch_answer_key(base_url: str, experiment: str, password: str,
                     username: str = "admin") -> dict[str, int]:
    """Return {trial fingerprint: true 0-based position} for `experiment`, where the
    fingerprint is the query token and the five candidate tokens joined by '|'."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    _, payload = _request(f"{base_url.rstrip('/')}/manage/api/experiments/{experiment}/key",
                          headers={"Authorization": f"Basic {auth}"})
    return {"|".join([t["query"], *t["candidates"]]): int(t["true_index"])
            for t in payload["trials"]}


def choose(rng: random.Random, true_index: int | None, accuracy: float,
           position_bias: list[float] | None = None) -> int:
    """Return a 0-based choice: the true position with probability `accuracy`, otherwise
    a wrong position drawn with weights `position_bias` (uniform when None). Without a
    known true position the choice is drawn from `position_bias` alone."""
    weights = list(position_bias) if position_bias else [1.0] * 5
    if len(weights) != 5 or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("position_bias must be five non-negative weights")
    if true_index is None:
        return rng.choices(range(5), weights=weights)[0]
    if rng.random() < accuracy:
        return true_index
    others = [i for i in range(5) if i != true_index]
    w = [weights[i] for i in others]
    if sum(w) <= 0:
        w = [1.0] * 4
    return rng.choices(others, weights=w)[0]


class Participant:
    """One simulated participant of `experiment` on the server at `base_url`."""

    def __init__(self, base_url: str, experiment: str, code: str | None = None,
                 population: str = "simulated", timeout: float = 30.0):
        self.base = base_url.rstrip("/")
        self.experiment = experiment
        self.timeout = timeout
        body = {"consent": True, "population": population}
        if code:
            body["code"] = code
        _, payload = _request(f"{self.base}/api/v1/experiments/{experiment}/participants",
                              "POST", body, timeout=timeout)
        self.token = payload["participant"]
        self.code = payload["code"]
        self.total = payload["total"]

    def next_trial(self) -> dict | None:
        """Return the next unanswered trial (`n`, `query`, `candidates`...) or None."""
        _, payload = _request(f"{self.base}/api/v1/participants/{self.token}/next",
                              timeout=self.timeout)
        return None if payload.get("done") else payload["trial"]

    def answer(self, n: int, choice: int, rt_ms: float | None = None) -> dict:
        """Send one answer; return the server's JSON (`stored`, `duplicate`, `choice`...)."""
        _, payload = _request(f"{self.base}/api/v1/participants/{self.token}/answers", "POST",
                              {"n": n, "choice": choice, "rt_ms": rt_ms}, timeout=self.timeout)
        return payload


def run_participant(base_url: str, experiment: str, key: dict[str, int] | None = None,
                    accuracy: float = 0.8, position_bias: list[float] | None = None,
                    seed: int | None = None, code: str | None = None,
                    population: str = "simulated", max_trials: int | None = None,
                    latencies: list | None = None, think_ms: float = 0.0) -> dict:
    """Run one participant to the end; return {"code", "answers", "correct"}.
    `latencies` (a list) collects each answer's round-trip time in ms; `think_ms` is the
    mean time spent looking at a trial before answering (exponentially distributed)."""
    rng = random.Random(seed)
    p = Participant(base_url, experiment, code=code, population=population)
    answers = correct = 0
    while max_trials is None or answers < max_trials:
        trial = p.next_trial()
        if trial is None:
            break
        true = None if key is None else key.get("|".join([trial["query"], *trial["candidates"]]))
        c = choose(rng, true, accuracy, position_bias)
        if think_ms > 0:
            time.sleep(min(rng.expovariate(1.0 / think_ms), 10 * think_ms) / 1000)
        t0 = time.perf_counter()
        p.answer(trial["n"], c, rt_ms=round(rng.uniform(600, 3000), 1))
        if latencies is not None:
            latencies.append((time.perf_counter() - t0) * 1000)
        answers += 1
        correct += int(true is not None and c == true)
    return {"code": p.code, "answers": answers, "correct": correct}


def simulate(base_url: str, experiment: str, participants: int, key: dict[str, int] | None = None,
             password: str | None = None, accuracy: float = 0.8,
             position_bias: list[float] | None = None, seed: int = 0, concurrency: int = 1,
             population: str = "simulated", code_prefix: str = "sim",
             think_ms: float = 0.0) -> dict:
    """Run `participants` simulated participants (`concurrency` at a time); return
    {"participants": codes, "answers", "correct", "latencies_ms"}. The answer key is
    fetched with `password` when `key` is not given (needed for accuracy to mean anything)."""
    if key is None and password is not None:
        key = fetch_answer_key(base_url, experiment, password)
    if key is None and accuracy > 0:
        raise ValueError("simulate needs the answer key (key=...) or the admin password")
    lat: list[float] = []
    lock = threading.Lock()
    tag = f"{code_prefix}-{seed}-{random.Random().randrange(16**6):06x}"

    def one(i: int) -> dict:
        local: list[float] = []
        r = run_participant(base_url, experiment, key, accuracy, position_bias,
                            seed=seed * 100003 + i, code=f"{tag}-{i:05d}",
                            population=population, latencies=local, think_ms=think_ms)
        with lock:
            lat.extend(local)
        return r

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        results = list(pool.map(one, range(participants)))
    return {"participants": [r["code"] for r in results],
            "answers": sum(r["answers"] for r in results),
            "correct": sum(r["correct"] for r in results), "latencies_ms": lat}

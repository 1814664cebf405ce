"""CPU per answer inside the WSGI application, without sockets or gunicorn: the answer
requests of each path (JSON API, lab form POST, MTurk worker page) are built beforehand
and handed to `app(environ, start_response)` one after the other in this process; the
process's CPU time (user + system, fsync included) is divided by the answers. The same is
done for the floor (the trivial app of bench_server.py). Steadier than the HTTP benchmark
on a shared machine, since only this process's own CPU time counts; compare trees by
running it in each. Where other work loads the machine, CPU times still drift by tens of
per cent; the Python function calls per answer (counted by cProfile over one more play)
do not, and say whether a change removed work.

    .venv/bin/python benchmarks/bench_answer_cpu.py [--participants 20] [--trials 30]
        [--database sqlite|postgresql] [--repeat 3] [--profile N]
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_server as bs  # noqa: E402
from server.security import PARTICIPANT_COOKIE  # noqa: E402


def _environs(client, path: str, participants: int, trials: int, tag: str) -> list[dict]:
    from werkzeug.test import EnvironBuilder

    out = []
    for i in range(participants):
        code = f"{tag}-{i:04d}"
        answers = bs.answer_bodies(trials, i)
        if path == "api":
            tok = client.post("/api/v1/experiments/bench/participants",
                              json={"consent": True, "code": code, "population": "bench"}
                              ).get_json()["participant"]
            out += [EnvironBuilder(path=f"/api/v1/participants/{tok}/answers", method="POST",
                                   json={"n": n, "choice": c, "rt_ms": rt}).get_environ()
                    for n, c, rt in answers]
        elif path == "lab":
            # The lab forms carry a CSRF token (Flask-WTF) tied to the participant cookie.
            page = client.get("/lab/bench/").get_data(as_text=True)
            client.post("/lab/bench/start", data={"code": code, **bs.csrf_field(page)})
            page = client.get("/lab/bench/consent").get_data(as_text=True)
            client.post("/lab/bench/consent", data={"agree": "yes", **bs.csrf_field(page)})
            extra = bs.csrf_field(client.get("/lab/bench/trial").get_data(as_text=True))
            cookie = client.get_cookie(PARTICIPANT_COOKIE)
            if cookie is None:
                raise SystemExit("set-up: the lab flow set no participant cookie")
            out += [EnvironBuilder(path="/lab/bench/answer", method="POST",
                                   data={"n": n, "choice": c, "rt_ms": rt, **extra},
                                   headers={"Cookie": f"{PARTICIPANT_COOKIE}={cookie.value}"}
                                   ).get_environ()
                    for n, c, rt in answers]
            client.delete_cookie(PARTICIPANT_COOKIE)
        else:
            params = {"assignmentId": f"A{code}", "hitId": "BENCHHIT", "workerId": f"W{code}",
                      "turkSubmitTo": bs.SUBMIT_TO}
            page = client.get(f"/mturk/task/bench/h0001?{urlencode(params)}").get_data(as_text=True)
            action = next(a for a in re.findall(r'action="([^"]+)"', page) if "/answer?" in a)
            action = action.replace("&amp;", "&")
            p, q = action.split("?", 1)
            out += [EnvironBuilder(path=p, query_string=q, method="POST",
                                   data={"n": n, "choice": c, "rt_ms": rt}).get_environ()
                    for n, c, rt in answers]
    # The body is read once here: each play gets a fresh stream over the same bytes.
    return [(e, e["wsgi.input"].read()) for e in out]


def _play(app, environs: list[dict], expect: int) -> tuple[float, float]:
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    c0, w0 = time.process_time(), time.perf_counter()
    for env, data in environs:
        env = dict(env)
        env["wsgi.input"] = io.BytesIO(data)
        body = app(env, start_response)
        for _ in body:
            pass
        if hasattr(body, "close"):
            body.close()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    bad = [s for s in statuses if not s.startswith(str(expect))]
    if bad:
        raise SystemExit(f"unexpected replies: {bad[:3]}")
    return cpu * 1000 / len(environs), wall * 1000 / len(environs)


SORT = os.environ.get("TLL_PROFILE_SORT", "tottime")


def _profiled(app, environs: list, expect: int, top: int) -> tuple[float, str]:
    """Return (Python function calls per answer, cProfile's table of the `top` functions
    by own CPU time) over one play. The call count does not depend on the machine's
    load: it compares trees where CPU times are too noisy to."""
    import cProfile
    import pstats

    prof = cProfile.Profile(time.process_time)  # CPU, as the table above
    prof.enable()
    _play(app, environs, expect)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    calls = stats.total_calls / len(environs)
    if top:
        stats.sort_stats(SORT).print_stats(top)
    return calls, out.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--paths", nargs="+", default=["api", "lab", "mturk"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also print cProfile's top N functions (own time) of each path's "
                         "server runs (profiling inflates the CPU figures: read them apart)")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tll-cpu-"))
    pg = None
    try:
        exp = bs.write_study(tmp / "study", a.trials)
        env = dict(os.environ, PYTHONPATH=str(ROOT), TLL_INSTANCE=str(tmp / "inst"),
                   TLL_SQLITE_SYNCHRONOUS="FULL", DATABASE_URL=f"sqlite:///{tmp / 'c.sqlite3'}")
        if a.database == "postgresql":
            pg = bs.PostgresCluster()
            env["DATABASE_URL"] = pg.url
        bs.prepare_database(env, exp)
        os.environ.update({k: env[k] for k in ("TLL_INSTANCE", "TLL_SQLITE_SYNCHRONOUS",
                                               "DATABASE_URL")})
        from server import create_app

        app = create_app()
        floor = bs.trivial_app()
        client = app.test_client()
        print(f"{a.database}: CPU ms per answer in-process (wall ms), {a.participants} x "
              f"{a.trials} answers per run, {a.repeat} runs")
        profiles: dict[str, str] = {}
        print("| path | server CPU ms | floor CPU ms | server / floor | Python calls per answer "
              "(floor) |")
        print("|---|---|---|---|---|")
        for path in a.paths:
            expect = 201 if path == "api" else 303
            res, fl = [], []
            for k in range(a.repeat):
                envs = _environs(client, path, a.participants, a.trials, f"r{k}{path}")
                res.append(_play(app, envs, expect))
                fl.append(_play(floor, envs, expect))
            calls, profiles[path] = _profiled(app, _environs(client, path, a.participants,
                                                             a.trials, f"prof{path}"),
                                              expect, a.profile)
            fcalls, _ = _profiled(floor, envs, expect, 0)
            s = sorted(r[0] for r in res)
            f = sorted(r[0] for r in fl)
            print(f"| {path} | {s[0]:.3f}-{s[-1]:.3f} | {f[0]:.3f}-{f[-1]:.3f} | "
                  f"{s[0] / f[0]:.1f}-{s[-1] / f[-1]:.1f} | {calls:.0f} ({fcalls:.0f}) |")
        for path, text in profiles.items():
            if a.profile:
                print(f"\ncProfile, {path} path (own CPU time, top {a.profile}):\n{text}")
        with app.app_context():
            from server.models import db
            db.engine.dispose()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

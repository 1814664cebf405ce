"""Acceptance: the paper's MTurk study as a dry run on the local endpoint, on SQLite and
on PostgreSQL. 120 one-trial HITs x 20 assignments, Masters only, `--repeats per-hit`,
played over HTTP (the emulator's worker site and the server's real task pages, never the
database) by simulated workers who also return, abandon, get rejected, try again and are
kept out; then Table 2b counts exactly the answers of submitted (and approved)
assignments, and the report says how many answers of each kind it left out."""
from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from urllib.parse import urlencode, urlsplit, parse_qsl

import pytest
import requests

from .conftest import Worker, write_experiment

HITS, ASSIGNMENTS = int(__import__("os").environ.get("H9_HITS", 120)), 20
CREW = [f"ACREW{i:010d}" for i in range(24)]        # Masters (the endpoint's default)
EXCLUDED = ["AEXCLUDED000001", "AEXCLUDED000002"]
NOVICES = ["ANOVICE00000001"]                        # not Masters


def play_hit(stack, k: int, hit_id: str) -> dict:
    """Fill one HIT's 20 assignments; return what happened, by kind."""
    out = {"submitted": [], "returned": 0, "abandoned": 0, "refused": 0, "repeat": 0}
    if k % 10 == 0:
        # Accepts, answers, never submits: the slot stays taken until the deadline.
        w = Worker(stack, f"AABANDON{k:07d}")
        w.accept(hit_id)
        w.answer([0])
        out["abandoned"] += 1
    if k % 4 == 0:
        # Answers, then returns the HIT: the next worker gets the assignment ID.
        w = Worker(stack, f"ARETURN{k:08d}")
        w.accept(hit_id)
        w.answer([1])
        w.give_back()
        out["returned"] += 1
    for wid in EXCLUDED + NOVICES:                   # never allowed to accept
        r = requests.post(f"{stack.em}/worker/hits/{hit_id}/accept", json={"workerId": wid},
                          headers={"Accept": "application/json"}, timeout=10)
        assert r.status_code == 403, r.text
        out["refused"] += 1
    free = ASSIGNMENTS - (k % 10 == 0)
    for j in range(free):
        w = Worker(stack, CREW[(k + j) % len(CREW)])
        w.accept(hit_id)
        page = w.answer([(k + j) % 5])
        assert w.submit(page).status_code == 200
        out["submitted"].append(w.assignment["assignmentId"])
        if j == 0 and k % 6 == 0:
            # The same worker again: MTurk refuses a second assignment of the HIT, and a
            # crafted task URL with another assignment ID is refused by the database.
            r = requests.post(f"{stack.em}/worker/hits/{hit_id}/accept",
                              json={"workerId": w.worker_id},
                              headers={"Accept": "application/json"}, timeout=10)
            assert r.status_code == 409
            url = urlsplit(w.assignment["taskUrl"])
            q = dict(parse_qsl(url.query), assignmentId=f"3FORGED{k:023d}")
            forged = w.http.get(url._replace(query=urlencode(q)).geturl(), timeout=10)
            assert forged.status_code == 409 and "already taken part" in forged.text
            out["repeat"] += 1
    return out


def run_study(stack, tmp_path, clock) -> None:
    stack.load(write_experiment(tmp_path / "study", [1] * HITS, name="paper"), "paper",
               repeats="per-hit")
    for wid in NOVICES:
        requests.post(f"{stack.em}/_emulator/workers/{wid}", json={"masters": False},
                      timeout=10).raise_for_status()
    excluded = tmp_path / "excluded.txt"
    excluded.write_text("\n".join(EXCLUDED) + "\n")
    out = stack.ok("publish", "paper", "--base-url", stack.server_url, "--reward", "0.05",
                   "--assignments", str(ASSIGNMENTS), "--masters", "--duration", "1h",
                   "--exclude-workers", str(excluded))
    assert f"Published {HITS} HITs." in out
    ids = stack.hit_ids("paper")
    keys = sorted(ids)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda kk: play_hit(stack, kk[0], ids[kk[1]]),
                                enumerate(keys)))
    submitted = [a for r in results for a in r["submitted"]]
    returned = sum(r["returned"] for r in results)
    abandoned = sum(r["abandoned"] for r in results)
    assert len(submitted) == HITS * ASSIGNMENTS - abandoned
    assert sum(r["repeat"] for r in results) == HITS // 6
    assert sum(r["refused"] for r in results) == HITS * 3
    # The requester rejects one submitted assignment in 8 HITs and approves the rest.
    rejected = [results[k]["submitted"][0] for k in range(3, HITS, 8)]
    stack.ok("reject", "paper", *rejected, "--feedback", "answered without looking", "--yes")
    stack.ok("approve", "paper", "--all-submitted")
    clock[0] += 2 * 3600                            # the abandoned ones run out of time
    out = stack.ok("sync", "paper")
    assert "0 mismatch(es)" in out
    expected = {"approved": len(submitted) - len(rejected), "rejected": len(rejected),
                "returned": returned, "abandoned": abandoned}
    line = next(ln for ln in out.splitlines() if ln.startswith("Participants:"))
    assert line == "Participants: " + ", ".join(
        f"{n} {s}" for s, n in sorted(expected.items())) + "."
    return expected


def counted_by_analysis(url: str, out_dir) -> tuple[str, dict]:
    """Table 2b through `python -m analysis accuracy`, and the report's counting.csv."""
    from analysis.cli import main
    text = io.StringIO()
    with redirect_stdout(text):
        assert main(["accuracy", "--db", url, "--experiment", "paper",
                     "--environment", "local-sandbox"]) == 0
        assert main(["report", "--db", url, "--experiment", "paper",
                     "--environment", "local-sandbox", "--out", str(out_dir)]) == 0
    rows = list(csv.DictReader((out_dir / "counting.csv").open()))
    by_status = {}
    for r in rows:
        by_status[r["submission_status"]] = (int(r["answers"]), r["decision"])
    return text.getvalue(), by_status


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_paper_sized_dry_run(stack_factory, tmp_path, backend, request):
    import time
    clock = [time.time()]
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    stack = stack_factory(database_url=url, clock=lambda: clock[0])
    expected = run_study(stack, tmp_path, clock)
    db_url = url or stack.app.config["SQLALCHEMY_DATABASE_URI"]
    text, by_status = counted_by_analysis(db_url, tmp_path / "report")
    counted = expected["approved"]                 # one answer per assignment
    assert f"counted {counted} of {sum(expected.values())} answers" in text
    assert f"excluded {expected['rejected'] + expected['returned'] + expected['abandoned']} " \
           "answer(s): its submission status is not counted" in text
    assert by_status == {
        "approved": (counted, "counted"),
        "rejected": (expected["rejected"], "excluded: status"),
        "returned": (expected["returned"], "excluded: status"),
        "abandoned": (expected["abandoned"], "excluded: status")}
    # Table 2b: the MTurk row holds exactly the counted answers.
    table = [ln for ln in text.splitlines() if ln.lstrip().startswith("mturk")]
    assert table and str(counted) in " ".join(table) or f"n={counted}" in text
    html = (tmp_path / "report" / "report.html").read_text()
    assert f"counted {counted} of {sum(expected.values())} answers" in html
    for status in ("rejected", "returned", "abandoned"):
        assert status in html

"""Acceptance: the paper's MTurk study as a dry run on the local endpoint, on SQLite and
on PostgreSQL. 120 one-trial HITs x 20 assignments, Masters only, `--repeats per-hit`,
played through the real pages (the emulator's worker site and the server's task pages,
through Flask test clients; never the database; the requester's commands and boto3 over
HTTP) by simulated workers who also return, abandon, get rejected, try again and are
kept out; then Table 2b counts exactly the answers of submitted (and approved)
assignments, and the report says how many answers of each kind it left out."""
from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from .conftest import forms, write_experiment

HITS, ASSIGNMENTS = 120, 20
CREW = [f"ACREW{i:010d}" for i in range(24)]        # Masters (the endpoint's default)
EXCLUDED = ["AEXCLUDED000001", "AEXCLUDED000002"]
NOVICES = ["ANOVICE00000001"]                        # not Masters


class Player:
    """One worker on one HIT, driven through Flask test clients of the two real apps (the
    emulator's worker site and the server's task pages): the same requests and pages as
    over a socket, without the socket's cost, so that 2,400 assignments stay quick."""

    def __init__(self, stack, worker_id: str):
        self.stack, self.worker_id = stack, worker_id
        self.em = stack.emulator.app.test_client()
        self.server = stack.app.test_client()
        self.assignment = None

    def accept(self, hit_id: str):
        return self.em.post(f"/worker/hits/{hit_id}/accept", json={"workerId": self.worker_id},
                            headers={"Accept": "application/json"})

    def take(self, hit_id: str) -> Player:
        r = self.accept(hit_id)
        assert r.status_code == 201, r.get_data(as_text=True)
        self.assignment = r.get_json()
        return self

    def open(self, **override):
        url = urlsplit(self.assignment["taskUrl"])
        assert f"{url.scheme}://{url.netloc}" == self.stack.server_url
        query = urlencode({**dict(parse_qsl(url.query)), **override})
        return self.server.get(f"{url.path}?{query}")

    def answer(self, choice: int) -> str:
        page = self.open()
        assert page.status_code == 200, page.get_data(as_text=True)
        action, fields = forms(page.get_data(as_text=True))["trial-form"]
        page = self.server.post(action, data={"n": fields["n"], "choice": str(choice),
                                              "trial_token": fields["trial_token"],
                                              "rt_ms": "800"}, follow_redirects=True)
        assert page.status_code == 200
        return page.get_data(as_text=True)

    def submit(self, page: str) -> None:
        action, fields = forms(page)["submit-form"]
        assert action == self.stack.em + "/mturk/externalSubmit"
        r = self.em.post("/mturk/externalSubmit", data=fields,
                         headers={"Accept": "application/json"})
        assert r.status_code == 200, r.get_data(as_text=True)

    def give_back(self) -> None:
        r = self.em.post(f"/worker/assignments/{self.assignment['assignmentId']}/return",
                         headers={"Accept": "application/json"})
        assert r.status_code == 200


def play_hit(stack, k: int, hit_id: str) -> dict:
    """Fill one HIT's 20 assignments; return what happened, by kind."""
    out = {"submitted": [], "returned": 0, "abandoned": 0, "refused": 0, "repeat": 0}
    if k % 10 == 0:
        # Accepts, answers, never submits: the slot stays taken until the deadline.
        Player(stack, f"AABANDON{k:07d}").take(hit_id).answer(0)
        out["abandoned"] += 1
    if k % 4 == 0:
        # Answers, then returns the HIT: the next worker gets the assignment ID.
        w = Player(stack, f"ARETURN{k:08d}").take(hit_id)
        w.answer(1)
        w.give_back()
        out["returned"] += 1
    for wid in EXCLUDED + NOVICES:                   # never allowed to accept
        r = Player(stack, wid).accept(hit_id)
        assert r.status_code == 403, r.get_data(as_text=True)
        out["refused"] += 1
    free = ASSIGNMENTS - (k % 10 == 0)
    for j in range(free):
        w = Player(stack, CREW[(k + j) % len(CREW)]).take(hit_id)
        choice = (k + j) % 5                        # trial k's match is at k % 5
        w.submit(w.answer(choice))
        out["submitted"].append((w.assignment["assignmentId"], choice == k % 5))
        if j == 0 and k % 6 == 0:
            # The same worker again: MTurk refuses a second assignment of the HIT, and a
            # crafted task URL with another assignment ID is refused by the database.
            assert w.accept(hit_id).status_code == 409
            forged = w.open(assignmentId=f"3FORGED{k:023d}")
            assert forged.status_code == 409
            assert "already taken part" in forged.get_data(as_text=True)
            out["repeat"] += 1
    return out


def run_study(stack, tmp_path, clock) -> None:
    stack.load(write_experiment(tmp_path / "study", [1] * HITS, name="paper"), "paper",
               repeats="per-hit")
    # turkSubmitTo as workers reach the site (the test clients have no host of their own).
    stack.emulator.app.config["PUBLIC_URL"] = stack.em
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
    submitted = [a for r in results for a, _ in r["submitted"]]
    returned = sum(r["returned"] for r in results)
    abandoned = sum(r["abandoned"] for r in results)
    assert len(submitted) == HITS * ASSIGNMENTS - abandoned
    assert sum(r["repeat"] for r in results) == HITS // 6
    assert sum(r["refused"] for r in results) == HITS * 3
    # The requester rejects one submitted assignment in 8 HITs and approves the rest.
    rejected = [results[k]["submitted"][0][0] for k in range(3, HITS, 8)]
    stack.ok("reject", "paper", *rejected, "--feedback", "answered without looking", "--yes")
    stack.ok("approve", "paper", "--all-submitted")
    clock[0] += 2 * 3600                            # the abandoned ones run out of time
    out = stack.ok("sync", "paper")
    assert "0 mismatch(es)" in out
    expected = {"approved": len(submitted) - len(rejected), "rejected": len(rejected),
                "returned": returned, "abandoned": abandoned}
    expected["correct"] = sum(ok for r in results for a, ok in r["submitted"]
                              if a not in set(rejected))
    line = next(ln for ln in out.splitlines() if ln.startswith("Participants:"))
    assert line == "Participants: " + ", ".join(
        f"{n} {s}" for s, n in sorted(expected.items()) if s != "correct") + "."
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
    correct = expected.pop("correct")
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
    # Table 2b: the MTurk row holds exactly the counted answers, and exactly the right
    # ones (each worker's choice is known: correct when it was the match's position).
    from analysis.accuracy import POOLED, accuracy_long
    from analysis.load import load_answers
    answers = load_answers(db=db_url, experiment="paper", environments=["local-sandbox"])
    long = accuracy_long(answers.without_catch())
    pooled = long[(long["row"] == "mturk") & (long["subset"] == POOLED[0])].iloc[0]
    assert (pooled["n"], pooled["correct"]) == (counted, correct)
    assert f"n={counted}" in text
    html = (tmp_path / "report" / "report.html").read_text()
    assert f"counted {counted} of {sum(expected.values())} answers" in html
    for status in ("rejected", "returned", "abandoned"):
        assert status in html

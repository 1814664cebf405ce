"""Acceptance: a Prolific study as a dry run on the local endpoint, end to end. Publish
(20 places, a second completion code for failed catch trials), 20 simulated participants
sent by the endpoint's participant site to the study URL (three through Chromium, the
rest by plain HTTP through the server's real pages): most finish, two fail the catch
trial, two return the study, two time out; then sync, review, approve one by id and the
rest in bulk with --passed-catch, reject those who failed with Prolific's category and
message, pay a bonus once; and the analysis counts exactly the answers of the approved
submissions, leaving out the rejected, returned and timed-out ones with the reason."""
from __future__ import annotations

import pytest
import requests

from tests.server.conftest import walk_study

from .conftest import FAKE_TOKEN, Participant, write_experiment

TRIALS = 4                     # the last one a catch trial; trial n's match at (n-1) % 5
RIGHT = [0, 1, 2, 3]           # every answer right (the catch trial's included)
FAILS_CATCH = [0, 1, 2, 0]     # the catch trial answered wrongly
MESSAGE = ("Your submission answered the attention check wrongly: the picture identical to "
           "the one on the left was shown among the five and another one was chosen.")


def in_chromium(browser, stack, study_id: str, pid: str, shots) -> None:
    """One participant through Chromium: Take part on the endpoint's page, consent,
    practice, four trials by keyboard, the exit link back to Prolific."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = ctx.new_page()
    try:
        page.goto(f"{stack.em}/")
        study = page.locator(f'li.study[data-study="{study_id}"]')
        study.locator('input[name="participant_id"]').fill(pid)
        study.locator("button.take-part").click()
        page.wait_for_url("**/lab/exp/consent")
        walk_study(page, [str(c + 1) for c in RIGHT])
        code = page.inner_text("#completion-code")
        assert code.startswith("C")
        if shots is not None:
            page.screenshot(path=str(shots / "prolific-done.png"))
        page.click("#exit-link")
        page.wait_for_selector("#submission-status")
        assert page.inner_text("#message-title") == "Submission completed"
        assert page.inner_text("#submission-status") == "AWAITING REVIEW"
        assert f"cc={code}" in page.url
    finally:
        ctx.close()


def over_http(stack, study_id: str, pid: str, choices, then: str) -> Participant:
    """One participant by plain HTTP; `then`: finish (follow the exit link), return
    (give the study back on Prolific) or leave (never come back: times out)."""
    p = Participant(stack, pid)
    page = p.answer(p.consent(p.start(study_id)), choices)
    if then == "finish":
        import re
        link = re.search(r'id="exit-link" href="([^"]+)"', page.text).group(1)
        import html
        r = p.http.get(html.unescape(link), headers={"Accept": "application/json"}, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "AWAITING REVIEW", r.text
    elif then == "return":
        assert p.give_back().status_code == 200
    return p


@pytest.mark.browser
def test_prolific_dry_run(stack_factory, clock, browser, artifacts_dir, tmp_path):
    stack = stack_factory(clock=lambda: clock[0])
    stack.load(write_experiment(tmp_path / "study", [TRIALS], catch_last=True), "exp",
               repeats="none")
    out = stack.ok("publish", "exp", "--base-url", stack.server_url, "--reward", "1.50",
                   "--places", "20", "--max-minutes", "30", "--screen-failed-catch")
    assert "Cost: 20 places x 1.50 = 30.00 rewards + 9.99 service fee" in out
    sid = stack.study_id()
    shots = artifacts_dir / "prolific"
    shots.mkdir(exist_ok=True)

    for k in range(3):
        in_chromium(browser, stack, sid, f"PCHROME{k}", shots if k == 0 else None)
    plan = ([(f"PDONE{k:02d}", RIGHT, "finish") for k in range(11)]
            + [(f"PCATCH{k}", FAILS_CATCH, "finish") for k in range(2)]
            + [(f"PRETURN{k}", RIGHT[:1], "return") for k in range(2)]
            + [(f"PSLOW{k}", RIGHT[:2], "leave") for k in range(2)])
    people = {pid: over_http(stack, sid, pid, choices, then) for pid, choices, then in plan}
    assert len(people) + 3 == 20
    clock[0] += 31 * 60                       # past the maximum time: the slow ones time out

    out = stack.ok("sync", "exp")
    assert "0 mismatch(es)." in out
    assert "Participants: 16 awaiting-review, 2 returned, 2 timed-out." in out

    # A returned participant's later answers are refused: they would never count.
    gone = people["PRETURN0"]
    page = gone.http.get(f"{stack.server_url}/lab/exp/trial", timeout=10)
    from .conftest import forms
    action, fields = forms(page.text)["trial-form"]
    r = gone.http.post(stack.server_url + action, timeout=10, data={
        "n": fields["n"], "choice": "1", "csrf_token": fields["csrf_token"],
        "trial_token": fields["trial_token"]})
    assert r.status_code == 409 and "closed (status returned)" in r.text

    out = stack.ok("review", "exp")
    assert "16 submission(s)." in out
    assert out.count("catch 0/1") == 2 and out.count("catch 1/1") == 14

    single = people["PDONE00"].submission
    assert f"{single}: approved" in stack.ok("approve", "exp", single)
    out = stack.ok("approve", "exp", "--passed-catch")
    assert "13 submission(s) approved." in out
    assert people["PCATCH0"].submission not in out
    res = stack.cli("reject", "exp", "--failed-catch", "--category", "FAILED_CHECK",
                    "--message", MESSAGE, "--yes")
    assert res.exit_code == 0, res.output
    assert "2 of 2 submission(s) rejected." in res.output

    lucky = people["PDONE01"].submission
    assert "bonus 0.50 paid" in stack.ok("bonus", "exp", lucky, "--amount", "0.50")
    again = stack.cli("bonus", "exp", lucky, "--amount", "0.50")
    assert again.exit_code == 2 and "already has a bonus" in again.output
    assert FAKE_TOKEN not in again.output

    state = requests.get(f"{stack.em}/_emulator/state", timeout=10).json()
    assert [p["participant_id"] for p in state["payments"]] == ["PDONE01"]
    by_status = {}
    for s in state["submissions"]:
        by_status[s["status"]] = by_status.get(s["status"], 0) + 1
    assert by_status == {"APPROVED": 14, "REJECTED": 2, "RETURNED": 2, "TIMED-OUT": 2}
    rejected = [s for s in state["submissions"] if s["status"] == "REJECTED"]
    assert {s["participant_id"] for s in rejected} == {"PCATCH0", "PCATCH1"}
    assert all(s["rejection"]["category"] == "FAILED_CHECK" for s in rejected)
    assert {s["study_code"] for s in rejected} == {
        c["code"] for c in state["studies"][0]["completion_codes"]
        if c["code_type"] == "FAILED_ATTENTION_CHECK"}

    out = stack.ok("sync", "exp")
    assert "Participants: 14 approved, 2 rejected, 2 returned, 2 timed-out." in out

    from analysis.load import load_answers
    url = stack.app.config["SQLALCHEMY_DATABASE_URI"]
    answers = load_answers(db=url, experiment="exp", environments=["local-sandbox"])
    counting = answers.counting
    assert counting.total == 16 * TRIALS + 2 * 1 + 2 * 2
    assert counting.counted == 14 * TRIALS == len(answers.df)
    assert counting.excluded["status"] == 2 * TRIALS + 2 + 4
    assert set(answers.df["submission_status"]) == {"approved"}
    # Without naming the rehearsal environment nothing of a dry run counts.
    assert load_answers(db=url, experiment="exp").counting.counted == 0

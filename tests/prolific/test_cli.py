"""`flask prolific ...`: bad input gives one clear line and exit 2 (a Prolific refusal:
exit 1), never a traceback, and the token is never printed; publishing is idempotent (an
interrupted publish is finished by rerunning it, never with a second study); the study
URL lets in only participants of this experiment's study, once each."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from .conftest import FAKE_TOKEN, Participant, write_experiment


def refused(res, code: int, *words: str) -> str:
    out = res.output
    assert res.exit_code == code, out
    assert "Traceback" not in out and res.exception is None or isinstance(res.exception, SystemExit)
    assert FAKE_TOKEN not in out
    for w in words:
        assert w in out, out
    return out


def test_bad_input_is_one_line_and_exit_2(stack, tmp_path, monkeypatch):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp")
    refused(stack.cli("publish", "nosuch", "--base-url", stack.server_url, "--reward", "1"),
            2, "unknown experiment 'nosuch'")
    refused(stack.cli("publish", "exp", "--base-url", stack.server_url, "--reward", "-1"),
            2, "positive amount")
    refused(stack.cli("publish", "exp", "--reward", "1.50"), 2, "--base-url")
    refused(stack.cli("publish", "exp", "--base-url", stack.server_url, "--reward", "1.50",
                      "--fee-rate", "lots"), 2, "--fee-rate")
    (tmp_path / "f.json").write_text("{not json")
    refused(stack.cli("publish", "exp", "--base-url", stack.server_url, "--reward", "1.50",
                      "--filters", str(tmp_path / "f.json")), 2, "filters file")
    refused(stack.cli("status", "exp"), 2, "no Prolific study", "prolific publish")
    refused(stack.cli("approve", "exp"), 2, "no Prolific study")
    refused(stack.cli("reject", "exp", "X1", "--category", "LOW_EFFORT", "--message", "short"),
            2, "at least 100 characters")
    refused(stack.cli("reject", "exp", "X1", "--category", "GRUMPY", "--message", "x" * 100), 2)
    refused(stack.cli("review", "exp", "--status", "DONE"), 2, "unknown status")
    # The minimum hourly rate is Prolific's rule: its refusal comes back as exit 1.
    refused(stack.cli("publish", "exp", "--base-url", stack.server_url, "--reward", "0.01",
                      "--minutes", "30"), 1, "400", "minimum")
    assert requests.get(f"{stack.em}/_emulator/state", timeout=10).json()["studies"] == []


def test_the_token_comes_from_the_environment_or_a_file_and_is_never_printed(stack, tmp_path,
                                                                              monkeypatch):
    monkeypatch.delenv("PROLIFIC_TOKEN")
    refused(stack.cli("balance"), 2, "PROLIFIC_TOKEN")
    refused(stack.cli("balance", "--token-file", str(tmp_path / "none")), 2, "cannot read")
    (tmp_path / "bad").write_text("two words\n")
    refused(stack.cli("balance", "--token-file", str(tmp_path / "bad")), 2, "not usable")
    (tmp_path / "wrong").write_text("WrongToken123\n")
    out = refused(stack.cli("balance", "--token-file", str(tmp_path / "wrong")), 1, "401")
    assert "WrongToken123" not in out
    (tmp_path / "token").write_text(FAKE_TOKEN + "\n")
    out = stack.ok("balance", "--token-file", str(tmp_path / "token"))
    assert "available balance 10000.00 GBP" in out
    monkeypatch.setenv("PROLIFIC_TOKEN", FAKE_TOKEN)
    refused(stack.runner.invoke(args=["prolific", "balance", "--api-url", "ftp://x"]), 2, "http")
    # Production needs https; nothing is sent (so no token leaves) to a plain-http remote.
    refused(stack.runner.invoke(args=["prolific", "balance", "--api-url",
                                      "http://api.example.org"]), 2, "https")


def test_dry_run_prints_the_study_and_cost_and_creates_nothing(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [6]), "exp")
    out = stack.publish("exp", "--dry-run", "--screen-failed-catch")
    assert "Cost: 5 places x 1.50 = 7.50 rewards + 2.50 service fee (33.3 %) = 10.00" in out
    assert "5 places, 3 min estimated, desktop only" in out     # 6 x 8 s + 120 s reading
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}" in out
    assert "failed catch trial F" in out and "Dry run: nothing was created." in out
    assert stack.state()["studies"] == []


def test_the_study_has_the_experiment_settings(stack, tmp_path):
    import json
    stack.load(write_experiment(tmp_path / "s", [2]), "exp", seconds_per_trial=90.0)
    (tmp_path / "filters.json").write_text(json.dumps(
        [{"filter_id": "approval_rate", "selected_range": {"lower": 95, "upper": 100}}]))
    stack.publish("exp", "--screen-failed-catch", "--filters", str(tmp_path / "filters.json"))
    (study,) = stack.state()["studies"]
    assert study["estimated_completion_time"] == 5     # ceil((2 x 90 s + 120 s reading) / 60)
    assert study["device_compatibility"] == ["desktop"]
    assert study["filters"][0]["filter_id"] == "approval_rate"
    assert [c["code_type"] for c in study["completion_codes"]] == ["COMPLETED",
                                                                   "FAILED_ATTENTION_CHECK"]
    assert study["reward"] == 150 and study["total_available_places"] == 5
    assert study["status"] == "ACTIVE"


def test_a_publish_whose_answer_was_lost_is_finished_by_rerunning(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp")
    requests.post(f"{stack.em}/_emulator/faults", timeout=10,
                  json={"path": "/api/v1/studies/", "method": "POST", "when": "after"})
    refused(stack.cli("publish", "exp", "--base-url", stack.server_url, "--reward", "1.50"),
            1, "503")
    (study,) = stack.state()["studies"]                          # created, answer lost
    assert study["status"] == "UNPUBLISHED"
    out = stack.publish("exp")
    assert f"Found study {study['id']} created by an interrupted run." in out
    assert f"Published study {study['id']}." in out
    (again,) = stack.state()["studies"]
    assert again["status"] == "ACTIVE"
    out = stack.publish("exp", "--screen-failed-catch")          # once more: nothing new,
    assert "already published (ACTIVE)" in out                   # and the codes it has
    assert "failed catch trial" not in out
    assert len(stack.state()["studies"]) == 1


def test_reads_are_retried_and_a_failed_transition_is_finished_by_rerunning(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp")
    # A read that fails once (503) is retried by the client: publish goes through.
    requests.post(f"{stack.em}/_emulator/faults", timeout=10,
                  json={"path": "/api/v1/studies/", "method": "GET", "when": "before"})
    assert "Created study" in stack.publish("exp")
    sid = stack.study_id()
    stack.ok("pause", "exp")
    # A transition is never retried blindly: it fails, and the rerun finishes it.
    requests.post(f"{stack.em}/_emulator/faults", timeout=10, json={
        "path": f"/api/v1/studies/{sid}/transition/", "method": "POST", "when": "before"})
    refused(stack.cli("resume", "exp"), 1, "503")
    assert stack.state()["studies"][0]["status"] == "PAUSED"
    assert "resumed: ACTIVE" in stack.ok("resume", "exp")
    assert len(stack.state()["studies"]) == 1


def test_a_draft_whose_publish_failed_is_published_by_the_rerun(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp")
    requests.post(f"{stack.em}/_emulator/faults", timeout=10, json={
        "path": "/api/v1/studies/", "method": "POST", "when": "after"})
    stack.cli("publish", "exp", "--base-url", stack.server_url, "--reward", "1.50")
    sid = stack.study_id()
    requests.post(f"{stack.em}/_emulator/faults", timeout=10, json={
        "path": f"/api/v1/studies/{sid}/transition/", "method": "POST", "when": "before"})
    refused(stack.cli("publish", "exp", "--base-url", stack.server_url, "--reward", "1.50"),
            1, "503")
    assert stack.state()["studies"][0]["status"] == "UNPUBLISHED"
    assert f"Published study {sid}." in stack.publish("exp")
    assert [s["status"] for s in stack.state()["studies"]] == ["ACTIVE"]


def test_the_study_life_from_the_commands(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp")
    stack.publish("exp")
    assert "paused: PAUSED" in stack.ok("pause", "exp")
    assert "resumed: ACTIVE" in stack.ok("resume", "exp")
    refused(stack.cli("delete", "exp"), 1, "Only unpublished studies")
    assert "stopped: AWAITING REVIEW" in stack.ok("stop", "exp")
    assert "AWAITING REVIEW, 5 places" in stack.ok("status", "exp")


def test_the_study_url_admits_only_this_experiments_study_once_per_person(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp", repeats="none")
    stack.publish("exp")
    sid = stack.study_id()
    http = requests.Session()
    base = f"{stack.server_url}/lab/exp/via/prolific"
    r = http.get(base, params={"PROLIFIC_PID": "P1", "STUDY_ID": sid}, timeout=10)
    assert r.status_code == 400 and "SESSION_ID" in r.text
    r = http.get(base, params={"PROLIFIC_PID": "P1", "STUDY_ID": "0" * 24,
                               "SESSION_ID": "S1"}, timeout=10)
    assert r.status_code == 400 and "not for a Prolific study of this experiment" in r.text
    r = http.get(base, params={"PROLIFIC_PID": "P<1>", "STUDY_ID": sid, "SESSION_ID": "S1"},
                 timeout=10)
    assert r.status_code == 400
    p = Participant(stack, "PONCE")
    page = p.answer(p.consent(p.start(sid)), [0, 1])
    assert "completion-code" in page.text
    # The same person by a second session of the study is refused (repeat policy).
    r = p.http.get(base, params={"PROLIFIC_PID": "PONCE", "STUDY_ID": sid,
                                 "SESSION_ID": "OTHERSESSION1"}, timeout=10)
    assert r.status_code == 409 and "already taken part" in r.text
    # The same session's link again (the tab was closed before the exit link): the
    # completion page with the same code, no second participant.
    again = requests.get(base, params={"PROLIFIC_PID": "PONCE", "STUDY_ID": sid,
                                       "SESSION_ID": p.submission}, timeout=10)
    assert again.status_code == 200 and "completion-code" in again.text
    code = page.text.split('id="completion-code">')[1].split("<")[0]
    assert f'id="completion-code">{code}<' in again.text


def test_emulate_listens_on_this_machine_only(stack):
    res = stack.runner.invoke(args=["prolific", "emulate", "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "this machine only" in res.output
    res = stack.runner.invoke(args=["prolific", "emulate", "--balance", "lots"])
    assert res.exit_code == 2 and "not an amount" in res.output


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_emulate_serves_from_the_command_line_until_stopped(tmp_path, stop_signal):
    """The README's dry run: `flask --app server prolific emulate --port N` with the
    local token, then requester commands with PROLIFIC_API_URL; Ctrl-C or SIGTERM stops
    the endpoint with exit 0."""
    from tests import cli_serving
    from tests.conftest import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(cli_serving.ROOT), PROLIFIC_TOKEN="local-emulator-token",
               TLL_INSTANCE=str(tmp_path / "instance"),
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    log = open(tmp_path / "emulate.log", "w+")
    proc = cli_serving.start(["prolific", "emulate", "--port", str(port)], url + "/", env, log)
    try:
        res = subprocess.run([sys.executable, "-m", "flask", "--app", "server", "prolific",
                              "balance"], cwd=cli_serving.ROOT, env={**env, "PROLIFIC_API_URL": url},
                             capture_output=True, text=True, timeout=60)
        assert proc.poll() is None
    finally:
        status = cli_serving.stop(proc, stop_signal)
    log.seek(0)
    out = log.read()
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"({url}): available balance 10000.00 GBP" in res.stdout
    assert status == 0, out
    assert "Traceback" not in out and "Ignoring a call" not in out
    assert f"Local Prolific on {url}/" in out
    assert '"GET /api/v1/' in out  # the balance call was served by this process


def test_prolific_is_a_registered_link_platform_with_its_statuses():
    import provenance
    from analysis.counting import DEFAULTS
    from server import recruitment

    p = recruitment.platform("prolific")
    assert p.link_entry
    assert all(recruitment.supports(p, op) for op in recruitment.REQUESTER_OPERATIONS)
    assert p.statuses[0] == "active"
    assert p.closed_statuses == {"returned", "timed-out"}
    assert provenance.PLATFORMS["prolific"].environments == ("local-sandbox", "production")
    assert DEFAULTS["prolific"] == {"environments": ("production",),
                                    "statuses": ("awaiting-review", "approved")}
    from server.recruitment.prolific import shapes
    assert set(shapes.SUBMISSION_STATUSES.values()) == set(p.statuses)


@pytest.mark.postgres
def test_participants_sync_and_approval_on_postgresql(stack_factory, postgres_url, tmp_path):
    stack = stack_factory(database_url=postgres_url)
    stack.load(write_experiment(tmp_path / "s", [2]), "pgexp")
    stack.publish("pgexp")
    sid = stack.study_id()
    p = Participant(stack, "PPG1")
    page = p.answer(p.consent(p.start(sid)), [0, 1])
    import html
    import re
    link = html.unescape(re.search(r'id="exit-link" href="([^"]+)"', page.text).group(1))
    assert p.http.get(link, timeout=10).status_code == 200
    assert "Participants: 1 awaiting-review." in stack.ok("sync", "pgexp")
    assert "1 submission(s) approved." in stack.ok("approve", "pgexp", "--all")
    assert "Participants: 1 approved." in stack.ok("sync", "pgexp")

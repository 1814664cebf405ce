"""The requester commands against the local endpoint: the paper's layout at full size
(publish, status, pagination), retried publishes, the production guard, funds,
throttling, bad input, credentials kept out of every output, and the real
`flask --app server mturk ...` entry points in subprocesses."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete, func, select

from server.models import Hit, db

from .conftest import FAKE_KEY_ID, FAKE_SECRET, Worker, write_experiment

ROOT = Path(__file__).resolve().parents[2]


def hits_in_db(stack) -> int:
    with stack.app.app_context():
        return db.session.execute(select(func.count(Hit.id))).scalar_one()


def hits_on_mturk(stack) -> int:
    return len(stack.emulator.state.list_hits())


def inject(stack, operation, times=1, **kw):
    r = requests.post(stack.em + "/_emulator/faults",
                      json={"operation": operation, "times": times, **kw}, timeout=10)
    assert r.status_code == 200


def test_paper_layout_publish_status_and_pagination(stack, tmp_path):
    # The paper: 120 one-trial HITs x 20 assignments, $0.05, Masters only.
    path = write_experiment(tmp_path / "study", [1] * 120, name="paper")
    stack.load(path, "paper")
    out = stack.ok("publish", "paper", "--base-url", stack.server_url, "--reward", "0.05",
                   "--assignments", "20", "--masters")
    assert "HITs: 120 x 20 assignments = 2400 assignments (Masters)" in out
    assert "Rewards: 2400 x $0.05 = $120.00" in out
    assert "MTurk fee: 45 % per assignment = $0.0225 x 2400 = $54.00" in out
    assert "Total: $174.00" in out and "Published 120 HITs." in out
    assert hits_on_mturk(stack) == 120 and hits_in_db(stack) == 120
    hit = stack.emulator.state.hits[stack.hit_ids("paper")["h0077"]]
    assert hit.max_assignments == 20 and hit.reward == "0.05"
    assert hit.external_url == f"{stack.server_url}/mturk/task/paper/h0077"
    assert hit.qualification_requirements[0]["QualificationTypeId"] == \
        "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"  # sandbox Masters
    # Two workers on one HIT, then status walks every page of ListHITs.
    for choice in (0, 3):
        w = Worker(stack)
        w.accept(stack.hit_ids("paper")["h0001"])
        w.submit(w.answer([choice]))
    stack.emulator.state.calls.clear()
    out = stack.ok("status", "paper")
    assert stack.emulator.state.calls["ListHITs"] == 2  # 100 + 20, through NextToken
    rows = [ln for ln in out.splitlines() if re.match(r"h\d{4} ", ln)]
    assert len(rows) == 120
    assert rows[0].split()[-5:] == ["18", "0", "2", "0", "0"]
    assert rows[1].split()[-5:] == ["20", "0", "0", "0", "0"]
    assert "120 HITs on the account" in out
    assert re.search(r"^total\s+120\s+2398\s+0\s+2\s+0\s+0$", out, re.M)
    # A second publish finds everything published and creates nothing.
    again = stack.ok("publish", "paper", "--base-url", stack.server_url,
                     "--assignments", "20", "--masters")
    assert "120 HIT(s) already published there." in again and "DIFFERS" not in again
    assert "Nothing to publish." in again and hits_on_mturk(stack) == 120


def test_interrupted_publish_is_resumed_without_a_second_hit(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1, 1, 1], name="e"), "e")
    stack.publish("e", "--hit", "h0002")
    # The database write of that HIT is lost (a crash just after CreateHIT returned).
    with stack.app.app_context():
        db.session.execute(delete(Hit))
        db.session.commit()
    out = stack.publish("e")
    assert "Published 3 HITs (1 found already created by an earlier, interrupted run)" in out
    assert hits_on_mturk(stack) == 3 and hits_in_db(stack) == 3
    # Throttled CreateHIT carries its token, so it is retried; still no duplicate.
    stack.load(write_experiment(tmp_path / "s2", [1, 1], name="f"), "f")
    inject(stack, "CreateHIT", times=2)
    out = stack.publish("f")
    assert "Published 2 HITs." in out and hits_on_mturk(stack) == 5


def test_production_guard(stack_factory, tmp_path):
    stack = stack_factory("production")
    stack.load(write_experiment(tmp_path / "s", [1, 1], name="e"), "e")
    args = ("publish", "--production", "e", "--base-url", stack.server_url,
            "--assignments", "10", "--reward", "0.50", "--masters")
    res = stack.cli(*args, input="n\n")
    assert res.exit_code == 1
    # The whole cost is shown before the question: 2 x 10 x $0.50 = $10, fee 45 % = $4.50.
    assert "Rewards: 20 x $0.50 = $10.00" in res.output
    assert "MTurk fee: 45 % per assignment = $0.225 x 20 = $4.50" in res.output
    assert "Total: $14.50" in res.output
    assert "Publish 2 HITs to PRODUCTION for $14.50? [y/N]" in res.output
    assert "Nothing was created." in res.output
    assert hits_on_mturk(stack) == 0 and hits_in_db(stack) == 0
    res = stack.cli(*args, input="\n")  # the default is no
    assert res.exit_code == 1 and hits_on_mturk(stack) == 0
    res = stack.cli(*args, "--yes")
    assert res.exit_code == 0, res.output
    assert hits_on_mturk(stack) == 2 and hits_in_db(stack) == 2
    hit = stack.emulator.state.list_hits()[0]
    assert hit.qualification_requirements[0]["QualificationTypeId"] == \
        "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"  # production Masters
    with stack.app.app_context():
        assert {h.environment for h in db.session.execute(select(Hit)).scalars()} == \
            {"local-production"}
    # Sandbox (the default) never asks.
    assert "[y/N]" not in stack.publish("e")


def test_funds(stack_factory, tmp_path):
    stack = stack_factory("production", balance="0.50")
    stack.load(write_experiment(tmp_path / "s", [1, 1, 1], name="e"), "e")
    args = ("publish", "--production", "--yes", "e", "--base-url", stack.server_url,
            "--assignments", "3", "--reward", "0.10")
    res = stack.cli(*args)  # 3 x (3 x 0.10 + 3 x 0.02) = $1.08 > $0.50
    assert res.exit_code == 1
    assert "insufficient funds: the balance is $0.50 and these HITs cost $1.08. " \
           "Nothing was created." in res.output
    assert hits_on_mturk(stack) == 0 and hits_in_db(stack) == 0
    # MTurk refusing midway (funds spent elsewhere): what exists is recorded, no more.
    assert stack.cli("publish", "--production", "--yes", "e", "--base-url",
                     stack.server_url, "--assignments", "1", "--reward", "0.10",
                     "--hit", "h0001").exit_code == 0
    inject(stack, "CreateHIT", kind="RequestError", message="This Requester has "
           "insufficient funds in their account to complete this transaction.",
           turk_code="AWS.MechanicalTurk.InsufficientFunds")
    res = stack.cli("publish", "--production", "--yes", "e", "--base-url", stack.server_url,
                    "--assignments", "1", "--reward", "0.10")
    assert res.exit_code == 1
    assert "insufficient funds in the requester account" in res.output
    assert "1 HIT(s) of 'e' are published and recorded" in res.output
    assert "Traceback" not in res.output
    assert hits_on_mturk(stack) == 1 and hits_in_db(stack) == 1


def test_throttling_retried_only_when_safe(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1], name="e"), "e")
    stack.publish("e")
    w = Worker(stack)
    w.accept(stack.hit_ids("e")["h0001"])
    w.submit(w.answer([0]))
    inject(stack, "ListHITs", times=2)
    assert "1 listed" in stack.ok("status", "e")
    # ApproveAssignment carries no token: a throttled one is reported, not repeated.
    inject(stack, "ApproveAssignment", times=1)
    res = stack.cli("approve", "e", w.assignment["assignmentId"])
    assert res.exit_code == 1
    assert "throttled the request (not retried: repeating it could act twice)" in res.output
    assert stack.emulator.state.calls["ApproveAssignment"] == 1
    # Running the command again is safe and finishes the job.
    out = stack.ok("approve", "e", w.assignment["assignmentId"])
    assert "Approved" in out and "1 of 1 assignment(s) approved" in out
    # Retries give up after five attempts with a clear message.
    inject(stack, "ListHITs", times=5)
    res = stack.cli("status", "e")
    assert res.exit_code == 1 and "retries exhausted" in res.output


def test_bad_input_is_one_line_per_problem(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1], name="e"), "e")
    res = stack.cli("publish", "nope", "--base-url", stack.server_url)
    assert res.exit_code == 2 and "error: unknown experiment 'nope'" in res.output
    res = stack.cli("publish", "e", "--base-url", "http://tll.example.org",
                    "--lifetime", "10", "--title", "x" * 200, "--locale", "United States")
    assert res.exit_code == 2
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 4, res.output
    assert any("must be HTTPS" in e for e in errors)
    assert any("lifetime must be between 30" in e for e in errors)
    res = stack.cli("publish", "e", "--reward", "abc")
    assert res.exit_code == 2 and "not a dollar amount" in res.output
    res = stack.cli("publish", "e")
    assert res.exit_code == 2 and "public base URL is needed" in res.output
    for args in (("approve", "e"), ("reject", "e", "--feedback", "x"), ("expire", "e"),
                 ("extend", "e")):
        res = stack.cli(*args)
        assert res.exit_code == 2 and "Traceback" not in res.output, (args, res.output)
    assert hits_on_mturk(stack) == 0 and hits_in_db(stack) == 0
    stack.publish("e")
    res = stack.cli("approve", "e", "3NOTANASSIGNMENT0000000000000")
    assert res.exit_code == 2 and "is not an assignment of 'e'" in res.output


def test_extend(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1, 1], name="e"), "e")
    stack.publish("e")
    assert "2 of 2 HITs expired" in stack.ok("expire", "e")
    out = stack.ok("extend", "e", "--hit", "h0002", "--by", "2d", "--assignments", "2")
    assert "1 of 1 HITs extended" in out
    hits = stack.hit_ids("e")
    mt = stack.emulator.state
    assert mt.hit_status(mt.hits[hits["h0002"]]) == "Assignable"
    assert mt.hits[hits["h0002"]].max_assignments == 5
    assert mt.hit_status(mt.hits[hits["h0001"]]) == "Reviewable"


def test_no_credentials_is_a_clear_message(stack, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    res = stack.cli("balance")
    assert res.exit_code == 1
    assert "No AWS credentials found" in res.output and "Traceback" not in res.output


def test_credentials_never_printed_or_logged(stack, tmp_path, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    stack.load(write_experiment(tmp_path / "s", [2], catch_last=True, name="e"), "e")
    outputs = [stack.ok("balance"), stack.publish("e")]
    w = Worker(stack)
    w.accept(stack.hit_ids("e")["h0001"])
    w.submit(w.answer([0, 0]))
    for args in (("status", "e"), ("sync", "e"), ("review", "e"),
                 ("reject", "e", "--failed-catch", "--feedback", "missed the check", "--yes"),
                 ("bonus", "e", "3NOTANASSIGNMENT0000000000000", "--amount", "0.1",
                  "--reason", "x"),
                 ("publish", "e", "--base-url", "http://x.example")):
        outputs.append(stack.cli(*args).output)
    outputs.append(caplog.text)
    text = "\n".join(outputs)
    assert "Published 1 HITs" in text and "1 of 1 assignment(s) rejected" in text
    assert FAKE_SECRET not in text and FAKE_KEY_ID not in text
    assert FAKE_SECRET[:12] not in text and FAKE_KEY_ID[4:] not in text


def test_database_without_tables(tmp_path):
    from server import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}"},
                     instance_path=tmp_path / "instance")
    res = app.test_cli_runner().invoke(args=["mturk", "publish", "missing", "--endpoint-url",
                                             "http://127.0.0.1:9"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: the database has no tables yet: run `flask --app server db upgrade` and "
        "load the experiment (`flask --app server load-experiment FILE`) first"]


def _flask(*args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "server", "mturk", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_entry_points_in_subprocesses(tmp_path):
    from tests import cli_serving
    from tests.conftest import free_port

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TLL_INSTANCE=str(tmp_path / "instance"),
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    log = open(tmp_path / "emulate.log", "w+")
    url = f"http://127.0.0.1:{port}"
    proc = cli_serving.start(["mturk", "emulate", "--port", str(port), "--allow-http-localhost",
                              "--state", str(tmp_path / "state.json")], url + "/", env, log)
    try:
        res = _flask("balance", env={**env, "MTURK_ENDPOINT_URL": url})
        assert res.returncode == 0, res.stderr
        assert f"local-sandbox ({url}): available balance $10,000.00" in res.stdout
    finally:
        # SIGTERM (a service manager, `kill`) stops it as cleanly as Ctrl-C.
        status = cli_serving.stop(proc, signal.SIGTERM)
    log.seek(0)
    text = log.read() + res.stdout + res.stderr
    assert status == 0, text
    assert "Traceback" not in text
    assert "Local MTurk endpoint (sandbox) on " + url in text
    assert FAKE_SECRET not in text and FAKE_KEY_ID not in text
    assert (tmp_path / "state.json").exists() is False or FAKE_SECRET not in \
        (tmp_path / "state.json").read_text()


def test_requester_errors_are_readable(stack):
    from server.mturk.requester import MTurkFailure, Requester

    r = Requester("sandbox", stack.em, backoff=0.001)
    with pytest.raises(MTurkFailure, match="invalid parameters"):
        r.call("GetHIT")  # HITId missing: refused by botocore before sending
    with pytest.raises(MTurkFailure, match=r"GetHIT: Hit 3X+ does not exist. "
                                           r"\[AWS.MechanicalTurk.HITDoesNotExist\]"):
        r.hit("3" + "X" * 29)
    with pytest.raises(MTurkFailure, match="cannot reach MTurk at http://127.0.0.1:9"):
        Requester("sandbox", "http://127.0.0.1:9").balance()
    assert Requester("sandbox").label == "sandbox"
    assert Requester("production", stack.em).label == "local-production"

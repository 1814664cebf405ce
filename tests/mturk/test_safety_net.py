"""The requester's safety net through the CLI, the server and the local endpoint over
HTTP: one bonus per assignment even after a crash, approving a rejected assignment,
and messages to the experiment's workers in batches of 100."""
from __future__ import annotations

import boto3
import requests

from .conftest import Worker, write_experiment


def client(stack):
    return boto3.client("mturk", endpoint_url=stack.em, region_name="us-east-1")


def submitted_worker(stack, hit_id, choices=(0,)):
    w = Worker(stack)
    w.accept(hit_id)
    assert w.submit(w.answer(list(choices))).status_code == 200
    return w


def test_interrupted_bonus_is_finished_with_its_own_amount(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1], name="e"), "e")
    stack.publish("e")
    w = submitted_worker(stack, stack.hit_ids("e")["h0001"])
    aid = w.assignment["assignmentId"]
    stack.ok("sync", "e")
    # MTurk fails after the bonus row (and its token) were stored: state unknown.
    stack.emulator.state.inject_fault("SendBonus", 1, message="internal error",
                                      turk_code="AWS.MechanicalTurk.ServiceFault")
    res = stack.cli("bonus", "e", aid, "--amount", "0.20", "--reason", "thanks")
    assert res.exit_code == 1
    # A rerun with another amount (the crash case of the issue) is refused, even when
    # asked for an additional bonus: the first one may have been paid.
    for extra in ((), ("--additional",)):
        res = stack.cli("bonus", "e", aid, "--amount", "0.30", "--reason", "thanks", *extra)
        assert res.exit_code == 2 and "--amount 0.20" in res.output, res.output
    out = stack.ok("bonus", "e", aid, "--amount", "0.20", "--reason", "thanks")
    assert "$0.20" in out
    paid = client(stack).list_bonus_payments(AssignmentId=aid)["BonusPayments"]
    assert [b["BonusAmount"] for b in paid] == ["0.20"]


def test_approve_override_rejection(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1], name="e"), "e")
    stack.publish("e")
    hit = stack.hit_ids("e")["h0001"]
    w, other = submitted_worker(stack, hit), submitted_worker(stack, hit)
    aid = w.assignment["assignmentId"]
    stack.ok("reject", "e", aid, "--feedback", "wrong", "--yes")
    res = stack.cli("approve", "e", aid)
    assert res.exit_code == 1 and "InvalidAssignmentState" in res.output
    res = stack.cli("approve", "e", other.assignment["assignmentId"], "--override-rejection")
    assert res.exit_code == 2 and "not Rejected" in res.output
    assert stack.cli("approve", "e", "--all-submitted",
                     "--override-rejection").exit_code == 2
    out = stack.ok("approve", "e", aid, "--override-rejection")
    assert "1 of 1 assignment(s) approved" in out
    got = client(stack).get_assignment(AssignmentId=aid)["Assignment"]
    assert got["AssignmentStatus"] == "Approved"
    assert client(stack).get_assignment(AssignmentId=other.assignment["assignmentId"])[
        "Assignment"]["AssignmentStatus"] == "Submitted"


def test_notify_in_batches_of_100(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1], name="e"), "e")
    stack.publish("e", "--assignments", "105")
    hit = stack.hit_ids("e")["h0001"]
    workers = []
    for _ in range(103):                       # opening the task page records the worker
        w = Worker(stack)
        w.accept(hit)
        assert w.open().status_code == 200
        workers.append(w.worker_id)
    res = stack.cli("notify", "e", "--subject", "Follow-up", "--message", "Thanks!",
                    input="n\n")
    assert res.exit_code == 1 and "103 worker(s)" in res.output
    assert stack.emulator.state.calls["NotifyWorkers"] == 0
    out = stack.ok("notify", "e", "--subject", "Follow-up", "--message", "Thanks!", "--yes")
    assert "103 of 103 worker(s) notified" in out
    assert stack.emulator.state.calls["NotifyWorkers"] == 2
    for wid in (workers[0], workers[-1]):
        got = requests.post(f"{stack.em}/_emulator/workers/{wid}", json={}, timeout=10).json()
        assert [m["Subject"] for m in got["messages"]] == ["Follow-up"]
    assert stack.cli("notify", "e", "--subject", "x" * 201, "--message", "m",
                     "--yes").exit_code == 2

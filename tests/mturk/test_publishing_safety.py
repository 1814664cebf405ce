"""Safe publishing over HTTP with boto3: deployments never adopt each other's HITs, a HIT
pointing elsewhere is refused, a rerun with changed settings changes nothing unless
asked, workers of earlier studies are kept out before accepting, and `sync` sets each
participant's submission status from MTurk."""
from __future__ import annotations

import time

import boto3
import requests
from sqlalchemy import select

from server.models import Hit, Participant, db

from .conftest import Worker, write_experiment


def client(stack):
    return boto3.client("mturk", endpoint_url=stack.em, region_name="us-east-1")


def accept_status(stack, hit_id, worker_id) -> int:
    return requests.post(f"{stack.em}/worker/hits/{hit_id}/accept", json={"workerId": worker_id},
                         headers={"Accept": "application/json"}, timeout=10).status_code


def statuses(stack, name) -> dict:
    from server.models import Experiment
    with stack.app.app_context():
        rows = db.session.execute(select(Participant.worker_id, Participant.submission_status)
                                  .join(Experiment).where(Experiment.name == name)).all()
    return dict(rows)


def test_second_deployment_never_adopts_the_first_ones_hits(stack_factory, tmp_path):
    first = stack_factory()
    second = stack_factory(emulator=first.emulator)      # same MTurk account, own database
    path = write_experiment(tmp_path / "s", [1, 1], name="e")
    for s in (first, second):
        s.load(path, "e")
        assert "Published 2 HITs." in s.publish("e")
    a, b = first.hit_ids("e"), second.hit_ids("e")
    assert set(a.values()).isdisjoint(b.values())
    mt = client(first)
    assert len(mt.list_hits()["HITs"]) == 4
    for s, ids in ((first, a), (second, b)):
        hit = s.emulator.state.hits[ids["h0001"]]
        assert hit.external_url.startswith(s.server_url)


def test_a_hit_pointing_elsewhere_is_refused(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1], name="e"), "e")
    stack.ok("publish", "e", "--base-url", "http://127.0.0.1:9/old", "--assignments", "3")
    # Recorded, then published again from another address: refused, nothing changed.
    res = stack.cli("publish", "e", "--base-url", stack.server_url, "--assignments", "3")
    assert res.exit_code == 1 and "http://127.0.0.1:9/old" in res.output
    assert "another deployment" in res.output
    # The record lost (a crash before it was written): the token finds the HIT, whose
    # ExternalURL is not this page, and publish refuses to adopt it.
    with stack.app.app_context():
        db.session.execute(db.delete(Hit))
        db.session.commit()
    res = stack.cli("publish", "e", "--base-url", stack.server_url, "--assignments", "3")
    assert res.exit_code == 1 and "Nothing was adopted" in res.output, res.output
    assert stack.hit_ids("e") == {}
    assert len(client(stack).list_hits()["HITs"]) == 1


def test_changed_settings_are_reported_and_applied_only_when_asked(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1, 1], name="e"), "e", repeats="per-hit")
    stack.publish("e")                                    # $0.05, 3 assignments
    ids = stack.hit_ids("e")
    res = stack.cli("publish", "e", "--base-url", stack.server_url, "--assignments", "5",
                    "--reward", "0.10", "--masters")
    assert res.exit_code == 1
    out = res.output
    assert f"DIFFERS h0001 {ids['h0001']} reward: published 0.05, now 0.10" in out
    assert f"DIFFERS h0002 {ids['h0002']} assignments: published 3, now 5" in out
    assert "qualifications: published none, now 2ARFPLSP75KLA8M8DH1HTEQVJT3SY6 Exists" in out
    assert "nothing was changed" in out and "--apply-changes" in out
    mt = client(stack)
    hit = mt.get_hit(HITId=ids["h0001"])["HIT"]
    assert (hit["Reward"], hit["MaxAssignments"]) == ("0.05", 3)
    # Ten or more assignments cannot be reached from three: refused, nothing changed.
    res = stack.cli("publish", "e", "--base-url", stack.server_url, "--assignments", "12",
                    "--reward", "0.10", "--apply-changes")
    assert res.exit_code == 1 and "cannot be changed on MTurk" in res.output
    assert mt.get_hit(HITId=ids["h0001"])["HIT"]["Reward"] == "0.05"
    out = stack.ok("publish", "e", "--base-url", stack.server_url, "--assignments", "5",
                   "--reward", "0.10", "--masters", "--apply-changes")
    assert "2 of 2 HITs changed" in out
    for hid in ids.values():
        hit = mt.get_hit(HITId=hid)["HIT"]
        assert (hit["Reward"], hit["MaxAssignments"]) == ("0.10", 5)
        assert hit["QualificationRequirements"][0]["Comparator"] == "Exists"
    with stack.app.app_context():
        assert {(str(h.reward), h.max_assignments) for h in
                db.session.execute(select(Hit)).scalars()} == {("0.10", 5)}
    again = stack.ok("publish", "e", "--base-url", stack.server_url, "--assignments", "5",
                     "--reward", "0.10", "--masters")
    assert "DIFFERS" not in again and "Nothing to publish." in again


def test_workers_of_earlier_studies_are_kept_out(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [1], name="first"), "first")
    stack.publish("first")
    past = Worker(stack, "APASTWORKER0001")
    past.accept(stack.hit_ids("first")["h0001"])
    past.submit(past.answer([0]))
    listed = tmp_path / "excluded.csv"
    listed.write_text("WorkerId,note\nALISTEDWORKER01,pilot\n")
    stack.load(write_experiment(tmp_path / "s2", [1, 1], name="second"), "second",
               repeats="per-hit")
    bad = tmp_path / "bad.txt"
    bad.write_text("not a worker id\n")
    for source, why in ((str(bad), "is not a worker id"),
                        ("no-such-study", "neither a file nor an experiment")):
        res = stack.cli("publish", "second", "--base-url", stack.server_url,
                        "--exclude-workers", source)
        assert res.exit_code == 2 and why in res.output
    assert stack.hit_ids("second") == {}
    out = stack.publish("second", "--exclude-workers", "first",
                        "--exclude-workers", str(listed))
    assert "2 excluded worker(s)" in out
    ids = stack.hit_ids("second")
    for hid in ids.values():
        assert accept_status(stack, hid, "APASTWORKER0001") == 403
        assert accept_status(stack, hid, "ALISTEDWORKER01") == 403
    # per-hit: a new worker may take both HITs (starting grants nothing).
    for hid in ids.values():
        w = Worker(stack, "ANEWWORKER00001")
        w.accept(hid)
        assert "Submit HIT" in w.answer([0])


def test_a_failed_grant_does_not_lose_the_start(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2], name="e"), "e")
    stack.publish("e")
    stack.emulator.state.inject_fault("AssociateQualificationWithWorker", 5,
                                      message="internal error",
                                      turk_code="AWS.MechanicalTurk.ServiceFault")
    w = Worker(stack, "AUNLUCKYWORKER1")
    w.accept(stack.hit_ids("e")["h0001"])
    assert w.submit(w.answer([0, 1])).status_code == 200
    assert statuses(stack, "e") == {"AUNLUCKYWORKER1": "accepted"}
    assert stack.emulator.state.workers["AUNLUCKYWORKER1"].qualifications == {}
    stack.emulator.state.faults.clear()
    stack.ok("sync", "e")                                  # grants it after all
    assert list(stack.emulator.state.workers["AUNLUCKYWORKER1"].qualifications.values()) == [1]
    assert statuses(stack, "e") == {"AUNLUCKYWORKER1": "submitted"}


def test_sync_sets_every_submission_status(stack_factory, tmp_path):
    now = [time.time()]
    stack = stack_factory(clock=lambda: now[0])
    stack.load(write_experiment(tmp_path / "s", [1], name="e"), "e", repeats="per-hit")
    stack.ok("publish", "e", "--base-url", stack.server_url, "--assignments", "5",
             "--duration", "1h")
    hid = stack.hit_ids("e")["h0001"]
    done = {}
    for name in ("S1", "S2", "S3"):
        w = Worker(stack, f"A{name}WORKER00001")
        w.accept(hid)
        assert w.submit(w.answer([0])).status_code == 200
        done[name] = w
    gone = Worker(stack, "ARETURNER000001")
    gone.accept(hid)
    assert gone.open().status_code == 200
    gone.give_back()
    late = Worker(stack, "ALATEWORKER0001")
    assert late.accept(hid)["assignmentId"] == gone.assignment["assignmentId"]
    assert late.open().status_code == 200                  # the page sees the reuse
    stack.ok("approve", "e", done["S1"].assignment["assignmentId"])
    stack.ok("reject", "e", done["S2"].assignment["assignmentId"], "--feedback", "no",
             "--yes")
    out = stack.ok("sync", "e")
    assert "0 mismatch(es)" in out
    assert statuses(stack, "e") == {
        "AS1WORKER00001": "approved", "AS2WORKER00001": "rejected",
        "AS3WORKER00001": "submitted", "ARETURNER000001": "returned",
        "ALATEWORKER0001": "accepted"}
    now[0] += 2 * 3600                                     # past the assignment deadline
    out = stack.ok("sync", "e")
    assert "1 abandoned" in out
    assert statuses(stack, "e")["ALATEWORKER0001"] == "abandoned"
    # The abandoned page takes no more answers.
    page = late.open()
    assert page.status_code == 409

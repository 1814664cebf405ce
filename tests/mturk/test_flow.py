"""End to end over HTTP, block layout: publish → workers accept on the local endpoint,
answer in the server's task page, submit to turkSubmitTo → sync → review → approve /
reject by rule → bonus → expire → delete; plus preview, resume, repeat workers, returned
assignments, double submit and hostile turkSubmitTo values."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import boto3
import pytest
from sqlalchemy import func, select

from server.models import Assignment, Bonus, Participant, Response, db

from .conftest import Worker, forms, write_experiment


def client(stack):
    return boto3.client("mturk", endpoint_url=stack.em, region_name="us-east-1")


def count(stack, model) -> int:
    with stack.app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def block(stack, tmp_path):
    """An experiment of 3 HITs x 3 trials (the third a catch trial), published with 3
    assignments per HIT."""
    path = write_experiment(tmp_path / "study", [3, 3, 3], catch_last=True)
    stack.load(path, "block")
    out = stack.publish("block")
    assert "Published 3 HITs" in out
    return stack.hit_ids("block")


def test_block_layout_end_to_end(stack, block):
    mt = client(stack)
    h1 = block["h0001"]
    # Trials t0001..t0003: matches at 0, 1, 2 (the third is the catch trial).
    good, careless = Worker(stack), Worker(stack)
    good.accept(h1)
    careless.accept(h1)
    page = good.answer([0, 1, 2])
    assert "Submit HIT" in page
    action, fields = forms(page)["submit-form"]
    assert action == stack.em + "/mturk/externalSubmit"
    assert fields["assignmentId"] == good.assignment["assignmentId"]
    assert good.submit(page).json()["status"] == "Submitted"
    careless_page = careless.answer([4, 4, 4])
    assert careless.submit(careless_page).status_code == 200

    # One answer row per trial, nothing else.
    assert count(stack, Response) == 6
    out = stack.ok("sync", "block")
    assert "2 assignments on MTurk" in out and "0 mismatch" in out
    with stack.app.app_context():
        rows = db.session.execute(select(Assignment.worker_id, Assignment.status)).all()
    assert sorted(s for _, s in rows) == ["submitted", "submitted"]

    out = stack.ok("review", "block")
    assert f"{good.assignment['assignmentId']} worker {good.worker_id} [Submitted] " \
           "catch 1/1 passed" in out
    assert f"{careless.assignment['assignmentId']} worker {careless.worker_id} [Submitted] " \
           "catch 0/1 passed" in out
    assert "t0003 catch (catch): chose 5, match at 3: wrong" in out

    why = "The attention check (the same picture shown again) was missed."
    # Bulk rejection says what it will reject and asks; "no" changes nothing.
    res = stack.cli("reject", "block", "--failed-catch", "--feedback", why, input="n\n")
    assert res.exit_code == 1 and "Will reject 1 assignment(s)" in res.output
    assert f"{careless.assignment['assignmentId']} worker {careless.worker_id}" in res.output
    assert "Nothing was rejected" in res.output
    assert {a["AssignmentStatus"] for a in mt.list_assignments_for_hit(HITId=h1)[
        "Assignments"]} == {"Submitted"}
    out = stack.ok("reject", "block", "--failed-catch", "--feedback", why, input="y\n")
    assert "1 of 1 assignment(s) rejected" in out
    out = stack.ok("approve", "block", "--passed-catch")
    assert "1 of 1 assignment(s) approved" in out
    status = {a["WorkerId"]: a for a in mt.list_assignments_for_hit(HITId=h1)["Assignments"]}
    assert status[good.worker_id]["AssignmentStatus"] == "Approved"
    assert status[careless.worker_id]["AssignmentStatus"] == "Rejected"
    assert "attention check" in status[careless.worker_id]["RequesterFeedback"]

    # A bonus, then the same command again: paid once (stored token), refused without --again.
    aid = good.assignment["assignmentId"]
    out = stack.ok("bonus", "block", aid, "--amount", "0.10", "--reason", "Careful work")
    assert "Paid: $0.10" in out
    again = stack.cli("bonus", "block", aid, "--amount", "0.10", "--reason", "Careful work")
    assert again.exit_code == 2 and "already has a bonus" in again.output
    other = stack.cli("bonus", "block", aid, "--amount", "0.50", "--reason", "Careful work")
    assert other.exit_code == 2 and "--additional" in other.output
    assert len(mt.list_bonus_payments(HITId=h1)["BonusPayments"]) == 1
    assert count(stack, Bonus) == 1
    out = stack.ok("bonus", "block", aid, "--amount", "0.05", "--reason", "More",
                   "--additional")
    assert "Paid: $0.05" in out
    assert sorted(b["BonusAmount"] for b in mt.list_bonus_payments(HITId=h1)[
        "BonusPayments"]) == ["0.05", "0.10"]

    # A pending assignment does not stop expiry; the HIT closes at once.
    pending = Worker(stack)
    pending.accept(block["h0002"])
    out = stack.ok("expire", "block")
    assert "3 of 3 HITs expired" in out
    for key, hid in block.items():
        hit = mt.get_hit(HITId=hid)["HIT"]
        assert hit["HITStatus"] in ("Unassignable", "Reviewable"), key
        assert hit["NumberOfAssignmentsAvailable"] == 0 or hit["HITStatus"] != "Assignable"
    # The pending worker may still finish and submit after expiry, as on MTurk.
    assert pending.submit(pending.answer([1, 2, 3])).status_code == 200
    out = stack.ok("status", "block")
    line = next(ln for ln in out.splitlines() if ln.startswith("h0001"))
    assert line.split()[-5:] == ["1", "0", "0", "1", "1"]  # 1 unused slot left
    # h0002 has a submitted, undecided assignment: MTurk refuses to delete it.
    res = stack.cli("delete", "block")
    assert res.exit_code == 1
    assert "h0001" in res.output and "2 of 3 HITs deleted" in res.output
    assert "FAILED" in next(ln for ln in res.output.splitlines() if ln.startswith("h0002"))


def test_preview_records_nothing(stack, block):
    url = stack.server_url + "/mturk/task/block/h0001?" + urlencode(
        {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": block["h0001"]})
    import requests
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    assert 'id="preview-notice"' in r.text and "<fieldset disabled" in r.text
    assert "trial.js" not in r.text
    assert "frame-ancestors" in r.headers["Content-Security-Policy"]
    assert stack.em in r.headers["Content-Security-Policy"]
    # Answering from a preview is refused, and nothing is stored.
    bad = requests.post(stack.server_url + "/mturk/task/block/h0001/answer?" + urlencode(
        {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}), data={"n": 1, "choice": 0},
        timeout=10)
    assert bad.status_code == 403
    assert count(stack, Participant) == 0 and count(stack, Assignment) == 0
    assert count(stack, Response) == 0


def test_resume_and_idempotent_answers(stack, block):
    w = Worker(stack)
    w.accept(block["h0001"])
    page = w.open().text
    action, fields = forms(page)["trial-form"]
    assert fields["n"] == "1"
    for _ in range(2):  # a retried post stores one row
        r = w.http.post(stack.server_url + action,
                        data={"n": "1", "choice": "3", "trial_token": fields["trial_token"]},
                        headers={"Accept": "application/json"}, timeout=10)
        assert r.status_code in (200, 201)
    assert r.json()["duplicate"] is True
    # Reload: the page resumes at the first unanswered trial.
    _, fields = forms(w.open().text)["trial-form"]
    assert fields["n"] == "2"
    assert count(stack, Response) == 1 and count(stack, Participant) == 1


def test_repeat_worker_refused_unless_allowed(stack, block, tmp_path):
    mt = client(stack)
    w = Worker(stack, "AREPEATWORKER01")
    w.accept(block["h0001"])
    w.submit(w.answer([0, 1, 2]))
    # Starting granted the experiment's qualification: MTurk keeps the worker out of
    # its other HITs before they can accept one.
    qid = mt.get_hit(HITId=block["h0002"])["HIT"]["QualificationRequirements"][-1]
    assert qid["Comparator"] == "DoesNotExist"
    holders = mt.list_workers_with_qualification_type(
        QualificationTypeId=qid["QualificationTypeId"])["Qualifications"]
    assert [q["WorkerId"] for q in holders] == ["AREPEATWORKER01"]
    r = w.http.post(f"{stack.em}/worker/hits/{block['h0002']}/accept",
                    json={"workerId": "AREPEATWORKER01"},
                    headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 403 and "qualification" in r.json()["error"]
    # Defence in depth: with the grant lost, MTurk lets them in and the page refuses.
    mt.disassociate_qualification_from_worker(
        QualificationTypeId=qid["QualificationTypeId"], WorkerId="AREPEATWORKER01")
    again = Worker(stack, "AREPEATWORKER01")
    again.accept(block["h0002"])
    r = again.open()
    assert r.status_code == 409
    assert "already taken part" in r.text
    assert count(stack, Participant) == 1
    # sync grants it again.
    stack.ok("sync", "block")
    assert [q["WorkerId"] for q in mt.list_workers_with_qualification_type(
        QualificationTypeId=qid["QualificationTypeId"])["Qualifications"]] == \
        ["AREPEATWORKER01"]
    # Per experiment: allow_repeats lets the worker take another HIT.
    path = write_experiment(tmp_path / "study2", [1, 1], name="repeats")
    stack.load(path, "repeats", allow_repeats=True)
    stack.publish("repeats")
    ids = stack.hit_ids("repeats")
    for key in ("h0001", "h0002"):
        x = Worker(stack, "AREPEATWORKER02")
        x.accept(ids[key])
        assert "Submit HIT" in x.answer([key == "h0001" and 0 or 1])


def test_returned_assignment_reused_by_new_worker(stack, block):
    first = Worker(stack)
    first.accept(block["h0001"])
    first.answer([2])          # one answer, then the worker returns the HIT
    first.give_back()
    second = Worker(stack)
    second.accept(block["h0001"])
    aid = first.assignment["assignmentId"]
    assert second.assignment["assignmentId"] == aid  # MTurk reuses the ID
    page = second.open().text
    assert forms(page)["trial-form"][1]["n"] == "1"  # a fresh participant, from the start
    second.submit(second.answer([0, 1, 2]))
    with stack.app.app_context():
        parts = db.session.execute(select(Participant.worker_id, func.count(Response.id))
                                   .join(Response, isouter=True)
                                   .where(Participant.assignment_id == aid)
                                   .group_by(Participant.id)).all()
        rows = dict(db.session.execute(select(Assignment.worker_id, Assignment.status)
                                       .where(Assignment.mturk_assignment_id == aid)).all())
    assert sorted(parts) == sorted([(first.worker_id, 1), (second.worker_id, 3)])
    assert rows == {first.worker_id: "returned", second.worker_id: "finished"}
    out = stack.ok("sync", "block")
    assert "0 mismatch" in out
    with stack.app.app_context():
        assert db.session.execute(select(Assignment.status).where(
            Assignment.worker_id == second.worker_id)).scalar_one() == "submitted"


def test_double_submit_and_mismatch_report(stack, block):
    w = Worker(stack)
    w.accept(block["h0001"])
    page = w.answer([0, 1, 2])
    assert w.submit(page).status_code == 200
    twice = w.submit(page)
    assert twice.status_code == 409 and "already submitted" in twice.json()["error"]
    mt = client(stack)
    assert len(mt.list_assignments_for_hit(HITId=block["h0001"])["Assignments"]) == 1
    # A worker who finished here but never pressed Submit is reported by sync.
    lazy = Worker(stack)
    lazy.accept(block["h0002"])
    lazy.answer([3, 4, 0])
    res = stack.cli("sync", "block")
    assert res.exit_code == 1        # every mismatch makes sync fail
    out = res.output
    assert re.search(rf"MISMATCH h0002 {lazy.assignment['assignmentId']} worker "
                     rf"{lazy.worker_id}: finished here but not submitted on MTurk", out)
    # And one who submitted on MTurk without finishing here (e.g. a crafted submit).
    early = Worker(stack)
    early.accept(block["h0003"])
    early.answer([1])
    r = early.http.post(stack.em + "/mturk/externalSubmit",
                        data={"assignmentId": early.assignment["assignmentId"], "x": "1"},
                        headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 200
    res = stack.cli("sync", "block")
    out = res.output
    assert res.exit_code == 1
    assert "Submitted on MTurk but not finished here (1 of 3 answers)" in out
    assert "2 mismatch(es)" in out


HOSTILE = ["https://evil.example.com", "https://www.mturk.com.evil.example",
           "https://www.mturk.com@evil.example", "http://www.mturk.com",
           "https://workersandbox.mturk.com/somewhere", "javascript:alert(1)", ""]


def test_turk_submit_to_outside_allowed_hosts_refused(stack, block):
    w = Worker(stack)
    a = w.accept(block["h0001"])
    for submit_to in HOSTILE:
        url = a["taskUrl"].replace(urlencode({"turkSubmitTo": stack.em}),
                                   urlencode({"turkSubmitTo": submit_to}))
        assert url != a["taskUrl"]
        r = w.http.get(url, timeout=10)
        assert r.status_code == 400, submit_to
        assert "turkSubmitTo" in r.text and "<form" not in r.text
        # Nor can an answer post carry a hostile turkSubmitTo into the redirect.
        answer = url.replace("/h0001?", "/h0001/answer?p=x&")
        assert w.http.post(answer, data={"n": "1", "choice": "0"},
                           allow_redirects=False, timeout=10).status_code in (400, 404)
    assert count(stack, Participant) == 0 and count(stack, Response) == 0


def test_real_mturk_hosts_are_accepted(stack, block):
    import requests
    for host in ("https://workersandbox.mturk.com", "https://www.mturk.com"):
        w = Worker(stack)
        a = w.accept(block["h0001"])
        url = a["taskUrl"].replace(urlencode({"turkSubmitTo": stack.em}),
                                   urlencode({"turkSubmitTo": host}))
        page = w.http.get(url, timeout=10).text
        action, fields = forms(page)["trial-form"]
        for n in range(3):
            action, fields = forms(page)["trial-form"]
            page = requests.post(stack.server_url + action, timeout=10, data={
                "n": str(n + 1), "choice": "0", "trial_token": fields["trial_token"]}).text
        assert forms(page)["submit-form"][0] == host + "/mturk/externalSubmit"


def test_bad_task_parameters_record_nothing(stack, block):
    w = Worker(stack)
    a = w.accept(block["h0001"])
    url = a["taskUrl"]
    cases = [
        (url.replace(f"workerId={w.worker_id}", "workerId="), 400),
        (url.replace(block["h0001"], block["h0002"]), 404),       # HIT of another key
        (url.replace(block["h0001"], "3NOSUCHHIT00000000000000000000"), 404),
        (url.replace("/task/block/", "/task/nope/"), 404),
        (url.replace("/h0001?", "/h0099?"), 404),
    ]
    for bad, status in cases:
        r = w.http.get(bad, timeout=10)
        assert r.status_code == status, (bad, r.text)
        assert "<html" in r.text.lower() and "Traceback" not in r.text
    assert count(stack, Participant) == 0 and count(stack, Assignment) == 0
    # Someone else's participant token cannot answer for this assignment.
    w.open()
    other = Worker(stack)
    other.accept(block["h0001"])
    action, _ = forms(other.open().text)["trial-form"]
    stolen = action.replace(other.assignment["assignmentId"], a["assignmentId"])
    r = w.http.post(stack.server_url + stolen, data={"n": "1", "choice": "0"}, timeout=10)
    assert r.status_code == 403 and count(stack, Response) == 0


def test_review_csv(stack, block, tmp_path):
    w = Worker(stack, "ACSVWORKER0001")
    w.accept(block["h0002"])
    w.submit(w.answer([3, 4, 0]))  # t0004..t0006: matches at 3, 4, 0
    out = stack.ok("review", "block", "--csv", str(tmp_path / "review.csv"))
    assert "1 assignment(s); 0 failed a catch trial." in out
    import csv
    rows = list(csv.DictReader(open(tmp_path / "review.csv")))
    assert [(r["trial"], r["chosen_position"], r["correct"], r["catch"]) for r in rows] == \
        [("t0004", "4", "1", "0"), ("t0005", "5", "1", "0"), ("t0006", "1", "1", "1")]
    assert {r["worker_id"] for r in rows} == {"ACSVWORKER0001"}


@pytest.mark.postgres
def test_flow_on_postgresql(stack_factory, postgres_url, tmp_path):
    stack = stack_factory(database_url=postgres_url)
    path = write_experiment(tmp_path / "study", [2, 2], catch_last=True)
    stack.load(path, "pg")
    stack.publish("pg")
    ids = stack.hit_ids("pg")
    first = Worker(stack)
    first.accept(ids["h0001"])
    first.answer([0])
    first.give_back()
    workers = [Worker(stack) for _ in range(3)]
    for w, choice in zip(workers, (1, 0, 1)):
        w.accept(ids["h0001"])
        w.submit(w.answer([0, choice]))
    assert workers[0].assignment["assignmentId"] == first.assignment["assignmentId"]
    out = stack.ok("sync", "pg")
    assert "3 assignments on MTurk" in out and "0 mismatch" in out
    out = stack.ok("approve", "pg", "--passed-catch")
    assert "2 of 2 assignment(s) approved" in out
    assert count(stack, Response) == 7 and count(stack, Participant) == 4

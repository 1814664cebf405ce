"""The local endpoint through the real boto3 client over HTTP: shapes, errors,
pagination, MTurk's rules for tokens, assignments, expiry and deletion."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests

from server.mturk.emulator import create_emulator, serve_in_thread
from server.mturk.question import external_question

URL = "http://127.0.0.1:5999/mturk/task/e/h0001"


@pytest.fixture
def em():
    running = serve_in_thread(create_emulator(allow_http_localhost=True))
    yield running
    running.stop()


def mturk(em):
    return boto3.client("mturk", endpoint_url=em.url, region_name="us-east-1")


def make_hit(c, **over):
    params = dict(MaxAssignments=2, LifetimeInSeconds=3600, AssignmentDurationInSeconds=600,
                  AutoApprovalDelayInSeconds=86400, Reward="0.05", Title="Pictures",
                  Description="Choose the picture", Question=external_question(URL))
    params.update(over)
    return c.create_hit(**params)["HIT"]


def accept(em, hit_id, worker=""):
    r = requests.post(f"{em.url}/worker/hits/{hit_id}/accept", json={"workerId": worker},
                      headers={"Accept": "application/json"}, timeout=10)
    return r


def submit(em, aid, **fields):
    return requests.post(f"{em.url}/mturk/externalSubmit",
                         data={"assignmentId": aid, **fields},
                         headers={"Accept": "application/json"}, timeout=10)


def test_balance_and_hit_shape(em):
    c = mturk(em)
    assert c.get_account_balance()["AvailableBalance"] == "10000.00"
    hit = make_hit(c, Keywords="a, b", RequesterAnnotation="tll:e:h0001",
                   QualificationRequirements=[
                       {"QualificationTypeId": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6",
                        "Comparator": "Exists"},
                       {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
                        "LocaleValues": [{"Country": "US"}]}])
    assert len(hit["HITId"]) == 30 and hit["HITStatus"] == "Assignable"
    assert isinstance(hit["CreationTime"], datetime) and hit["Expiration"] > hit["CreationTime"]
    assert hit["NumberOfAssignmentsAvailable"] == 2 and hit["Reward"] == "0.05"
    got = c.get_hit(HITId=hit["HITId"])["HIT"]
    assert got["RequesterAnnotation"] == "tll:e:h0001"
    assert got["QualificationRequirements"][1]["LocaleValues"] == [{"Country": "US"}]
    # The sandbox balance never moves.
    assert c.get_account_balance()["AvailableBalance"] == "10000.00"


@pytest.mark.parametrize("over, turk_code", [
    ({"Question": external_question("http://example.org/x")}, "XMLParseError"),
    ({"Question": "<not-xml"}, "XMLParseError"),
    ({"Reward": "0.051"}, "ParameterValidation"),
    ({"LifetimeInSeconds": 5}, "ParameterValidation"),
    ({"MaxAssignments": 0}, "ParameterValidation"),
    ({"QualificationRequirements": [{"QualificationTypeId": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH",
                                     "Comparator": "Exists"}]}, "QualificationTypeDoesNotExist"),
])
def test_create_hit_validation_errors(em, over, turk_code):
    c = mturk(em)
    with pytest.raises(c.exceptions.RequestError) as err:
        make_hit(c, **over)
    resp = err.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert resp["Error"]["Code"] == "RequestError" and resp["Error"]["Message"]
    assert resp["TurkErrorCode"] == "AWS.MechanicalTurk." + turk_code
    assert c.list_hits()["NumResults"] == 0


def test_error_format_on_the_wire(em):
    c = mturk(em)
    raw = {}

    def grab(http_response, **_):
        raw["body"] = http_response.content
    c.meta.events.register("after-call.mturk.GetHIT", grab)
    with pytest.raises(c.exceptions.RequestError):
        c.get_hit(HITId="3NOSUCHHIT000000000000000000000")
    body = json.loads(raw["body"])
    assert body["__type"].endswith("#RequestError")
    assert body["TurkErrorCode"] == "AWS.MechanicalTurk.HITDoesNotExist" and body["Message"]


def test_unsigned_requests_are_refused(em):
    r = requests.post(em.url + "/", data="{}", headers={
        "X-Amz-Target": "MTurkRequesterServiceV20170117.GetAccountBalance",
        "Content-Type": "application/x-amz-json-1.1"}, timeout=10)
    assert r.status_code == 400 and "Authentication" in r.text


def test_unique_request_token(em):
    c = mturk(em)
    first = make_hit(c, UniqueRequestToken="tok-1")
    with pytest.raises(c.exceptions.RequestError) as err:
        make_hit(c, UniqueRequestToken="tok-1")
    assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.HitAlreadyExists"
    assert first["HITId"] in err.value.response["Error"]["Message"]
    assert c.list_hits()["NumResults"] == 1


def test_pagination_with_next_token(em):
    c = mturk(em)
    made = [make_hit(c)["HITId"] for _ in range(23)]
    seen, pages, token = [], 0, None
    while True:
        page = c.list_hits(MaxResults=10, **({"NextToken": token} if token else {}))
        pages += 1
        assert page["NumResults"] == len(page["HITs"]) <= 10
        seen += [h["HITId"] for h in page["HITs"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3 and seen == made
    # botocore's own paginator agrees.
    paged = [h["HITId"] for p in c.get_paginator("list_hits").paginate(
        PaginationConfig={"PageSize": 7}) for h in p["HITs"]]
    assert paged == made
    with pytest.raises(c.exceptions.RequestError):
        c.list_hits(NextToken="garbage")


def test_assignment_life_cycle(em):
    c = mturk(em)
    hit = make_hit(c, MaxAssignments=2)
    a = accept(em, hit["HITId"], "AWORKERONE0001").json()
    assert a["workerId"] == "AWORKERONE0001"
    assert "turkSubmitTo=" + requests.utils.quote(em.url, safe="") in a["taskUrl"]
    assert accept(em, hit["HITId"], "AWORKERONE0001").status_code == 409  # one per worker
    h = c.get_hit(HITId=hit["HITId"])["HIT"]
    assert (h["NumberOfAssignmentsPending"], h["NumberOfAssignmentsAvailable"]) == (1, 1)
    # Not listed until submitted; externalSubmit needs a field besides assignmentId.
    assert c.list_assignments_for_hit(HITId=hit["HITId"])["NumResults"] == 0
    assert submit(em, a["assignmentId"]).status_code == 400
    assert submit(em, a["assignmentId"], done="yes").json()["status"] == "Submitted"
    assert submit(em, a["assignmentId"], done="again").status_code == 409
    got = c.get_assignment(AssignmentId=a["assignmentId"])["Assignment"]
    assert got["AssignmentStatus"] == "Submitted" and "<FreeText>yes</FreeText>" in got["Answer"]
    assert got["AutoApprovalTime"] > got["SubmitTime"]
    # Reject needs feedback and a Submitted assignment; approve overrides a rejection.
    with pytest.raises(c.exceptions.RequestError):
        c.reject_assignment(AssignmentId=a["assignmentId"], RequesterFeedback="")
    c.reject_assignment(AssignmentId=a["assignmentId"], RequesterFeedback="Missed the check")
    with pytest.raises(c.exceptions.RequestError) as err:
        c.approve_assignment(AssignmentId=a["assignmentId"])
    assert err.value.response["TurkErrorCode"].endswith("InvalidAssignmentState")
    c.approve_assignment(AssignmentId=a["assignmentId"], OverrideRejection=True)
    # Bonus: token makes a repeat an error, a wrong worker is refused.
    c.send_bonus(WorkerId="AWORKERONE0001", AssignmentId=a["assignmentId"],
                 BonusAmount="0.25", Reason="thanks", UniqueRequestToken="b1")
    with pytest.raises(c.exceptions.RequestError):
        c.send_bonus(WorkerId="AWORKERONE0001", AssignmentId=a["assignmentId"],
                     BonusAmount="0.25", Reason="thanks", UniqueRequestToken="b1")
    with pytest.raises(c.exceptions.RequestError):
        c.send_bonus(WorkerId="AOTHERWORKER01", AssignmentId=a["assignmentId"],
                     BonusAmount="0.25", Reason="thanks")
    assert c.list_bonus_payments(AssignmentId=a["assignmentId"])["NumResults"] == 1


def test_returned_assignment_id_goes_to_the_next_worker(em):
    c = mturk(em)
    hit = make_hit(c, MaxAssignments=1)
    first = accept(em, hit["HITId"]).json()
    assert accept(em, hit["HITId"]).status_code == 409  # the only slot is taken
    r = requests.post(f"{em.url}/worker/assignments/{first['assignmentId']}/return",
                      headers={"Accept": "application/json"}, timeout=10)
    assert r.json()["status"] == "Returned"
    assert submit(em, first["assignmentId"], x="1").status_code == 400  # returned: gone
    second = accept(em, hit["HITId"]).json()
    assert second["assignmentId"] == first["assignmentId"]
    assert second["workerId"] != first["workerId"]
    assert submit(em, second["assignmentId"], x="1").status_code == 200
    listed = c.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert [(x["AssignmentId"], x["WorkerId"]) for x in listed] == \
        [(second["assignmentId"], second["workerId"])]


def test_expire_with_pending_assignments_then_delete(em):
    c = mturk(em)
    hit = make_hit(c, MaxAssignments=3)
    a = accept(em, hit["HITId"]).json()
    c.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=datetime(2015, 1, 1))
    h = c.get_hit(HITId=hit["HITId"])["HIT"]
    assert h["HITStatus"] == "Unassignable"  # closed to new workers, one still working
    assert accept(em, hit["HITId"]).status_code == 409
    with pytest.raises(c.exceptions.RequestError):
        c.delete_hit(HITId=hit["HITId"])  # pending work
    submit(em, a["assignmentId"], x="1")
    with pytest.raises(c.exceptions.RequestError):
        c.delete_hit(HITId=hit["HITId"])  # submitted, undecided
    c.approve_assignment(AssignmentId=a["assignmentId"])
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"
    c.delete_hit(HITId=hit["HITId"])
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Disposed"
    assert c.list_hits()["NumResults"] == 0
    # Extending re-opens an expired HIT; more assignments need a live HIT.
    other = make_hit(c, MaxAssignments=1)
    c.update_expiration_for_hit(HITId=other["HITId"], ExpireAt=datetime(2015, 1, 1))
    c.update_expiration_for_hit(HITId=other["HITId"],
                                ExpireAt=datetime.now(UTC) + timedelta(hours=1))
    c.create_additional_assignments_for_hit(HITId=other["HITId"],
                                            NumberOfAdditionalAssignments=2,
                                            UniqueRequestToken="more-1")
    assert c.get_hit(HITId=other["HITId"])["HIT"]["MaxAssignments"] == 3


def test_auto_approval_and_deadline_follow_the_clock():
    now = [1_800_000_000.0]
    running = serve_in_thread(create_emulator(allow_http_localhost=True,
                                              clock=lambda: now[0]))
    try:
        c = mturk(running)
        hit = make_hit(c, MaxAssignments=2, AssignmentDurationInSeconds=60,
                       AutoApprovalDelayInSeconds=120)
        late = accept(running, hit["HITId"]).json()
        done = accept(running, hit["HITId"]).json()
        submit(running, done["assignmentId"], x="1")
        now[0] += 61  # `late` ran out of time: abandoned, its slot free again
        h = c.get_hit(HITId=hit["HITId"])["HIT"]
        assert (h["NumberOfAssignmentsPending"], h["NumberOfAssignmentsAvailable"]) == (0, 1)
        assert submit(running, late["assignmentId"], x="1").status_code == 400
        now[0] += 60
        got = c.get_assignment(AssignmentId=done["assignmentId"])["Assignment"]
        assert got["AssignmentStatus"] == "Approved"
    finally:
        running.stop()


def test_tracked_balance_and_insufficient_funds():
    running = serve_in_thread(create_emulator(allow_http_localhost=True, balance="1.00",
                                              environment="production"))
    try:
        c = mturk(running)
        make_hit(c, MaxAssignments=2, Reward="0.40")  # 0.80 + 2 x 0.08 = 0.96
        assert c.get_account_balance()["AvailableBalance"] == "0.04"
        with pytest.raises(c.exceptions.RequestError) as err:
            make_hit(c, MaxAssignments=1, Reward="0.05")
        assert err.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.InsufficientFunds"
        assert c.list_hits()["NumResults"] == 1
    finally:
        running.stop()


def test_state_file_survives_a_restart(tmp_path):
    path = tmp_path / "state.json"
    first = serve_in_thread(create_emulator(allow_http_localhost=True, state_path=path))
    try:
        hit = make_hit(mturk(first), UniqueRequestToken="persist")
        a = accept(first, hit["HITId"]).json()
    finally:
        first.stop()
    second = serve_in_thread(create_emulator(allow_http_localhost=True, state_path=path))
    try:
        c = mturk(second)
        assert c.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsPending"] == 1
        with pytest.raises(c.exceptions.RequestError):
            make_hit(c, UniqueRequestToken="persist")
        assert submit(second, a["assignmentId"], x="1").status_code == 200
    finally:
        second.stop()


def test_worker_site_pages(em):
    c = mturk(em)
    hit = make_hit(c)
    index = requests.get(em.url + "/", timeout=10).text
    assert hit["HITId"] in index
    preview = requests.get(f"{em.url}/worker/hits/{hit['HITId']}", timeout=10).text
    assert "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE" in preview and 'id="accept"' in preview
    r = requests.post(f"{em.url}/worker/hits/{hit['HITId']}/accept", data={"workerId": ""},
                      timeout=10)
    assert r.status_code == 200 and "<iframe" in r.text and "turkSubmitTo=" in r.text
    assert r.url.startswith(em.url + "/worker/assignments/")

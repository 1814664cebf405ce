"""The local endpoint fails where MTurk would: each rule sent through the real boto3
client over HTTP (qualifications on workers, extension across 10 assignments, tokens
forgotten after 24 hours, deleted HITs, zero and malformed amounts, locales, assignment statuses,
qualification types and NotifyWorkers)."""
from __future__ import annotations

from datetime import datetime

import pytest
import requests

from server.mturk.emulator import create_emulator, serve_in_thread
from server.mturk.requester import LOCALE, NUMBER_APPROVED, PERCENT_APPROVED

from .test_emulator import accept, make_hit, mturk, submit

MASTERS = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"


@pytest.fixture
def clock():
    return [1_800_000_000.0]


@pytest.fixture
def em(clock):
    running = serve_in_thread(create_emulator(allow_http_localhost=True,
                                              clock=lambda: clock[0]))
    yield running
    running.stop()


def describe(em, worker_id, **profile):
    r = requests.post(f"{em.url}/_emulator/workers/{worker_id}", json=profile, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def code(err) -> str:
    return err.value.response["TurkErrorCode"]


def req(qid, comp, ints=None, locales=None):
    q = {"QualificationTypeId": qid, "Comparator": comp,
         "ActionsGuarded": "DiscoverPreviewAndAccept"}
    if ints is not None:
        q["IntegerValues"] = ints
    if locales is not None:
        q["LocaleValues"] = locales
    return q


def test_qualification_requirements_are_enforced_on_workers(em):
    c = mturk(em)
    describe(em, "ANOVICE0000001", masters=False)
    describe(em, "ALOWRATE000001", approval_rate=90)
    describe(em, "AFEWHITS000001", approved=50)
    describe(em, "AINDIA00000001", locale={"Country": "IN"})
    describe(em, "ANEWYORK000001", locale={"Country": "US", "Subdivision": "NY"})
    hit = make_hit(c, MaxAssignments=9, QualificationRequirements=[
        req(MASTERS, "Exists"), req(PERCENT_APPROVED, "GreaterThanOrEqualTo", [95]),
        req(NUMBER_APPROVED, "GreaterThanOrEqualTo", [1000]),
        req(LOCALE, "In", locales=[{"Country": "US"}, {"Country": "CA"}])])
    for worker in ("ANOVICE0000001", "ALOWRATE000001", "AFEWHITS000001", "AINDIA00000001"):
        r = accept(em, hit["HITId"], worker)
        assert r.status_code == 403 and "qualification" in r.json()["error"], worker
        # Guarded at preview too (DiscoverPreviewAndAccept).
        assert requests.get(f"{em.url}/worker/hits/{hit['HITId']}",
                            params={"workerId": worker}, timeout=10).status_code == 403
    assert accept(em, hit["HITId"], "ANEWYORK000001").status_code == 201
    assert accept(em, hit["HITId"]).status_code == 201      # the default: a US Master
    assert c.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsPending"] == 2
    # EqualTo on a state; the Master without a state does not match it.
    ny = make_hit(c, QualificationRequirements=[
        req(LOCALE, "EqualTo", locales=[{"Country": "US", "Subdivision": "NY"}])])
    assert accept(em, ny["HITId"], "ANEWYORK000001").status_code == 201
    assert accept(em, ny["HITId"], "ALOWRATE000001").status_code == 403


def test_experiment_qualification_keeps_its_holders_out(em):
    c = mturk(em)
    qt = c.create_qualification_type(Name="tll took part: e", Description="took part",
                                     QualificationTypeStatus="Active")["QualificationType"]
    qid = qt["QualificationTypeId"]
    with pytest.raises(c.exceptions.RequestError) as err:  # names are unique
        c.create_qualification_type(Name="tll took part: e", Description="again",
                                    QualificationTypeStatus="Active")
    assert code(err).endswith("QualificationTypeAlreadyExists")
    found = c.list_qualification_types(Query="tll took part", MustBeRequestable=False,
                                       MustBeOwnedByCaller=True)["QualificationTypes"]
    assert [t["QualificationTypeId"] for t in found] == [qid]
    hit = make_hit(c, QualificationRequirements=[req(qid, "DoesNotExist")])
    needs = make_hit(c, QualificationRequirements=[req(qid, "Exists")])
    c.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId="APAST000000001",
                                          IntegerValue=1, SendNotification=False)
    assert accept(em, hit["HITId"], "APAST000000001").status_code == 403
    assert accept(em, needs["HITId"], "APAST000000001").status_code == 201
    assert accept(em, hit["HITId"], "AFRESH00000001").status_code == 201
    assert accept(em, needs["HITId"], "AFRESH00000001").status_code == 403
    listed = c.list_workers_with_qualification_type(QualificationTypeId=qid)["Qualifications"]
    assert [q["WorkerId"] for q in listed] == ["APAST000000001"]
    # Unknown types are refused in requirements and in grants.
    with pytest.raises(c.exceptions.RequestError) as err:
        c.associate_qualification_with_worker(QualificationTypeId="3NOSUCHTYPE0000000000000000000",
                                              WorkerId="APAST000000001", IntegerValue=1)
    assert code(err).endswith("QualificationTypeDoesNotExist")


@pytest.mark.parametrize("bad, why", [
    (req(LOCALE, "In", locales=[{"Country": "XX"}]), "ISO 3166"),
    (req(LOCALE, "In", locales=[{"Country": "us"}]), "ISO 3166"),
    (req(LOCALE, "EqualTo", locales=[{"Country": "US", "Subdivision": "ZZ"}]), "ISO 3166-2"),
    (req(LOCALE, "EqualTo", locales=[{"Country": "DE", "Subdivision": "BY"}]), "United States"),
    (req(LOCALE, "EqualTo", locales=[{"Country": "US"}, {"Country": "CA"}]), "exactly one"),
    (req(LOCALE, "GreaterThan", locales=[{"Country": "US"}]), "only EqualTo"),
    (req(LOCALE, "In", ints=[1]), "LocaleValues"),
    (req(LOCALE, "In", locales=[{"Country": "US"}] * 31), "1 to 30"),
    (req(PERCENT_APPROVED, "GreaterThan", locales=[{"Country": "US"}]), "IntegerValues"),
    (req(MASTERS, "Exists", ints=[1]), "takes no"),
    (req(MASTERS, "GreaterThan", ints=[1]), "Exists or"),
    ({**req(MASTERS, "Exists"), "ActionsGuarded": "Everything"}, "ActionsGuarded"),
])
def test_qualification_requirements_are_validated(em, bad, why):
    c = mturk(em)
    with pytest.raises(c.exceptions.RequestError) as err:
        make_hit(c, QualificationRequirements=[bad])
    assert why in err.value.response["Error"]["Message"]
    assert c.list_hits()["NumResults"] == 0


def test_zero_reward_refused(em):
    c = mturk(em)
    for reward in ("0.00", "0"):
        with pytest.raises(c.exceptions.RequestError) as err:
            make_hit(c, Reward=reward)
        assert "minimum reward" in err.value.response["Error"]["Message"]
    assert c.list_hits()["NumResults"] == 0


MALFORMED_AMOUNTS = ["\n$0.05", "$0.05", "0.05\n", " 0.05", "0.05 ", "0.051", "-0.05",
                     "+0.05", "1e-2", "0,05", ".05", "0.05 USD", "\uff10.05", "NaN"]


def _refused_as_malformed(c, err, member):
    resp = err.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert resp["Error"]["Code"] == "RequestError"
    assert code(err) == "AWS.MechanicalTurk.ParameterValidation"
    assert f"at '{member}' failed to satisfy constraint" in resp["Error"]["Message"]
    assert "^[0-9]+(\\.)?[0-9]{0,2}$" in resp["Error"]["Message"]


def test_malformed_amounts_are_refused(em):
    """A CurrencyAmount is a string of digits with at most two decimals: no currency sign,
    sign, exponent, comma or whitespace, as MTurk validates Reward and BonusAmount."""
    c = mturk(em)
    for bad in MALFORMED_AMOUNTS:
        with pytest.raises(c.exceptions.RequestError) as err:
            make_hit(c, Reward=bad)
        _refused_as_malformed(c, err, "reward")
        with pytest.raises(c.exceptions.RequestError) as err:
            c.create_hit_type(Title="x", Description="y", Reward=bad,
                              AssignmentDurationInSeconds=600)
        _refused_as_malformed(c, err, "reward")
    assert c.list_hits()["NumResults"] == 0
    # The well-formed shapes the pattern allows are accepted and shown with two decimals.
    assert [make_hit(c, Reward=r)["Reward"] for r in ("0.05", "1", "1.5", "2.")] == \
        ["0.05", "1.00", "1.50", "2.00"]
    hit = make_hit(c)
    a = accept(em, hit["HITId"]).json()
    assert submit(em, a["assignmentId"], x="1").json()["status"] == "Submitted"
    for i, bad in enumerate(("\n$0.25", "$0.25", "0.25 ", "0.255")):
        with pytest.raises(c.exceptions.RequestError) as err:
            c.send_bonus(WorkerId=a["workerId"], AssignmentId=a["assignmentId"],
                         BonusAmount=bad, Reason="thanks", UniqueRequestToken=f"bad{i}")
        _refused_as_malformed(c, err, "bonusAmount")
    assert c.list_bonus_payments(AssignmentId=a["assignmentId"])["NumResults"] == 0
    c.send_bonus(WorkerId=a["workerId"], AssignmentId=a["assignmentId"], BonusAmount="0.25",
                 Reason="thanks", UniqueRequestToken="ok")
    assert [b["BonusAmount"] for b in c.list_bonus_payments(
        AssignmentId=a["assignmentId"])["BonusPayments"]] == ["0.25"]


def test_extending_across_ten_assignments_is_refused(em):
    c = mturk(em)
    small = make_hit(c, MaxAssignments=9)
    with pytest.raises(c.exceptions.RequestError) as err:
        c.create_additional_assignments_for_hit(HITId=small["HITId"],
                                                NumberOfAdditionalAssignments=1)
    assert code(err) == "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease"
    assert c.get_hit(HITId=small["HITId"])["HIT"]["MaxAssignments"] == 9
    c.create_additional_assignments_for_hit(HITId=make_hit(c, MaxAssignments=10)["HITId"],
                                            NumberOfAdditionalAssignments=5)
    c.create_additional_assignments_for_hit(HITId=make_hit(c, MaxAssignments=3)["HITId"],
                                            NumberOfAdditionalAssignments=6)


def test_request_tokens_are_forgotten_after_24_hours(em, clock):
    c = mturk(em)
    first = make_hit(c, UniqueRequestToken="tok-day")
    clock[0] += 24 * 3600 - 1
    with pytest.raises(c.exceptions.RequestError) as err:
        make_hit(c, UniqueRequestToken="tok-day")
    assert code(err).endswith("HitAlreadyExists") and first["HITId"] in str(err.value)
    clock[0] += 2
    second = make_hit(c, UniqueRequestToken="tok-day")
    assert second["HITId"] != first["HITId"]
    assert c.list_hits()["NumResults"] == 2


def test_deleted_hits_are_refused(em):
    c = mturk(em)
    hit = make_hit(c, MaxAssignments=1)
    a = accept(em, hit["HITId"]).json()
    submit(em, a["assignmentId"], x="1")
    c.reject_assignment(AssignmentId=a["assignmentId"], RequesterFeedback="missed")
    c.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=datetime(2015, 1, 1))
    c.delete_hit(HITId=hit["HITId"])
    for call in (lambda: c.delete_hit(HITId=hit["HITId"]),
                 lambda: c.update_expiration_for_hit(HITId=hit["HITId"],
                                                     ExpireAt=datetime(2040, 1, 1)),
                 lambda: c.create_additional_assignments_for_hit(
                     HITId=hit["HITId"], NumberOfAdditionalAssignments=1),
                 lambda: c.approve_assignment(AssignmentId=a["assignmentId"],
                                              OverrideRejection=True)):
        with pytest.raises(c.exceptions.RequestError) as err:
            call()
        assert code(err) == "AWS.MechanicalTurk.HITDoesNotExist"
    assert accept(em, hit["HITId"]).status_code == 404
    assert c.get_assignment(AssignmentId=a["assignmentId"])["Assignment"][
        "AssignmentStatus"] == "Rejected"


def test_assignment_statuses_are_mturks_own(em):
    c = mturk(em)
    hit = make_hit(c, MaxAssignments=3)
    pending = accept(em, hit["HITId"]).json()
    done = accept(em, hit["HITId"]).json()
    submit(em, done["assignmentId"], x="1")
    with pytest.raises(c.exceptions.RequestError):
        c.list_assignments_for_hit(HITId=hit["HITId"], AssignmentStatuses=["Accepted"])
    # An accepted, unsubmitted assignment is not the requester's to see.
    with pytest.raises(c.exceptions.RequestError) as err:
        c.get_assignment(AssignmentId=pending["assignmentId"])
    assert code(err).endswith("AssignmentDoesNotExist")
    got = c.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert {a["AssignmentStatus"] for a in got} == {"Submitted"}
    assert [a["AssignmentId"] for a in got] == [done["assignmentId"]]


def test_notify_workers_at_most_100(em):
    c = mturk(em)
    hit = make_hit(c, MaxAssignments=2)
    a = accept(em, hit["HITId"], "AWORKED0000001").json()
    with pytest.raises(c.exceptions.RequestError):
        c.notify_workers(Subject="s", MessageText="m",
                         WorkerIds=[f"A{i:013d}" for i in range(101)])
    with pytest.raises(c.exceptions.RequestError):
        c.notify_workers(Subject="x" * 201, MessageText="m", WorkerIds=["AWORKED0000001"])
    out = c.notify_workers(Subject="Thanks", MessageText="A follow-up study is open.",
                           WorkerIds=["AWORKED0000001", "ASTRANGER00001"])
    assert [f["WorkerId"] for f in out["NotifyWorkersFailureStatuses"]] == ["ASTRANGER00001"]
    got = describe(em, a["workerId"])
    assert [m["Subject"] for m in got["messages"]] == ["Thanks"]


def test_hit_type_update_changes_reward_and_requirements(em):
    c = mturk(em)
    hit = make_hit(c)
    new_type = c.create_hit_type(Title="Pictures", Description="Choose the picture",
                                 Reward="0.10", AssignmentDurationInSeconds=600,
                                 AutoApprovalDelayInSeconds=86400,
                                 QualificationRequirements=[req(MASTERS, "Exists")])["HITTypeId"]
    c.update_hit_type_of_hit(HITId=hit["HITId"], HITTypeId=new_type)
    got = c.get_hit(HITId=hit["HITId"])["HIT"]
    assert got["Reward"] == "0.10" and got["HITTypeId"] == new_type
    assert got["QualificationRequirements"][0]["QualificationTypeId"] == MASTERS
    with pytest.raises(c.exceptions.RequestError):
        c.create_hit_type(Title="x", Description="y", Reward="0.00",
                          AssignmentDurationInSeconds=600)


def test_rejection_overridden_only_within_30_days(em, clock):
    c = mturk(em)
    hit = make_hit(c, MaxAssignments=2)
    ids = []
    for _ in range(2):
        a = accept(em, hit["HITId"]).json()
        submit(em, a["assignmentId"], x="1")
        c.reject_assignment(AssignmentId=a["assignmentId"], RequesterFeedback="missed")
        ids.append(a["assignmentId"])
    c.approve_assignment(AssignmentId=ids[0], OverrideRejection=True)
    clock[0] += 30 * 86400 + 1
    with pytest.raises(c.exceptions.RequestError) as err:
        c.approve_assignment(AssignmentId=ids[1], OverrideRejection=True)
    assert code(err).endswith("InvalidAssignmentState") and "30 days" in str(err.value)

"""The local Prolific-compatible endpoint, rule by rule (server/recruitment/prolific/
emulator.py): each documented behaviour of Prolific it copies, with the documented error
shape. Driven through Flask's test client (the HTTP client and the pages are exercised
over sockets by the other tests)."""
from __future__ import annotations

import pytest

from server.recruitment.prolific import shapes
from server.recruitment.prolific.emulator import create_emulator

TOKEN = "emulator-test-token"
AUTH = {"Authorization": f"Token {TOKEN}"}
JSON = {"Accept": "application/json"}
URL = "https://lab.example.org/lab/x/via/prolific?PROLIFIC_PID={{%PROLIFIC_PID%}}" \
      "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def body(**over) -> dict:
    doc = shapes.study_body(name="Look-alike", internal_name="tll:x", description="d",
                            external_study_url=URL, places=2, reward_cents=150, minutes=10,
                            max_minutes=30,
                            codes=[shapes.completion_code("CDONE"),
                                   shapes.completion_code("CFAIL", "FAILED_ATTENTION_CHECK"),
                                   shapes.completion_code("CAUTO", "OTHER",
                                                          "AUTOMATICALLY_APPROVE")])
    doc.update(over)
    return doc


@pytest.fixture
def em():
    now = [1_000_000.0]
    app = create_emulator(TOKEN, "100.00", clock=lambda: now[0])
    client = app.test_client()
    client.now = now
    return client


def create(em, **over) -> dict:
    r = em.post("/api/v1/studies/", json=body(**over), headers=AUTH)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def published(em, **over) -> dict:
    s = create(em, **over)
    r = em.post(f"/api/v1/studies/{s['id']}/transition/", json={"action": "PUBLISH"},
                headers=AUTH)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def take_part(em, study_id: str, pid: str):
    return em.post(f"/studies/{study_id}/start", data={"participant_id": pid}, headers=JSON)


def finish(em, pid: str, code: str):
    em.set_cookie("prolific_pid", pid)
    return em.get(f"/submissions/complete?cc={code}", headers=JSON)


def submission(em, sub_id: str) -> dict:
    return em.get(f"/api/v1/submissions/{sub_id}/", headers=AUTH).get_json()


def assert_error(r, status: int) -> dict:
    assert r.status_code == status
    err = r.get_json()["error"]
    assert err["status"] == status and err["title"] and err["detail"]
    return err


def test_every_call_needs_the_token(em):
    assert_error(em.get("/api/v1/studies/"), 401)
    assert_error(em.get("/api/v1/studies/", headers={"Authorization": "Token wrong"}), 401)
    assert em.get("/api/v1/studies/", headers=AUTH).status_code == 200


def test_a_study_needs_its_fields_with_a_detail_per_field(em):
    bad = body(name="", reward=0, device_compatibility=["phone"], completion_codes=[])
    err = assert_error(em.post("/api/v1/studies/", json=bad, headers=AUTH), 400)
    assert set(err["detail"]) >= {"name", "reward", "device_compatibility", "completion_codes"}


def test_the_study_url_must_carry_the_participant_placeholder(em):
    err = assert_error(em.post("/api/v1/studies/", json=body(
        external_study_url="https://lab.example.org/x"), headers=AUTH), 400)
    assert "PROLIFIC_PID" in err["detail"]["external_study_url"][0]


def test_the_reward_must_reach_the_minimum_hourly_rate(em):
    err = assert_error(em.post("/api/v1/studies/", json=body(reward=50, estimated_completion_time=10),
                               headers=AUTH), 400)
    assert "minimum" in err["detail"]["reward"][0]


def test_completion_codes_have_known_types_and_actions(em):
    codes = [{"code": "X", "code_type": "SOMETHING", "actions": []}]
    assert_error(em.post("/api/v1/studies/", json=body(completion_codes=codes), headers=AUTH), 400)
    codes = [shapes.completion_code("X", action="PAY_DOUBLE")]
    assert_error(em.post("/api/v1/studies/", json=body(completion_codes=codes), headers=AUTH), 400)


def test_a_new_study_is_unpublished_and_transitions_follow_the_study_life(em):
    s = create(em)
    assert s["status"] == "UNPUBLISHED"
    sid = s["id"]

    def go(action):
        return em.post(f"/api/v1/studies/{sid}/transition/", json={"action": action}, headers=AUTH)

    assert_error(go("PAUSE"), 400)                      # not active yet
    assert go("PUBLISH").get_json()["status"] == "ACTIVE"
    assert_error(go("PUBLISH"), 400)                    # only once
    assert go("PAUSE").get_json()["status"] == "PAUSED"
    assert go("START").get_json()["status"] == "ACTIVE"
    assert go("STOP").get_json()["status"] == "AWAITING REVIEW"
    assert_error(go("START"), 400)
    assert_error(go("LAUNCH"), 400)


def test_publishing_needs_and_spends_the_balance(em):
    s = create(em, total_available_places=60)          # 60 x 1.50 x 1.333 > 100
    err = assert_error(em.post(f"/api/v1/studies/{s['id']}/transition/",
                               json={"action": "PUBLISH"}, headers=AUTH), 400)
    assert "balance" in err["detail"]
    published(em)                                       # 2 x 1.50 + fee = 4.00
    ws = em.get("/api/v1/workspaces/", headers=AUTH).get_json()["results"][0]["id"]
    bal = em.get(f"/api/v1/workspaces/{ws}/balance/", headers=AUTH).get_json()
    assert bal["available_balance"] == 10000 - 400


def test_only_an_unpublished_study_is_deleted(em):
    draft, live = create(em), published(em)
    assert_error(em.delete(f"/api/v1/studies/{live['id']}/", headers=AUTH), 400)
    assert em.delete(f"/api/v1/studies/{draft['id']}/", headers=AUTH).status_code == 204
    assert_error(em.get(f"/api/v1/studies/{draft['id']}/", headers=AUTH), 404)


def test_the_participant_is_sent_to_the_study_url_with_the_placeholders_filled(em):
    sid = published(em)["id"]
    r = em.post(f"/studies/{sid}/start", data={"participant_id": "PIDA"})
    assert r.status_code == 303
    sub = r.headers["Location"].rsplit("SESSION_ID=", 1)[1]
    assert r.headers["Location"] == ("https://lab.example.org/lab/x/via/prolific?"
                                     f"PROLIFIC_PID=PIDA&STUDY_ID={sid}&SESSION_ID={sub}")
    assert submission(em, sub)["status"] == "ACTIVE"


def test_only_an_active_study_with_free_places_takes_participants_once(em):
    draft = create(em)
    assert take_part(em, draft["id"], "PIDA").status_code == 409
    sid = published(em)["id"]
    first = take_part(em, sid, "PIDA").get_json()
    assert take_part(em, sid, "PIDA").get_json()["submission_id"] == first["submission_id"]
    assert take_part(em, sid, "PIDB").status_code == 200
    assert take_part(em, sid, "PIDC").status_code == 409        # two places
    assert finish(em, "PIDA", "CDONE").status_code == 200
    assert take_part(em, sid, "PIDA").status_code == 409        # finished: once only


def test_a_returned_submission_frees_its_place(em):
    sid = published(em)["id"]
    a = take_part(em, sid, "PIDA").get_json()
    take_part(em, sid, "PIDB")
    em.set_cookie("prolific_pid", "PIDA")
    assert em.post(f"/submissions/{a['submission_id']}/return", headers=JSON).status_code == 200
    assert submission(em, a["submission_id"])["status"] == "RETURNED"
    assert take_part(em, sid, "PIDC").status_code == 200


def test_an_active_submission_past_the_maximum_time_times_out(em):
    sid = published(em)["id"]                           # maximum 30 minutes
    a = take_part(em, sid, "PIDA").get_json()["submission_id"]
    em.now[0] += 29 * 60
    assert submission(em, a)["status"] == "ACTIVE"
    em.now[0] += 2 * 60
    assert submission(em, a)["status"] == "TIMED-OUT"
    assert finish(em, "PIDA", "CDONE").status_code == 404       # too late


def test_the_completion_code_ends_the_submission_by_its_action(em):
    sid = published(em)["id"]
    a = take_part(em, sid, "PIDA").get_json()["submission_id"]
    b = take_part(em, sid, "PIDB").get_json()["submission_id"]
    assert finish(em, "PIDA", "NOTACODE").status_code == 400
    assert finish(em, "PIDA", "CDONE").get_json()["status"] == "AWAITING REVIEW"
    assert finish(em, "PIDB", "CAUTO").get_json()["status"] == "APPROVED"
    assert submission(em, a)["study_code"] == "CDONE"
    assert submission(em, b)["status"] == "APPROVED"


def test_only_a_submission_awaiting_review_is_decided_and_repeats_are_ignored(em):
    sid = published(em)["id"]
    a = take_part(em, sid, "PIDA").get_json()["submission_id"]
    approve = {"action": "APPROVE"}
    assert_error(em.post(f"/api/v1/submissions/{a}/transition/", json=approve, headers=AUTH), 400)
    finish(em, "PIDA", "CDONE")
    r = em.post(f"/api/v1/submissions/{a}/transition/", json=approve, headers=AUTH)
    assert r.get_json()["status"] == "APPROVED"
    r = em.post(f"/api/v1/submissions/{a}/transition/", json=approve, headers=AUTH)
    assert r.status_code == 200 and r.get_json()["status"] == "APPROVED"
    reject = shapes.reject_body("LOW_EFFORT", "x" * 120)
    assert_error(em.post(f"/api/v1/submissions/{a}/transition/", json=reject, headers=AUTH), 400)
    assert_error(em.post("/api/v1/submissions/nope/transition/", json=approve, headers=AUTH), 404)


def test_a_rejection_needs_a_category_and_a_100_character_message(em):
    sid = published(em)["id"]
    a = take_part(em, sid, "PIDA").get_json()["submission_id"]
    finish(em, "PIDA", "CFAIL")
    url = f"/api/v1/submissions/{a}/transition/"
    assert_error(em.post(url, json=shapes.reject_body("LOW_EFFORT", "too short"), headers=AUTH), 400)
    assert_error(em.post(url, json=shapes.reject_body("MOOD", "x" * 120), headers=AUTH), 400)
    r = em.post(url, json=shapes.reject_body("FAILED_CHECK", "x" * 100), headers=AUTH)
    assert r.get_json()["status"] == "REJECTED"


def test_bulk_approve_takes_only_submissions_of_the_study_awaiting_review(em):
    sid = published(em)["id"]
    a = take_part(em, sid, "PIDA").get_json()["submission_id"]
    b = take_part(em, sid, "PIDB").get_json()["submission_id"]
    finish(em, "PIDA", "CDONE")
    url = "/api/v1/submissions/bulk-approve/"
    assert_error(em.post(url, json={"study_id": sid, "submission_ids": [a, b]}, headers=AUTH), 400)
    assert submission(em, a)["status"] == "AWAITING REVIEW"     # all or nothing
    assert_error(em.post(url, json={"study_id": "other", "submission_ids": [a]}, headers=AUTH), 400)
    assert em.post(url, json={"study_id": sid, "submission_ids": [a]}, headers=AUTH).status_code == 200
    assert submission(em, a)["status"] == "APPROVED"


def test_bonuses_are_set_up_for_participants_of_the_study_and_each_pay_call_pays(em):
    sid = published(em)["id"]
    take_part(em, sid, "PIDA")
    url = "/api/v1/submissions/bonus-payments/"
    assert_error(em.post(url, json={"study_id": sid, "csv_bonuses": "STRANGER,1.00"},
                         headers=AUTH), 400)
    assert_error(em.post(url, json={"study_id": sid, "csv_bonuses": "PIDA,-1"}, headers=AUTH), 400)
    r = em.post(url, json={"study_id": sid, "csv_bonuses": "PIDA,0.50"}, headers=AUTH)
    assert r.status_code == 201
    doc = r.get_json()
    assert (doc["amount"], doc["fees"], doc["total_amount"]) == (50, 17, 67)
    for _ in range(2):                                  # not idempotent, as documented
        assert em.post(f"/api/v1/bulk-bonus-payments/{doc['id']}/pay/", headers=AUTH).status_code == 202
    assert len(em.get("/_emulator/state").get_json()["payments"]) == 2


def test_lists_are_paginated(em):
    sid = published(em, total_available_places=25)["id"]
    for k in range(23):
        take_part(em, sid, f"PID{k:03d}")
    r = em.get(f"/api/v1/studies/{sid}/submissions/", headers=AUTH).get_json()
    assert len(r["results"]) == 20 and r["meta"]["count"] == 23
    nxt = r["_links"]["next"]["href"]
    r2 = em.get(nxt.replace("http://localhost", ""), headers=AUTH).get_json()
    assert len(r2["results"]) == 3 and r2["_links"]["next"] is None


def test_a_fault_loses_the_answer_after_or_refuses_before(em):
    em.post("/_emulator/faults", json={"path": "/api/v1/studies/", "when": "after"})
    assert_error(em.post("/api/v1/studies/", json=body(), headers=AUTH), 503)
    assert len(em.get("/api/v1/studies/", headers=AUTH).get_json()["results"]) == 1
    em.post("/_emulator/faults", json={"path": "/api/v1/studies/", "when": "before"})
    assert_error(em.post("/api/v1/studies/", json=body(), headers=AUTH), 503)
    assert len(em.get("/api/v1/studies/", headers=AUTH).get_json()["results"]) == 1

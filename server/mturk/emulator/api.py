"""The requester API of the local endpoint: AWS JSON 1.1 with
`X-Amz-Target: MTurkRequesterServiceV20170117.<Operation>`, MTurk's response shapes
(botocore's service model, timestamps as epoch seconds), NextToken pagination and
MTurk's error format."""
from __future__ import annotations

import base64
import json

from flask import Blueprint, Response, current_app, request

from .state import AssignmentRec, EmulatorState, HitRec, MTurkError

TARGET_PREFIX = "MTurkRequesterServiceV20170117."
ERROR_PREFIX = "com.amazonaws.mechanicalturk.requester#"
JSON_TYPE = "application/x-amz-json-1.1"

bp = Blueprint("mturk_emulator_api", __name__)


def _state() -> EmulatorState:
    return current_app.extensions["mturk_emulator"]


def _reply(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type=JSON_TYPE)


def _error(kind: str, message: str, turk_code: str | None = None) -> Response:
    body = {"__type": ERROR_PREFIX + kind, "Message": message}
    if turk_code:
        body["TurkErrorCode"] = turk_code
    return _reply(body, 400)


def hit_shape(state: EmulatorState, h: HitRec) -> dict:
    """Return the HIT as MTurk's `HIT` structure."""
    c = state.counts(h)
    out = {"HITId": h.hit_id, "HITTypeId": h.hit_type_id, "HITGroupId": h.hit_group_id,
           "CreationTime": h.creation_time, "Title": h.title, "Description": h.description,
           "Question": h.question, "Keywords": h.keywords,
           "HITStatus": state.hit_status(h), "MaxAssignments": h.max_assignments,
           "Reward": h.reward, "AutoApprovalDelayInSeconds": h.auto_approval_delay,
           "Expiration": h.expiration, "AssignmentDurationInSeconds": h.assignment_duration,
           "QualificationRequirements": h.qualification_requirements,
           "HITReviewStatus": "NotReviewed",
           "NumberOfAssignmentsPending": c["pending"],
           "NumberOfAssignmentsAvailable": c["available"],
           "NumberOfAssignmentsCompleted": c["completed"]}
    if h.requester_annotation:
        out["RequesterAnnotation"] = h.requester_annotation
    return out


def assignment_shape(a: AssignmentRec) -> dict:
    """Return the assignment as MTurk's `Assignment` structure."""
    out = {"AssignmentId": a.assignment_id, "WorkerId": a.worker_id, "HITId": a.hit_id,
           "AssignmentStatus": a.status, "AcceptTime": a.accept_time,
           "Deadline": a.deadline}
    for key, value in (("SubmitTime", a.submit_time), ("AutoApprovalTime", a.auto_approval_time),
                       ("ApprovalTime", a.approval_time), ("RejectionTime", a.rejection_time),
                       ("Answer", a.answer), ("RequesterFeedback", a.feedback)):
        if value is not None:
            out[key] = value
    return out


def _page(items: list, p: dict) -> tuple[list, dict]:
    size = int(p.get("MaxResults") or 10)
    if not 1 <= size <= 100:
        raise MTurkError("MaxResults must be between 1 and 100.")
    start = 0
    if p.get("NextToken"):
        try:
            start = int(json.loads(base64.urlsafe_b64decode(p["NextToken"]))["offset"])
        except (ValueError, KeyError, TypeError):
            raise MTurkError("The NextToken is not valid.") from None
    chunk = items[start:start + size]
    extra = {"NumResults": len(chunk)}
    if start + size < len(items):
        extra["NextToken"] = base64.urlsafe_b64encode(
            json.dumps({"offset": start + size}).encode()).decode()
    return chunk, extra


def _operation(state: EmulatorState, op: str, p: dict) -> dict:
    if op == "GetAccountBalance":
        return {"AvailableBalance": f"{state.balance:.2f}", "OnHoldBalance": "0.00"}
    if op == "CreateHIT":
        return {"HIT": hit_shape(state, state.create_hit(p))}
    if op == "GetHIT":
        with state.lock:
            state.tick()
            return {"HIT": hit_shape(state, state.hit(p.get("HITId")))}
    if op == "ListHITs":
        with state.lock:
            chunk, extra = _page(state.list_hits(), p)
            return {"HITs": [hit_shape(state, h) for h in chunk], **extra}
    if op == "ListAssignmentsForHIT":
        chunk, extra = _page(state.list_assignments(p.get("HITId"),
                                                    p.get("AssignmentStatuses")), p)
        return {"Assignments": [assignment_shape(a) for a in chunk], **extra}
    if op == "GetAssignment":
        with state.lock:
            state.tick()
            a = state.listed_assignment(p.get("AssignmentId"))
            return {"Assignment": assignment_shape(a),
                    "HIT": hit_shape(state, state.hits[a.hit_id])}
    if op == "ApproveAssignment":
        state.approve(p.get("AssignmentId"), p.get("RequesterFeedback"),
                      bool(p.get("OverrideRejection")))
        return {}
    if op == "RejectAssignment":
        state.reject(p.get("AssignmentId"), p.get("RequesterFeedback"))
        return {}
    if op == "SendBonus":
        state.send_bonus(p)
        return {}
    if op == "ListBonusPayments":
        rows = [b for b in state.bonuses
                if (not p.get("HITId") or b["HITId"] == p["HITId"])
                and (not p.get("AssignmentId") or b["AssignmentId"] == p["AssignmentId"])]
        chunk, extra = _page(rows, p)
        return {"BonusPayments": [{k: v for k, v in b.items() if k != "HITId"}
                                  for b in chunk], **extra}
    if op == "UpdateExpirationForHIT":
        if "ExpireAt" not in p:
            raise MTurkError("Value for ExpireAt is required.")
        state.update_expiration(p.get("HITId"), float(p["ExpireAt"]))
        return {}
    if op == "CreateAdditionalAssignmentsForHIT":
        state.add_assignments(p.get("HITId"), int(p.get("NumberOfAdditionalAssignments", 0)),
                              p.get("UniqueRequestToken"))
        return {}
    if op == "DeleteHIT":
        state.delete_hit(p.get("HITId"))
        return {}
    if op == "CreateHITType":
        return {"HITTypeId": state.create_hit_type(p)}
    if op == "UpdateHITTypeOfHIT":
        state.update_hit_type(p.get("HITId"), p.get("HITTypeId"))
        return {}
    return _qualification_operation(state, op, p)


def _qualification_operation(state: EmulatorState, op: str, p: dict) -> dict:
    if op == "CreateQualificationType":
        return {"QualificationType": state.create_qualification_type(p)}
    if op == "GetQualificationType":
        with state.lock:
            return {"QualificationType": state.qualification_type(
                p.get("QualificationTypeId"))}
    if op == "ListQualificationTypes":
        if "MustBeRequestable" not in p:
            raise MTurkError("Value for MustBeRequestable is required.")
        if p.get("MustBeRequestable"):
            rows = []          # the requester's types here are never requestable
        else:
            rows = state.list_qualification_types(p.get("Query"))
        chunk, extra = _page(rows, p)
        return {"QualificationTypes": chunk, **extra}
    if op == "AssociateQualificationWithWorker":
        state.associate(p.get("QualificationTypeId"), p.get("WorkerId"),
                        p.get("IntegerValue", 1))
        return {}
    if op == "DisassociateQualificationFromWorker":
        state.disassociate(p.get("QualificationTypeId"), p.get("WorkerId"))
        return {}
    if op == "ListWorkersWithQualificationType":
        rows = [{"QualificationTypeId": p.get("QualificationTypeId"), "WorkerId": w,
                 "IntegerValue": v, "Status": "Granted"}
                for w, v in state.workers_with(p.get("QualificationTypeId"))]
        chunk, extra = _page(rows, p)
        return {"Qualifications": chunk, **extra}
    if op == "NotifyWorkers":
        return {"NotifyWorkersFailureStatuses": state.notify(
            p.get("Subject"), p.get("MessageText"), p.get("WorkerIds") or [])}
    raise KeyError(op)


@bp.post("/")
def requester_api():
    """One operation of the requester API, named by X-Amz-Target."""
    target = request.headers.get("X-Amz-Target", "")
    if not target.startswith(TARGET_PREFIX):
        return _reply({"__type": "UnknownOperationException",
                       "message": "X-Amz-Target must name an MTurk operation"}, 400)
    # Signatures are not verified (the keys are the caller's business), but an unsigned
    # request is refused as AWS would, so a client without credentials fails here too.
    if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
        return _reply({"__type": "MissingAuthenticationTokenException",
                       "message": "Missing Authentication Token"}, 400)
    op = target[len(TARGET_PREFIX):]
    try:
        params = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        return _reply({"__type": "SerializationException",
                       "message": "request body is not JSON"}, 400)
    state = _state()
    with state.lock:
        state.calls[op] += 1
    try:
        state.check_fault(op)
        return _reply(_operation(state, op, params))
    except KeyError:
        return _reply({"__type": "UnknownOperationException",
                       "message": f"operation {op} is not served by the local endpoint"}, 400)
    except MTurkError as exc:
        return _error(exc.kind, exc.message, exc.turk_code)
    except (TypeError, ValueError) as exc:
        return _error("RequestError", f"Invalid parameter: {exc}",
                      "AWS.MechanicalTurk.ParameterValidation")


@bp.post("/_emulator/workers/<worker_id>")
def describe_worker(worker_id: str):
    """Describe a simulated worker (masters, approval_rate, approved, locale,
    qualifications) before they accept HITs; answers the worker as stored."""
    try:
        w = _state().describe_worker(worker_id, request.get_json(force=True) or {})
    except MTurkError as exc:
        return _reply({"error": exc.message}, 400)
    return _reply({"workerId": w.worker_id, "masters": w.masters,
                   "approval_rate": w.approval_rate, "approved": w.approved,
                   "locale": w.locale, "qualifications": w.qualifications,
                   "messages": w.messages})


@bp.post("/_emulator/faults")
def inject_fault():
    """Queue errors for an operation (rehearse throttling or outages)."""
    body = request.get_json(force=True)
    _state().inject_fault(body["operation"], int(body.get("times", 1)),
                          body.get("kind", "ServiceFault"),
                          body.get("message", "Rate exceeded"),
                          body.get("turk_code", "AWS.MechanicalTurk.RateLimitExceeded"))
    return _reply({"queued": True})

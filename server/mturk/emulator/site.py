"""The worker site of the local endpoint: list HITs, preview one, accept it as a new or
given worker, work on it in an iframe whose `turkSubmitTo` is this site, submit through
`/mturk/externalSubmit`, or return the assignment so its ID goes to the next worker."""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for

from .state import EmulatorState, MTurkError

bp = Blueprint("mturk_emulator_site", __name__)

PREVIEW_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"


def _state() -> EmulatorState:
    return current_app.extensions["mturk_emulator"]


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.is_json


def own_origin() -> str:
    """This site's origin as workers reach it (the value of turkSubmitTo)."""
    return current_app.config.get("PUBLIC_URL") or request.host_url.rstrip("/")


def task_url(external_url: str, **params) -> str:
    """Return the ExternalURL with MTurk's query parameters appended."""
    sep = "&" if urlsplit(external_url).query else "?"
    return external_url + sep + urlencode({k: v for k, v in params.items() if v is not None})


def _fail(exc: MTurkError, status: int = 400):
    if _wants_json():
        return jsonify({"error": exc.message, "TurkErrorCode": exc.turk_code}), status
    return render_template("mturk/emulator/message.html", title="Not possible",
                           message=exc.message), status


@bp.get("/")
def index():
    """Every HIT with its counts and a link to preview it."""
    state = _state()
    with state.lock:
        hits = [(h, state.hit_status(h), state.counts(h)) for h in state.list_hits()]
    return render_template("mturk/emulator/index.html", hits=hits,
                           environment=state.environment)


@bp.get("/worker/hits/<hit_id>")
def preview(hit_id: str):
    """The HIT in preview, as a worker sees it before accepting."""
    state = _state()
    worker = request.args.get("workerId", "").strip()
    try:
        with state.lock:
            h = state.live_hit(hit_id)
            status = state.hit_status(h)
            unmet = state.unmet(worker, h, "Preview") if worker else []
    except MTurkError as exc:
        return _fail(exc, 404)
    if unmet:
        return _fail(MTurkError("You do not meet the qualification requirements to preview "
                                "this HIT: " + "; ".join(unmet) + ".",
                                "AWS.MechanicalTurk.QualificationRequirementNotMet"), 403)
    src = task_url(h.external_url, assignmentId=PREVIEW_ID, hitId=h.hit_id)
    return render_template("mturk/emulator/preview.html", hit=h, status=status, src=src)


@bp.post("/worker/hits/<hit_id>/accept")
def accept(hit_id: str):
    """Accept the HIT as the given worker (form/JSON `workerId`) or a new one."""
    data = request.get_json(silent=True) or request.form
    try:
        a = _state().accept(hit_id, (data.get("workerId") or "").strip() or None)
    except MTurkError as exc:
        code = exc.turk_code
        return _fail(exc, 403 if "QualificationRequirementNotMet" in code else
                     409 if "Already" in code or "NotAssignable" in code else
                     400 if "ParameterValidation" in code else 404)
    if _wants_json():
        return jsonify(_assignment_json(a)), 201
    return redirect(url_for(".work", assignment_id=a.assignment_id), 303)


def _assignment_json(a) -> dict:
    h = _state().hits[a.hit_id]
    return {"assignmentId": a.assignment_id, "workerId": a.worker_id, "hitId": a.hit_id,
            "status": a.status,
            "taskUrl": task_url(h.external_url, assignmentId=a.assignment_id,
                                hitId=a.hit_id, workerId=a.worker_id,
                                turkSubmitTo=own_origin()),
            "pageUrl": url_for(".work", assignment_id=a.assignment_id, _external=True)}


@bp.get("/worker/assignments/<assignment_id>")
def work(assignment_id: str):
    """The accepted HIT in an iframe, as on MTurk's worker site."""
    state = _state()
    with state.lock:
        a = state.assignments.get(assignment_id)
        if a is None:
            abort(404)
        info = _assignment_json(a)
        h = state.hits[a.hit_id]
    if _wants_json():
        return jsonify(info)
    return render_template("mturk/emulator/work.html", a=a, hit=h, src=info["taskUrl"])


@bp.post("/worker/assignments/<assignment_id>/return")
def give_back(assignment_id: str):
    """Return (abandon) the assignment; MTurk hands its ID to the next worker."""
    try:
        a = _state().return_assignment(assignment_id)
    except MTurkError as exc:
        return _fail(exc, 409)
    if _wants_json():
        return jsonify({"assignmentId": a.assignment_id, "status": a.status})
    return redirect(url_for(".index"), 303)


@bp.post("/mturk/externalSubmit")
def external_submit():
    """Receive the form a task page posts from inside the iframe."""
    fields = {k: v for k, v in request.form.items(multi=False) if k != "assignmentId"}
    aid = request.form.get("assignmentId", "")
    try:
        a = _state().submit(aid, fields)
    except MTurkError as exc:
        return _fail(exc, 409 if "State" in exc.turk_code else 400)
    if _wants_json():
        return jsonify({"assignmentId": a.assignment_id, "status": a.status})
    return render_template("mturk/emulator/message.html", title="HIT submitted",
                           message=f"Assignment {a.assignment_id} was submitted. "
                                   "Thank you.", submitted=True)

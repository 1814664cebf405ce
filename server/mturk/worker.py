"""The worker's side: the ExternalQuestion page MTurk frames, the answers posted from it,
and the final form that submits the assignment to `turkSubmitTo`.

`GET /mturk/task/<experiment>/<hit key>?assignmentId&hitId&workerId&turkSubmitTo`
(no "ad" in the path: ad blockers blank such pages). In preview
(`assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`) the first trial is shown with answering
disabled and nothing is recorded. Accepted, the worker gets a participant keyed by
(assignment, worker) and the HIT's trials, answered and resumed through the same
recording core as the lab. The participant is identified by its token in the URL, not
by a cookie: MTurk's iframe is a third-party context where cookies are blocked.
"""
from __future__ import annotations

import os
from urllib.parse import urlencode

from flask import Blueprint, current_app, g, render_template, request, url_for
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from .. import recording as rec
from .. import recruitment
from ..lab import record_form_answer, screen_url
from ..models import Assignment, Experiment, Hit, Participant, Response, Trial, db
from ..recording import RecordingError
from .exclusion import mark_started
from .question import checked_submit_to, frame_ancestors

PREVIEW_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_PARAMS = ("assignmentId", "hitId", "workerId", "turkSubmitTo")

bp = Blueprint("mturk_worker", __name__)


def local_endpoint() -> str | None:
    """The configured local MTurk endpoint (config or env MTURK_ENDPOINT_URL), if any."""
    return current_app.config.get("MTURK_ENDPOINT_URL") or os.environ.get("MTURK_ENDPOINT_URL")


@bp.before_request
def load_participant() -> None:
    """Load the participant whose token an answer carries (`?p=`) into `g.participant`,
    refusing a preview and a participant that is not this URL's assignment (as flaskr
    loads the user). The task page has no token: it finds or creates the participant from
    the MTurk parameters."""
    g.participant = None
    if request.endpoint != "mturk_worker.answer":
        return
    token = request.args.get("p", "")
    args = request.view_args or {}
    # Light records (ids and the columns checked), not ORM objects: this runs per trial.
    exp = rec.experiment_ref(args.get("name", ""))
    params = _params()
    _refuse_preview(params, "accept the HIT to answer")
    g.participant = _owned(exp.id, rec.participant_ref(token), params, "this answer")


def _owned(experiment_id: int, p, params: dict, what: str):
    """Return participant `p` (found by the token in the URL) when it is this URL's
    experiment, assignment and worker; RecordingError(403) otherwise."""
    if (p.experiment_id != experiment_id or p.assignment_id != params["assignmentId"]
            or p.worker_id != params["workerId"]):
        raise RecordingError(403, f"{what} does not belong to this assignment")
    return p


@bp.after_request
def _frame_policy(resp):
    # Only MTurk's worker sites (and a loopback emulator when configured) may frame these.
    resp.headers["Content-Security-Policy"] = frame_ancestors(local_endpoint())
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _img(token: str) -> str:
    return url_for("images.image", token=token)


def _hit_trials(exp: Experiment, hit_key: str) -> list[str]:
    keys = list(db.session.execute(select(Trial.key).where(
        Trial.experiment_id == exp.id, Trial.hit_key == hit_key)
        .order_by(Trial.position)).scalars())
    if not keys:
        raise RecordingError(404, f"experiment {exp.name!r} has no HIT {hit_key!r}")
    return keys


def _params() -> dict:
    return {k: request.args.get(k, "") for k in MTURK_PARAMS}


def _is_preview(params: dict) -> bool:
    """Return True when these MTurk parameters are a preview (no assignment)."""
    return params["assignmentId"] in ("", PREVIEW_ID)


def _refuse_preview(params: dict, why: str) -> None:
    """RecordingError(403) when these MTurk parameters are a preview (no assignment)."""
    if _is_preview(params):
        raise RecordingError(403, f"this is a preview: {why}")


def _submit_to(params: dict, detail: str = "") -> str:
    """The checked `turkSubmitTo`; RecordingError(400) when it is not one of MTurk's hosts
    (the message followed by `detail`)."""
    submit_to = checked_submit_to(params["turkSubmitTo"], local_endpoint())
    if submit_to is None:
        raise RecordingError(400, "turkSubmitTo is not one of MTurk's hosts" + detail)
    return submit_to


def _task_url(name: str, hit_key: str, params: dict) -> str:
    return url_for(".task", name=name, hit_key=hit_key) + "?" + urlencode(params)


def _preview(exp: Experiment, hit_key: str, trial_keys: list[str]):
    first = db.session.execute(select(Trial).where(
        Trial.experiment_id == exp.id, Trial.key == trial_keys[0])).scalar_one()
    from ..models import Image
    toks = dict(db.session.execute(select(Image.id, Image.token).where(
        Image.id.in_([first.query_image_id, *first.candidate_ids()]))).all())
    return render_template("mturk/task.html", exp=exp, preview=True, n=1,
                           total=len(trial_keys), answered=0,
                           query=_img(toks[first.query_image_id]),
                           candidates=[_img(toks[i]) for i in first.candidate_ids()],
                           preload=[], action="#")


def _took_part_elsewhere(exp: Experiment, worker_id: str, assignment_id: str) -> bool:
    answered = exists().where(Response.participant_id == Participant.id)
    return db.session.execute(select(Participant.id).where(
        Participant.experiment_id == exp.id, Participant.worker_id == worker_id,
        Participant.assignment_id != assignment_id, answered).limit(1)).first() is not None


def _record_assignment(hit: Hit, assignment_id: str, worker_id: str,
                       participant: Participant) -> Assignment:
    """Return the (assignment, worker) row, creating it; rows of earlier workers on a
    reused assignment ID are marked returned (MTurk reuses the ID after a return)."""
    for _ in range(3):
        rows = list(db.session.execute(select(Assignment).where(
            Assignment.mturk_assignment_id == assignment_id)).scalars())
        mine = next((r for r in rows if r.worker_id == worker_id), None)
        for r in rows:
            if r is not mine and r.status in ("accepted", "finished"):
                r.status = "returned"
                if r.participant is not None:
                    rec.set_status(r.participant, "returned")
        if mine is None:
            mine = Assignment(mturk_assignment_id=assignment_id, hit_id=hit.id,
                              worker_id=worker_id, participant_id=participant.id,
                              status="accepted")
            db.session.add(mine)
        try:
            db.session.commit()
            return mine
        except IntegrityError:
            db.session.rollback()  # the same worker's other request won: read it back
    raise RecordingError(409, "this assignment is being opened twice at once: reload")


def _accepted(exp: Experiment, hit_key: str, trial_keys: list[str], params: dict):
    aid, wid, hit_id = params["assignmentId"], params["workerId"], params["hitId"]
    if not wid or not hit_id:
        raise RecordingError(400, "the MTurk parameters workerId and hitId are missing")
    submit_to = _submit_to(params, " (https://www.mturk.com, https://workersandbox.mturk.com): "
                                   "this page only submits to Mechanical Turk")
    hit = db.session.execute(select(Hit).where(
        Hit.mturk_hit_id == hit_id, Hit.experiment_id == exp.id,
        Hit.key == hit_key)).scalar_one_or_none()
    if hit is None:
        raise RecordingError(404, f"HIT {hit_id} is not a HIT of this experiment")
    existing = db.session.execute(select(Participant).where(
        Participant.experiment_id == exp.id, Participant.assignment_id == aid,
        Participant.worker_id == wid)).scalar_one_or_none()
    # Defence in depth beside the database's repeat key (rows from before it existed).
    if existing is None and exp.repeats == "none" and _took_part_elsewhere(exp, wid, aid):
        return _refused(exp, "this study")
    try:
        p, created = rec.start_participant(exp, population="mturk", assignment_id=aid,
                                            worker_id=wid, hit_id=hit_id, hit_record=hit,
                                            trial_keys=trial_keys, consent=True,
                                            user_agent=request.headers.get("User-Agent", ""))
    except rec.RepeatRefused as e:
        return _refused(exp, "this HIT" if e.policy == "per-hit" else "this study")
    if p.withdrawn_at is not None:
        return render_template("mturk/message.html", exp=exp, title="You withdrew",
                               message="You withdrew from this study: your answers are not "
                               "used and no more are recorded. Please return this HIT."), 409
    if p.submission_status in ("returned", "abandoned"):
        return render_template("mturk/message.html", exp=exp, title="This assignment is closed",
                               message=f"This assignment was {p.submission_status}: answers "
                               "to it are no longer recorded. Accept the HIT again to take "
                               "part."), 409
    row = _record_assignment(hit, aid, wid, p)
    if created:
        mark_started(exp, hit.environment, wid, local_endpoint())
    view = rec.next_trial(p)
    if view is None:
        if row.status == "accepted":
            row.status = "finished"
            db.session.commit()
        answered, total = rec.progress(p)
        way_out = recruitment.platform("mturk").exit_response(
            exp, p, submit_to=submit_to, experiment=exp.name, hit=hit_key,
            answered=f"{answered} of {total}")
        return render_template("mturk/finish.html", exp=exp, total=total,
                               action=way_out.url, fields=way_out.fields,
                               withdraw_url=_withdraw_url(exp.name, hit_key, p, params))
    nxt = view["next"]
    preload = [] if not nxt else [_img(nxt["query"])] + [_img(t) for t in nxt["candidates"]]
    action = _participant_url(".answer", exp.name, hit_key, p, params)
    return render_template("mturk/task.html", exp=exp, preview=False, n=view["n"],
                           total=view["total"], answered=view["answered"],
                           query=_img(view["query"]),
                           candidates=[_img(t) for t in view["candidates"]],
                           preload=preload, action=action, screen_url=screen_url(p),
                           trial_token=rec.trial_token(p, view["n"]),
                           withdraw_url=_withdraw_url(exp.name, hit_key, p, params))


def _participant_url(endpoint: str, name: str, hit_key: str, p, params: dict) -> str:
    """URL of `endpoint` for participant `p`, identified by its token in the URL (MTurk's
    iframe blocks cookies) beside the MTurk parameters."""
    return url_for(endpoint, name=name, hit_key=hit_key) + "?" + urlencode(
        {"p": p.token, **params})


def _withdraw_url(name: str, hit_key: str, p, params: dict) -> str:
    """The worker's withdraw page (identified, like the answers, by the token in the URL)."""
    return _participant_url(".withdraw", name, hit_key, p, params)


def _refused(exp: Experiment, what: str):
    """The page for a worker whom the repeat policy keeps out."""
    return render_template("mturk/message.html", exp=exp, title="Thank you for your interest",
                           message=f"You have already taken part in {what}, and each person "
                           "may take part only once. Please return this HIT; you will not "
                           "be penalised. Thank you!"), 409


@bp.get("/mturk/task/<name>/<hit_key>")
def task(name: str, hit_key: str):
    """The ExternalQuestion page: preview, the next trial, or the submit form."""
    exp = rec.get_experiment(name)
    trial_keys = _hit_trials(exp, hit_key)
    params = _params()
    if _is_preview(params):
        return _preview(exp, hit_key, trial_keys)
    return _accepted(exp, hit_key, trial_keys, params)


@bp.post("/mturk/task/<name>/<hit_key>/answer")
def answer(name: str, hit_key: str):
    """Store one answer (idempotent) and send the worker on to the next page."""
    params = _params()
    _submit_to(params)
    return record_form_answer(g.participant, _task_url(name, hit_key, params))


@bp.route("/mturk/task/<name>/<hit_key>/withdraw", methods=["GET", "POST"])
def withdraw(name: str, hit_key: str):
    """Withdrawal on the worker page: GET asks for confirmation, POST marks the worker's
    participant withdrawn (their answers leave every export and analysis; logged) and
    offers the HIT's submit form, so that withdrawing never costs the worker the pay for
    the time spent. Authenticated like the answers: the participant token in the URL must
    belong to this URL's assignment and worker."""
    exp = rec.get_experiment(name)
    _hit_trials(exp, hit_key)
    params = _params()
    _refuse_preview(params, "there is nothing to withdraw")
    submit_to = _submit_to(params)
    p = _owned(exp.id, rec.participant_by_token(request.args.get("p", "")), params,
               "this page")
    answered, total = rec.progress(p)
    if request.method == "GET":
        return render_template("mturk/withdraw.html", exp=exp, answered=answered,
                               action=_withdraw_url(name, hit_key, p, params),
                               back=_task_url(name, hit_key, params))
    rec.withdraw(p, exp.name, f"{answered} of {total} answered")
    way_out = recruitment.platform("mturk").exit_response(
        exp, p, submit_to=submit_to, experiment=exp.name, hit=hit_key,
        answered=f"{answered} of {total}", withdrawn="yes")
    return render_template("mturk/withdrawn.html", exp=exp, answered=answered,
                           action=way_out.url, fields=way_out.fields)

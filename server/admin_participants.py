"""One participant in the web admin: status (submission status, completed, withdrawn),
platform ids, catch-trial results and answers, their answers as CSV, and "delete for
good" (typed confirmation, CSRF, an audit_log row). Plus the log page.

Deleting removes the participant's answers and participant row. An MTurk assignment
record that pointed at the participant stays (the requester still approves and pays it)
but no longer links to them. The log keeps the participant's export pseudonym, not the
code or platform id, so the log itself does not hold the person's identifier."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Response, abort, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import delete, select, update

from . import export as ex
from . import recording as rec
from .manage import bp, login_required
from .models import Assignment, AuditEntry, Experiment, Participant, db
from .models import Response as Answer
from .mturk.reviewing import Answer as Reviewed
from .mturk.reviewing import CatchSummary, answers_of


def get_participant(exp: Experiment, pid: int) -> Participant:
    """Return participant `pid` of `exp`; 404 when it is not one of the experiment's."""
    p = db.session.get(Participant, pid)
    if p is None or p.experiment_id != exp.id:
        abort(404, description=f"experiment {exp.name!r} has no participant {pid}")
    return p


def status_of(p: Participant) -> str:
    """Return the participant's status in words: withdrawn, completed or in progress."""
    if p.withdrawn_at is not None:
        return "withdrawn"
    return "completed" if p.completed_at is not None else "in progress"


@dataclass
class Summary(CatchSummary):
    """The participant's answers in trial order and how many trials they were given."""
    answers: list[Reviewed]
    expected: int


def _page(exp: Experiment, p: Participant, error: str | None = None, status: int = 200):
    s = Summary(answers_of(p), len(p.trial_ids()))
    return render_template("manage/participant.html", exp=exp, p=p,
                           label=ex.participant_label(p), status=status_of(p),
                           answers=s.answers, catch=[a for a in s.answers if a.catch],
                           catch_passed=s.catch_total - s.catch_failed,
                           total=s.expected, error=error), status


@bp.get("/experiments/<name>/participants/<int:pid>")
@login_required
def participant(name: str, pid: int):
    exp = rec.get_experiment(name)
    return _page(exp, get_participant(exp, pid))


@bp.get("/experiments/<name>/participants/<int:pid>/answers.csv")
@login_required
def participant_csv(name: str, pid: int):
    """The participant's answers in the export's CSV format (withdrawn or not: the admin
    asked for this person's data); ids pseudonymised unless ?ids=raw."""
    exp = rec.get_experiment(name)
    p = get_participant(exp, pid)
    raw = request.args.get("ids") == "raw"
    body = ex.to_csv(exp, raw=raw, include_withdrawn=True, participant=p)
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition":
            f'attachment; filename="{exp.name}-participant-{p.id}{"-raw" if raw else ""}.csv"'})


@bp.post("/experiments/<name>/participants/<int:pid>/delete")
@login_required
def participant_delete(name: str, pid: int):
    exp = rec.get_experiment(name)
    p = get_participant(exp, pid)
    label = ex.participant_label(p)
    if request.form.get("confirm", "") != label:
        return _page(exp, p, f"Nothing was deleted: type the participant's code {label!r} "
                             "exactly to confirm.", 400)
    n = delete_participant(p, actor=current_user.username)
    return redirect(url_for("manage.experiment", name=exp.name, deleted=n), 303)


def delete_participant(p: Participant, actor: str) -> int:
    """Delete participant `p` and their answers for good, log it in audit_log (actor,
    action "delete-participant", experiment, subject: the export pseudonym) and commit;
    return how many answers were deleted."""
    exp = p.experiment
    subject = f"participant {ex.pseudonym(ex.participant_label(p))}"
    detail = (f"platform {p.platform}, environment {p.environment}, status "
              f"{p.submission_status}, {'withdrawn' if p.withdrawn_at else 'not withdrawn'}")
    n = db.session.execute(delete(Answer).where(Answer.participant_id == p.id)).rowcount
    db.session.execute(update(Assignment).where(Assignment.participant_id == p.id)
                       .values(participant_id=None))
    db.session.delete(p)
    db.session.add(AuditEntry(actor=actor, action="delete-participant", experiment=exp.name,
                              subject=subject, detail=f"{n} answer(s) deleted; {detail}"))
    db.session.commit()
    return int(n)


def log_entries(experiment: str | None = None, limit: int = 500) -> list[AuditEntry]:
    """Return the newest audit_log rows (of one experiment when named)."""
    q = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if experiment is not None:
        q = q.where(AuditEntry.experiment == experiment)
    return list(db.session.execute(q).scalars())


@bp.get("/log")
@login_required
def log():
    return render_template("manage/log.html", entries=log_entries())

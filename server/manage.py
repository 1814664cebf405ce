"""The admin area under /manage (no "ad" in participant paths; see psiTurk #369):
password login, dashboard, per-experiment progress and live per-condition share of
true-match answers, CSV/JSON export, and the answer key for the simulated participant.

Every POST carries the session's CSRF token. JSON endpoints under /manage/api also accept
HTTP Basic auth (admin user and password) so scripts can use them."""
from __future__ import annotations

import hmac
import json
import secrets
from functools import wraps

from flask import (Blueprint, Response, abort, current_app, g, jsonify, redirect,
                   render_template, request, session, url_for)
from sqlalchemy import case, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from . import export as ex
from . import recording as rec
from .models import AdminUser, Experiment, Image, Participant, Response as Answer, Trial, db

bp = Blueprint("manage", __name__, url_prefix="/manage")
DEFAULT_USER = "admin"


def set_password(password: str, username: str = DEFAULT_USER) -> None:
    """Create or update the admin user with a werkzeug password hash."""
    user = db.session.execute(select(AdminUser).where(AdminUser.username == username)).scalar_one_or_none()
    if user is None:
        user = AdminUser(username=username, password_hash="")
        db.session.add(user)
    user.password_hash = generate_password_hash(password)
    db.session.commit()


def check_login(username: str, password: str) -> bool:
    """Return True if `password` is the admin `username`'s password."""
    user = db.session.execute(select(AdminUser).where(AdminUser.username == username)).scalar_one_or_none()
    return user is not None and check_password_hash(user.password_hash, password)


def csrf_token() -> str:
    """Return (creating it once) the session's CSRF token."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


@bp.app_context_processor
def _inject():
    return {"csrf_token": csrf_token}


@bp.before_request
def _guard():
    if request.method == "POST":
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        if not session.get("csrf") or not hmac.compare_digest(sent, session["csrf"]):
            abort(400, "missing or wrong CSRF token: reload the page and try again")


def login_required(view):
    @wraps(view)
    def wrapped(*a, **kw):
        if session.get("admin"):
            return view(*a, **kw)
        auth = request.authorization
        if auth and auth.type == "basic" and check_login(auth.username or "", auth.password or ""):
            return view(*a, **kw)
        if request.path.startswith("/manage/api/"):
            return jsonify(error="admin login required (HTTP Basic auth)", status=401), 401, \
                {"WWW-Authenticate": 'Basic realm="tll-manage"'}
        return redirect(url_for("manage.login", next=request.path), 303)
    return wrapped


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", DEFAULT_USER) or DEFAULT_USER
        if check_login(username, request.form.get("password", "")):
            session.clear()
            session["admin"] = username
            csrf_token()
            nxt = request.args.get("next", "")
            # Only local paths: no open redirect.
            if not nxt.startswith("/manage") or "//" in nxt or "\\" in nxt:
                nxt = url_for("manage.dashboard")
            return redirect(nxt, 303)
        error = "Wrong user name or password."
    return render_template("manage/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    session.pop("admin", None)
    return redirect(url_for("manage.login"), 303)


def experiment_stats(exp: Experiment) -> dict:
    """Return participants with progress and the per-condition share of true-match answers."""
    total = len(exp.trials)
    parts = []
    q = (select(Participant, func.count(Answer.id))
         .outerjoin(Answer, Answer.participant_id == Participant.id)
         .where(Participant.experiment_id == exp.id).group_by(Participant.id)
         .order_by(Participant.created))
    for p, n in db.session.execute(q).all():
        parts.append({"label": ex.participant_label(p), "population": p.population,
                      "answered": int(n), "total": len(p.trial_ids()),
                      "completed": p.completed_at is not None, "created": p.created})
    cq = (select(Trial.condition, func.count(Answer.id),
                 func.sum(case((Answer.chosen_index == Trial.true_index, 1), else_=0)))
          .join(Answer, Answer.trial_id == Trial.id)
          .where(Trial.experiment_id == exp.id).group_by(Trial.condition)
          .order_by(Trial.condition))
    conditions = [{"condition": c, "answers": int(n), "true_match": int(k or 0),
                   "share": (int(k or 0) / n) if n else None}
                  for c, n, k in db.session.execute(cq).all()]
    return {"trials": total, "participants": parts, "conditions": conditions,
            "answers": sum(c["answers"] for c in conditions),
            "completed": sum(1 for p in parts if p["completed"])}


@bp.get("/")
@login_required
def dashboard():
    exps = db.session.execute(select(Experiment).order_by(Experiment.name)).scalars().all()
    return render_template("manage/dashboard.html",
                           experiments=[(e, experiment_stats(e)) for e in exps])


@bp.get("/experiments/<name>")
@login_required
def experiment(name: str):
    exp = rec.get_experiment(name)
    return render_template("manage/experiment.html", exp=exp, stats=experiment_stats(exp))


def _raw() -> bool:
    return request.args.get("ids") == "raw"


@bp.get("/experiments/<name>/answers.csv")
@login_required
def export_csv(name: str):
    exp = rec.get_experiment(name)
    suffix = "-raw" if _raw() else ""
    return Response(ex.to_csv(exp, raw=_raw()), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="{exp.name}-answers{suffix}.csv"'})


@bp.get("/experiments/<name>/answers.json")
@login_required
def export_json(name: str):
    exp = rec.get_experiment(name)
    return jsonify(ex.to_json(exp, raw=_raw()))


@bp.get("/api/experiments/<name>/stats")
@login_required
def api_stats(name: str):
    exp = rec.get_experiment(name)
    s = experiment_stats(exp)
    for p in s["participants"]:
        p["created"] = p["created"].isoformat()
    return jsonify(s)


@bp.get("/api/experiments/<name>/key")
@login_required
def api_key(name: str):
    """The answer key by image tokens: what the simulated participant needs to answer
    with a given accuracy. Admin only."""
    exp = rec.get_experiment(name)
    toks = dict(db.session.execute(select(Image.id, Image.token)
                                   .where(Image.experiment_id == exp.id)).all())
    trials = [{"trial": t.key, "query": url_for("images.image", token=toks[t.query_image_id]),
               "candidates": [url_for("images.image", token=toks[i]) for i in t.candidate_ids()],
               "true_index": t.true_index}
              for t in exp.trials]
    return jsonify(experiment=exp.name, trials=trials)

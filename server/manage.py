"""The admin area under /manage (no "ad" in participant paths; see psiTurk #369):
password login, dashboard, per-experiment progress and live per-condition share of
true-match answers, CSV/JSON export (withdrawn participants only with
?withdrawn=include), and the answer key for the simulated participant. The settings
page is in admin_settings.py, the participant pages and the log in admin_participants.py.

Sessions are Flask-Login's, kept in the admin area's own cookie (server/security.py);
each carries the user's `session_token`, replaced at logout and password change so every
copy of an old cookie stops working. Every password check (the login form and HTTP
Basic) goes through one throttle (server/throttle.py: per address, per user and address,
a growing delay for the user alone) and takes the same time whether or not the user
exists. Every POST carries a CSRF token (Flask-WTF). GET requests (the JSON endpoints
under /manage/api, the exports) also accept HTTP Basic auth (admin user and password) so
scripts can use them, when ADMIN_BASIC_AUTH is on (default: on in development, off in
production; env TLL_ADMIN_BASIC_AUTH=1|0)."""
from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from sqlalchemy import case, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from . import export as ex
from . import recording as rec
from .models import AdminUser, Experiment, Image, Participant, Trial, db
from .models import Response as Answer
from .security import login_manager, mark_admin_active
from .throttle import guarded_authenticate

bp = Blueprint("manage", __name__, url_prefix="/manage")
DEFAULT_USER = "admin"
MAX_USERNAME = 100
MAX_PASSWORD = 1024
_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    # Checked against when the user does not exist, so both paths hash once.
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_hex(16)))
    return _DUMMY_HASH[0]


def set_password(password: str, username: str = DEFAULT_USER) -> None:
    """Create or update the admin user with a werkzeug password hash; every session of
    that user ends."""
    user = db.session.execute(select(AdminUser).where(AdminUser.username == username)).scalar_one_or_none()
    if user is None:
        user = AdminUser(username=username, password_hash="")
        db.session.add(user)
    user.password_hash = generate_password_hash(password)
    user.session_token = secrets.token_urlsafe(24)
    db.session.commit()


def _valid_text(value: str, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and "\x00" not in value


def authenticate(username: str, password: str) -> AdminUser | None:
    """Return the admin user if `password` is `username`'s password, else None; takes the
    same time for an unknown user (a dummy hash is checked instead)."""
    if not (_valid_text(username, MAX_USERNAME) and _valid_text(password, MAX_PASSWORD)):
        check_password_hash(_dummy_hash(), "")
        return None
    user = db.session.execute(select(AdminUser).where(AdminUser.username == username)).scalar_one_or_none()
    ok = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    return user if (ok and user is not None) else None


def check_login(username: str, password: str) -> bool:
    """Return True if `password` is the admin `username`'s password."""
    return authenticate(username, password) is not None


class AdminSession:
    """The Flask-Login user: an admin user bound to the session token it logged in with."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, user: AdminUser):
        self.user = user
        self.username = user.username

    def get_id(self) -> str:
        return f"{self.user.id}:{self.user.session_token}"


def _ensure_token(user: AdminUser) -> None:
    if not user.session_token:
        user.session_token = secrets.token_urlsafe(24)
        db.session.commit()


@login_manager.user_loader
def _load(session_id: str):
    uid, _, token = (session_id or "").partition(":")
    if not uid.isascii() or not uid.isdigit() or len(uid) > 9 or not token:
        return None
    user = db.session.get(AdminUser, int(uid))
    if user is None or not user.session_token or \
            not hmac.compare_digest(user.session_token.encode(), token.encode()):
        return None
    return AdminSession(user)


@login_manager.request_loader
def _basic(req):
    # Scripts (the simulated participant, exports) use HTTP Basic; read-only requests
    # only, so a browser's cached credentials never carry a state change.
    if req.method not in ("GET", "HEAD") or not basic_auth_enabled():
        return None
    auth = req.authorization
    if auth is None or auth.type != "basic":
        return None
    user = guarded_authenticate(auth.username or "", auth.password or "", authenticate)
    return AdminSession(user) if user else None


def basic_auth_enabled() -> bool:
    """Return True when /manage accepts HTTP Basic credentials (ADMIN_BASIC_AUTH)."""
    return bool(current_app.config.get("ADMIN_BASIC_AUTH"))


@login_manager.unauthorized_handler
def _unauthorized():
    if request.path.startswith("/manage/api/"):
        if not basic_auth_enabled():
            return jsonify(error="admin login required: log in at /manage/login (HTTP "
                                 "Basic is off on this server; TLL_ADMIN_BASIC_AUTH=1 "
                                 "turns it on)", status=401), 401
        return jsonify(error="admin login required (HTTP Basic auth)", status=401), 401, \
            {"WWW-Authenticate": 'Basic realm="tll-manage"'}
    return redirect(url_for("manage.login", next=request.path), 303)


def login_required(view):
    """Flask-Login's login_required (kept under this name for the routes below)."""
    from flask_login import login_required as lr
    return lr(view)


def safe_next(target: str | None) -> str:
    """Return `target` if it is a path inside the admin area (no scheme, host, control
    character or backslash), else the dashboard's path: no open redirect."""
    fallback = url_for("manage.dashboard")
    if not target or len(target) > 500 or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return fallback
    if "\\" in target or "//" in target:
        return fallback
    try:
        parts = urlsplit(target)
    except ValueError:
        return fallback
    if parts.scheme or parts.netloc or not (parts.path == "/manage"
                                            or parts.path.startswith("/manage/")):
        return fallback
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", DEFAULT_USER) or DEFAULT_USER
        user = guarded_authenticate(username, request.form.get("password", ""), authenticate)
        if user is not None:
            _ensure_token(user)
            # A fresh admin session (new CSRF token): nothing of the one before survives.
            session.clear()
            login_user(AdminSession(user))
            mark_admin_active()
            return redirect(safe_next(request.args.get("next")), 303)
        error = "Wrong user name or password."
    return render_template("manage/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        # A new token: every copy of this user's session cookies stops working.
        current_user.user.session_token = secrets.token_urlsafe(24)
        db.session.commit()
    logout_user()
    session.clear()
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
        parts.append({"id": p.id, "label": ex.participant_label(p), "population": p.population,
                      "platform": p.platform, "submission_status": p.submission_status,
                      "answered": int(n), "total": len(p.trial_ids()),
                      "completed": p.completed_at is not None, "created": p.created,
                      "withdrawn": p.withdrawn_at is not None,
                      "withdrawn_at": p.withdrawn_at})
    cq = (select(Trial.condition, func.count(Answer.id),
                 func.sum(case((Answer.chosen_index == Trial.true_index, 1), else_=0)))
          .join(Answer, Answer.trial_id == Trial.id)
          .where(Trial.experiment_id == exp.id).group_by(Trial.condition)
          .order_by(Trial.condition))
    conditions = [{"condition": c, "answers": int(n), "true_match": int(k or 0),
                   "share": (int(k or 0) / n) if n else None}
                  for c, n, k in db.session.execute(cq).all()]
    # The share by condition is live monitoring of every answer stored, withdrawn ones
    # included (the exports and the analysis leave those out).
    return {"trials": total, "participants": parts, "conditions": conditions,
            "answers": sum(c["answers"] for c in conditions),
            "completed": sum(1 for p in parts if p["completed"]),
            "withdrawn": sum(1 for p in parts if p["withdrawn"])}


@bp.get("/")
@login_required
def dashboard():
    exps = db.session.execute(select(Experiment).order_by(Experiment.name)).scalars().all()
    return render_template("manage/dashboard.html",
                           experiments=[(e, experiment_stats(e)) for e in exps])


@bp.get("/experiments/<name>")
@login_required
def experiment(name: str):
    from .admin_participants import log_entries

    exp = rec.get_experiment(name)
    deleted = request.args.get("deleted")
    return render_template("manage/experiment.html", exp=exp, stats=experiment_stats(exp),
                           log=log_entries(exp.name, limit=50),
                           deleted=deleted if deleted and deleted.isdigit() else None)


def _raw() -> bool:
    return request.args.get("ids") == "raw"


def _with_withdrawn() -> bool:
    # Withdrawn participants leave every export unless asked for by name.
    return request.args.get("withdrawn") == "include"


@bp.get("/experiments/<name>/answers.csv")
@login_required
def export_csv(name: str):
    exp = rec.get_experiment(name)
    suffix = ("-raw" if _raw() else "") + ("-with-withdrawn" if _with_withdrawn() else "")
    return Response(ex.to_csv(exp, raw=_raw(), include_withdrawn=_with_withdrawn()),
                    mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="{exp.name}-answers{suffix}.csv"'})


@bp.get("/experiments/<name>/answers.json")
@login_required
def export_json(name: str):
    exp = rec.get_experiment(name)
    return jsonify(ex.to_json(exp, raw=_raw(), include_withdrawn=_with_withdrawn()))


@bp.get("/api/experiments/<name>/stats")
@login_required
def api_stats(name: str):
    exp = rec.get_experiment(name)
    s = experiment_stats(exp)
    for p in s["participants"]:
        p["created"] = p["created"].isoformat()
        p["withdrawn_at"] = p["withdrawn_at"].isoformat() if p["withdrawn_at"] else None
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


# The settings, participant and log pages add their routes to this blueprint.
from . import admin_participants, admin_settings  # noqa: E402,F401

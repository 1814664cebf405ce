"""The lab flow: landing (participant code) → consent → instructions with a practice
trial → the trials (plain HTML forms, POST-redirect-GET; JavaScript only improves them)
→ completion. The participant cookie holds the current participant only
(`{"e": experiment id, "t": token, "p": practised, "b": break taken at, "a": last seen}`),
so its size is bounded however many people use one browser; a returning browser is asked
"Are you CODE?" (Continue / I am someone else). In a kiosk experiment the browser forgets
the participant at completion and after KIOSK_IDLE_S seconds without a page. Typing the
same code again (any letter case) resumes at the first unanswered trial only where codes
are trusted (TRUST_CODES: development); otherwise another browser resumes a participant
only by their resume link (`/lab/<name>/resume/<token>`, shown on their pages)."""
from __future__ import annotations

import time

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext

from . import practice, recruitment
from . import recording as rec
from .errors import wants_json
from .models import Experiment, Participant
from .recording import RecordingError
from .security import end_admin_session, limiter

bp = Blueprint("lab", __name__)


PARTICIPANT_RATE = "30 per minute"  # default of the PARTICIPANT_RATE setting


def participant_rate() -> str:
    """Return the PARTICIPANT_RATE setting: how many participants one address may start
    (lab form and JSON API together), in Flask-Limiter's notation."""
    return current_app.config.get("PARTICIPANT_RATE") or PARTICIPANT_RATE


# Every start counts, resumed or refused ones too: that also bounds guessing codes.
participant_starts = limiter.shared_limit(
    participant_rate, scope="participant-start", methods=["POST"],
    error_message="too many participants were started from your address: please wait a "
                  "minute and try again")

SESSION_KEY = "participant"
KIOSK_IDLE_S = 15 * 60  # default of the KIOSK_IDLE_S setting
_ACTIVITY_STEP_S = 30  # refresh "last seen" at most this often (one Set-Cookie)


def _state(exp: Experiment) -> dict | None:
    state = session.get(SESSION_KEY)
    if not isinstance(state, dict) or state.get("e") != exp.id:
        return None
    return state


def forget() -> None:
    """Forget this browser's participant (the cookie keeps only its CSRF token)."""
    session.pop(SESSION_KEY, None)
    # Cookies written before sessions were bounded kept one key per participant.
    for key in [k for k in session if k.startswith(("lab:", "practised:", "break:"))]:
        session.pop(key, None)


def remember(exp: Experiment, p) -> None:
    """Make `p` this browser's one participant (replacing any other); any admin session
    in this browser ends."""
    forget()
    end_admin_session()
    session.permanent = not exp.kiosk
    session[SESSION_KEY] = {"e": exp.id, "t": p.token, "p": 0, "b": -1, "a": int(time.time())}


def _mark(key: str, value) -> None:
    state = dict(session[SESSION_KEY])
    state[key] = value
    session[SESSION_KEY] = state


def current_participant(exp, light: bool = False):
    """Return this browser's participant in `exp` (a ParticipantRef when `light`), or
    None (also when a kiosk browser was idle too long: it is forgotten)."""
    state = _state(exp)
    if state is None:
        return None
    now = int(time.time())
    if exp.kiosk:
        idle = int(current_app.config.get("KIOSK_IDLE_S", KIOSK_IDLE_S))
        if now - int(state.get("a", 0)) > idle:
            forget()
            return None
        if now - int(state.get("a", 0)) >= _ACTIVITY_STEP_S:
            _mark("a", now)
    try:
        token = state.get("t")
        p = rec.participant_ref(token) if light else rec.participant_by_token(token)
    except RecordingError:
        forget()
        return None
    if p.experiment_id != exp.id or p.withdrawn_at is not None:
        forget()  # a participant who withdrew (perhaps in another browser) is gone here
        return None
    return p


@bp.before_request
def load_participant() -> None:
    """Load the experiment named in the URL into `g.exp` and this browser's participant
    in it (or None) into `g.participant`, once per request, for every lab route (as
    flaskr loads the logged-in user)."""
    name = (request.view_args or {}).get("name")
    if name is None:
        return
    # The answer POST (every trial, the busiest lab route) needs only ids: light records
    # instead of two ORM objects (about a fifth of its CPU); the pages get the objects.
    light = request.endpoint == "lab.answer"
    g.exp = rec.experiment_ref(name) if light else rec.get_experiment(name)
    g.participant = current_participant(g.exp, light)


def _require(name: str):
    return g.exp, g.participant


def _go(endpoint: str, name: str, **args):
    """Return a 303 redirect to the lab step `endpoint` of experiment `name`."""
    return redirect(url_for(endpoint, name=name, **args), 303)


def _gate(name: str, p, consent: bool = True):
    """Return the redirect for a participant who is not at this step yet (no participant
    in this browser session: the landing page; no consent yet, where `consent` is
    required: the consent page), or None when they may see it."""
    if p is None:
        return _go("lab.landing", name)
    if consent and p.consented_at is None:
        return _go("lab.consent", name)
    return None


def screen_url(p) -> str | None:
    """Where the trial page sends the viewport and screen size, until they are recorded."""
    return url_for("api.screen", token=p.token) if p.viewport_width is None else None


def _img(token: str) -> str:
    return url_for("images.image", token=token)


@bp.get("/")
def index():
    # Lists no experiment: a participant learns nothing about other studies here.
    return render_template("index.html")


@bp.get("/lab/<name>/screen.css")
def screen_css(name: str):
    """The experiment's minimum-viewport rule (templates/_screen.html): below it, the page
    shows the "use a larger window" notice instead of its content."""
    w, h = g.exp.min_viewport()
    css = (f"@media (max-width: {w - 1}px), (max-height: {h - 1}px) {{\n"
           f"  .needs-room {{ display: none !important; }}\n"
           f"  .too-small {{ display: block !important; }}\n}}\n")
    return css, 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "no-cache"}


@bp.get("/lab/<name>/")
def landing(name: str):
    exp, p = _require(name)
    return render_template("landing.html", exp=exp, participant=p,
                           error=request.args.get("error"))


@bp.post("/lab/<name>/start")
@participant_starts
def start(name: str):
    exp = g.exp
    code = None if request.form.get("generate") else request.form.get("code", "")
    try:
        p, created = rec.start_participant(exp, code=code, population="lab",
                                           user_agent=request.headers.get("User-Agent", ""))
    except RecordingError as e:
        return render_template("landing.html", exp=exp, participant=None,
                               error=e.reason), e.status
    if (not created and p.completed_at is None and p.withdrawn_at is None
            and not current_app.config.get("TRUST_CODES", True)
            and getattr(g.participant, "id", None) != p.id):
        # A code is no secret (the researcher may hand out P01, P02...): typed in a browser
        # that does not hold it, it resumes nobody; the participant's resume link does.
        return render_template("landing.html", exp=exp, participant=None, error=gettext(
            "The code %(code)s has already started. Continue on the computer where it "
            "started, or open the resume link shown on your study pages; if you did not "
            "start it, please tell the researcher.", code=p.code)), 409
    if p.withdrawn_at is not None:
        return render_template("landing.html", exp=exp, participant=None,
                               error=gettext("This code withdrew from the study; it cannot "
                                             "take part again.")), 409
    remember(exp, p)
    return _go("lab.flow", name)


@bp.get("/lab/<name>/via/<platform_name>")
def enter(name: str, platform_name: str):
    """Entry by a recruitment platform's link (a panel, Prolific): the platform reads the
    participant's identity from the URL parameters; the participant then goes through
    consent and the trials as in the lab, and leaves by the platform's exit."""
    exp = g.exp
    plat = recruitment.PLATFORMS.get(platform_name)
    if not getattr(plat, "link_entry", False):  # unknown, or entered otherwise
        abort(404, f"no platform {platform_name!r} takes participants by a link")
    try:
        ident = plat.identity(experiment=exp, args=request.args.to_dict())
    except ValueError as e:  # the platform's EntryError (a ValueError)
        raise RecordingError(400, str(e)) from None
    p, _ = rec.start_participant(exp, identity=ident,
                                 user_agent=request.headers.get("User-Agent", ""))
    if p.withdrawn_at is not None:
        raise RecordingError(409, "you withdrew from this study and cannot take part again")
    remember(exp, p)
    return _go("lab.flow", name)


def exit_of(exp: Experiment, p):
    """Return how participant `p` leaves (their platform's ExitResponse)."""
    return recruitment.platform(p.platform).exit_response(exp, p)


def resume_url(exp, p) -> str:
    """The participant's resume link: it brings them back to where they are in any
    browser (the participant's secret session token is in it, so only whoever was shown
    the link can use it)."""
    return url_for("lab.resume", name=exp.name, token=p.token, _external=True)


@bp.get("/lab/<name>/resume/<token>")
def resume(name: str, token: str):
    """Open the participant of this resume link in this browser (replacing any other) and
    send them to the step they are at."""
    exp = g.exp
    try:
        p = rec.participant_by_token(token)
    except RecordingError:
        p = None
    if p is None or p.experiment_id != exp.id:
        raise RecordingError(404, "this resume link is not valid for this study: check that "
                                  "it was copied whole")
    if p.withdrawn_at is not None:
        raise RecordingError(409, "you withdrew from this study and cannot take part again")
    remember(exp, p)
    g.participant = p
    return _go("lab.flow", name)


@bp.post("/lab/<name>/forget")
def someone_else(name: str):
    """"I am someone else": forget this browser's participant, back to a fresh landing."""
    forget()
    return _go("lab.landing", name)


@bp.get("/lab/<name>/go")
def flow(name: str):
    """Send the participant to the step they are at."""
    exp, p = _require(name)
    if (gate := _gate(name, p)) is not None:
        return gate
    answered, total = rec.progress(p)
    if answered >= total:
        return _go("lab.done", name)
    state = _state(exp)
    if answered == 0 and (int(state.get("p") or 0) < practice.count(exp) or (
            not practice.count(exp) and exp.text("instructions") and not state.get("i"))):
        # Without practice, the instructions are shown once only where the researcher
        # wrote some (the trial page itself says what to do).
        return _go("lab.instructions", name)
    return _go("lab.trial", name)


@bp.route("/lab/<name>/consent", methods=["GET", "POST"])
def consent(name: str):
    exp, p = _require(name)
    if (gate := _gate(name, p, consent=False)) is not None:
        return gate
    if request.method == "POST":
        if request.form.get("agree") != "yes":
            return render_template("consent.html", exp=exp, participant=p,
                                   error=gettext("Please tick the box to agree, or close "
                                                 "the page to leave.")), 400
        rec.give_consent(p)
        return _go("lab.flow", name)
    return render_template("consent.html", exp=exp, participant=p, error=None)


@bp.route("/lab/<name>/instructions", methods=["GET", "POST"])
def instructions(name: str):
    """The instructions with the practice trials, one per page (server/practice.py); with
    feedback on, the answer to each is shown before the next."""
    exp, p = _require(name)
    if (gate := _gate(name, p)) is not None:
        return gate
    n = practice.count(exp)
    done_k = int(_state(exp).get("p") or 0)
    k = min(done_k, n - 1) if n else None
    feedback = t = None
    if request.method == "POST":
        if not n:
            abort(400, "this experiment has no practice trials")
        asked = rec.ascii_int(request.form.get("k", str(k)), "practice trial")
        if not 0 <= asked < n:
            abort(400, f"practice trial must be one of 0..{n - 1}")
        choice = rec.ascii_int(request.form.get("choice", ""), "choice")
        if not 0 <= choice <= 4:
            abort(400, "choice must be one of the five candidates (1-5)")
        k = asked
        _mark("p", max(done_k, k + 1))
        if not exp.practice_feedback:
            return _go("lab.instructions" if k + 1 < n else "lab.trial", name)
        t = practice.trial(exp, k)
        right, message = practice.feedback(exp, t, choice)
        feedback = {"right": right, "message": message, "more": k + 1 < n}
    elif n and done_k >= n:
        k = None  # practice done: the instructions with the start button
    elif not n:
        _mark("i", 1)
    if t is None and k is not None:
        t = practice.trial(exp, k)
    return render_template("instructions.html", exp=exp, participant=p, feedback=feedback,
                           practice=t, practice_total=n)


@bp.get("/lab/<name>/trial")
def trial(name: str):
    exp, p = _require(name)
    if (gate := _gate(name, p)) is not None:
        return gate
    view = rec.next_trial(p)
    if view is None:
        return _go("lab.done", name)
    answered = view["answered"]
    if request.args.get("resume"):
        _mark("b", answered)
    if (exp.break_every and answered and answered % exp.break_every == 0
            and _state(exp).get("b") != answered):
        return render_template("break.html", exp=exp, answered=answered, total=view["total"],
                               resume=url_for("lab.trial", name=name, resume=answered))
    nxt = view["next"]
    preload = [] if not nxt else [_img(nxt["query"])] + [_img(t) for t in nxt["candidates"]]
    return render_template("trial.html", exp=exp, n=view["n"], total=view["total"],
                           answered=answered, query=_img(view["query"]),
                           candidates=[_img(t) for t in view["candidates"]], preload=preload,
                           action=url_for("lab.answer", name=name), screen_url=screen_url(p),
                           trial_token=rec.trial_token(p, view["n"]))


@bp.post("/lab/<name>/answer")
def answer(name: str):
    exp, p = _require(name)
    if p is None:
        raise RecordingError(403, "no participant in this browser session: start again from "
                                  "the experiment's first page")
    return record_form_answer(p, url_for("lab.trial", name=name))


def record_form_answer(p, target: str):
    """Record the answer posted in the trial form for participant `p` and return the reply:
    JSON (201 new, 200 repeat, with the stored choice) for the page's script, otherwise a
    303 redirect to `target` (POST-redirect-GET for the plain form). Shared by the lab and
    the MTurk worker pages so both record exactly alike."""
    # The page's trial token binds the answer to the participant and trial it showed:
    # checked before anything is written, as is the position (never past the next open
    # trial, as in the JSON API).
    n = rec.check_position(p, request.form.get("n", ""))
    rec.check_not_ahead(p, n)
    rec.check_trial_token(p, n, request.form.get("trial_token"))
    resp, created = rec.record_answer(p, n, request.form.get("choice", ""),
                                      request.form.get("rt_ms") or None)
    if wants_json():
        answered, total = rec.progress(p)
        return jsonify(stored=True, duplicate=not created, n=resp.trial_order,
                       choice=resp.chosen_index, answered=answered, total=total,
                       redirect=target), 201 if created else 200
    return redirect(target, 303)


@bp.get("/lab/<name>/done")
def done(name: str):
    exp, p = _require(name)
    if (gate := _gate(name, p, consent=False)) is not None:
        return gate
    answered, total = rec.progress(p)
    if answered < total:
        return _go("lab.flow", name)
    page = render_template("done.html", exp=exp, participant=p, total=total,
                           exit=exit_of(exp, p))
    if exp.kiosk:
        forget()  # the next person at this computer starts afresh
    return page


@bp.context_processor
def _withdraw_link():
    """Every lab page of a participant carries the link to withdraw (g.participant is
    never a withdrawn one: current_participant drops them, withdraw clears it)."""
    exp, p = getattr(g, "exp", None), getattr(g, "participant", None)
    if exp is None or p is None:
        return {"withdraw_url": None, "resume_url": None}
    return {"withdraw_url": url_for("lab.withdraw", name=exp.name),
            "resume_url": resume_url(exp, p) if isinstance(p, Participant) else None}


@bp.route("/lab/<name>/withdraw", methods=["GET", "POST"])
def withdraw(name: str):
    """Withdrawal: GET asks for confirmation; POST (CSRF-protected) marks the participant
    withdrawn (their answers leave every export and analysis), makes the browser forget
    them, and says so, with the completion code of one who had finished (withdrawing
    carries no penalty)."""
    exp, p = _require(name)
    if p is None:
        raise RecordingError(403, "no participant in this browser session: nothing to "
                                  "withdraw here")
    answered, total = rec.progress(p)
    if request.method == "GET":
        return render_template("withdraw.html", exp=exp, participant=p, answered=answered)
    rec.withdraw(p, exp.name, f"{answered} of {total} answered")
    exit = exit_of(exp, p) if answered >= total else None
    forget()
    g.participant = None
    return render_template("withdrawn.html", exp=exp, answered=answered, exit=exit)

"""Security set-up of the application: two session cookies that never touch each other
(participant and admin), Flask-Login for admin sessions, Flask-WTF's CSRFProtect,
Flask-Limiter for login throttling and Flask-Talisman for the security headers.

What is exempt, and why:
- CSRF: the JSON participant API (`/api/v1`) is authenticated by the participant token in
  its URL, never by a cookie, and only accepts `application/json` (a cross-site form
  cannot send that without a CORS preflight we never answer), so a forged request has
  nothing to ride on. The MTurk worker routes identify the worker by the token in the
  URL too (MTurk's iframe is a third-party context where cookies are blocked), and the
  final externalSubmit form posts to MTurk, not to us. Every other POST (lab start,
  consent, practice, answers; admin login, logout) carries a CSRF token.
- Throttling: every admin password check (login form and HTTP Basic) goes through
  server/throttle.py's policy; the counters live in the database (`tll-db://`, the
  default RATELIMIT_STORAGE_URI), so every worker and node sees the same ones.
- Headers: Talisman sets them on every page; the MTurk worker pages get
  `frame-ancestors` of MTurk's hosts instead of 'none' because MTurk frames them.
- Referrer policy: REFERRER_POLICY ("same-origin"), the one value used by Talisman's
  header, the pages' `<meta name="referrer">` and the hot paths' header. Flask-WTF's CSRF
  check on an HTTPS request demands a same-origin Referer (WTF_CSRF_SSL_STRICT, kept on),
  so the pages must send one to their own origin; to any other origin (MTurk's
  turkSubmitTo, a platform's completion link) they send none, so no page or image URL
  (opaque tokens) leaves the site in a Referer.
- The hot paths (the JSON API and the images, HOT_BLUEPRINTS) skip Limiter's and
  Talisman's per-request work altogether (about 90 us of CPU per request, measured): they
  are no pages, are never framed or throttled, and get the two headers that matter to
  them (nosniff, the referrer policy) directly.
- The form answers of the lab and the MTurk worker page (ANSWER_ENDPOINTS) are exempt
  from throttling, so they skip Limiter's hooks (its exemption look-up was about 8 % of a
  lab answer's CPU), and Flask-Login's (no login happens there). Their Talisman headers
  depend only on the endpoint and on whether the request came over HTTPS (no CSP nonce is
  configured), so Talisman computes them once per (endpoint, scheme) and later answers
  get the same headers copied.
- Flask asks `inspect` whether each hook is a coroutine on every request (14 times per
  answer, about 6 % of its CPU); the answer is remembered per hook instead.
"""
from __future__ import annotations

import time
from functools import wraps

from flask import after_this_request, current_app, request, session
from flask.globals import _cv_request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer

from . import throttle
from .fastsql import ANSWER_ENDPOINTS

ADMIN_PREFIX = "/manage"
ADMIN_COOKIE = "tll_admin"
PARTICIPANT_COOKIE = "tll_session"

csrf = CSRFProtect()
login_manager = LoginManager()
# The storage comes from RATELIMIT_STORAGE_URI (default: the database, see throttle.py).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
talisman = Talisman()

# Same-origin requests carry a Referer (the CSRF check over HTTPS needs it); requests to
# any other origin carry none.
REFERRER_POLICY = "same-origin"

# 'self' only: no inline scripts or styles anywhere (scripts live in static/*.js).
CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


HOT_BLUEPRINTS = frozenset(("api", "images"))
# The answer routes (fastsql's table); the API's is in a hot blueprint, which wins, so
# ANSWER applies to the form answers (every trial of the no-JavaScript and MTurk paths).
NOT, ANSWER, HOT = 0, 1, 2


def _heat() -> int:
    """Return HOT (API, images), ANSWER (a form answer) or NOT for this request (worked out
    once per request)."""
    req = _cv_request.get().request
    heat = req.environ.get("tll.heat")
    if heat is None:
        bp = req.blueprint
        heat = req.environ["tll.heat"] = (HOT if bp in HOT_BLUEPRINTS else
                                          ANSWER if req.endpoint in ANSWER_ENDPOINTS else NOT)
    return heat


def _skipped_from(hook, least: int):
    """Wrap an extension's before/after_request hook so requests at least this hot skip
    it."""
    @wraps(hook)
    def wrapped(*args):
        if _heat() >= least:
            return args[0] if args else None  # after_request hooks get the response
        return hook(*args)
    return wrapped


def _talisman_headers(hook):
    """Wrap Talisman's after_request hook: the hot blueprints skip it; the form answers
    get the headers it set on the first answer of the same endpoint and scheme."""
    memo: dict = {}

    @wraps(hook)
    def wrapped(resp):
        heat = _heat()
        if heat == HOT:
            return resp
        if heat == NOT:
            return hook(resp)
        req = _cv_request.get().request
        key = (req.endpoint, req.is_secure,
               req.headers.get("X-Forwarded-Proto", "http") == "https")
        headers = memo.get(key)
        if headers is None:
            from flask import Response

            scratch = hook(Response())
            headers = memo[key] = [(k, v) for k, v in scratch.headers.items()
                                   if k not in ("Content-Type", "Content-Length")]
        for k, v in headers:
            resp.headers[k] = v
        return resp
    return wrapped


# What the hot paths' responses carry instead of Talisman's page headers.
HOT_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", REFERRER_POLICY))


def _hot_headers(resp):
    if _heat() == HOT:
        for k, v in HOT_HEADERS:
            resp.headers[k] = v
    return resp


def _cached_ensure_sync(ensure_sync):
    """Return Flask's `ensure_sync` remembering its answer per function (hooks and views
    are the same few functions on every request)."""
    seen: dict = {}

    def cached(func):
        try:
            return seen[func]
        except KeyError:
            out = ensure_sync(func)
            if len(seen) < 1000:  # bound: bound methods of short-lived objects
                seen[func] = out
            return out
        except TypeError:  # unhashable callable
            return ensure_sync(func)
    return cached


def is_admin_path(path: str) -> bool:
    """Return True for paths of the admin area (its own cookie)."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


API_PREFIX = "/api/"
# The admin session's last activity (Unix seconds), refreshed at most this often.
ADMIN_SEEN_KEY = "seen"
ADMIN_SEEN_STEP_S = 30


def mark_admin_active() -> None:
    """Stamp this admin session as active now (at login; `_admin_idle` keeps it fresh)."""
    session[ADMIN_SEEN_KEY] = int(time.time())


def _admin_idle() -> None:
    # Admin sessions end after ADMIN_IDLE_MIN minutes without a request: the session is
    # cleared before the view, so login_required sends the browser to the login page.
    # A session without a stamp is treated as idle.
    if not is_admin_path(request.path) or "_user_id" not in session:
        return
    now = int(time.time())
    seen = session.get(ADMIN_SEEN_KEY)
    idle_s = float(current_app.config.get("ADMIN_IDLE_MIN", 30)) * 60
    if not isinstance(seen, int) or now - seen > idle_s:
        session.clear()
    elif now - seen >= min(ADMIN_SEEN_STEP_S, idle_s / 2):
        session[ADMIN_SEEN_KEY] = now


def end_admin_session() -> None:
    """End any admin session in this browser with this request's response: a participant
    starting here must not inherit it (the lab's start and platform entry call this).
    The admin cookie is only sent under /manage, so a participant route cannot read it;
    it replaces it with an expired one."""
    @after_this_request
    def _delete(resp):
        cfg = current_app.config
        resp.delete_cookie(ADMIN_COOKIE, path=ADMIN_PREFIX,
                           domain=cfg.get("SESSION_COOKIE_DOMAIN") or None,
                           secure=bool(cfg.get("SESSION_COOKIE_SECURE")), httponly=True,
                           samesite=cfg.get("SESSION_COOKIE_SAMESITE"))
        return resp


class SplitSessionInterface(SecureCookieSessionInterface):
    """Two signed cookies: the admin area's (`tll_admin`, path /manage, its own signing
    salt) and the participant's (`tll_session`, path /). A request under /manage opens
    and writes only the admin cookie; every other request only the participant cookie,
    so a participant can neither read, extend nor clear an admin session and an admin
    login never clears a participant's session.

    The JSON API (`/api/...`) identifies participants by the token in its URLs and never
    reads or writes a session, so it gets Flask's null session (no cookie parsed or
    written: verifying it was about 3 % of an answer's CPU); the serializers are built
    once per (salt, keys) instead of on every request."""

    def __init__(self):
        self._serializers: dict = {}

    def _admin(self) -> bool:
        return is_admin_path(request.path)

    def get_signing_serializer(self, app):
        if not app.secret_key:
            return None
        # The salt is passed, never stored on the shared interface: gthread workers serve
        # an admin and a participant request at the same time.
        salt = "tll-admin-session" if self._admin() else "tll-participant-session"
        fallbacks = tuple(app.config.get("SECRET_KEY_FALLBACKS") or ())
        key = (salt, app.secret_key, fallbacks)
        ser = self._serializers.get(key)
        if ser is None:
            ser = URLSafeTimedSerializer(
                [*fallbacks, app.secret_key], salt=salt, serializer=self.serializer,
                signer_kwargs={"key_derivation": self.key_derivation,
                               "digest_method": self.digest_method})
            if len(self._serializers) > 64:  # keys come and go in tests
                self._serializers.clear()
            self._serializers[key] = ser
        return ser

    def open_session(self, app, request):
        """Return the null session for the JSON API, the area's cookie session otherwise."""
        if request.path.startswith(API_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_name(self, app) -> str:
        return ADMIN_COOKIE if self._admin() else PARTICIPANT_COOKIE

    def get_cookie_path(self, app) -> str:
        return ADMIN_PREFIX if self._admin() else "/"


def csp_header(policy: dict) -> str:
    """Return `policy` as a Content-Security-Policy header value."""
    return "; ".join(f"{k} {v}" for k, v in policy.items())


def _worker_policy(resp):
    # MTurk frames the worker pages and the finished assignment is posted to
    # turkSubmitTo: allow exactly MTurk's hosts (and a configured loopback emulator).
    if not (request.endpoint or "").startswith("mturk_worker."):
        return resp
    from .mturk.question import allowed_submit_hosts, frame_ancestors
    from .mturk.worker import local_endpoint

    local = local_endpoint()
    ancestors = frame_ancestors(local).split(" ", 1)[1]
    resp.headers["Content-Security-Policy"] = csp_header(dict(
        CSP, **{"frame-ancestors": ancestors,
                "form-action": " ".join(("'self'",) + allowed_submit_hosts(local))}))
    return resp


def init_app(app) -> None:
    """Install sessions, CSRF, login, throttling and headers on `app` (after the
    blueprints are registered, so exemptions can name them)."""
    app.session_interface = SplitSessionInterface()
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session's life
    # Over HTTPS a form post must come with a Referer of this site (REFERRER_POLICY sends it).
    app.config.setdefault("WTF_CSRF_SSL_STRICT", True)
    app.jinja_env.globals["referrer_policy"] = REFERRER_POLICY
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    app.config.setdefault("RATELIMIT_STORAGE_URI", throttle.DatabaseStorage.STORAGE_SCHEME[0]
                          + "://")
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "manage.login"
    login_manager.login_message = None
    limiter.init_app(app)
    for name in ("api", "images", "mturk_worker", "lab", "static"):
        if name in app.blueprints:
            limiter.exempt(app.blueprints[name])
    for name in ("api", "mturk_worker"):
        if name in app.blueprints:
            csrf.exempt(app.blueprints[name])
    production = app.config.get("TLL_ENV") == "production"
    # Registered before Talisman's, so it runs after it (Flask runs them in reverse).
    app.after_request(_worker_policy)
    talisman.init_app(
        app, force_https=False,  # the reverse proxy redirects to HTTPS (deploy/nginx)
        strict_transport_security=production,
        session_cookie_secure=bool(app.config.get("SESSION_COOKIE_SECURE")),
        session_cookie_http_only=True,
        content_security_policy=CSP, frame_options="DENY",
        referrer_policy=REFERRER_POLICY, x_xss_protection=False)
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith("mturk_worker."):
            view.talisman_view_options = {"frame_options": None}
    # Talisman's before hooks do nothing here (no forced HTTPS, no nonce): answers skip.
    skip_from = {"flask_limiter": ANSWER, "flask_talisman": ANSWER, "flask_login": ANSWER}
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks[:] = [_skipped_from(h, skip_from[_owner(h)]) if _owner(h) in skip_from else h
                for h in hooks]
    hooks = app.after_request_funcs.setdefault(None, [])
    hooks[:] = [_talisman_headers(h) if _owner(h) == "flask_talisman" else
                _skipped_from(h, skip_from[_owner(h)]) if _owner(h) in skip_from else h
                for h in hooks]
    app.after_request(_hot_headers)
    app.before_request(_skipped_from(_admin_idle, ANSWER))
    app.ensure_sync = _cached_ensure_sync(app.ensure_sync)


def _owner(hook) -> str:
    fn = getattr(hook, "func", hook)  # functools.partial (Limiter's header hook)
    return (getattr(fn, "__module__", "") or "").split(".")[0]

"""Error pages and validation at the edges: every client error is a 4xx with a reason,
JSON for the API (and for clients that ask for JSON, `{"error", "status"}`), HTML
otherwise; a database outage is a 503 with Retry-After; nothing a client sends reaches
the database with a NUL byte, an over-long id or JSON nested past a limit."""
from __future__ import annotations

import io
import json

from flask import jsonify, render_template, request
from flask.globals import _cv_request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.routing import IntegerConverter

from .recording import RecordingError
from .texts import MARKDOWN_TEXTS, MAX_TEXT

MAX_JSON_DEPTH = 20
RETRY_AFTER_S = 5
# Longest value accepted for each request parameter the server looks up in the database
# (the column sizes of server/models.py); longer ones are refused before any query.
PARAM_LIMITS = {"assignmentId": 100, "hitId": 100, "workerId": 100, "turkSubmitTo": 300,
                "code": 64, "next": 500, "username": 100}
# The researcher's long texts (admin settings): MAX_TEXT characters each.
PARAM_LIMITS.update({name: MAX_TEXT for name in (*MARKDOWN_TEXTS, "consent_text")})
MAX_PARAM = 2000  # any other query or form value
# Body limits per endpoint above MAX_CONTENT_LENGTH (64 KB, every other route): the
# settings form carries four texts of MAX_TEXT characters, which a browser sends
# urlencoded as up to 12 bytes per character (a 4-byte UTF-8 character, %XX each).
BODY_LIMITS = {"manage.settings_save": 4 * MAX_TEXT * 12 + 64 * 1024}
BODY_CEILING = max(BODY_LIMITS.values())
MAX_HEADER = 8192
_CONTENT_KEYS = ("CONTENT_TYPE", "CONTENT_LENGTH")
# The largest id a URL may name: PostgreSQL's INTEGER (SQLite's is 2^63 - 1).
MAX_URL_INT = 2**31 - 1


class DatabaseIntConverter(IntegerConverter):
    """The `<int:...>` URL converter, bounded to 0..MAX_URL_INT: an id past what the
    database's INTEGER holds matches no route (404) instead of reaching a query."""

    def __init__(self, map, fixed_digits=0, min=0, max=MAX_URL_INT, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class EdgeJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, refusing (400) bodies nested deeper than MAX_JSON_DEPTH or
    holding a NUL character, and numbers Python cannot parse, before any view sees them."""

    def loads(self, s, **kwargs):
        if isinstance(s, (bytes, bytearray)):
            try:
                s = s.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("the body is not UTF-8 JSON") from None
        # Nesting needs brackets: counting them (in C) spares the scan of short bodies.
        if s.count("[") + s.count("{") > MAX_JSON_DEPTH and json_depth(s) > MAX_JSON_DEPTH:
            raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            value = json.loads(s, **kwargs)
        except ValueError as e:  # includes over-long integers (int max str digits)
            raise BadRequest(f"the body is not valid JSON: {e}") from None
        if has_nul(value):
            raise BadRequest("NUL characters are not allowed")
        return value


def json_depth(text: str) -> int:
    """Return the deepest nesting of [ and { in the JSON `text` (strings skipped)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def has_nul(value) -> bool:
    """Return True if a NUL character is in any string (key or value) of `value`."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def wants_json() -> bool:
    """Return True when the response to this request should be JSON."""
    if request.path.startswith("/api/") or "/api/" in request.path:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def error_response(status: int, reason: str, headers: dict | None = None):
    """Return a (response, status, headers) triple with `reason`, as JSON or as HTML."""
    if wants_json():
        return jsonify(error=reason, status=status), status, headers or {}
    return render_template("error.html", status=status, reason=reason), status, headers or {}


def _check_edges():
    """Refuse (400) NUL bytes and over-long values in the path, query, form, headers and
    HTTP Basic credentials before a view, and so the database, sees them."""
    # It runs before every request: the request object once (not through its proxy), and
    # the headers straight from the WSGI environ (what werkzeug's Headers iterate).
    req = _cv_request.get().request
    environ = req.environ
    refused = environ.get(BODY_REFUSED)
    if refused is not None:
        return error_response(*refused)
    limit = BODY_LIMITS.get(req.endpoint)
    if limit is not None:
        req.max_content_length = limit
    if "\x00" in req.path or b"\x00" in req.query_string:
        return error_response(400, "NUL characters are not allowed")
    bad = bad_header(environ)
    if bad is not None:
        return error_response(400, f"header {bad} is not allowed")
    if "HTTP_AUTHORIZATION" in environ:
        auth = req.authorization
        if auth is not None and any("\x00" in (v or "") for v in (auth.username,
                                                                   auth.password)):
            return error_response(400, "NUL characters are not allowed")
    sources = [req.args] if req.query_string else []
    if req.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sources.append(req.form)
    for src in sources:
        for key, value in src.items(multi=True):
            if "\x00" in key or "\x00" in value:
                return error_response(400, "NUL characters are not allowed")
            limit = PARAM_LIMITS.get(key, MAX_PARAM)
            if len(value) > limit:
                return error_response(400, f"{key} is longer than {limit} characters")
    return None


def bad_header(environ: dict) -> str | None:
    """Return the name of the first header of this WSGI request that holds a NUL byte or
    is longer than MAX_HEADER, or None when all are acceptable."""
    for key, value in environ.items():
        if (key.startswith("HTTP_") or key in _CONTENT_KEYS) and isinstance(value, str) \
                and ("\x00" in value or len(value) > MAX_HEADER):
            name = key[5:] if key.startswith("HTTP_") else key
            return name.replace("_", "-").title()
    return None


BODY_REFUSED = "tll.body_refused"
_READ = 64 * 1024


class BodyGuard:
    """WSGI middleware: every request body is read whole before the application sees it,
    and refused when it does not match its framing: a Content-Length longer than the
    bytes sent, a chunked body cut short or with a chunk longer than its size, or a body
    past BODY_CEILING (before reading, when its length is declared). The application then
    answers the refusal (400 or 413, through the edge checks) without processing
    anything; an accepted body reaches it as a plain Content-Length body."""

    def __init__(self, wsgi_app, ceiling: int = BODY_CEILING):
        self.wsgi_app = wsgi_app
        self.ceiling = ceiling

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        cl = environ.get("CONTENT_LENGTH") or ""
        if not chunked and cl in ("", "0"):
            return self.wsgi_app(environ, start_response)
        refused = None
        if not chunked and not (cl.isascii() and cl.isdigit()):
            refused = (400, "Content-Length is not a number of bytes")
        elif not chunked and int(cl) > self.ceiling:
            refused = (413, f"the body is longer than {self.ceiling} bytes")
        else:
            want = self.ceiling + 1 if chunked else int(cl)
            try:
                body = _read(environ["wsgi.input"], want)
            except Exception:  # the WSGI server's chunk parser, a client that hung up
                body, refused = b"", (400, "the request body could not be read (its "
                                           "chunks do not match their sizes, or it ended "
                                           "early)")
            if refused is None and len(body) > self.ceiling:
                refused = (413, f"the body is longer than {self.ceiling} bytes")
            elif refused is None and not chunked and len(body) < want:
                refused = (400, f"the body ended after {len(body)} of the {want} bytes its "
                                "Content-Length announced")
        if refused is not None:
            environ[BODY_REFUSED] = refused
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self.wsgi_app(environ, start_response)


def _read(stream, want: int) -> bytes:
    """Return up to `want` bytes of `stream`, reading until it ends."""
    parts, got = [], 0
    while got < want:
        data = stream.read(min(_READ, want - got))
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _database_down(e: Exception) -> bool:
    # Connection-level failures (server stopped, refused, restarting) are outages; data
    # errors are bugs and stay 500 so they are seen.
    if isinstance(e, OperationalError):
        return True
    return isinstance(e, DBAPIError) and bool(getattr(e, "connection_invalidated", False))


def init_app(app) -> None:
    """Register the JSON provider, the bounded `int` URL converter (before any blueprint
    adds its rules), the edge checks and the error handlers on `app`."""
    app.url_map.converters["int"] = DatabaseIntConverter
    app.json = EdgeJSONProvider(app)
    app.json.sort_keys = False
    app.before_request(_check_edges)

    @app.errorhandler(RecordingError)
    def _recording(e: RecordingError):
        return error_response(e.status, e.reason)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        headers = {}
        if e.code == 429:
            headers["Retry-After"] = str(getattr(e, "retry_after", 60))
        if e.code == 405 and e.valid_methods:
            headers["Allow"] = ", ".join(e.valid_methods)
        return error_response(e.code or 500, e.description or e.name, headers)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        from .models import db

        try:
            db.session.rollback()
        except Exception:  # the connection may be gone: the pool replaces it
            pass
        if _database_down(e):
            return error_response(503, "the database is not available: try again in a "
                                       "few seconds", {"Retry-After": str(RETRY_AFTER_S)})
        if _client_stream_error(e):
            return error_response(400, "the request body could not be read")
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal error: the administrator has been told")


def _client_stream_error(e: Exception) -> bool:
    # A malformed chunked body or a client that hangs up mid-body surfaces as an
    # exception from the WSGI server's input stream (gunicorn, werkzeug).
    from werkzeug.exceptions import ClientDisconnected

    mod = type(e).__module__ or ""
    return isinstance(e, ClientDisconnected) or mod.startswith("gunicorn.http")

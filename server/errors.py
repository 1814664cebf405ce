"""Error pages: every client error is a 4xx with a reason, JSON for the API (and for
clients that ask for JSON), HTML otherwise."""
from __future__ import annotations

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .recording import RecordingError


def wants_json() -> bool:
    """Return True when the response to this request should be JSON."""
    if request.path.startswith("/api/") or "/api/" in request.path:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def error_response(status: int, reason: str):
    """Return a (response, status) pair with `reason`, as JSON or as an HTML page."""
    if wants_json():
        return jsonify(error=reason, status=status), status
    return render_template("error.html", status=status, reason=reason), status


def init_app(app) -> None:
    """Register the error handlers on `app`."""

    @app.errorhandler(RecordingError)
    def _recording(e: RecordingError):
        return error_response(e.status, e.reason)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        return error_response(e.code or 500, e.description or e.name)

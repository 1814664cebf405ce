"""The JSON API's answer route without Flask's request machinery: a WSGI layer in front of
the Flask app that records `POST /api/v1/participants/<token>/answers` itself when the
request is an ordinary one that is stored (201) or repeated (200), and hands everything
else to Flask untouched.

Why: under load an answer spent most of its CPU in Flask and Werkzeug around the view
(request context, URL matching, hooks, response object), not in recording it
(measured with benchmarks/bench_answer_cpu.py --profile). This layer runs what the view
runs (`participant_ref`, then
`api.record`: the checks, `record_answer`, the reply), on a connection borrowed as the
answer routes borrow theirs, and answers with the same bytes and headers.

What it leaves to Flask, so that every error keeps one source (server/errors.py):
anything but a short `application/json` body of one flat JSON object without NULs and
with `n` and `choice`; a query string, chunked body, Authorization header, or a header
the edge checks refuse; the participant API turned off; and any error while checking or
recording (a RecordingError, the database down). Nothing is written before such a
hand-over: every check that can refuse an answer runs before its INSERT, and a
repeated answer is a success here too. (A commit whose outcome is unknown, the
connection lost during COMMIT, is handed over as well: Flask then finds the answer
stored and says so, or answers 503.) A body already read is handed over as it was.
Turned off by `ANSWER_FAST_PATH = False` (env `TLL_ANSWER_FAST_PATH=0`).
"""
from __future__ import annotations

import io
import json
import re

from flask import Flask

from . import api, fastsql
from . import recording as rec
from .errors import bad_header, has_nul
from .security import HOT_HEADERS

ANSWER_PATH = re.compile(r"/api/v1/participants/([A-Za-z0-9_-]{1,64})/answers")
MAX_BODY = 1024  # an answer is about 50 bytes; anything longer goes the long way
_JSON_TYPES = frozenset(("application/json", "application/json; charset=utf-8",
                         "application/json;charset=utf-8", "application/json; charset=UTF-8"))
_STATUS = {True: "201 CREATED", False: "200 OK"}


class AnswerFastPath:
    """WSGI middleware: records ordinary JSON API answers, passes the rest to `wsgi_app`."""

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        m = ANSWER_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if m is None or not self._plain(environ):
            return self.wsgi_app(environ, start_response)
        length = int(environ["CONTENT_LENGTH"])
        try:
            body = environ["wsgi.input"].read(length)
        except Exception as e:  # the client hung up, a broken stream: Flask says 400
            environ["wsgi.input"] = _Failing(e)
            return self.wsgi_app(environ, start_response)
        out = self._record(m.group(1), body)
        if out is None:
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            return self.wsgi_app(environ, start_response)
        status, payload = out
        headers = [("Content-Type", self.app.json.mimetype),
                   ("Content-Length", str(len(payload))), *HOT_HEADERS]
        start_response(status, headers)
        return [payload]

    def _plain(self, environ) -> bool:
        """Return True for a request this layer may take: a short JSON body of known
        length, nothing else that the edge checks or Flask would look at."""
        cl = environ.get("CONTENT_LENGTH", "")
        return (environ.get("CONTENT_TYPE") in _JSON_TYPES
                and cl.isascii() and cl.isdigit() and 0 < int(cl) <= MAX_BODY
                and not environ.get("QUERY_STRING")
                and "HTTP_TRANSFER_ENCODING" not in environ
                and "HTTP_AUTHORIZATION" not in environ
                and self.app.config["ANSWER_FAST_PATH"]
                and self.app.config.get("PARTICIPANT_API", True)
                and bad_header(environ) is None)

    def _record(self, token: str, body: bytes) -> tuple[str, bytes] | None:
        """Record the answer in `body`; return (status, response body), or None to hand the
        request to Flask unchanged (nothing has been written then)."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        # One flat object: no nesting to bound, nothing for the depth check to refuse.
        if text.count("{") != 1 or "[" in text:
            return None
        try:
            answer = json.loads(text)
        except ValueError:
            return None
        if not isinstance(answer, dict) or has_nul(answer):
            return None
        app = self.app
        with app.app_context(), fastsql.answer_scope():
            try:
                reply, created = api.record(rec.participant_ref(token), answer)
            except Exception:
                # Every refusal happens before the INSERT: Flask runs it again and answers
                # with the error as every route does.
                return None
        return _STATUS[created], _json_bytes(app, reply)


def _json_bytes(app: Flask, value) -> bytes:
    """Return `value` as `jsonify` writes it (compact unless in debug, then a newline)."""
    provider = app.json
    if (provider.compact is None and app.debug) or provider.compact is False:
        text = provider.dumps(value, indent=2)
    else:
        text = provider.dumps(value, separators=(",", ":"))
    return (text + "\n").encode()


class _Failing:
    """A request body that fails to read as it did the first time."""

    def __init__(self, error: Exception):
        self.error = error

    def read(self, *args):
        raise self.error

    readline = read

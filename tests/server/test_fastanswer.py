"""The JSON API's answer fast path (server/fastanswer.py) answers exactly as the Flask
route does: the same status, headers and body for stored and repeated answers, and every
request it does not take (odd bodies, headers, refusals, outages) goes to Flask untouched,
with nothing stored. Run on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json

import pytest
from flask import request_started
from werkzeug.exceptions import ClientDisconnected
from werkzeug.test import EnvironBuilder, run_wsgi_app

from server.models import Participant, Response, db
from tests.server.conftest import api_participant

ANSWER_HEADERS = ("Content-Type", "Content-Length", "X-Content-Type-Options",
                  "Referrer-Policy")


def _seen(r) -> tuple:
    """What a client sees of an answer, the moment of storing aside."""
    body = json.loads(r.get_data())
    body.pop("received_at", None)
    return (r.status, [(k, r.headers.get(k)) for k in ANSWER_HEADERS], body,
            r.get_data().endswith(b"\n"))


def _stored(app) -> list[tuple]:
    with app.app_context():
        return db.session.execute(
            db.select(Participant.code, Response.trial_order, Response.chosen_index,
                      Response.rt_ms).join(Participant)
            .order_by(Participant.code, Response.trial_order)).all()


class _FlaskCalls:
    """Counts the requests that reached Flask's request handling."""

    def __init__(self, app):
        self.n = 0
        request_started.connect(self._one, app)

    def _one(self, sender, **kw):
        self.n += 1


def _play(app, fast: bool, code: str) -> list[tuple]:
    app.config["ANSWER_FAST_PATH"] = fast
    c = app.test_client()
    tok = api_participant(c, code)
    url = f"/api/v1/participants/{tok}/answers"
    seen = []
    for n, choice, rt in [(1, 3, 812), (1, 0, None), (2, "4", "95.5"), (3, 0, None),
                          (2, 1, 3)]:
        body = {"n": n, "choice": choice}
        if rt is not None:
            body["rt_ms"] = rt
        seen.append(_seen(c.post(url, json=body)))
    return seen


def test_fast_answers_are_the_routes_answers(any_app):
    flask_calls = _FlaskCalls(any_app)
    slow = _play(any_app, False, "SLOWPATH")
    assert flask_calls.n == 6  # the participant and five answers
    fast = _play(any_app, True, "FASTPATH")
    assert flask_calls.n == 6 + 1  # only the participant went through Flask
    assert fast == slow
    assert [s[0] for s in fast] == ["201 CREATED", "200 OK", "201 CREATED", "201 CREATED",
                                    "200 OK"]
    assert fast[1][2]["duplicate"] and fast[1][2]["choice"] == 3
    stored = _stored(any_app)
    assert [r[1:] for r in stored if r[0] == "FASTPATH"] == \
        [r[1:] for r in stored if r[0] == "SLOWPATH"] == [(1, 3, 812.0), (2, 4, 95.5), (3, 0, None)]


def test_the_last_answer_completes_through_the_fast_path(any_app):
    c = any_app.test_client()
    tok = api_participant(c, "FASTDONE")
    total = c.get(f"/api/v1/participants/{tok}").get_json()["total"]
    for n in range(1, total + 1):
        r = c.post(f"/api/v1/participants/{tok}/answers", json={"n": n, "choice": n % 5})
        assert r.status_code == 201
    assert r.get_json()["done"] is True and r.get_json()["answered"] == total
    st = c.get(f"/api/v1/participants/{tok}").get_json()
    assert st["completed"] is True and st["answered"] == total


# (description, how to post it): each goes to Flask, which refuses it as before.
HANDED_OVER = [
    ("form body", dict(data={"n": "1", "choice": "2"})),
    ("text/plain JSON", dict(data='{"n": 1, "choice": 2}', content_type="text/plain")),
    ("nested JSON", dict(data='{"n": 1, "choice": [2]}', content_type="application/json")),
    ("deep JSON", dict(data='{"n": 1, "choice": 2, "x": ' + "[" * 40 + "]" * 40 + "}",
                       content_type="application/json")),
    ("NUL in a value", dict(json={"n": 1, "choice": "2\x00"})),
    ("NUL in another key", dict(json={"n": 1, "choice": 2, "note\x00": 1})),
    ("not UTF-8", dict(data=b'{"n": 1, "choice": "\xff"}', content_type="application/json")),
    ("not JSON", dict(data="{n: 1}", content_type="application/json")),
    ("an array", dict(data="[1, 2]", content_type="application/json")),
    ("no choice", dict(json={"n": 1})),
    ("choice out of range", dict(json={"n": 1, "choice": 5})),
    ("choice not ASCII", dict(json={"n": 1, "choice": "²"})),
    ("huge trial number", dict(json={"n": "9" * 5000, "choice": 1})),
    ("trial ahead", dict(json={"n": 4, "choice": 1})),
    ("trial not in the sequence", dict(json={"n": 99, "choice": 1})),
    ("negative time", dict(json={"n": 1, "choice": 1, "rt_ms": -3})),
    ("long body", dict(json={"n": 1, "choice": 7, "pad": "x" * 2000})),
    ("NUL in a header", dict(json={"n": 1, "choice": 1}, headers={"X-Note": "a\x00b"})),
]


@pytest.mark.parametrize("what,post", HANDED_OVER, ids=[h[0] for h in HANDED_OVER])
def test_what_the_fast_path_does_not_take_is_refused_as_before(app, what, post):
    c = app.test_client()
    tok = api_participant(c, "REFUSED")
    url = f"/api/v1/participants/{tok}/answers"
    answers = []
    for fast in (False, True):
        app.config["ANSWER_FAST_PATH"] = fast
        r = c.post(url, **post)
        answers.append((r.status_code, r.get_json()))
    assert answers[0] == answers[1]
    assert 400 <= answers[1][0] < 500 and answers[1][1]["status"] == answers[1][0]
    assert _stored(app) == []


def test_refusals_of_the_participant_are_the_routes(any_app):
    c = any_app.test_client()
    url = "/api/v1/participants/{}/answers"
    tok = api_participant(c, "WITHDRAWS")
    with any_app.app_context():
        p = db.session.execute(db.select(Participant).filter_by(token=tok)).scalar_one()
        p.withdrawn_at = p.consented_at
        db.session.commit()
    r = c.post(url.format(tok), json={"n": 1, "choice": 1})
    assert r.status_code == 409 and "withdrew" in r.get_json()["error"]
    r = c.post(url.format("nobody-has-this-token"), json={"n": 1, "choice": 1})
    assert r.status_code == 404 and r.get_json()["error"] == "unknown participant"
    any_app.config["PARTICIPANT_API"] = False
    r = c.post(url.format(tok), json={"n": 1, "choice": 1})
    assert r.status_code == 404 and "turned off" in r.get_json()["error"]
    assert _stored(any_app) == []


def test_a_query_string_goes_the_long_way_and_is_stored_there(app):
    flask_calls = _FlaskCalls(app)
    c = app.test_client()
    tok = api_participant(c, "QUERY")
    r = c.post(f"/api/v1/participants/{tok}/answers?via=proxy", json={"n": 1, "choice": 2})
    assert r.status_code == 201 and flask_calls.n == 2
    assert _stored(app) == [("QUERY", 1, 2, None)]


def test_a_body_that_breaks_off_is_a_400(app):
    c = app.test_client()
    tok = api_participant(c, "BROKEN")

    class Broken(io.RawIOBase):
        def read(self, *a):
            raise ClientDisconnected()
        readinto = read

    env = EnvironBuilder(f"/api/v1/participants/{tok}/answers", method="POST",
                         data=b'{"n": 1, "choice": 2}', content_type="application/json"
                         ).get_environ()
    env["wsgi.input"] = Broken()
    body, status, _ = run_wsgi_app(app, env)
    assert status.startswith("400 ")
    assert json.loads(b"".join(body))["status"] == 400
    assert _stored(app) == []

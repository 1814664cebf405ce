"""Zero 5xx from input, on SQLite and PostgreSQL: the bad-request corpus
(tests/data/bad_requests.json) replayed, and a property-based fuzz (Hypothesis) over every
route of `app.url_map` (new routes are covered without editing this file)."""
from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import csrf_from, lab_post

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_requests.json"


def expand(v):
    """Return a corpus value with its {"$repeat"} / {"$concat"} pieces written out."""
    if isinstance(v, dict):
        if "$repeat" in v:
            unit, n = v["$repeat"]
            return unit * n
        if "$concat" in v:
            return "".join(expand(x) for x in v["$concat"])
        return {k: expand(x) for k, x in v.items()}
    if isinstance(v, list):
        return [expand(x) for x in v]
    return v


class Clients:
    """A participant browser (started, consented, with its CSRF token), an API
    participant token and an admin browser (logged in), all on one app."""

    def __init__(self, app):
        self.app = app
        self.lab = app.test_client()
        lab_post(self.lab, "/lab/small/start", {"code": "FUZZLAB"})
        lab_post(self.lab, "/lab/small/consent", {"agree": "yes"})
        self.lab_csrf = self.lab._tll_csrf
        api = app.test_client()
        self.token = api.post("/api/v1/experiments/small/participants",
                              json={"consent": True, "code": "FUZZAPI"}).json["participant"]
        self.admin = app.test_client()
        tok = csrf_from(self.admin.get("/manage/login").get_data(as_text=True))
        assert self.admin.post("/manage/login", data={
            "csrf_token": tok, "username": "admin", "password": "correct horse"}).status_code == 303
        self.admin_csrf = csrf_from(self.admin.get("/manage/").get_data(as_text=True))


def replay(c: Clients, req: dict):
    """Send one corpus request; return the response."""
    req = expand(req)
    path = req["path"].replace("{token}", c.token)
    client = c.admin if req.get("admin_csrf") or path.startswith("/manage/") else c.lab
    if req.get("admin_csrf"):
        client = c.app.test_client()  # a fresh one: the login page's token
        req["form"] = {"csrf_token": csrf_from(client.get("/manage/login").get_data(as_text=True)),
                       **req.get("form", {})}
    kw = {"method": req["method"], "headers": req.get("headers", {})}
    if req.get("query"):
        kw["query_string"] = req["query"]
    if "json" in req:
        kw["json"] = req["json"]
    elif "raw" in req or "raw_hex" in req:
        kw["data"] = req["raw"].encode() if "raw" in req else bytes.fromhex(req["raw_hex"])
        kw["content_type"] = req.get("content_type", "application/octet-stream")
    elif "form" in req:
        form = dict(req["form"])
        if req.get("lab"):
            form.setdefault("csrf_token", c.lab_csrf)
        if req.get("admin_form"):
            form.setdefault("csrf_token", c.admin_csrf)
        kw["data"] = form
        if req.get("multipart"):
            import io
            form["file"] = (io.BytesIO(b"\x00\x01"), "x.bin")
            kw["content_type"] = "multipart/form-data"
    return client.open(path, **kw)


def test_bad_request_corpus_gives_no_5xx(any_app):
    doc = json.loads(CORPUS.read_text())
    assert len(doc["requests"]) >= 100
    c = Clients(any_app)
    failures = []
    for req in doc["requests"]:
        r = replay(c, req)
        if r.status_code >= 500:
            failures.append(f"{req['note']}: {r.status_code} {r.get_data(as_text=True)[:200]}")
        elif r.status_code >= 400 and (r.is_json or "/api/" in req["path"]):
            body = r.get_json(silent=True)
            assert body and set(body) == {"error", "status"} and body["status"] == r.status_code, req["note"]
    assert not failures, "\n".join(failures)
    # Nothing the corpus sent was stored: still the two participants, no answers.
    with any_app.app_context():
        from server.models import Participant, Response, db
        assert db.session.query(Participant).count() == 2
        assert db.session.query(Response).count() == 0


# ------------------------------------------------------------------ Hypothesis fuzz
# Integers past every database's INTEGER (2^31 on PostgreSQL, 2^63 on SQLite) and past
# a float (10^309), as text in URLs and forms and as JSON numbers.
HUGE = [2**31, 2**63, 10**309, -(10**309)]
ODD = st.sampled_from(["\x00", "²", "٣", "１", "-1", "1" * 60, "9" * 5000, "https://[",
                       "https://[::1/{code}", *map(str, HUGE), "1e400",
                       "%", "\r\n", "../", "//evil", "\u202e", "\ud7ff", "'", "\"", "<x>",
                       "x" * 300, "ASSIGNMENT_ID_NOT_AVAILABLE", "small", "h0001", "t0001",
                       "0", "1", "4", "5", "true", "null", "[]", "{}"])
TEXT = st.one_of(ODD, st.text(max_size=40), st.text(alphabet=st.characters(
    codec="utf-8", exclude_categories=["Cs"]), max_size=12))
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE),
              st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["n", "choice", "rt_ms", "code",
                                                             "consent", "population", "x"]),
                                            inner, max_size=5)),
    max_leaves=12)
PARAMS = st.dictionaries(st.sampled_from(["n", "choice", "rt_ms", "code", "agree", "generate",
                                          "assignmentId", "hitId", "workerId", "turkSubmitTo",
                                          "p", "next", "ids", "username", "password", "resume",
                                          "error", "csrf_token", "k", "confirm",
                                          "break_every", "practice_trials",
                                          "min_viewport_width", "seconds_per_trial",
                                          "platform__panel__redirect"]),
                         TEXT, max_size=5)


def _routes(app) -> list[tuple[str, list[str], list[str]]]:
    out = []
    for rule in app.url_map.iter_rules():
        methods = sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS"))
        out.append((rule.rule, methods, sorted(rule.arguments)))
    return out


def _fill(rule: str, values: dict) -> str:
    from urllib.parse import quote
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>",
                  lambda m: quote(values[m.group(1)], safe="") or "x", rule)


def test_fuzz_every_route_gives_no_5xx(any_app):
    c = Clients(any_app)
    routes = _routes(any_app)
    assert any(r[0].startswith("/mturk/") for r in routes) and len(routes) >= 20
    real = {"name": "small", "token": c.token, "n": "1", "hit_key": "h0001", "filename": "style.css"}
    failures = []

    @settings(max_examples=600, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(routes), data=st.data())
    def one(route, data):
        rule, methods, args = route
        values = {a: data.draw(st.one_of(st.just(real.get(a, "x")), TEXT), label=a) for a in args}
        path = _fill(rule, values)
        method = data.draw(st.sampled_from(methods))
        who = data.draw(st.sampled_from(["lab", "admin", "anonymous"]))
        client = {"lab": c.lab, "admin": c.admin, "anonymous": c.app.test_client()}[who]
        kw = {"method": method, "query_string": data.draw(PARAMS)}
        body = data.draw(st.sampled_from(["none", "json", "form", "raw"]))
        if body == "json":
            kw["json"] = data.draw(JSONISH)
        elif body == "form":
            form = data.draw(PARAMS)
            if who != "anonymous" and data.draw(st.booleans()):
                form["csrf_token"] = c.lab_csrf if who == "lab" else c.admin_csrf
            kw["data"] = form
        elif body == "raw":
            kw["data"] = data.draw(st.binary(max_size=64))
            kw["content_type"] = data.draw(st.sampled_from(
                ["application/json", "application/x-www-form-urlencoded", "text/plain"]))
        r = client.open(path, **kw)
        if r.status_code >= 500:
            failures.append(f"{method} {path} {kw}: {r.status_code}")

    one()
    assert not failures, "\n".join(failures[:20])


def test_malformed_chunked_body_is_a_4xx(live_server):
    host, port = live_server.removeprefix("http://").split(":")
    bodies = [b"zz\r\nabc\r\n0\r\n\r\n",            # chunk size not hex
              b"5\r\nab",                           # body ends inside a chunk
              b"3\r\nabcdef\r\n0\r\n\r\n"]          # chunk longer than its size
    for body in bodies:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /api/v1/experiments/small/participants HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" + body)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        status = int(reply.split(b" ", 2)[1]) if reply else 0
        assert 400 <= status < 500, (body, reply[:200])

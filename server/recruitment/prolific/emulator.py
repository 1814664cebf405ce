"""A local Prolific-compatible endpoint, for tests and dry runs without money: the API
under `/api/v1/` with Prolific's shapes and errors (`shapes`), and a participant site
that sends simulated participants to a study's URL with its placeholders filled, takes
them back at `/submissions/complete?cc=CODE` and lets them return the study.

Rules it keeps (each has a test in tests/prolific/test_emulator.py):
- every API call needs `Authorization: Token <the emulator's token>` (401 otherwise);
- a study needs its fields, a study URL with the PROLIFIC_PID placeholder, completion
  codes of known types and actions, known devices, and a reward of at least the minimum
  hourly rate (400 with a detail per field otherwise); it starts UNPUBLISHED;
- study transitions follow `shapes.STUDY_TRANSITIONS` (400 otherwise); publishing needs
  the balance for rewards and fees, and spends it; only an unpublished study is deleted;
- a participant takes part only in an ACTIVE study with a free place, once per study
  (a second start resumes the active submission; a returned or finished one is refused);
- an ACTIVE submission past the study's maximum allowed time is TIMED-OUT; a returned
  one frees its place;
- `cc=CODE` completes the participant's active submission: AWAITING REVIEW, or APPROVED
  for a code whose action is AUTOMATICALLY_APPROVE; an unknown code is refused;
- only a submission AWAITING REVIEW is approved or rejected; repeating the same
  transition is ignored (Prolific: idempotent); a rejection needs a category and a
  message of 100 characters;
- bonuses are set up for participants with a submission in the study, and paying a set-up
  pays again each time (Prolific: not idempotent);
- lists are paginated (`page_size`, `_links.next`); an unknown id is a 404.
Test hooks under `/_emulator/`: a fault for the next matching call (its effect done or
not, the answer lost), and the state as JSON.
"""
from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
)
from werkzeug.serving import WSGIRequestHandler

from ...mturk import emulator as mturk_emulator
from . import shapes

TEMPLATES = mturk_emulator.TEMPLATES
DEFAULT_TOKEN = "local-emulator-token"
MIN_HOURLY_CENTS = 600          # Prolific's minimum reward rate (per hour)
PAGE_SIZE = 20

api = Blueprint("prolific_api", __name__, url_prefix=shapes.API_PATH)
site = Blueprint("prolific_site", __name__)


def _id() -> str:
    return secrets.token_hex(12)          # 24 hex digits, like Prolific's ids


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class State:
    """The endpoint's studies, submissions, bonuses and balance, behind one lock."""

    def __init__(self, token: str, balance_cents: int, clock=time.time):
        self.token, self.balance, self.clock = token, balance_cents, clock
        self.lock = threading.RLock()
        self.studies: dict[str, dict] = {}
        self.submissions: dict[str, dict] = {}
        self.bonuses: dict[str, dict] = {}
        self.payments: list[dict] = []     # every pay call that paid, in order
        self.faults: list[dict] = []
        self.workspace = {"id": "6" + secrets.token_hex(11), "title": "Local workspace"}

    def expire(self) -> None:
        """Time out the active submissions past their study's maximum time."""
        now = self.clock()
        for s in self.submissions.values():
            study = self.studies[s["study_id"]]
            if s["status"] == "ACTIVE" and \
                    now - s["_started"] > study["maximum_allowed_time"] * 60:
                s["status"] = "TIMED-OUT"

    @contextmanager
    def fresh(self):
        """Hold the lock, the active submissions past their time timed out (expire)."""
        with self.lock:
            self.expire()
            yield self

    def taken(self, study_id: str) -> int:
        return sum(1 for s in self.submissions.values() if s["study_id"] == study_id
                   and s["status"] not in ("RETURNED", "TIMED-OUT", "REJECTED"))


def state() -> State:
    return current_app.extensions["prolific_emulator"]


def error(status: int, title: str, detail):
    return jsonify(shapes.error_body(status, title, detail)), status


def cost(study: dict) -> int:
    """Cents that publishing `study` holds: rewards and the service fee."""
    rewards = study["reward"] * study["total_available_places"]
    return rewards + shapes.service_fee(rewards, shapes.FEE_RATE)


def public(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------- the API
@api.before_request
def authenticate():
    st = state()
    fault = next((f for f in st.faults if f["method"] == request.method
                  and request.path.rstrip("/") == f["path"].rstrip("/")), None)
    if fault is not None:
        st.faults.remove(fault)
        request.environ["prolific.fault"] = fault
        if fault["when"] == "before":
            return error(fault["status"], "Service Unavailable", "try again later")
    if request.headers.get("Authorization") != f"Token {st.token}":
        return error(401, "Not Authenticated",
                     "Authentication credentials were not provided or are not valid.")
    return None


@api.after_request
def lose_answer(resp):
    fault = request.environ.get("prolific.fault")
    if fault is not None and fault["when"] == "after" and resp.status_code < 400:
        lost = error(fault["status"], "Service Unavailable", "try again later")[0]
        lost.status_code = fault["status"]
        return lost
    return resp


def _page(items: list):
    try:
        size = max(1, min(200, int(request.args.get("page_size", PAGE_SIZE))))
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        return error(400, "Bad Request", {"page": ["must be an integer"]})
    chunk = items[(page - 1) * size: page * size]
    nxt = None
    if page * size < len(items):
        nxt = {"href": request.base_url + "?" + urlencode({"page": page + 1, "page_size": size})}
    return jsonify({"results": chunk, "_links": {"next": nxt, "self": {"href": request.url}},
                    "meta": {"count": len(items)}})


@api.get("/workspaces/")
def workspaces():
    return _page([state().workspace])


@api.get("/workspaces/<wid>/balance/")
def balance(wid):
    st = state()
    if wid != st.workspace["id"]:
        return error(404, "Not Found", f"workspace {wid} not found")
    return jsonify({"currency_code": "GBP", "total_balance": st.balance,
                    "balance_breakdown": {"rewards": st.balance, "fees": 0, "vat": 0},
                    "available_balance": st.balance,
                    "available_balance_breakdown": {"rewards": st.balance, "fees": 0,
                                                    "vat": 0}})


def _check_study(body) -> dict:
    """Return {field: [problems]} of a study create request."""
    if not isinstance(body, dict):
        return {"non_field_errors": ["a JSON object is required"]}
    problems: dict[str, list[str]] = {}

    def bad(field, msg):
        problems.setdefault(field, []).append(msg)

    for f in ("name", "description", "external_study_url"):
        if not isinstance(body.get(f), str) or not body[f].strip():
            bad(f, "This field is required.")
    for f in ("total_available_places", "reward", "estimated_completion_time"):
        v = body.get(f)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            bad(f, "A positive integer is required.")
    url = body.get("external_study_url") or ""
    if body.get("prolific_id_option") == "url_parameters" and \
            shapes.PLACEHOLDERS["PROLIFIC_PID"] not in url:
        bad("external_study_url", "The URL must contain {{%PROLIFIC_PID%}} to record "
                                  "participants' ids by URL parameters.")
    if isinstance(url, str) and not url.startswith(("https://", "http://")):
        bad("external_study_url", "Enter a valid URL.")
    mat = body.get("maximum_allowed_time")
    if mat is not None and (not isinstance(mat, int) or mat < (body.get("estimated_completion_time") or 0)):
        bad("maximum_allowed_time", "Must be at least the estimated completion time.")
    codes = body.get("completion_codes")
    if not isinstance(codes, list) or not codes:
        bad("completion_codes", "At least one completion code is required.")
    else:
        for c in codes:
            if not isinstance(c, dict) or not isinstance(c.get("code"), str) or not c["code"]:
                bad("completion_codes", "Each code needs a non-empty 'code'.")
            elif c.get("code_type") not in shapes.CODE_TYPES:
                bad("completion_codes", f"Unknown code_type {c.get('code_type')!r}.")
            elif any(a.get("action") not in shapes.CODE_ACTIONS for a in c.get("actions", [])):
                bad("completion_codes", "Unknown action.")
        if isinstance(codes, list) and len({c.get("code") for c in codes if isinstance(c, dict)}) \
                != len(codes):
            bad("completion_codes", "Codes must be unique within a study.")
    devices = body.get("device_compatibility", [])
    if not isinstance(devices, list) or any(d not in shapes.DEVICES for d in devices):
        bad("device_compatibility", f"Each device must be one of {', '.join(shapes.DEVICES)}.")
    if isinstance(body.get("filters", []), list) is False:
        bad("filters", "A list is required.")
    if "reward" not in problems and "estimated_completion_time" not in problems:
        hourly = body["reward"] * 60 / body["estimated_completion_time"]
        if hourly < MIN_HOURLY_CENTS:
            bad("reward", f"The reward is below the minimum of {MIN_HOURLY_CENTS / 100:.2f} "
                          f"per hour ({hourly / 100:.2f}).")
    return problems


@api.post("/studies/")
def create_study():
    body = request.get_json(silent=True)
    problems = _check_study(body)
    if problems:
        return error(400, "Bad Request", problems)
    st = state()
    with st.lock:
        sid = _id()
        doc = {**body, "id": sid, "status": "UNPUBLISHED",
               "internal_name": body.get("internal_name") or body["name"],
               "maximum_allowed_time": body.get("maximum_allowed_time")
               or body["estimated_completion_time"] * 3,
               "date_created": _iso(st.clock()), "published_at": None,
               "places_taken": 0, "number_of_submissions": 0}
        st.studies[sid] = doc
    return jsonify(public(doc)), 201


def _study(sid: str):
    doc = state().studies.get(sid)
    if doc is None:
        abort(make_response(*error(404, "Not Found", f"Study {sid} not found.")))
    return doc


def _submission(sub_id: str):
    doc = state().submissions.get(sub_id)
    if doc is None:
        abort(make_response(*error(404, "Not Found", f"Submission {sub_id} not found.")))
    return doc


def _with_counts(doc: dict) -> dict:
    st = state()
    subs = [s for s in st.submissions.values() if s["study_id"] == doc["id"]]
    return {**public(doc), "places_taken": st.taken(doc["id"]),
            "number_of_submissions": len(subs)}


@api.get("/studies/")
def list_studies():
    with state().fresh() as st:
        return _page([_with_counts(d) for d in st.studies.values()])


@api.get("/studies/<sid>/")
def get_study(sid):
    with state().fresh():
        return jsonify(_with_counts(_study(sid)))


@api.delete("/studies/<sid>/")
def delete_study(sid):
    st = state()
    with st.lock:
        doc = _study(sid)
        if doc["status"] != "UNPUBLISHED":
            return error(400, "Bad Request", f"Only unpublished studies can be deleted "
                                             f"(this one is {doc['status']}).")
        del st.studies[sid]
    return "", 204


@api.post("/studies/<sid>/transition/")
def transition_study(sid):
    body = request.get_json(silent=True) or {}
    action = body.get("action")
    if action not in shapes.STUDY_TRANSITIONS:
        return error(400, "Bad Request", {"action": [f"Unknown action {action!r}."]})
    st = state()
    with st.lock:
        doc = _study(sid)
        target = shapes.STUDY_TRANSITIONS[action].get(doc["status"])
        if target is None:
            return error(400, "Bad Request", f"A study in status {doc['status']} cannot "
                                             f"transition by {action}.")
        if action == "PUBLISH":
            need = cost(doc)
            if need > st.balance:
                return error(400, "Insufficient Funds",
                             f"Publishing needs {need / 100:.2f} and the balance is "
                             f"{st.balance / 100:.2f}: top up your workspace.")
            st.balance -= need
            doc["published_at"] = _iso(st.clock())
        doc["status"] = target
        return jsonify(_with_counts(doc))


@api.get("/studies/<sid>/submissions/")
def list_submissions(sid):
    with state().fresh() as st:
        _study(sid)
        return _page([public(s) for s in st.submissions.values()
                      if s["study_id"] == sid])


@api.get("/submissions/<sub_id>/")
def get_submission(sub_id):
    with state().fresh():
        return jsonify(public(_submission(sub_id)))


def _decide(s: dict, body: dict):
    """Apply an APPROVE / REJECT to submission `s`; return an error response or None."""
    action = body.get("action")
    if action not in shapes.SUBMISSION_ACTIONS:
        return error(400, "Bad Request", {"action": [f"Unknown action {action!r}."]})
    target = "APPROVED" if action == "APPROVE" else "REJECTED"
    if s["status"] == target:
        return None                      # idempotent: the repeat is ignored
    if action == "REJECT":
        problems = shapes.check_rejection(body.get("rejection_category", ""),
                                          body.get("message", ""))
        if problems:
            return error(400, "Bad Request", {"rejection": problems})
    if s["status"] != "AWAITING REVIEW":
        return error(400, "Bad Request", f"A submission in status {s['status']} cannot be "
                                         f"{target.lower()}.")
    s["status"] = target
    if action == "REJECT":
        s["_rejection"] = {"category": body["rejection_category"], "message": body["message"]}
    return None


@api.post("/submissions/<sub_id>/transition/")
def transition_submission(sub_id):
    with state().fresh():
        s = _submission(sub_id)
        err = _decide(s, request.get_json(silent=True) or {})
        return err if err is not None else jsonify(public(s))


@api.post("/submissions/bulk-approve/")
def bulk_approve():
    body = request.get_json(silent=True) or {}
    ids = body.get("submission_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return error(400, "Bad Request", {"submission_ids": ["A non-empty list is required."]})
    with state().fresh() as st:
        unknown = [i for i in ids if i not in st.submissions
                   or st.submissions[i]["study_id"] != body.get("study_id")]
        if unknown:
            return error(400, "Bad Request", {"submission_ids": [
                f"Not submissions of study {body.get('study_id')}: {', '.join(unknown)}"]})
        wrong = [i for i in ids if st.submissions[i]["status"] not in ("AWAITING REVIEW",
                                                                       "APPROVED")]
        if wrong:
            return error(400, "Bad Request", {"submission_ids": [
                f"Not awaiting review: {', '.join(wrong)}"]})
        for i in ids:
            st.submissions[i]["status"] = "APPROVED"
    return jsonify("The request to bulk approve has been made successfully.")


@api.post("/submissions/bonus-payments/")
def set_up_bonus():
    body = request.get_json(silent=True) or {}
    st = state()
    with st.lock:
        study = st.studies.get(body.get("study_id") or "")
        if study is None:
            return error(400, "Bad Request", {"study_id": ["Unknown study."]})
        rows, problems = [], []
        for line in str(body.get("csv_bonuses") or "").splitlines():
            if not line.strip():
                continue
            pid, _, amount = line.partition(",")
            try:
                cents = int((Decimal(amount.strip()) * 100).to_integral_exact())
            except Exception:
                problems.append(f"{line!r}: the amount is not a number")
                continue
            if cents <= 0:
                problems.append(f"{line!r}: the amount must be positive")
            elif not any(s["participant_id"] == pid.strip() and s["study_id"] == study["id"]
                         for s in st.submissions.values()):
                problems.append(f"{pid.strip()} has no submission in this study")
            else:
                rows.append((pid.strip(), cents))
        if problems or not rows:
            return error(400, "Bad Request", {"csv_bonuses": problems or ["No bonuses given."]})
        amount = sum(c for _, c in rows)
        fees = shapes.service_fee(amount, shapes.FEE_RATE)
        bid = _id()
        st.bonuses[bid] = {"id": bid, "study": study["id"], "amount": amount, "fees": fees,
                           "vat": 0, "total_amount": amount + fees, "_rows": rows}
        return jsonify(public(st.bonuses[bid])), 201


@api.post("/bulk-bonus-payments/<bid>/pay/")
def pay_bonus(bid):
    st = state()
    with st.lock:
        b = st.bonuses.get(bid)
        if b is None:
            return error(404, "Not Found", f"Bonus payment {bid} not found.")
        if b["total_amount"] > st.balance:
            return error(400, "Insufficient Funds", "The balance does not cover the bonuses.")
        st.balance -= b["total_amount"]
        for pid, cents in b["_rows"]:
            st.payments.append({"bulk_id": bid, "participant_id": pid, "amount": cents})
    return "", 202


# ----------------------------------------------------------------- the participant site
def _participant() -> str | None:
    pid = request.cookies.get("prolific_pid", "")
    return pid if shapes.ID_RE.match(pid or "") else None


def _answer(payload: dict, status: int = 200, template: str = "prolific/message.html"):
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return jsonify(payload), status
    return render_template(template, **payload), status


@site.get("/")
def index():
    with state().fresh() as st:
        studies = [_with_counts(d) for d in st.studies.values() if d["status"] == "ACTIVE"]
    return render_template("prolific/index.html", studies=studies, participant=_participant())


@site.post("/studies/<sid>/start")
def start(sid):
    """A participant takes part: a new ACTIVE submission (or their active one again), then
    the study URL with the placeholders filled."""
    form = request.get_json(silent=True) if request.is_json else request.form
    pid = (form or {}).get("participant_id") or _participant() or secrets.token_hex(12)
    if not shapes.ID_RE.match(pid):
        return _answer({"title": "Not a participant id", "message": "Use letters and digits."},
                       400)
    with state().fresh() as st:
        study = st.studies.get(sid)
        if study is None or study["status"] != "ACTIVE":
            return _answer({"title": "Study not available",
                            "message": "This study is not taking participants."}, 409)
        mine = [s for s in st.submissions.values()
                if s["study_id"] == sid and s["participant_id"] == pid]
        active = next((s for s in mine if s["status"] == "ACTIVE"), None)
        if active is None and mine:
            return _answer({"title": "Already taken part",
                            "message": "You have already taken part in this study."}, 409)
        if active is None:
            if st.taken(sid) >= study["total_available_places"]:
                return _answer({"title": "Study full",
                                "message": "All places of this study are taken."}, 409)
            now = st.clock()
            active = {"id": _id(), "participant_id": pid, "study_id": sid, "status": "ACTIVE",
                      "started_at": _iso(now), "completed_at": None, "study_code": None,
                      "_started": now}
            st.submissions[active["id"]] = active
        url = study["external_study_url"]
        for key, value in (("PROLIFIC_PID", pid), ("STUDY_ID", sid),
                           ("SESSION_ID", active["id"])):
            url = url.replace(shapes.PLACEHOLDERS[key], value)
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        resp = jsonify({"submission_id": active["id"], "participant_id": pid, "url": url})
    else:
        resp = redirect(url, 303)
    resp.set_cookie("prolific_pid", pid, samesite="Lax")
    return resp


@site.post("/submissions/<sub_id>/return")
def give_back(sub_id):
    with state().fresh() as st:
        s = st.submissions.get(sub_id)
        if s is None or s["participant_id"] != _participant():
            return _answer({"title": "Unknown submission", "message": "Nothing to return."}, 404)
        if s["status"] != "ACTIVE":
            return _answer({"title": "Cannot return",
                            "message": f"This submission is {s['status']}."}, 409)
        s["status"] = "RETURNED"
    return _answer({"title": "Returned", "message": "You returned the study.",
                    "status": "RETURNED"})


@site.get("/submissions/complete")
def complete():
    """Prolific's completion URL: the participant's active submission ends with `cc`."""
    code = request.args.get("cc", "")
    pid = _participant()
    with state().fresh() as st:
        active = [s for s in st.submissions.values()
                  if s["participant_id"] == pid and s["status"] == "ACTIVE"]
        for s in active:
            codes = {c["code"]: c for c in st.studies[s["study_id"]]["completion_codes"]}
            if code in codes:
                actions = {a.get("action") for a in codes[code].get("actions", [])}
                s["status"] = "APPROVED" if "AUTOMATICALLY_APPROVE" in actions else \
                    "AWAITING REVIEW"
                s["completed_at"] = _iso(st.clock())
                s["study_code"] = code
                return _answer({"title": "Submission completed", "status": s["status"],
                                "message": f"Your submission was recorded with code {code}.",
                                "code": code})
    if not active:
        return _answer({"title": "No active submission",
                        "message": "You have no study in progress."}, 404)
    return _answer({"title": "Code not recognised",
                    "message": f"{code!r} is not a completion code of your study."}, 400)


# ---------------------------------------------------------------------- test hooks
@site.post("/_emulator/faults")
def add_fault():
    body = request.get_json(silent=True) or {}
    if body.get("when") not in ("before", "after") or not body.get("path"):
        return jsonify({"error": "need path, method and when (before|after)"}), 400
    state().faults.append({"path": body["path"], "method": body.get("method", "POST"),
                           "when": body["when"], "status": int(body.get("status", 503))})
    return jsonify({"faults": len(state().faults)}), 201


@site.get("/_emulator/state")
def dump():
    with state().fresh() as st:
        return jsonify({"balance": st.balance, "studies": [public(d) for d in st.studies.values()],
                        "submissions": [{**public(s), **({"rejection": s["_rejection"]}
                                                         if "_rejection" in s else {})}
                                        for s in st.submissions.values()],
                        "payments": st.payments})


# ------------------------------------------------------------------------- serving
def create_emulator(token: str = DEFAULT_TOKEN, balance: str | Decimal = "10000.00",
                    clock=None) -> Flask:
    """Return the endpoint's Flask app (API, participant site, test hooks); its state is
    `app.extensions['prolific_emulator']`. `balance` in pounds, spent by publishing and
    bonuses."""
    app = Flask(__name__, template_folder=str(TEMPLATES))
    cents = int(Decimal(str(balance)) * 100)
    app.extensions["prolific_emulator"] = State(token, cents, clock or time.time)
    app.register_blueprint(api)
    app.register_blueprint(site)
    return app


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0):
    """Start serving `app` on host:port (0: a free port) in a daemon thread with werkzeug's
    plain request handler; return it (`.url`, `.stop()`)."""
    return mturk_emulator.serve_in_thread(app, host, port, WSGIRequestHandler)

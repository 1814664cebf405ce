"""Production as deployed, end to end: deploy/nginx (TLS, the site and proxy files
themselves, see tests/server/deploy_stack.py) in front of gunicorn started with
deploy/gunicorn.conf.py, TLL_ENV=production and TLL_PROXIES=1, on PostgreSQL; Chromium
over HTTPS with study.test mapped to loopback. A lab participant, an MTurk worker in the
local MTurk endpoint's frame, a Prolific participant sent by the local Prolific endpoint,
a panel participant and the admin go through every form; then nginx's own answers (unknown
hosts, the fixed redirect, JSON errors on the API, the login's limit), 1,600 slow
connections from one address beside a participant from another, and a SIGKILLed
gunicorn master that leaves no worker holding the port. One stack for the module."""
from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import ssl
import threading
import time

import pytest
from flask import request
from sqlalchemy import select

from server.models import Participant, Response, db
from tests.conftest import CHROMIUM_ARGS
from tests.mturk.conftest import FAKE_KEY_ID, FAKE_SECRET
from tests.mturk.conftest import Stack as MTurkStack
from tests.prolific.conftest import FAKE_TOKEN
from tests.prolific.conftest import Stack as ProlificStack
from tests.server.conftest import browser_login, make_app, set_settings, wait_images, walk_study
from tests.server.deploy_stack import DEPLOY, HOST, Connection, start_gunicorn, start_stack, tls_context

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

KEYS = [str(n % 5 + 1) for n in range(1, 7)]     # the key pressed on trials 1..6


@pytest.fixture(scope="module")
def prod(tmp_path_factory, postgres_server, small_experiment):
    """The stack, the in-process app on the same database (loading, publishing, checks),
    the local MTurk and Prolific endpoints (recording the Referer of every request they
    get) and the experiment `small` published on both, with a panel configured."""
    from server.loader import load_experiment
    from server.manage import set_password
    from server.mturk.emulator import create_emulator as mturk_emulator
    from server.mturk.emulator import serve_in_thread
    from server.recruitment.prolific import emulator as prolific_emulator

    folder = tmp_path_factory.mktemp("production")
    db_url = postgres_server()
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                 "AWS_CONFIG_FILE": str(folder / "none"), "MTURK_RETRY_BACKOFF": "0.01",
                 "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none"),
                 "PROLIFIC_TOKEN": FAKE_TOKEN}.items():
        mp.setenv(k, v)
    for k in ("AWS_PROFILE", "MTURK_ENDPOINT_URL", "PROLIFIC_TOKEN_FILE", "PROLIFIC_API_URL",
              "PROLIFIC_COMPLETION_URL", "TLL_PUBLIC_URL"):
        mp.delenv(k, raising=False)
    referers: list[str] = []

    def record_referer():
        referers.append(request.headers.get("Referer", ""))

    mturk_app = mturk_emulator("sandbox")
    mturk_app.before_request(record_referer)
    mturk = serve_in_thread(mturk_app)
    prolific_app = prolific_emulator.create_emulator(FAKE_TOKEN, "10000.00")
    prolific_app.before_request(record_referer)
    prolific = prolific_emulator.serve_in_thread(prolific_app)
    app = make_app(folder, db_url, MTURK_ENDPOINT_URL=mturk.url, TESTING=True)
    with app.app_context():
        load_experiment(small_experiment, name="small", settings={"trial_order": "fixed"})
        set_password("correct horse")
    set_settings(app, "small", platform_settings={"panel": {"id_param": "PID",
                                                             "code": "PANEL42"}})
    stack = start_stack(folder, db_url, MTURK_ENDPOINT_URL=mturk.url)
    try:
        m = MTurkStack(mturk, app, stack.base)
        m.publish("small")
        p = ProlificStack(prolific, app, stack.base)
        p.publish("small")
        yield {"stack": stack, "app": app, "mturk": m, "prolific": p, "referers": referers,
               "db_url": db_url}
    finally:
        stack.stop()
        mturk.stop()
        prolific.stop()
        with app.app_context():
            db.engine.dispose()
        mp.undo()


@pytest.fixture(scope="module")
def chromium(browser):
    """A Chromium of its own (the session's Playwright) resolving study.test to
    127.0.0.1; the test certificate is not in its trust store, so errors are ignored."""
    import shutil

    b = browser.browser_type.launch(
        executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"], headless=True)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def tab(chromium):
    """A fresh context and page; fails the test on any console error other than a
    refused load (favicon)."""
    ctx = chromium.new_context(ignore_https_errors=True, viewport={"width": 1200, "height": 900},
                               accept_downloads=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    ctx.close()
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []


def _participant(app, **where) -> Participant:
    with app.app_context():
        p = db.session.execute(select(Participant).filter_by(**where)).scalar_one()
        db.session.expunge(p)
        return p


def _chosen(app, participant_id: int) -> list[int]:
    with app.app_context():
        return db.session.execute(select(Response.chosen_index).where(
            Response.participant_id == participant_id).order_by(Response.trial_order)
        ).scalars().all()


def test_lab_participant_over_https(prod, tab):
    base = prod["stack"].base
    tab.goto(f"{base}/lab/small/")
    tab.fill("#code", "HTTPSLAB1")
    tab.click("#start")
    tab.wait_for_url("**/consent")
    walk_study(tab, KEYS)
    p = _participant(prod["app"], code="HTTPSLAB1")
    assert p.completed_at is not None and p.platform == "lab"
    assert _chosen(prod["app"], p.id) == [int(k) - 1 for k in KEYS]
    # A second participant answers two trials and withdraws (a form post, too).
    tab.context.clear_cookies()
    tab.goto(f"{base}/lab/small/")
    tab.fill("#code", "HTTPSLAB2")
    tab.click("#start")
    tab.wait_for_url("**/consent")
    tab.check("#agree")
    tab.click("#consent")
    tab.wait_for_url("**/instructions")
    tab.click("button.candidate >> nth=0")
    tab.wait_for_selector("#feedback")
    tab.click("#begin")
    for n in (1, 2):
        tab.wait_for_selector(f'input[name="n"][value="{n}"]', state="attached")
        wait_images(tab)
        tab.wait_for_selector("#trial-form[data-ready]")
        tab.keyboard.press("3")
    tab.wait_for_selector('input[name="n"][value="3"]', state="attached")
    tab.click("#withdraw-link")
    tab.click("#withdraw-confirm")
    tab.wait_for_selector("#withdrawn")
    p = _participant(prod["app"], code="HTTPSLAB2")
    assert p.withdrawn_at is not None and _chosen(prod["app"], p.id) == [2, 2]


def test_admin_over_https(prod, tab):
    base = prod["stack"].base
    browser_login(tab, base)
    tab.goto(f"{base}/manage/experiments/small/settings")
    tab.fill("#title", "Which one looks alike, over HTTPS?")
    tab.click("#save-settings")
    tab.wait_for_selector("#saved")
    tab.goto(f"{base}/manage/experiments/small")
    with tab.expect_download() as dl:
        tab.click("#csv")
    csv = open(dl.value.path(), encoding="utf-8").read()
    assert csv.count("\n") >= 6 and "condition" in csv.splitlines()[0]
    tab.goto(f"{base}/manage/home/small#report")
    tab.click("#report-button")
    tab.wait_for_selector("#report-link", timeout=120000)
    tab.click("#report-link")
    tab.wait_for_url("**/report.html")
    tab.goto(f"{base}/manage/")
    tab.click("nav form button[type=submit]")
    tab.wait_for_url("**/manage/login**")
    tab.goto(f"{base}/manage/")
    assert "/manage/login" in tab.url
    with prod["app"].app_context():
        from server.models import Experiment
        exp = db.session.execute(select(Experiment).filter_by(name="small")).scalar_one()
        assert json.loads(exp.texts)["title"] == "Which one looks alike, over HTTPS?"


def test_mturk_worker_in_the_frame_over_https(prod, tab):
    m = prod["mturk"]
    hit_id = m.hit_ids("small")["h0001"]
    tab.goto(f"{m.em}/worker/hits/{hit_id}")
    frame = tab.frame_locator("#task")
    frame.locator("#preview-notice").wait_for()
    tab.fill("#workerId", "AHTTPSWORKER1")
    tab.click("#accept")
    tab.wait_for_url(f"{m.em}/worker/assignments/*")
    aid = tab.inner_text("#assignment")
    frame = tab.frame_locator("#task")
    frame.locator("button.candidate").nth(3).click()
    frame.locator("#finished").wait_for()
    frame.locator("#submit-hit").click()
    frame.locator("#message-title").filter(has_text="HIT submitted").wait_for()
    assert m.emulator.state.assignments[aid].status == "Submitted"
    p = _participant(prod["app"], assignment_id=aid)
    assert _chosen(prod["app"], p.id) == [3]
    # The submit went to MTurk's origin without a Referer: no page or image URL leaks.
    assert not [r for r in prod["referers"] if HOST in r]


def test_prolific_participant_over_https(prod, tab):
    pro = prod["prolific"]
    tab.goto(f"{pro.em}/")
    tab.fill(f'li[data-study="{pro.study_id()}"] input[name=participant_id]', "prolificpid1")
    tab.click(f'li[data-study="{pro.study_id()}"] button.take-part')
    tab.wait_for_url(f"{prod['stack'].base}/**/consent")
    walk_study(tab, KEYS)
    p = _participant(prod["app"], platform="prolific")
    assert p.external_participant_id == "prolificpid1" and p.completed_at is not None
    assert len(_chosen(prod["app"], p.id)) == 6
    tab.click("#exit-link")
    tab.wait_for_url(f"{pro.em}/**")
    assert not [r for r in prod["referers"] if HOST in r]


def test_panel_participant_over_https(prod, tab):
    tab.goto(f"{prod['stack'].base}/lab/small/via/panel?PID=panel-user-1")
    tab.wait_for_url("**/consent")
    walk_study(tab, KEYS)
    assert tab.inner_text("#completion-code") == "PANEL42"
    p = _participant(prod["app"], platform="panel")
    assert p.external_participant_id == "panel-user-1" and len(_chosen(prod["app"], p.id)) == 6


# ------------------------------------------------------------------ nginx's own answers
def _raw(port: int, data: bytes, ctx: ssl.SSLContext | None, sni: str | None = HOST,
         source: str = "127.0.0.1") -> bytes:
    """Send `data` on one connection (TLS when `ctx`); return everything answered."""
    s = socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0))
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname=sni)
    with s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_nginx_answers_unknown_hosts_redirects_and_json_errors(prod):
    stack = prod["stack"]
    ctx = tls_context(stack.cert)
    # Unknown host names: the connection closes without a word (444), and a TLS
    # handshake for another name is refused.
    assert _raw(stack.ports.http, b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", None) == b""
    with pytest.raises(ssl.SSLError):
        _raw(stack.ports.https, b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n",
             ssl._create_unverified_context(), sni="evil.test")
    # The port-80 redirect names the site, whatever Host the client sends.
    reply = _raw(stack.ports.http, f"GET /lab/x?y=1 HTTP/1.1\r\nHost: {HOST}\r\n"
                 "Connection: close\r\n\r\n".encode(), None)
    assert reply.startswith(b"HTTP/1.1 301") and \
        f"Location: https://{HOST}:{stack.ports.https}/lab/x?y=1".encode() in reply
    # A body over nginx's limit on the API: nginx's 413, as JSON.
    c = Connection(stack.ports.https, ctx)
    c.request("POST", "/api/v1/experiments/small/participants", body=b"x" * 2 * _body_limit(),
              headers={"Host": HOST, "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 413 and r.getheader("Content-Type") == "application/json"
    assert json.loads(r.read()) == {"error": "request body too large", "status": 413}
    c.close()
    # The login's POSTs from one address: 6 pass to the application, then nginx's 429.
    statuses = []
    c = Connection(stack.ports.https, ctx, source="127.0.0.4")  # one connection: quick
    for _ in range(8):
        c.request("POST", "/manage/login", body=b"username=admin&password=x",
                  headers={"Host": HOST, "Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        statuses.append(r.status if b"<center>nginx</center>" not in r.read() else "nginx 429")
    c.close()
    assert 429 not in statuses and statuses[6:] == ["nginx 429"] * 2, statuses
    # A malformed chunked body, through nginx and straight to gunicorn: a 4xx.
    for port, tls in ((stack.ports.https, ctx), (stack.ports.app, None)):
        for body in (b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"):
            reply = _raw(port, b"POST /api/v1/experiments/small/participants HTTP/1.1\r\n"
                         + f"Host: {HOST}\r\n".encode() + b"Content-Type: application/json"
                         b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body,
                         tls)
            assert reply[9:10] == b"4", (port, body, reply[:40])


def _body_limit() -> int:
    """Return nginx's client_max_body_size in deploy/nginx/tll-proxy.conf, in bytes."""
    text = (DEPLOY / "nginx" / "tll-proxy.conf").read_text()
    size, unit = re.search(r"client_max_body_size (\d+)([km]?);", text).groups()
    return int(size) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


# ------------------------------------------------------------- 1,600 slow connections
SLOW = 1600


def _slow_connection(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """A connection from 127.0.0.2 that sends an API request's headers and the first
    byte of a 1,000-byte body (a byte more every few seconds follows)."""
    s = socket.create_connection(("127.0.0.1", port), 10, source_address=("127.0.0.2", 0))
    s = ctx.wrap_socket(s, server_hostname=HOST)
    s.sendall(f"POST /api/v1/experiments/small/participants HTTP/1.1\r\nHost: {HOST}\r\n"
              "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
    s.setblocking(False)
    return s


def test_1600_slow_connections_from_one_address_leave_others_answering(prod, tab):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * SLOW:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * SLOW), hard))
    stack = prod["stack"]
    ctx = tls_context(stack.cert)
    slow: list[ssl.SSLSocket] = []
    refused: list[bytes] = []
    held: list[ssl.SSLSocket] = []
    done = threading.Event()

    def dribble(socks):  # a byte to each (nginx's read timeout is 10 s between two reads)
        for s in socks:
            try:
                s.send(b" ")
            except (OSError, ssl.SSLError):
                pass

    def keep_dribbling():  # the only user of the held sockets while it runs
        while True:
            dribble(held)
            if done.wait(3):
                return

    t0 = last = time.monotonic()
    dribbler = threading.Thread(target=keep_dribbling, daemon=True)
    try:
        for _ in range(SLOW):
            slow.append(_slow_connection(stack.ports.https, ctx))
            if time.monotonic() - last > 3:  # opening takes seconds: keep the first alive
                dribble(slow)
                last = time.monotonic()
        opened_s = time.monotonic() - t0
        dribble(slow)
        time.sleep(0.5)
        for s in slow:
            try:
                refused.append(s.recv(65536))
            except ssl.SSLWantReadError:
                held.append(s)
            except OSError:
                refused.append(b"")
        dribbler.start()
        # nginx answered all but a bounded number at once (429, JSON on the API)...
        assert len(held) <= 100 and len(refused) >= SLOW - 100, (len(held), len(refused))
        answered = [r for r in refused if r]
        assert answered and all(r.startswith(b"HTTP/1.1 429") for r in answered)
        assert b"application/json" in answered[0] and b'"status": 429' in answered[0]
        # ...and a participant from another address answers normally meanwhile.
        t1 = time.monotonic()
        tab.goto(f"{stack.base}/lab/small/")
        tab.fill("#code", "BESIDESLOW")
        tab.click("#start")
        tab.wait_for_url("**/consent")
        walk_study(tab, KEYS)
        walk_s = time.monotonic() - t1
        assert walk_s < 30, walk_s
        # The held connections are still open (dribbling keeps them) when it is done.
        done.set()
        dribbler.join(30)
        still = 0
        for s in held:
            try:
                s.recv(1)
            except ssl.SSLWantReadError:
                still += 1
            except OSError:
                pass
        assert still == len(held), (still, len(held))
    finally:
        done.set()
        for s in slow:
            s.close()
    p = _participant(prod["app"], code="BESIDESLOW")
    assert p.completed_at is not None and len(_chosen(prod["app"], p.id)) == 6
    print(f"{SLOW} slow connections opened in {opened_s:.1f} s, {len(held)} held, "
          f"participant's walk {walk_s:.1f} s")


# ------------------------------------------------------------- a SIGKILLed master
def test_killed_master_leaves_no_worker_and_nginx_answers_json(prod):
    """Last in the module: it replaces the stack's gunicorn."""
    stack = prod["stack"]
    port = stack.ports.app
    workers = _children(stack.gunicorn.pid)
    assert len(workers) == 2
    # Requests in flight straight to gunicorn (a body still to come): a worker that only
    # noticed its master's death would wait for them (graceful_timeout, 20 s) holding the
    # port.
    stalled = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.sendall(f"POST /api/v1/experiments/small/participants HTTP/1.1\r\nHost: {HOST}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode())
        stalled.append(s)
    time.sleep(0.5)
    os.kill(stack.gunicorn.pid, signal.SIGKILL)
    stack.gunicorn.wait(10)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10 and (_listening(port) or any(_alive(w) for w in workers)):
        time.sleep(0.02)
    freed_s = time.monotonic() - t0
    for s in stalled:
        s.close()
    assert not _listening(port) and freed_s < 1.0, freed_s
    # nginx answers the API's 502 as JSON while no gunicorn runs.
    c = Connection(stack.ports.https, tls_context(stack.cert))
    c.request("GET", "/api/v1/participants/x", headers={"Host": HOST})
    r = c.getresponse()
    assert r.status == 502 and r.getheader("Content-Type") == "application/json"
    assert json.loads(r.read())["status"] == 502
    c.close()
    stack.gunicorn = start_gunicorn(stack.folder, prod["db_url"], port,
                                    MTURK_ENDPOINT_URL=prod["mturk"].em)
    c = Connection(stack.ports.https, tls_context(stack.cert))
    c.request("GET", "/lab/small/", headers={"Host": HOST})
    assert c.getresponse().status == 200
    c.close()
    print(f"port {port} free {freed_s * 1000:.0f} ms after the master's SIGKILL")


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


"""Fixtures for the server tests: a small hand-made experiment file with its images
(docs/contracts.md §5), apps on SQLite or PostgreSQL, and helpers to drive participants."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def write_experiment(folder: Path, n_trials: int = 6, n_pairs: int = 8, catch: bool = True,
                     feature_sets=("face/dlib_hog", "generic/efficientnet_lite0")) -> Path:
    """Write a study folder with PNG images (different sizes and shades, so that a leak
    through sizes would show) and `experiments/small.json`; return the JSON path."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for side in ("left", "right"):
        (folder / "images" / side).mkdir(parents=True, exist_ok=True)
        for k in range(n_pairs):
            pid = f"{k:05d}"
            # Sizes vary per image: the server must serve all at one size.
            w, h = (200, 245) if k % 3 else (180 + k, 230 + 2 * k)
            im = Image.new("RGB", (w, h), (40 * k % 256, 90 if side == "left" else 160, 30 * k % 256))
            d = ImageDraw.Draw(im)
            d.ellipse([10 + 5 * k, 20, 120 + 5 * k, 150 + 3 * k], fill=(255 - 20 * k, 200, 10 * k))
            d.text((10, 200), f"{side} {pid}", fill=(255, 255, 255))
            path = folder / "images" / side / f"{pid}.png"
            im.save(path, pnginfo=None)
            images.append({"id": ("L" if side == "left" else "R") + pid,
                           "path": f"images/{side}/{pid}.png",
                           "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                           "pair": pid, "side": side})
    conditions = ["random", "generic", "face", "face_generic"]
    trials, hits = [], []
    for t in range(n_trials):
        pid = f"{t % n_pairs:05d}"
        true_index = (t * 2 + 1) % 5
        others = [f"R{(t + j) % n_pairs:05d}" for j in range(1, n_pairs)
                  if (t + j) % n_pairs != t % n_pairs][:4]
        cands = others[:true_index] + [f"R{pid}"] + others[true_index:]
        is_catch = catch and t == n_trials - 1
        if is_catch:
            cands[true_index] = f"L{pid}"
        trials.append({"id": f"t{t + 1:04d}", "condition": "catch" if is_catch else conditions[t % 4],
                       "subset": "TLL_d" if t % 2 else "TLL_obj", "pair": pid,
                       "query": f"L{pid}", "candidates": cands, "true_index": true_index,
                       "catch": is_catch,
                       "machine_choices": {"face/dlib_hog": None if t % 3 == 0 else (t % 5),
                                           "generic/efficientnet_lite0": (t + 2) % 5}})
        hits.append({"id": f"h{t + 1:04d}", "trials": [f"t{t + 1:04d}"]})
    doc = {"format": "tll-experiment", "schema_version": 1, "seed": 0, "image_root": "..",
           "manifest_sha256": "0" * 64,
           "design": {"name": "test", "conditions": [], "trials_per_hit": 1, "catch_trials": int(catch)},
           "feature_sets": list(feature_sets), "images": images, "trials": trials, "hits": hits}
    out = folder / "experiments" / "small.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    return out


@pytest.fixture(scope="session")
def small_experiment(tmp_path_factory) -> Path:
    """A hand-made experiment file (6 trials, the last a catch trial) with its PNGs."""
    return write_experiment(tmp_path_factory.mktemp("small-study"))


def make_app(tmp_path: Path, db_url: str | None = None, **config):
    """Return a fresh app on `db_url` (default: SQLite in tmp_path) with its schema
    created through the Alembic migrations."""
    from flask_migrate import upgrade

    from server import create_app

    cfg = {"SQLALCHEMY_DATABASE_URI": db_url or f"sqlite:///{tmp_path / 'server.sqlite3'}"}
    cfg.update(config)
    app = create_app(cfg, instance_path=tmp_path / "instance")
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory, small_experiment) -> Path:
    """A SQLite database migrated, with `small` loaded and the admin password set, built
    once per session; tests get a copy."""
    from server.loader import load_experiment
    from server.manage import set_password

    folder = tmp_path_factory.mktemp("sqlite-template")
    app = make_app(folder)
    with app.app_context():
        load_experiment(small_experiment, name="small", settings={"trial_order": "fixed"})
        set_password("correct horse")
        from server.models import db
        db.session.execute(db.text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.engine.dispose()
    return folder / "server.sqlite3"


@pytest.fixture
def app(tmp_path, sqlite_template):
    """An app on SQLite with the small experiment loaded as `small` (order fixed) and the
    admin password `correct horse`."""
    import shutil

    from server import create_app

    shutil.copy(sqlite_template, tmp_path / "server.sqlite3")
    return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'server.sqlite3'}"},
                      instance_path=tmp_path / "instance")


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(params=["sqlite", "postgres"])
def any_app(request, tmp_path, small_experiment):
    """The same as `app`, once on SQLite and once on a real PostgreSQL server."""
    from server.loader import load_experiment
    from server.manage import set_password

    if request.param == "sqlite":
        yield request.getfixturevalue("app")
        return
    app = make_app(tmp_path, request.getfixturevalue("postgres_url"))
    with app.app_context():
        load_experiment(small_experiment, name="small", settings={"trial_order": "fixed"})
        set_password("correct horse")
    yield app
    with app.app_context():
        from server.models import db
        db.engine.dispose()


def server_env(tmp_path: Path, db_url: str) -> dict:
    """Environment for a server subprocess using its own instance folder."""
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": db_url,
                "TLL_INSTANCE": str(tmp_path / "instance")})
    return env


def flask_cli(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `flask --app server ARGS` in a subprocess; return the completed process."""
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "server", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"flask {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


def wait_http(url: str, timeout: float = 30.0, proc=None) -> None:
    """Wait until `url` answers (any HTTP status); fail if `proc` exits first."""
    import urllib.error
    import urllib.request

    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    """Stop a server subprocess (its whole process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def serving(app):
    """Serve `app` over real HTTP on 127.0.0.1 from a thread (threaded werkzeug); yield
    its base URL, and stop it on exit."""
    import threading

    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        t.join(timeout=10)


@pytest.fixture
def live_server(app):
    """Serve `app` over real HTTP on 127.0.0.1 from a thread; yield its base URL."""
    with serving(app) as url:
        yield url


def csrf_from(html: str) -> str:
    """Return the CSRF token of the first form in `html` (as a browser would send it)."""
    import re

    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "the page has no CSRF token"
    return m.group(1)


def login(client, page: str = "/manage/") -> str:
    """Log the test client in as admin; return the session's CSRF token, as read from
    the admin `page`."""
    token = csrf_from(client.get("/manage/login").get_data(as_text=True))
    r = client.post("/manage/login", data={"csrf_token": token, "username": "admin",
                                           "password": "correct horse"})
    assert r.status_code == 303
    return csrf_from(client.get(page).get_data(as_text=True))


def browser_login(page, base: str) -> list[str]:
    """Log the browser `page` in as admin at the server `base` (it ends on /manage/);
    return the list the page's console errors are collected in from then on."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/manage/login")
    page.fill("#password", "correct horse")
    page.click("#login")
    page.wait_for_url("**/manage/")
    return errors


IMAGES_LOADED = "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"


def poll(page, js: str, timeout: float = 15.0, interval_ms: int = 100,
         what: str | None = None) -> None:
    """Wait (bounded) until the expression `js` is true in the browser `page`. Polled by
    page.evaluate: wait_for_function's polling evaluates its string in the page, which
    the pages' CSP (no 'unsafe-eval') forbids whenever it is not true at the first look."""
    end = time.time() + timeout
    while not page.evaluate(js):
        if time.time() > end:
            raise AssertionError(f"{what} within {timeout} s" if what else
                                 f"not true within {timeout} s: {js}")
        page.wait_for_timeout(interval_ms)


def wait_images(page, timeout: float = 30.0) -> None:
    """Wait until every image of the browser `page` has loaded."""
    poll(page, IMAGES_LOADED, timeout, 50, "the page's images did not load")


def answer_trials(page, keys, each=None) -> None:
    """Answer the trials in the browser `page`, one key of `keys` per trial, and wait for
    /done. Before each key: trial n's page, `each(n)` (when given), its images loaded and
    its keys working (#trial-form[data-ready], set by static/trial.js)."""
    for n, key in enumerate(keys, 1):
        page.wait_for_selector(f'input[name="n"][value="{n}"]', state="attached")
        if each is not None:
            each(n)
        wait_images(page)
        page.wait_for_selector("#trial-form[data-ready]")
        page.keyboard.press(key)
    page.wait_for_url("**/done")


def walk_study(page, keys) -> None:
    """Walk the browser `page` from the consent page to /done: consent, one practice
    click, #begin, then one key of `keys` per trial (answer_trials)."""
    page.check("#agree")
    page.click("#consent")
    page.wait_for_url("**/instructions")
    page.click("button.candidate >> nth=0")
    page.wait_for_selector("#feedback")
    page.click("#begin")
    answer_trials(page, keys)


def set_settings(app, name: str, **settings) -> None:
    """Apply `settings` to the experiment `name` (checked by validate_settings first) and
    commit."""
    from server.loader import apply_settings, validate_settings
    from server.models import db
    from server.recording import get_experiment

    with app.app_context():
        assert validate_settings(settings) == []
        apply_settings(get_experiment(name), settings)
        db.session.commit()


def api_participant(client, code: str) -> str:
    """Start a new consenting participant `code` of `small` through the JSON API (201);
    return its token."""
    r = client.post("/api/v1/experiments/small/participants",
                    json={"consent": True, "code": code})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["participant"]


def trial_token_from(html: str) -> str:
    """Return the trial token that a trial page's answer form carries."""
    import re

    m = re.search(r'name="trial_token" value="([^"]+)"', html)
    assert m, "the page has no trial token"
    return m.group(1)


def lab_post(client, path: str, data: dict | None = None, **kw):
    """POST a lab form the way a browser does: with the CSRF token of the browser
    session's lab pages (read once from the experiment's landing page), and, for an
    answer, the trial token that the page of trial `n` carries for the browser's
    participant (unless `data` names one)."""
    token = getattr(client, "_tll_csrf", None)
    if token is None:
        exp = path.split("/")[2]
        token = client._tll_csrf = csrf_from(client.get(f"/lab/{exp}/").get_data(as_text=True))
    data = {"csrf_token": token, **(data or {})}
    n = data.get("n")
    if path.endswith("/answer") and "trial_token" not in data and isinstance(n, str) \
            and n.isascii() and n.isdigit() and len(n) < 10:
        from server.recording import trial_token_for

        with client.session_transaction() as sess:
            who = sess.get("participant")
        if who:
            data["trial_token"] = trial_token_for(who["t"], int(n))
    return client.post(path, data=data, **kw)

"""Fixtures for the MTurk tests: the local MTurk-compatible endpoint and the server, each
served over real HTTP from a thread; hand-made experiment files with a chosen HIT layout;
workers driven over plain HTTP; distinctive fake AWS keys to look for in any output."""
from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path

import pytest
import requests

FAKE_KEY_ID = "AKIAFAKETLLKEY7Q2ZX9"
FAKE_SECRET = "tllFakeSecret/Zq8w+NEVER-IN-OUTPUT-93jd"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    """Distinctive fake credentials through boto3's standard chain (environment), no
    profile files, fast retries."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MTURK_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MTURK_RETRY_BACKOFF", "0.01")


def write_experiment(folder: Path, hits: list[int], catch_last: bool = False,
                     n_pairs: int = 8, name: str = "exp") -> Path:
    """Write a study folder with small PNGs and `<name>.json` whose HIT k holds
    `hits[k]` trials (the last trial of each multi-trial HIT a catch trial when
    `catch_last`); return the file's path. Trial t's match is at display position
    t % 5 (0-based)."""
    from PIL import Image, ImageDraw

    images = []
    for side in ("left", "right"):
        (folder / "images" / side).mkdir(parents=True, exist_ok=True)
        for k in range(n_pairs):
            pid = f"{k:05d}"
            path = folder / "images" / side / f"{pid}.png"
            if not path.exists():
                im = Image.new("RGB", (40, 49), (30 * k % 256, 90 if side == "left" else 170, 60))
                ImageDraw.Draw(im).rectangle([4 + k, 6, 20 + k, 30], fill=(250, 20 * k % 256, 9))
                im.save(path)
            images.append({"id": ("L" if side == "left" else "R") + pid,
                           "path": f"images/{side}/{pid}.png",
                           "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                           "pair": pid, "side": side})
    trials, hit_docs, t = [], [], 0
    for h, size in enumerate(hits):
        keys = []
        for j in range(size):
            pid = f"{t % n_pairs:05d}"
            true_index = t % 5
            others = [f"R{(t + d) % n_pairs:05d}" for d in range(1, 5)]
            cands = others[:true_index] + [f"R{pid}"] + others[true_index:]
            catch = catch_last and size > 1 and j == size - 1
            if catch:
                cands[true_index] = f"L{pid}"
            key = f"t{t + 1:04d}"
            trials.append({"id": key, "condition": "catch" if catch else "generic",
                           "subset": "TLL_d", "pair": pid, "query": f"L{pid}",
                           "candidates": cands, "true_index": true_index, "catch": catch,
                           "machine_choices": {"generic/efficientnet_lite0": (t + 1) % 5}})
            keys.append(key)
            t += 1
        hit_docs.append({"id": f"h{h + 1:04d}", "trials": keys})
    doc = {"format": "tll-experiment", "schema_version": 1, "seed": 0, "image_root": ".",
           "manifest_sha256": "0" * 64,
           "design": {"name": "test", "trials_per_hit": max(hits), "catch_trials": 0},
           "feature_sets": ["generic/efficientnet_lite0"], "images": images,
           "trials": trials, "hits": hit_docs}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    return path


class Stack:
    """The emulator and the server, both over HTTP, with the server's app and its CLI."""

    def __init__(self, emulator, app, server_url: str):
        self.emulator, self.app, self.server_url = emulator, app, server_url
        self.runner = app.test_cli_runner()

    @property
    def em(self) -> str:
        return self.emulator.url

    def cli(self, *args, input=None, endpoint=True):
        """Invoke `flask mturk ARGS` in-process; return click's Result."""
        extra = ["--endpoint-url", self.em] if endpoint else []
        cmd = list(args)
        return self.runner.invoke(args=["mturk", *cmd[:1], *extra, *cmd[1:]], input=input)

    def ok(self, *args, input=None):
        res = self.cli(*args, input=input)
        assert res.exit_code == 0, res.output
        return res.output

    def load(self, path: Path, name: str, **settings):
        from server.loader import load_experiment
        with self.app.app_context():
            exp, _ = load_experiment(path, name, {"trial_order": "fixed", **settings})
            return exp.id

    def publish(self, name: str, *extra) -> str:
        return self.ok("publish", name, "--base-url", self.server_url, "--assignments", "3",
                       *extra)

    def hit_ids(self, name: str) -> dict:
        """{HIT key: MTurk HIT id} of an experiment as recorded in the database."""
        from server.models import Experiment, Hit, db
        with self.app.app_context():
            rows = db.session.execute(db.select(Hit.key, Hit.mturk_hit_id).join(Experiment)
                                      .where(Experiment.name == name)).all()
            return dict(rows)


@pytest.fixture
def stack_factory(tmp_path):
    """Return make(environment='sandbox', balance=None, database_url=None, clock=None,
    emulator=None): a fresh emulator (http://127.0.0.1 ExternalURLs allowed; or the given
    running one) and a fresh server on a SQLite file, both served over HTTP; the server
    trusts the emulator as worker site."""
    import threading

    import flask_migrate
    from werkzeug.serving import make_server

    from server import create_app
    from server.mturk.emulator import create_emulator, serve_in_thread

    stops = []

    def make(environment: str = "sandbox", balance: str | None = None,
             database_url: str | None = None, clock=None, emulator=None) -> Stack:
        n = len(stops)
        if emulator is None:        # else a second deployment on the same MTurk account
            emulator = serve_in_thread(create_emulator(environment, allow_http_localhost=True,
                                                       balance=balance, clock=clock))
            stops.append(emulator.stop)
        url = database_url or f"sqlite:///{tmp_path / f'db{n}.sqlite3'}"
        app = create_app({"SQLALCHEMY_DATABASE_URI": url,
                          "MTURK_ENDPOINT_URL": emulator.url, "TESTING": True},
                         instance_path=tmp_path / f"instance{n}")
        with app.app_context():
            flask_migrate.upgrade()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        stops.append(server.shutdown)
        return Stack(emulator, app, f"http://127.0.0.1:{server.server_port}")

    try:
        yield make
    finally:
        for stop in reversed(stops):
            stop()


@pytest.fixture
def stack(stack_factory):
    """A sandbox emulator and a server (see stack_factory)."""
    return stack_factory()


# --------------------------------------------------------------------------- workers
_FORM = re.compile(r'<form id="(?P<id>[\w-]+)"[^>]*action="(?P<action>[^"]*)"[^>]*>(?P<body>.*?)</form>',
                   re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<k>[^"]+)" value="(?P<v>[^"]*)">')


def forms(page: str) -> dict:
    """{form id: (action, hidden fields)} of an HTML page."""
    out = {}
    for m in _FORM.finditer(page):
        fields = {h["k"]: html.unescape(h["v"]) for h in _HIDDEN.finditer(m["body"])}
        out[m["id"]] = (html.unescape(m["action"]), fields)
    return out


class Worker:
    """A worker driven over plain HTTP: accept on the emulator's worker site, answer in
    the server's task page, submit to turkSubmitTo."""

    def __init__(self, stack: Stack, worker_id: str | None = None):
        self.stack, self.worker_id = stack, worker_id
        self.http = requests.Session()
        self.assignment = None

    def accept(self, hit_id: str) -> dict:
        r = self.http.post(f"{self.stack.em}/worker/hits/{hit_id}/accept",
                           json={"workerId": self.worker_id or ""},
                           headers={"Accept": "application/json"}, timeout=10)
        assert r.status_code == 201, r.text
        self.assignment = r.json()
        self.worker_id = self.assignment["workerId"]
        return self.assignment

    def open(self) -> requests.Response:
        return self.http.get(self.assignment["taskUrl"], timeout=10)

    def answer(self, choices) -> str:
        """Answer trials with `choices` (0-based positions, in order); return the last
        page's HTML (the submit page when every trial is answered)."""
        page = self.open()
        assert page.status_code == 200, page.text
        for choice in choices:
            action, fields = forms(page.text)["trial-form"]
            page = self.http.post(self.stack.server_url + action,
                                  data={"n": fields["n"], "choice": str(choice), "rt_ms": "800",
                                        "trial_token": fields["trial_token"]},
                                  timeout=10)
            assert page.status_code == 200, page.text
        return page.text

    def submit(self, page: str) -> requests.Response:
        action, fields = forms(page)["submit-form"]
        return self.http.post(action, data=fields, headers={"Accept": "application/json"},
                              timeout=10)

    def give_back(self) -> dict:
        r = self.http.post(f"{self.stack.em}/worker/assignments/"
                           f"{self.assignment['assignmentId']}/return",
                           headers={"Accept": "application/json"}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

"""Fixtures for the Prolific tests: the local Prolific-compatible endpoint and the server,
each served over real HTTP from a thread, a distinctive fake token to look for in any
output, and participants driven over plain HTTP through the endpoint's participant site
and the server's real pages."""
from __future__ import annotations

import time

import pytest
import requests

from tests.mturk.conftest import Stack as MTurkStack
from tests.mturk.conftest import forms, write_experiment  # noqa: F401  (re-exported)
from tests.server.conftest import csrf_from

FAKE_TOKEN = "tllFakeProlificToken-NEVER-IN-OUTPUT-5kq2"


@pytest.fixture(autouse=True)
def fake_token(monkeypatch):
    """The token through the environment, as a researcher sets it."""
    monkeypatch.setenv("PROLIFIC_TOKEN", FAKE_TOKEN)
    for name in ("PROLIFIC_TOKEN_FILE", "PROLIFIC_API_URL", "PROLIFIC_COMPLETION_URL",
                 "TLL_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)


class Stack(MTurkStack):
    """The endpoint and the server, both over HTTP, with the server's app and its CLI."""

    def cli(self, *args, input=None):
        """Invoke `flask prolific ARGS --api-url <endpoint>` in-process."""
        return self.runner.invoke(args=["prolific", *args, "--api-url", self.em], input=input)

    def ok(self, *args, input=None) -> str:
        out = super().ok(*args, input=input)
        assert FAKE_TOKEN not in out
        return out

    def publish(self, name: str, *extra) -> str:
        return self.ok("publish", name, "--base-url", self.server_url, "--reward", "1.50",
                       "--places", "5", *extra)

    def state(self) -> dict:
        return requests.get(f"{self.em}/_emulator/state", timeout=10).json()

    def study_id(self) -> str:
        (study,) = self.state()["studies"]
        return study["id"]


@pytest.fixture
def stack_factory(tmp_path):
    """Return make(database_url=None, clock=None, balance='10000.00'): a fresh endpoint
    (accepting FAKE_TOKEN) and a fresh server on SQLite (or `database_url`), both served
    over HTTP."""
    from server.recruitment.prolific.emulator import create_emulator, serve_in_thread
    from tests.server.conftest import make_app

    stops = []

    def make(database_url: str | None = None, clock=None, balance: str = "10000.00") -> Stack:
        n = len(stops)
        em = serve_in_thread(create_emulator(FAKE_TOKEN, balance, clock=clock))
        stops.append(em.stop)
        folder = tmp_path / f"server{n}"
        folder.mkdir()
        app = make_app(folder, database_url, TESTING=True)
        server = serve_in_thread(app)
        stops.append(server.stop)
        return Stack(em, app, server.url)

    try:
        yield make
    finally:
        for stop in reversed(stops):
            stop()


@pytest.fixture
def stack(stack_factory):
    return stack_factory()


@pytest.fixture
def clock():
    """A clock the endpoint reads, moved by the test."""
    now = [time.time()]
    return now


class Participant:
    """A simulated Prolific participant over plain HTTP: takes part on the endpoint's
    site (which sends them to the study URL), answers on the server's real pages and
    finishes at the completion URL the server sends them to."""

    def __init__(self, stack: Stack, pid: str):
        self.stack, self.pid = stack, pid
        self.http = requests.Session()
        self.submission = None

    def start(self, study_id: str) -> requests.Response:
        r = self.http.post(f"{self.stack.em}/studies/{study_id}/start",
                           data={"participant_id": self.pid}, timeout=10)
        if r.history:   # the endpoint sent them to the study URL, placeholders filled
            from urllib.parse import parse_qs, urlsplit
            study_url = r.history[0].headers["Location"]
            self.submission = parse_qs(urlsplit(study_url).query)["SESSION_ID"][0]
        return r

    def consent(self, page: requests.Response) -> requests.Response:
        assert "consent" in page.url, page.url
        token = csrf_from(page.text)
        return self.http.post(page.url, data={"agree": "yes", "csrf_token": token}, timeout=10)

    def answer(self, page: requests.Response, choices) -> requests.Response:
        """Answer trials from `page` on with `choices` (0-based); return the last page."""
        if "instructions" in page.url:
            page = self.http.get(page.url.replace("/instructions", "/trial"), timeout=10)
        for choice in choices:
            action, fields = forms(page.text)["trial-form"]
            page = self.http.post(self.stack.server_url + action,
                                  data={"n": fields["n"], "choice": str(choice),
                                        "rt_ms": "700", "csrf_token": fields["csrf_token"],
                                        "trial_token": fields["trial_token"]},
                                  timeout=10)
            assert page.status_code == 200, page.text
        return page

    def give_back(self) -> requests.Response:
        return self.http.post(f"{self.stack.em}/submissions/{self.submission}/return",
                              headers={"Accept": "application/json"}, timeout=10)


"""A local, MTurk-compatible endpoint: the requester API that the real boto3 client talks
to through `endpoint_url`, and a simulated worker site. For tests and for dry runs before
the sandbox; see `flask --app server mturk emulate --help`."""
from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask
from werkzeug.http import http_date
from werkzeug.serving import WSGIRequestHandler, make_server

from .state import EmulatorState, MTurkError  # noqa: F401  (public API)

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def create_emulator(environment: str = "sandbox", allow_http_localhost: bool = False,
                    balance: str | None = None, state_path: str | Path | None = None,
                    public_url: str | None = None, clock=None) -> Flask:
    """Return the endpoint's Flask app; its state is `app.extensions['mturk_emulator']`.

    `balance=None` reads $10,000.00 forever like the sandbox; a figure is spent by what
    is published. `state_path` mirrors the state to a JSON file (reloaded on start)."""
    app = Flask(__name__, template_folder=str(TEMPLATES))
    kwargs = {"clock": clock} if clock else {}
    app.extensions["mturk_emulator"] = EmulatorState(
        environment=environment, allow_http_localhost=allow_http_localhost,
        balance=balance, path=state_path, **kwargs)
    app.config["PUBLIC_URL"] = public_url.rstrip("/") if public_url else None
    from . import api, site
    app.register_blueprint(api.bp)
    app.register_blueprint(site.bp)
    return app


def request_handler(app: Flask) -> type[WSGIRequestHandler]:
    """Return a request handler whose Date header is the endpoint's clock (an injected
    one in tests), as MTurk's Date is MTurk's: requesters judge deadlines by it."""
    state = app.extensions["mturk_emulator"]

    class Handler(WSGIRequestHandler):
        def date_time_string(self, timestamp=None):
            return http_date(state.clock())

    return Handler


class RunningEmulator:
    """An emulator served over real HTTP from a thread (tests, in-process dry runs)."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0,
                 handler: type[WSGIRequestHandler] | None = None):
        """`handler`: the request handler class; None = this endpoint's (MTurk's clock in
        the Date header), which needs an MTurk emulator app."""
        self.app = app
        self.server = make_server(host, port, app, threaded=True,
                                  request_handler=handler or request_handler(app))
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def state(self) -> EmulatorState:
        return self.app.extensions["mturk_emulator"]

    def start(self) -> RunningEmulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0,
                    handler: type[WSGIRequestHandler] | None = None) -> RunningEmulator:
    """Start serving `app` on host:port (0 = a free port) in a daemon thread; return it.
    `handler` as for RunningEmulator (None: MTurk's)."""
    return RunningEmulator(app, host, port, handler).start()

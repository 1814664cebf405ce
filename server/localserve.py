"""Serving a local endpoint (the MTurk and Prolific emulators) from its Flask CLI command.

`app.run()` is a no-op inside the `flask` command line, so the commands serve through
werkzeug's `run_simple` themselves, until Ctrl-C (SIGINT) or SIGTERM."""
from __future__ import annotations

import signal

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, run_simple


def _interrupt(signum, frame):
    # werkzeug's server loop ends quietly on KeyboardInterrupt: SIGTERM (a service
    # manager, `kill`, a test) then stops the endpoint exactly as Ctrl-C does, exit 0.
    raise KeyboardInterrupt


def serve_until_stopped(app: Flask, host: str, port: int,
                        request_handler: type[WSGIRequestHandler] | None = None) -> None:
    """Serve `app` on host:port (threaded, no reloader) until SIGINT or SIGTERM; return
    None once the server has stopped and closed its socket."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False,
                   request_handler=request_handler)
    finally:
        signal.signal(signal.SIGTERM, previous)

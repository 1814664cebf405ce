"""The web side: a Flask application factory for the lab flow, the JSON answer API, the
image server, the admin area and (through `server.mturk`) the MTurk worker flow.

Production: `gunicorn "server:create_app()"`. Never imports torch or dlib.
"""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parents[1]


def create_app(config: dict | None = None, instance_path: str | os.PathLike | None = None) -> Flask:
    """Return a configured Flask application.

    `instance_path` (or env `TLL_INSTANCE`) chooses the instance folder; `config`
    overrides any setting (e.g. `SQLALCHEMY_DATABASE_URI` in tests)."""
    from .config import configure

    inst = instance_path or os.environ.get("TLL_INSTANCE") or (ROOT / "instance")
    app = Flask(__name__, instance_path=str(Path(inst).resolve()),
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    configure(app, config)

    from .database import init_db
    init_db(app)

    from . import api, cli, errors, home, images, lab, manage, texts
    errors.init_app(app)
    texts.init_app(app)
    app.register_blueprint(lab.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(images.bp)
    app.register_blueprint(manage.bp)
    app.register_blueprint(home.bp)
    cli.init_app(app)

    from . import mturk
    mturk.init_app(app)
    from .recruitment import prolific
    prolific.init_app(app)

    from . import security
    security.init_app(app)

    from .errors import BodyGuard
    from .fastanswer import AnswerFastPath
    app.wsgi_app = AnswerFastPath(app, app.wsgi_app)  # the JSON API's answers, see there
    # Outside it: every body is read whole and checked against its framing first.
    app.wsgi_app = BodyGuard(app.wsgi_app)

    proxies = int(app.config.get("TLL_PROXIES", 0))
    if proxies:
        # Behind nginx (deploy/): the client's address (login throttling) and scheme
        # come from the proxy's X-Forwarded-* headers, trusted for `proxies` hops only.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies,
                                x_host=proxies)
    return app

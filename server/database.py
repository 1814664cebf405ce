"""Database set-up: Flask-SQLAlchemy, Flask-Migrate, and SQLite pragmas (WAL, busy timeout)."""
from __future__ import annotations

from flask_migrate import Migrate
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .models import db

MIGRATIONS = __import__("pathlib").Path(__file__).resolve().parents[1] / "migrations"
migrate = Migrate()
_pragmas: dict[str, int | str] = {}
SYNCHRONOUS = ("FULL", "NORMAL")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers run beside the writer; busy_timeout makes concurrent writers wait
    # instead of failing with "database is locked".
    mod = type(dbapi_conn).__module__
    if not mod.startswith("sqlite3"):
        return
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={_pragmas.get('busy', 10000)}")
    cur.execute("PRAGMA foreign_keys=ON")
    # FULL (the default) syncs the WAL at every commit, so an acknowledged answer also
    # survives an OS crash or power loss; NORMAL keeps it across a process crash only.
    cur.execute(f"PRAGMA synchronous={_pragmas.get('synchronous', 'FULL')}")
    cur.close()


def init_db(app) -> None:
    """Attach the database and migrations to `app`."""
    _pragmas["busy"] = int(app.config.get("SQLITE_BUSY_TIMEOUT_MS", 10000))
    sync = str(app.config.get("SQLITE_SYNCHRONOUS", "FULL")).upper()
    if sync not in SYNCHRONOUS:
        from .config import ConfigError
        raise ConfigError(f"SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS)}, "
                          f"not {sync!r}")
    _pragmas["synchronous"] = sync
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        opts = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        opts.setdefault("connect_args", {}).setdefault("timeout", _pragmas["busy"] / 1000)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = opts
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS),
                     render_as_batch=uri.startswith("sqlite"))

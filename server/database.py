"""Database set-up: Flask-SQLAlchemy, Flask-Migrate, and SQLite pragmas (WAL, busy timeout)."""
from __future__ import annotations

import time

from flask_migrate import Migrate
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

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


@event.listens_for(Pool, "checkin")
def _stamp_checkin(dbapi_conn, record) -> None:
    if record is not None:
        record.info["tll_idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_conn, record, _proxy) -> None:
    # pool_pre_ping sent a round trip before every request (about 8 % of an answer's
    # CPU on PostgreSQL, plus the backend's). A connection used within the last
    # DB_PING_IDLE_S cannot have missed a server restart unnoticed in practice; an idle
    # one is pinged, and a dead one is replaced (the pool retries on DisconnectionError);
    # a new one (no check-in yet) has just connected.
    # SQLite is a local file: nothing to drop.
    if type(dbapi_conn).__module__.startswith("sqlite3"):
        return
    since = record.info.get("tll_idle_since")
    if since is None or time.monotonic() - since < _pragmas.get("ping_idle", 1.0):
        return
    try:
        cur = dbapi_conn.cursor()
        cur.execute("SELECT 1")
        cur.close()
        dbapi_conn.rollback()
    except Exception as e:
        raise exc.DisconnectionError(f"stale database connection: {e}") from e


def init_db(app) -> None:
    """Attach the database and migrations to `app`."""
    _pragmas["busy"] = int(app.config.get("SQLITE_BUSY_TIMEOUT_MS", 10000))
    _pragmas["ping_idle"] = float(app.config.get("DB_PING_IDLE_S", 1.0))
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
    from . import fastsql
    app.teardown_request(fastsql.release)  # the answer routes' borrowed connection
    migrate.init_app(app, db, directory=str(MIGRATIONS),
                     render_as_batch=uri.startswith("sqlite"))

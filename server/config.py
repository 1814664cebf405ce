"""Configuration: defaults, the instance config file, then environment variables.

Environment variables read:
- `TLL_INSTANCE`: the instance folder (secret key, config.py, default SQLite database).
- `DATABASE_URL`: SQLAlchemy URL; `postgres://` and `postgresql://` are rewritten to
  `postgresql+psycopg://` (psycopg 3). Default: SQLite `server.sqlite3` in the instance folder.
- `SECRET_KEY` (or `TLL_SECRET_KEY`): required when `TLL_ENV=production`; in development
  one is generated once and kept in `<instance>/secret_key`.
- `TLL_PSEUDONYM_KEY`: key of the HMAC that pseudonymises participant ids in exports
  (default: generated once and kept in `<instance>/pseudonym_key`, independent of the
  secret key, so that copying that file makes development and production exports join).
- `TLL_SQLITE_SYNCHRONOUS`: `FULL` (default: every commit synced, an acknowledged answer
  survives an OS crash) or `NORMAL` (survives a process crash only).
- `TLL_SQLITE_GROUP_COMMIT=0`: commit every SQLite answer on its own instead of letting
  answers that arrive together share a commit (server/groupcommit.py; default on; each
  answer is committed before it is acknowledged either way).
- `TLL_ANSWER_FAST_PATH=0`: let the JSON API's answers go through Flask's request
  handling like every other route, instead of server/fastanswer.py's lean path (default
  on; the same checks, answers and headers either way).
- `TLL_ENV`: `production` or `development` (default).
- `TLL_COOKIE_SECURE=0`: in production, allow the session cookie over plain HTTP.
- `TLL_PARTICIPANT_API=0`: turn the JSON participant API (/api/v1) off (the pages work
  without it).
- `TLL_TRUST_CODES=1|0`: whether a participant code alone is enough to resume that
  participant from another browser (the lab's code form, the API) and to create an API
  participant with a code the client chose (default: yes in development, for scripts and
  tests; no in production, where a participant resumes elsewhere only by the resume link
  their pages show, and the API generates every code).
- `TLL_PROXIES`: how many reverse proxies (nginx: 1) stand before the server; their
  X-Forwarded-For/-Proto/-Host are trusted (default 0: none).
- `TLL_ADMIN_BASIC_AUTH=1|0`: whether /manage accepts HTTP Basic credentials (scripts:
  exports, the simulated participant's answer key); default on in development, off in
  production.
- `TLL_ADMIN_IDLE_MIN`: minutes without a request after which an admin session ends
  (default 30).
- `TLL_PARTICIPANT_RATE`: how many participants one address may start, through the lab's
  code form and the JSON API together (Flask-Limiter notation; default `30 per minute`);
  a start beyond it is a 429 with the reason.
- `TLL_KIOSK_IDLE_S`: seconds without a page after which a kiosk experiment's browser
  forgets its participant (default 900).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


class ConfigError(RuntimeError):
    """The server cannot start with this configuration."""


def normalise_database_url(url: str) -> str:
    """Return `url` with postgres:// and postgresql:// rewritten for psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """Return the secret kept in `path`, creating it atomically the first time (several
    gunicorn workers may start at once: the first writer wins, the others read it)."""
    if path.exists():
        text = path.read_text().strip()
        if text:
            return text
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(nbytes)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(value + "\n")
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # fails if another process got there first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def legacy_pseudonym_key(secret_key: str) -> str:
    """Return the pseudonym key that exports used before `<instance>/pseudonym_key`
    existed (derived from the secret key); put it in that file to keep joining them."""
    return hmac.new(str(secret_key).encode(), b"tll-pseudonym", hashlib.sha256).hexdigest()


def configure(app, overrides: dict | None = None) -> None:
    """Fill `app.config` from defaults, `<instance>/config.py`, the environment and
    `overrides` (in that order); raise ConfigError when production lacks a SECRET_KEY."""
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    cfg = app.config
    cfg.update(
        TLL_ENV="development",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{instance / 'server.sqlite3'}",
        # No ping per checkout: database.py pings a pooled connection only when it has been
        # idle for DB_PING_IDLE_S (a busy server's connections are seconds-fresh).
        SQLALCHEMY_ENGINE_OPTIONS={},
        DB_PING_IDLE_S=1.0,
        MAX_CONTENT_LENGTH=64 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=60 * 60 * 24 * 30,
        # Only responses that change the session set the cookie: images and API answers
        # then carry identical headers whatever the clock says.
        SESSION_REFRESH_EACH_REQUEST=False,
        SQLITE_BUSY_TIMEOUT_MS=10000,
        SQLITE_SYNCHRONOUS="FULL",
        SQLITE_GROUP_COMMIT=True,
        ANSWER_FAST_PATH=True,
        JSON_SORT_KEYS=False,
    )
    cfg.from_pyfile(str(instance / "config.py"), silent=True)
    env = os.environ
    if env.get("TLL_ENV"):
        cfg["TLL_ENV"] = env["TLL_ENV"]
    if env.get("TLL_SQLITE_SYNCHRONOUS"):
        cfg["SQLITE_SYNCHRONOUS"] = env["TLL_SQLITE_SYNCHRONOUS"]
    if env.get("TLL_SQLITE_GROUP_COMMIT"):
        cfg["SQLITE_GROUP_COMMIT"] = env["TLL_SQLITE_GROUP_COMMIT"] != "0"
    if env.get("TLL_ANSWER_FAST_PATH"):
        cfg["ANSWER_FAST_PATH"] = env["TLL_ANSWER_FAST_PATH"] != "0"
    if env.get("DATABASE_URL"):
        cfg["SQLALCHEMY_DATABASE_URI"] = env["DATABASE_URL"]
    secret = env.get("SECRET_KEY") or env.get("TLL_SECRET_KEY")
    if secret:
        cfg["SECRET_KEY"] = secret
    if env.get("TLL_PSEUDONYM_KEY"):
        cfg["PSEUDONYM_KEY"] = env["TLL_PSEUDONYM_KEY"]
    if env.get("TLL_PARTICIPANT_API"):
        cfg["PARTICIPANT_API"] = env["TLL_PARTICIPANT_API"] != "0"
    if env.get("TLL_TRUST_CODES"):
        cfg["TRUST_CODES"] = env["TLL_TRUST_CODES"] != "0"
    if env.get("TLL_PROXIES"):
        cfg["TLL_PROXIES"] = int(env["TLL_PROXIES"])
    if env.get("TLL_ADMIN_BASIC_AUTH"):
        cfg["ADMIN_BASIC_AUTH"] = env["TLL_ADMIN_BASIC_AUTH"] != "0"
    if env.get("TLL_ADMIN_IDLE_MIN"):
        cfg["ADMIN_IDLE_MIN"] = float(env["TLL_ADMIN_IDLE_MIN"])
    if env.get("TLL_PARTICIPANT_RATE"):
        cfg["PARTICIPANT_RATE"] = env["TLL_PARTICIPANT_RATE"]
    if env.get("TLL_KIOSK_IDLE_S"):
        cfg["KIOSK_IDLE_S"] = int(env["TLL_KIOSK_IDLE_S"])
    if overrides:
        cfg.update(overrides)
    cfg.setdefault("PARTICIPANT_API", True)
    cfg.setdefault("ADMIN_BASIC_AUTH", cfg["TLL_ENV"] != "production")
    cfg.setdefault("ADMIN_IDLE_MIN", 30)
    cfg.setdefault("TRUST_CODES", cfg["TLL_ENV"] != "production")
    cfg["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(cfg["SQLALCHEMY_DATABASE_URI"])
    if cfg.get("PARTICIPANT_RATE"):
        from limits import parse_many

        try:
            parse_many(cfg["PARTICIPANT_RATE"])
        except ValueError:
            raise ConfigError(f"TLL_PARTICIPANT_RATE {cfg['PARTICIPANT_RATE']!r} is not a rate "
                              "such as '30 per minute' or '30/minute;500/day'") from None

    if not cfg.get("SECRET_KEY"):
        if cfg["TLL_ENV"] == "production":
            raise ConfigError("SECRET_KEY is not set: production needs SECRET_KEY in the "
                              "environment or in the instance config.py")
        cfg["SECRET_KEY"] = read_or_create_secret(instance / "secret_key")
    if not cfg.get("PSEUDONYM_KEY"):
        # Its own file, not derived from SECRET_KEY: rotating the secret key (or a
        # production key that differs from development's) keeps pseudonyms stable.
        # Exports made before it were keyed by legacy_pseudonym_key(SECRET_KEY).
        cfg["PSEUDONYM_KEY"] = read_or_create_secret(instance / "pseudonym_key")
    if cfg["TLL_ENV"] == "production" and env.get("TLL_COOKIE_SECURE", "1") != "0":
        # Production serves over HTTPS (MTurk requires it); TLL_COOKIE_SECURE=0 for a
        # plain-HTTP set-up behind a trusted proxy.
        cfg["SESSION_COOKIE_SECURE"] = True

"""Plain DBAPI statements for the answer path, on the Flask-SQLAlchemy session's own
connection and transaction (SQLite or psycopg 3). SQLAlchemy's statement machinery costs
about a millisecond per statement; the recording path runs a handful per answer, so it
speaks SQL directly here. Every statement is written with `?` placeholders."""
from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime

from .models import db


def is_sqlite() -> bool:
    """Return True when the database is SQLite (else PostgreSQL)."""
    return db.engine.dialect.name == "sqlite"


_is_sqlite = is_sqlite


def sql(statement: str) -> str:
    """Return `statement` with its ? placeholders in the driver's style."""
    return statement if _is_sqlite() else statement.replace("?", "%s")


def cursor():
    """Return a DBAPI cursor on the session's connection (inside its transaction)."""
    return db.session.connection().connection.driver_connection.cursor()


def execute(statement: str, params: tuple = ()):
    """Execute `statement` (with ? placeholders) in the session's transaction; return the
    cursor."""
    cur = cursor()
    cur.execute(sql(statement), params)
    return cur


def commit() -> None:
    """Commit the session's transaction. With nothing pending in the ORM (the answer
    path writes through `execute` only) the DBAPI connection commits directly: the
    Session's own commit (flush, expiry, transaction bookkeeping) cost about 6 % of an
    answer's CPU. The Session still holds the connection and releases it at the end of
    the request as before (its rollback then finds nothing to undo). The durability is
    the driver's commit either way."""
    s = db.session
    if s.new or s.dirty or s.deleted:
        s.commit()
        return
    s.connection().connection.driver_connection.commit()


def dbapi_errors():
    """Return (IntegrityError, OperationalError) of the database driver in use."""
    mod = db.engine.dialect.dbapi
    return mod.IntegrityError, mod.OperationalError


def dt_param(dt: datetime):
    """Return `dt` as the database stores it: SQLAlchemy's SQLite text format (naive UTC)
    or the aware datetime for PostgreSQL."""
    if _is_sqlite():
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        return dt.isoformat(" ", "microseconds")
    return dt


_WRITE_LOCK = threading.Lock()


def write_lock():
    """Return a context manager that serialises this process's SQLite writers: threads then
    queue on a Python lock (handed over at once) instead of SQLite's busy handler, which
    sleeps in growing steps. PostgreSQL needs none."""
    return _WRITE_LOCK if _is_sqlite() else contextlib.nullcontext()

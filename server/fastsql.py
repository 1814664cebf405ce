"""Plain DBAPI statements for the answer path (SQLite or psycopg 3). SQLAlchemy's
statement machinery costs about a millisecond per statement; the recording path runs a
handful per answer, so it speaks SQL directly here. Every statement is written with `?`
placeholders.

Where the statements run:
- In the answer routes (ANSWER_ENDPOINTS), on a pooled DBAPI connection the request
  borrows from the engine's pool at its first statement and gives back at its end
  (`release`), without an ORM Session: the Session's set-up, connection bookkeeping and
  close were about a fifth of an answer's CPU. The pool's check-out events still apply
  (SQLite pragmas on connect, the idle ping of database.py), and its check-in rolls back
  whatever the request left uncommitted.
- In the JSON API's answer fast path (server/fastanswer.py), which runs outside any
  request context, on the same kind of borrowed connection inside `answer_scope()`.
- Everywhere else (pages, commands, tests), on the Flask-SQLAlchemy session's own
  connection and transaction, so that the statements see the ORM's pending work.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from contextvars import ContextVar
from datetime import UTC, datetime

from flask.globals import _cv_app, _cv_request
from sqlalchemy import exc as sa_exc

from .models import db

# The routes that record an answer: everything they read and write goes through here.
ANSWER_ENDPOINTS = frozenset(("api.answer", "lab.answer", "mturk_worker.answer"))
_ENVIRON_KEY = "tll.dbapi"
_ENGINE_KEY = "tll.engine"
# The answer fast path's borrowed connection: a one-item list, empty until the first
# statement (a context variable, because that path has no request context to hold it).
_SCOPE: ContextVar[list | None] = ContextVar("tll_answer_scope", default=None)


def engine():
    """Return the app's SQLAlchemy engine (kept on the app: `db.engine` looks it up
    through the app proxy, which cost ten look-ups per answer)."""
    ext = _cv_app.get().app.extensions
    e = ext.get(_ENGINE_KEY)
    if e is None:
        e = ext[_ENGINE_KEY] = db.engine
    return e


def dialect():
    """Return the dialect of the app's engine."""
    return engine().dialect


def is_sqlite() -> bool:
    """Return True when the database is SQLite (else PostgreSQL)."""
    return dialect().name == "sqlite"


_is_sqlite = is_sqlite


def sql(statement: str) -> str:
    """Return `statement` with its ? placeholders in the driver's style."""
    return statement if _is_sqlite() else statement.replace("?", "%s")


def _borrowed():
    """Return the pooled connection of this answer request (borrowed at the first call),
    or None outside the answer routes and the answer fast path."""
    scope = _SCOPE.get()
    if scope is not None:
        if not scope:
            scope.append(_connect())
        return scope[0]
    ctx = _cv_request.get(None)
    if ctx is None:
        return None
    environ = ctx.request.environ
    conn = environ.get(_ENVIRON_KEY)
    if conn is None:
        if ctx.request.endpoint not in ANSWER_ENDPOINTS:
            return None
        conn = environ[_ENVIRON_KEY] = _connect()
    return conn


def _connect():
    dbapi = dialect().dbapi
    try:
        return engine().raw_connection()
    except dbapi.Error as e:  # the pool's connect raises the driver's own errors
        raise sa_exc.DBAPIError.instance("connect", None, e, dbapi.Error,
                                         connection_invalidated=True) from e


def _give_back(conn) -> None:
    if getattr(conn, "_tll_broken", False):
        conn.invalidate()
    else:
        conn.close()


def release(exc: BaseException | None = None) -> None:
    """Give this request's borrowed connection back to the pool (its check-in rolls back
    anything uncommitted); one that failed at the database level is discarded instead.
    Registered as a teardown_request hook."""
    ctx = _cv_request.get(None)
    if ctx is None:
        return
    conn = ctx.request.environ.pop(_ENVIRON_KEY, None)
    if conn is not None:
        _give_back(conn)


@contextlib.contextmanager
def answer_scope():
    """Within this block (inside an app context, outside any request) the statements run
    on one connection borrowed from the pool at the first of them, given back at the end
    as `release` gives back an answer request's."""
    scope: list = []
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        if scope:
            _give_back(scope[0])


def group_commit_key() -> str | None:
    """Return the database file when this answer may join a group commit (SQLite, an
    answer route's own connection with no transaction open, SQLITE_GROUP_COMMIT on), else
    None."""
    if not _is_sqlite() or not _cv_app.get().app.config.get("SQLITE_GROUP_COMMIT", True):
        return None
    conn = _borrowed()
    if conn is None or conn.driver_connection.in_transaction:
        return None
    return _sqlite_file()


def _sqlite_file() -> str | None:
    """Return the SQLite database's file path, or None for an in-memory or URI database
    (nothing beside it to lock, nothing shared to group)."""
    path = engine().url.database
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def borrowed_driver():
    """Return the driver's connection of this answer request or answer scope, or None
    elsewhere (where statements run in the ORM session's transaction)."""
    conn = _borrowed()
    return None if conn is None else conn.driver_connection


def _connection():
    conn = _borrowed()
    if conn is not None:
        return conn.driver_connection
    return db.session.connection().connection.driver_connection


def cursor():
    """Return a DBAPI cursor: on the answer request's borrowed connection, else on the
    session's connection (inside its transaction)."""
    return _connection().cursor()


def execute(statement: str, params: tuple = ()):
    """Execute `statement` (with ? placeholders); return the cursor."""
    cur = cursor()
    try:
        cur.execute(sql(statement), params)
    except dialect().dbapi.OperationalError as e:
        raise operational(e, statement) from e
    return cur


def operational(e: Exception, statement: str = "") -> Exception:
    """Return the DBAPI OperationalError `e` as SQLAlchemy's (what the error handler
    turns into a 503), marking the borrowed connection for discarding when the database
    went away."""
    conn = _borrowed()
    d = dialect()
    dead = d.is_disconnect(e, conn.driver_connection if conn else None, None)
    if conn is not None:
        conn._tll_broken = True  # a failed connection is never reused
    return sa_exc.DBAPIError.instance(statement, None, e, d.dbapi.Error,
                                      connection_invalidated=dead)


def first_row(statement: str, params: tuple = ()):
    """Return the first row of `statement` (or None). On PostgreSQL, when this opens the
    transaction, its BEGIN travels with the statement in one pipeline (psycopg otherwise
    waits for BEGIN's answer first): one round trip instead of two."""
    conn = _connection()
    if _is_sqlite() or conn.info.transaction_status != dialect().dbapi.pq.TransactionStatus.IDLE:
        return execute(statement, params).fetchone()
    cur = conn.cursor()
    try:
        with conn.pipeline():
            cur.execute(sql(statement), params)
    except dialect().dbapi.OperationalError as e:
        raise operational(e, statement) from e
    return cur.fetchone()


def commit() -> None:
    """Commit the answer request's connection, or the session's transaction. With nothing
    pending in the ORM (the answer path writes through `execute` only) the session's
    DBAPI connection commits directly: the Session's own commit (flush, expiry,
    transaction bookkeeping) cost about 6 % of an answer's CPU. The durability is the
    driver's commit either way."""
    conn = _borrowed()
    if conn is None:
        s = db.session
        if s.new or s.dirty or s.deleted:
            s.commit()
            return
        conn = s.connection().connection
    try:
        conn.driver_connection.commit()
    except dialect().dbapi.OperationalError as e:
        raise operational(e, "COMMIT") from e


def rollback() -> None:
    """Roll back the answer request's connection, or the session."""
    conn = _borrowed()
    if conn is None:
        db.session.rollback()
        return
    try:
        conn.driver_connection.rollback()
    except dialect().dbapi.Error:
        conn._tll_broken = True


def dbapi_errors():
    """Return (IntegrityError, OperationalError) of the database driver in use."""
    mod = dialect().dbapi
    return mod.IntegrityError, mod.OperationalError


def dt_param(dt: datetime):
    """Return `dt` as the database stores it: SQLAlchemy's SQLite text format (naive UTC)
    or the aware datetime for PostgreSQL."""
    if _is_sqlite():
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        return dt.isoformat(" ", "microseconds")
    return dt


def dt_value(value) -> datetime | None:
    """Return a timestamp column read through this module as the ORM reads it: SQLite's
    text (naive UTC) parsed, PostgreSQL's datetime (or None) as it is."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


_WRITE_LOCK = threading.Lock()
_LOCK_FILES: dict[tuple[int, str], int] = {}


@contextlib.contextmanager
def _sqlite_writer(path: str | None):
    # Threads queue on the Python lock, processes (gunicorn workers) on an flock of a
    # file beside the database: both hand over at once when released, where SQLite's
    # busy handler polls in growing sleeps (1, 2, 5 ... 100 ms), which under load gave
    # the answers of one worker p99 latencies of several hundred ms while the other
    # wrote. The kernel drops the flock of a process that dies. Durability is SQLite's
    # own either way: this only orders the writers.
    with _WRITE_LOCK:
        if path is None:
            yield
            return
        key = (os.getpid(), path)  # a forked child opens its own (flock is per open file)
        fd = _LOCK_FILES.get(key)
        if fd is None:
            fd = _LOCK_FILES[key] = os.open(path + "-tll-writer", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def write_lock():
    """Return a context manager that serialises the SQLite writers of this database, the
    threads of this process and the other processes alike (SQLite allows one writer at a
    time anyway). PostgreSQL needs none."""
    if not _is_sqlite():
        return contextlib.nullcontext()
    return _sqlite_writer(_sqlite_file())

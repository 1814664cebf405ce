"""Throttling state every gunicorn worker (and every node) sees, and the password-guessing
policy of the admin area.

Where the counters live: in the application's own database (table `throttle_counters`),
as a `limits` storage backend (`tll-db://`, the default RATELIMIT_STORAGE_URI), so that
Flask-Limiter and the checks below count in one place. Why the database and not Redis:
it is already there on SQLite and PostgreSQL, shared by all workers and nodes, tested
and backed up; Redis would be one more service to run, secure and monitor for a few
writes per login attempt. A site that has Redis anyway sets RATELIMIT_STORAGE_URI to
`redis://...` and nothing else changes.

The policy (`guarded_authenticate`), for every password check (the login form and HTTP
Basic on /manage alike):
- per address: ADDRESS_LIMIT failed checks, then 429;
- per user name and address: USER_ADDRESS_LIMIT failed checks, then 429;
- per user name alone (all addresses together): after USER_FREE_FAILURES failures within
  an hour, each failure makes the next check of that user from an unknown address wait
  a growing delay (2, 4, 8 … USER_DELAY_MAX_S seconds; 429 with Retry-After meanwhile):
  a delay, not a lock. An address from which the user logged in during the last
  KNOWN_DAYS days never waits for it: guesses from elsewhere cannot lock the admin out
  of their own address.
A throttled check answers before any password hash is computed, so guesses past the
limits cost a few counter reads, not a hash each.
"""
from __future__ import annotations

import itertools
import math
import time

from flask import current_app, request
from limits import parse_many
from limits.storage import Storage
from sqlalchemy import bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import TooManyRequests

ADDRESS_LIMIT = "10 per minute; 50 per hour"
USER_ADDRESS_LIMIT = "5 per minute; 20 per hour"
PER_ADDRESS = parse_many(ADDRESS_LIMIT)
PER_USER_ADDRESS = parse_many(USER_ADDRESS_LIMIT)
USER_FREE_FAILURES = 20
USER_WINDOW_S = 3600
USER_DELAY_MAX_S = 60
KNOWN_DAYS = 30
MAX_KEY = 255
# Expired rows are removed every this many increments of a process.
SWEEP_EVERY = 200

_UPSERT = text(
    "INSERT INTO throttle_counters (name, hits, expires_at) VALUES (:name, :amount, :exp) "
    "ON CONFLICT (name) DO UPDATE SET "
    "hits = CASE WHEN throttle_counters.expires_at <= :now THEN excluded.hits "
    "ELSE throttle_counters.hits + excluded.hits END, "
    "expires_at = CASE WHEN throttle_counters.expires_at <= :now THEN excluded.expires_at "
    "ELSE throttle_counters.expires_at END "
    "RETURNING hits")
_GET = text("SELECT hits, expires_at FROM throttle_counters WHERE name = :name "
            "AND expires_at > :now")

_GET_MANY = text("SELECT name, hits, expires_at FROM throttle_counters WHERE name IN :names "
                 "AND expires_at > :now").bindparams(bindparam("names", expanding=True))


def _engine():
    from .models import db
    return db.engine


class DatabaseStorage(Storage):
    """A `limits` storage (scheme `tll-db://`) keeping fixed-window counters in the
    application's database table `throttle_counters` (name, hits, expires_at in Unix
    seconds); each call commits on its own connection, apart from the request's
    transaction. Used inside an application context."""

    STORAGE_SCHEME = ["tll-db"]
    _calls = itertools.count(1)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add `amount` to the counter `key` (a new window of `expiry` seconds when it
        has none or it expired); return the count."""
        now = time.time()
        with _engine().begin() as conn:
            hits = conn.execute(_UPSERT, {"name": key[:MAX_KEY], "amount": amount,
                                          "exp": now + expiry, "now": now}).scalar_one()
            if next(self._calls) % SWEEP_EVERY == 0:
                conn.execute(text("DELETE FROM throttle_counters WHERE expires_at <= :now"),
                             {"now": now})
        return int(hits)

    def get_many(self, keys: list[str]) -> dict[str, tuple[int, float]]:
        """Return {key: (count, window end)} of the live counters among `keys`, in one
        query."""
        names = {k[:MAX_KEY]: k for k in keys}
        with _engine().connect() as conn:
            rows = conn.execute(_GET_MANY, {"names": list(names), "now": time.time()}).all()
        return {names[name]: (int(hits), float(exp)) for name, hits, exp in rows}

    def _row(self, key: str):
        with _engine().connect() as conn:
            return conn.execute(_GET, {"name": key[:MAX_KEY], "now": time.time()}).first()

    def get(self, key: str) -> int:
        """Return the counter `key` (0 when absent or expired)."""
        row = self._row(key)
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        """Return when the window of `key` ends (Unix seconds; now when it has none)."""
        row = self._row(key)
        return float(row[1]) if row else time.time()

    def check(self) -> bool:
        """Return True when the table can be read."""
        try:
            with _engine().connect() as conn:
                conn.execute(text("SELECT count(*) FROM throttle_counters"))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        """Remove every counter; return how many there were."""
        with _engine().begin() as conn:
            return conn.execute(text("DELETE FROM throttle_counters")).rowcount

    def clear(self, key: str) -> None:
        """Remove the counter `key`."""
        with _engine().begin() as conn:
            conn.execute(text("DELETE FROM throttle_counters WHERE name = :name"),
                         {"name": key[:MAX_KEY]})


class Throttled(TooManyRequests):
    """429 with the seconds after which trying again may succeed (`retry_after`)."""

    def __init__(self, description: str, retry_after: float):
        super().__init__(description)
        self.retry_after = max(1, math.ceil(retry_after))


def _limiter():
    from .security import limiter
    return limiter


def _key(*parts: str) -> str:
    return "pw/" + "/".join(p.replace("/", "%2F") for p in parts)


def user_delay_s(failures: int) -> int:
    """Return the seconds a user's next check from an unknown address waits after
    `failures` failures of that user within the hour: 0 below USER_FREE_FAILURES, then
    2, 4, 8 … up to USER_DELAY_MAX_S."""
    over = failures - USER_FREE_FAILURES + 1
    return 0 if over < 1 else min(USER_DELAY_MAX_S, 2 ** min(over, 16))


def _counters(storage, names: list[str]) -> dict[str, tuple[int, float]]:
    """Return {name: (count, window end)} of the live counters among `names` (one query
    on the database storage; a read per name on any other)."""
    many = getattr(storage, "get_many", None)
    if many is not None:
        return many(names)
    out = {}
    for name in names:
        n = storage.get(name)
        if n:
            out[name] = (n, storage.get_expiry(name))
    return out


def _throttled(why: str, until: float) -> Throttled:
    return Throttled(f"Too many failed logins {why}: wait a minute and try again.",
                     until - time.time())


# Throttled (address and user-address) windows seen by this process, (database, name) ->
# window end: a count only grows within its window, so until then the answer is known
# without a query. Bounded: cleared when it outgrows MEMO_MAX.
_blocked: dict[tuple[str, str], float] = {}
MEMO_MAX = 10_000


def guarded_authenticate(username: str, password: str, check):
    """Return `check(username, password)` (the admin user, or None for a wrong
    password) under the throttling policy of this module; raise Throttled (429) without
    calling `check` when the address, the user at this address, or (from an address the
    user has not logged in from) the user is being throttled."""
    lim = _limiter()
    strategy, storage = lim.limiter, lim.storage
    addr = request.remote_addr or "unknown"
    user = (username or "")[:100]
    now = time.time()
    limits = [(item, ids, item.key_for(*ids), why)
              for items, ids, why in ((PER_ADDRESS, ("pw-address", addr), "from this address"),
                                      (PER_USER_ADDRESS, ("pw-user-address", user, addr),
                                       "for this user from this address"))
              for item in items]
    where = current_app.config["SQLALCHEMY_DATABASE_URI"]
    for _, _, name, why in limits:
        until = _blocked.get((where, name))
        if until is not None and until > now:
            raise _throttled(why, until)
    known_key, wait_key = _key("known", user, addr), _key("wait", user)
    counts = _counters(storage, [name for _, _, name, _ in limits] + [known_key, wait_key])
    for item, _, name, why in limits:
        hits, until = counts.get(name, (0, now))
        if hits >= item.amount:
            if len(_blocked) >= MEMO_MAX:
                _blocked.clear()
            _blocked[(where, name)] = until
            raise _throttled(why, until)
    if known_key not in counts and wait_key in counts:
        raise Throttled("Too many failed logins for this user: wait a little and try "
                        "again.", counts[wait_key][1] - now)
    result = check(username, password)
    if result is not None:
        storage.incr(known_key, KNOWN_DAYS * 86400)
        return result
    for item, ids, _, _ in limits:
        strategy.hit(item, *ids)
    delay = user_delay_s(storage.incr(_key("failures", user), USER_WINDOW_S))
    if delay:
        storage.incr(wait_key, delay)
    return None

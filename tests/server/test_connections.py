"""Database connections on the answer path: SQLite commits with synchronous=FULL by
default (an acknowledged answer survives an OS crash), an unknown setting is refused, and
a pooled PostgreSQL connection that died while idle is replaced instead of failing the
next request (pinged only after DB_PING_IDLE_S of idleness, not before every request)."""
from __future__ import annotations

import json

import pytest

from .conftest import make_app


def test_sqlite_synchronous_full_by_default_and_checked(app, tmp_path):
    from server.config import ConfigError
    from server.models import db

    with app.app_context():
        assert db.session.execute(db.text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert db.session.execute(db.text("PRAGMA journal_mode")).scalar() == "wal"
    with pytest.raises(ConfigError, match="SQLITE_SYNCHRONOUS"):
        make_app(tmp_path / "bad", SQLITE_SYNCHRONOUS="OFF")


@pytest.mark.postgres
def test_idle_postgres_connection_killed_is_replaced(tmp_path, postgres_url, small_experiment):
    import psycopg

    from server.loader import load_experiment
    from server.models import db

    app = make_app(tmp_path, postgres_url, DB_PING_IDLE_S=0.0)
    with app.app_context():
        load_experiment(small_experiment, name="small", settings={"trial_order": "fixed"})
    c = app.test_client()
    r = c.post("/api/v1/experiments/small/participants", json={"consent": True, "code": "P1"})
    tok = r.get_json()["participant"]
    assert c.post(f"/api/v1/participants/{tok}/answers", json={"n": 1, "choice": 2}).status_code == 201
    # Kill every server process of this database: the pool now holds dead connections.
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                               ).fetchone()[0]
    assert killed >= 1
    r = c.post(f"/api/v1/participants/{tok}/answers", json={"n": 2, "choice": 3})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert json.loads(r.get_data())["answered"] == 2
    with app.app_context():
        db.engine.dispose()

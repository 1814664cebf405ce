"""Password throttling that protects: HTTP Basic and the login form count against one set
of limits, kept in the database so every worker and app instance sees them; guesses past
the limits cost no password hash; guesses from many addresses cannot lock the admin out
of their own address; Basic is off in production unless configured."""
from __future__ import annotations

import base64
import shutil

import pytest

import server.manage as manage
import server.throttle as throttle
from server import create_app
from tests.server.conftest import csrf_from


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _form_login(client, password: str, env: dict | None = None, user: str = "admin"):
    env = env or {}
    tok = csrf_from(client.get("/manage/login", environ_base=env).get_data(as_text=True))
    return client.post("/manage/login", environ_base=env,
                       data={"csrf_token": tok, "username": user, "password": password})


@pytest.fixture
def hashes(monkeypatch) -> list:
    """The password hashes checked, in order (one list entry per check)."""
    calls: list = []
    real = manage.check_password_hash
    monkeypatch.setattr(manage, "check_password_hash",
                        lambda h, p: calls.append(h) or real(h, p))
    return calls


def _sibling(app, **config):
    """A second app instance on the same database (another gunicorn worker or node)."""
    cfg = {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], **config}
    return create_app(cfg, instance_path=app.instance_path)


def test_basic_guesses_are_throttled_like_the_form_and_stop_costing_hashes(app, hashes):
    c = app.test_client()
    statuses = [c.get("/manage/api/experiments/small/stats",
                      headers=_basic("admin", f"guess{k}")).status_code for k in range(60)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert len(hashes) == 5  # the 55 throttled guesses hashed nothing
    # The same limits hold for the login form from this address (one count for both).
    r = _form_login(c, "correct horse")
    assert r.status_code == 429 and "Too many failed logins" in r.get_data(as_text=True)
    assert len(hashes) == 5
    # The real password from another address still works, over Basic too.
    r = c.get("/manage/api/experiments/small/stats", headers=_basic("admin", "correct horse"),
              environ_base={"REMOTE_ADDR": "10.7.0.1"})
    assert r.status_code == 200 and r.json["trials"] == 6


def test_the_limit_holds_across_two_app_instances_on_one_database(any_app, hashes):
    other = _sibling(any_app)
    a, b = any_app.test_client(), other.test_client()
    statuses = []
    for k in range(8):
        client = (a, b)[k % 2]
        statuses.append(client.get("/manage/api/experiments/small/stats",
                                   headers=_basic("admin", f"guess{k}")).status_code)
    assert statuses == [401] * 5 + [429] * 3
    assert len(hashes) == 5
    with other.app_context():
        from server.models import ThrottleCounter, db
        assert db.session.query(ThrottleCounter).count() > 0


def test_many_addresses_cannot_lock_the_admin_out_of_their_own_address(
        tmp_path, sqlite_template, monkeypatch):
    # Behind one proxy (nginx): the client's address comes from X-Forwarded-For.
    shutil.copy(sqlite_template, tmp_path / "server.sqlite3")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'server.sqlite3'}",
                      "TLL_PROXIES": 1}, instance_path=tmp_path / "instance")
    monkeypatch.setattr(throttle, "USER_FREE_FAILURES", 3)  # fewer hashes, same policy
    home = {"HTTP_X_FORWARDED_FOR": "192.0.2.10"}
    admin = app.test_client()
    assert _form_login(admin, "correct horse", home).status_code == 303

    def guess(k: int) -> int:
        env = {"HTTP_X_FORWARDED_FOR": f"198.51.100.{k + 1}"}
        c = app.test_client()
        if k % 2:
            return _form_login(c, f"guess{k}", env).status_code
        return c.get("/manage/api/experiments/small/stats", environ_base=env,
                     headers=_basic("admin", f"guess{k}")).status_code

    statuses = [guess(k) for k in range(40)]
    assert statuses[:3] == [401] * 3 and statuses.count(429) >= 30
    # The admin's own address: the form and Basic both still let them in.
    assert _form_login(app.test_client(), "correct horse", home).status_code == 303
    r = app.test_client().get("/manage/api/experiments/small/stats", environ_base=home,
                              headers=_basic("admin", "correct horse"))
    assert r.status_code == 200
    # An address the admin never used waits (a delay, with its length, not a lock).
    r = _form_login(app.test_client(), "correct horse", {"HTTP_X_FORWARDED_FOR": "203.0.113.5"})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= throttle.USER_DELAY_MAX_S


def test_user_delay_grows_and_is_capped():
    free = throttle.USER_FREE_FAILURES
    delays = [throttle.user_delay_s(n) for n in range(free - 1, free + 8)]
    assert delays[0] == 0 and delays[1:4] == [2, 4, 8]
    assert delays == sorted(delays) and max(delays) == throttle.USER_DELAY_MAX_S
    assert throttle.user_delay_s(10**6) == throttle.USER_DELAY_MAX_S


def test_basic_auth_is_off_in_production_unless_configured(tmp_path, sqlite_template, hashes):
    shutil.copy(sqlite_template, tmp_path / "server.sqlite3")
    cfg = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'server.sqlite3'}",
           "TLL_ENV": "production", "SECRET_KEY": "k" * 32}
    prod = create_app(cfg, instance_path=tmp_path / "instance")
    r = prod.test_client().get("/manage/api/experiments/small/stats",
                               headers=_basic("admin", "correct horse"))
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers
    assert "/manage/login" in r.json["error"] and hashes == []
    on = create_app({**cfg, "ADMIN_BASIC_AUTH": True}, instance_path=tmp_path / "instance")
    r = on.test_client().get("/manage/api/experiments/small/stats",
                             headers=_basic("admin", "correct horse"))
    assert r.status_code == 200 and len(hashes) == 1

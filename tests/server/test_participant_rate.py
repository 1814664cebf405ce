"""Participant creation is limited per address (TLL_PARTICIPANT_RATE, default 30 per
minute), through the lab's code form and the JSON API together: the 31st start from one
address is a 429 with a readable reason (HTML for the form, JSON for the API), and
another address is unaffected."""
from __future__ import annotations

import pytest

from server.config import ConfigError
from server.models import Participant, db
from tests.server.conftest import csrf_from, make_app


def _lab_start(client, code: str, addr: str):
    env = {"REMOTE_ADDR": addr}
    token = getattr(client, "_csrf", None)
    if token is None:
        token = client._csrf = csrf_from(client.get("/lab/small/", environ_base=env)
                                         .get_data(as_text=True))
    return client.post("/lab/small/start", data={"code": code, "csrf_token": token},
                       environ_base=env)


def _api_start(client, addr: str):
    return client.post("/api/v1/experiments/small/participants", json={"consent": True},
                       environ_base={"REMOTE_ADDR": addr})


def test_the_31st_start_from_one_address_is_refused(app):
    assert app.config.get("PARTICIPANT_RATE") is None  # the default applies
    lab, api = app.test_client(), app.test_client()
    for i in range(30):
        # Half through each door: they share the one limit.
        r = _lab_start(lab, f"R{i}", "10.0.0.1") if i % 2 else _api_start(api, "10.0.0.1")
        assert r.status_code in (201, 303), (i, r.status_code)
    r = _api_start(api, "10.0.0.1")
    assert r.status_code == 429 and r.headers["Retry-After"]
    assert r.get_json() == {"error": "too many participants were started from your "
                                     "address: please wait a minute and try again",
                            "status": 429}
    r = _lab_start(lab, "R99", "10.0.0.1")
    assert r.status_code == 429
    assert "too many participants were started" in r.get_data(as_text=True)
    assert "<html" in r.get_data(as_text=True).lower()
    # Another address starts as usual.
    other = app.test_client()
    assert _lab_start(other, "OTHER1", "10.0.0.2").status_code == 303
    assert _api_start(app.test_client(), "10.0.0.2").status_code == 201
    with app.app_context():
        assert db.session.query(Participant).count() == 32
        assert db.session.query(Participant).filter_by(code="R99").count() == 0


def test_the_rate_is_a_setting(tmp_path, sqlite_template):
    import shutil

    from server import create_app

    shutil.copy(sqlite_template, tmp_path / "server.sqlite3")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'server.sqlite3'}",
                      "PARTICIPANT_RATE": "2 per minute"}, instance_path=tmp_path / "instance")
    c = app.test_client()
    assert [_api_start(c, "10.0.0.3").status_code for _ in range(3)] == [201, 201, 429]
    with pytest.raises(ConfigError, match="is not a rate"):
        make_app(tmp_path / "bad", PARTICIPANT_RATE="lots")

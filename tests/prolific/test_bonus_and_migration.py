"""A bonus is paid once per submission, also when a run is interrupted: a bonus set up
and not paid is paid by the rerun; one whose pay call got no answer is never paid again
automatically (Prolific's pay call is not idempotent). Migration 0006_prolific matches
the models and goes down and up again, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import inspect

from .conftest import Participant, write_experiment


def finished(stack, pid: str) -> str:
    sid = stack.study_id()
    p = Participant(stack, pid)
    page = p.answer(p.consent(p.start(sid)), [0, 1])
    assert "completion-code" in page.text
    return p.submission


def test_a_bonus_is_paid_once_even_when_interrupted(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp")
    stack.publish("exp")
    a, b = finished(stack, "PA"), finished(stack, "PB")
    faults = f"{stack.em}/_emulator/faults"
    # Prolific set the bonus up but its answer was lost: nothing is paid.
    requests.post(faults, timeout=10, json={"path": "/api/v1/submissions/bonus-payments/",
                                            "method": "POST", "when": "after"})
    res = stack.cli("bonus", "exp", a, "--amount", "0.40")
    assert res.exit_code == 1 and "503" in res.output
    assert stack.state()["payments"] == []
    # The lost set-up answer left no id: the rerun sets up again and pays.
    assert "bonus 0.40 paid" in stack.ok("bonus", "exp", a, "--amount", "0.40")
    assert [p["participant_id"] for p in stack.state()["payments"]] == ["PA"]
    res = stack.cli("bonus", "exp", a, "--amount", "0.40")
    assert res.exit_code == 2 and "already has a bonus" in res.output
    # Another submission has its own bonus, once.
    assert "bonus 0.30 paid" in stack.ok("bonus", "exp", b, "--amount", "0.30")
    assert stack.cli("bonus", "exp", b, "--amount", "0.30").exit_code == 2
    assert [p["participant_id"] for p in stack.state()["payments"]] == ["PA", "PB"]
    res = stack.cli("bonus", "exp", "NOSUCHSUBMISSION", "--amount", "0.30")
    assert res.exit_code == 2 and "no submission" in res.output


def test_a_pay_call_without_answer_is_not_repeated(stack, tmp_path):
    stack.load(write_experiment(tmp_path / "s", [2]), "exp")
    stack.publish("exp")
    a = finished(stack, "PA")
    from server.recruitment.prolific import reviewing
    from server.recruitment.prolific.client import Client, ProlificFailure
    from server.recruitment.prolific.models import ProlificBonus
    from server.recruitment.prolific.publishing import recorded

    from .conftest import FAKE_TOKEN

    class LosesThePayAnswer(Client):
        def pay_bonus(self, bulk_id):
            super().pay_bonus(bulk_id)
            raise ProlificFailure("POST pay: no answer", 0)

    with stack.app.app_context():
        from server.recording import get_experiment
        client = LosesThePayAnswer(FAKE_TOKEN, stack.em)
        rec = recorded(get_experiment("exp"), stack.em)
        sub = next(s for s in client.submissions(rec.study_id) if s.id == a)
        with pytest.raises(ProlificFailure):
            reviewing.bonus(client, rec, sub, 25)
        from server.models import db
        assert db.session.query(ProlificBonus).one().status == "paying"
    assert len(stack.state()["payments"]) == 1          # it was paid
    res = stack.cli("bonus", "exp", a, "--amount", "0.25")
    assert res.exit_code == 2 and "check the study's bonuses on Prolific" in res.output
    assert len(stack.state()["payments"]) == 1          # and never twice


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_0006_matches_the_models_and_round_trips(backend, request, tmp_path):
    import flask_migrate
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from server.models import db
    from tests.server.conftest import make_app

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else \
        f"sqlite:///{tmp_path / 'db.sqlite3'}"
    app = make_app(tmp_path, url, TESTING=True)
    with app.app_context():
        with db.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert [d for d in diffs if "prolific" in repr(d)] == []
        flask_migrate.downgrade(revision="0005_study_pages")
        names = inspect(db.engine).get_table_names()
        assert "prolific_studies" not in names and "prolific_bonuses" not in names
        assert "participants" in names
        flask_migrate.upgrade()
        assert {"prolific_studies", "prolific_bonuses"} <= set(inspect(db.engine).get_table_names())

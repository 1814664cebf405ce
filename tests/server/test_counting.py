"""Provenance from the server to the analysis: participants of every platform,
environment and status answer; the export carries the provenance, and the analysis
counts by default only lab, simulated and submitted/approved production MTurk answers,
says what each rule excluded, and counts otherwise when asked (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest

from analysis.cli import main
from analysis.errors import AnalysisError
from analysis.load import load_answers
from server import recording as rec

# worker, environment, status: (answers) -> counted by default?
MTURK = [("W1", "production", "submitted", True), ("W2", "production", "approved", True),
         ("W3", "production", "returned", False), ("W4", "production", "rejected", False),
         ("W5", "production", "accepted", False), ("W6", "local-sandbox", "submitted", False),
         ("W7", "sandbox", "submitted", False)]


def _fill(any_app, tmp_path):
    """Store answers of every kind of participant; return (CSV export path, database URL)."""
    from server.export import to_csv
    from server.models import db

    with any_app.app_context():
        exp = rec.get_experiment("small")
        lab, _ = rec.start_participant(exp, code="LAB1", consent=True)
        rec.record_answer(lab, 1, 0)
        rec.record_answer(lab, 2, 1)
        sim, _ = rec.start_participant(exp, population="simulated", consent=True)
        rec.record_answer(sim, 1, 3)
        for i, (worker, env, status, _) in enumerate(MTURK):
            p, _ = rec.start_participant(exp, population="mturk", assignment_id=f"A{i}",
                                         worker_id=worker, hit_id="H1", trial_keys=["t0001"],
                                         consent=True, environment=env)
            rec.record_answer(p, 1, i % 5)
            rec.set_status(p, status, synced=status != "accepted")
            db.session.commit()
        path = tmp_path / "answers.csv"
        path.write_text(to_csv(exp))
        url = any_app.config["SQLALCHEMY_DATABASE_URI"]
        db.engine.dispose()
    return path, url


def test_counting_from_csv_and_database(any_app, tmp_path):
    path, url = _fill(any_app, tmp_path)
    for answers in (load_answers(csv=path), load_answers(db=url, experiment="small")):
        c = answers.counting
        assert (c.total, c.counted) == (10, 5)
        assert c.excluded == {"withdrawn": 0, "environment": 2, "status": 3}
        assert answers.df.attrs["counting"]["counted"] == 5
        kept = answers.df
        assert sorted(kept["platform"]) == ["lab", "lab", "mturk", "mturk", "simulated"]
        assert set(kept.loc[kept["platform"] == "mturk", "submission_status"]) == {
            "submitted", "approved"}
        assert set(kept["environment"]) == {"lab", "simulated", "production"}
        row = c.table.set_index(["platform", "environment", "submission_status"])
        assert row.loc[("mturk", "local-sandbox", "submitted"), "decision"] == \
            "excluded: environment"
        assert row.loc[("mturk", "production", "returned"), "decision"] == "excluded: status"
    # A rehearsal is counted only when named; the lab keeps its own rule.
    a = load_answers(csv=path, environments=["local-sandbox"])
    assert a.counting.counted == 2 + 1 + 1
    assert set(a.df.loc[a.df["platform"] == "mturk", "environment"]) == {"local-sandbox"}
    a = load_answers(csv=path, statuses=["rejected", "returned"])
    assert sorted(a.df.loc[a.df["platform"] == "mturk", "submission_status"]) == [
        "rejected", "returned"]
    with pytest.raises(AnalysisError) as e:
        load_answers(csv=path, environments=["moon"])
    assert "unknown environment 'moon'" in str(e.value)


def test_every_output_starts_with_what_was_counted(app, tmp_path, capsys):
    path, _ = _fill(app, tmp_path)
    assert main(["accuracy", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== counting\ncounted 5 of 10 answers\n")
    assert "excluded 3 answer(s): its submission status" in out
    assert main(["report", "--csv", str(path), "--out", str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.index("What was counted") < html.index("Overview")
    assert "counted 5 of 10 answers" in html
    counting = (tmp_path / "rep" / "counting.csv").read_text().splitlines()
    assert counting[0] == ("platform,environment,submission_status,decision,answers,"
                           "participants")
    assert "mturk,sandbox,submitted,excluded: environment,1,1" in counting
    assert main(["accuracy", "--csv", str(path), "--status", "finished"]) == 2
    assert "unknown status 'finished'" in capsys.readouterr().err

"""Against a real server: `simulate` answers through its HTTP endpoints, then the answers
are read back from its database (SQLite and PostgreSQL) and from its CSV export."""
from __future__ import annotations

import base64
import json
import urllib.request

import pandas as pd
import pytest

from analysis import accuracy, agreement, position
from analysis.cli import main
from analysis.load import load_answers
from analysis.simulate import simulate

PW = "analysis-pw-123"


def _export_csv(url: str, name: str) -> str:
    req = urllib.request.Request(f"{url}/manage/experiments/{name}/answers.csv")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{PW}".encode()).decode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def _same_tables(a, b):
    """The analysis of two loads of the same answers is identical."""
    da, db = a.without_catch(), b.without_catch()
    pd.testing.assert_frame_equal(accuracy.accuracy_long(da), accuracy.accuracy_long(db))
    for x, y in zip(position.position_table(da), position.position_table(db)):
        pd.testing.assert_frame_equal(x, y)
    sa = agreement.summarize(agreement.trial_distribution(da))
    sb = agreement.summarize(agreement.trial_distribution(db))
    pd.testing.assert_series_equal(pd.Series(sa.as_dict()), pd.Series(sb.as_dict()))
    assert a.machine_keys == b.machine_keys
    assert sorted(a.df["trial"]) == sorted(b.df["trial"])


def test_simulate_then_report_from_the_servers_database(sqlite_server, kit, tmp_path):
    srv = sqlite_server
    pwfile = tmp_path / "admin_password"
    pwfile.write_text(PW + "\n")
    proc = kit.run_analysis("simulate", "--server", srv.url, "--experiment", "small",
                            "--participants", 12, "--accuracy", 0.7,
                            "--position-bias", "4,1,1,1,1", "--seed", 5,
                            "--admin-password-file", pwfile)
    assert proc.returncode == 0, proc.stderr
    assert "12 simulated participants gave 120 answers" in proc.stdout

    # The design's condition -> feature set, as `experiments build` writes it.
    from sqlalchemy import create_engine, text
    design = {"name": "test", "feature_sets": {"generic": "generic/efficientnet_lite0",
                                               "face": "face/dlib_hog"}}
    engine = create_engine(srv.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE experiments SET design = :d WHERE name = 'small'"),
                     {"d": json.dumps(design)})
    engine.dispose()

    answers = load_answers(db=srv.db_url, experiment="small")
    df = answers.df
    assert answers.condition_features == design["feature_sets"]
    assert len(df) == 12 * 10
    assert answers.populations == ["simulated"]
    assert df["participant"].nunique() == 12
    assert (df.groupby("participant")["trial"].nunique() == 10).all()
    assert df["rt_ms"].notna().all()
    assert df["received_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").all()
    # Trials as in the experiment file (0-based there, 1-based here).
    doc = json.loads(srv.study.read_text())
    by_trial = df.drop_duplicates("trial").set_index("trial")
    for t in doc["trials"]:
        row = by_trial.loc[t["id"]]
        assert row["true_position"] == t["true_index"] + 1
        assert bool(row["catch"]) == t["catch"]
        for key, choice in t["machine_choices"].items():
            got = row[f"machine:{key}"]
            assert (pd.isna(got) and choice is None) or got == choice + 1
    assert answers.machine_keys == ["face/dlib_hog", "generic/efficientnet_lite0"]
    long = accuracy.accuracy_long(answers.without_catch(), answers.condition_features)
    paper = long[long["row"] == accuracy.PAPER_MACHINE_ROW].set_index("condition")
    for cond, key in (("face", "face/dlib_hog"), ("random", "generic/efficientnet_lite0"),
                      ("generic", "generic/efficientnet_lite0")):
        trials = [t for t in doc["trials"] if t["condition"] == cond]
        want = sum(t["machine_choices"][key] == t["true_index"] for t in trials)
        assert paper.loc[cond, ["correct", "n"]].tolist() == [want, len(trials)]
    # Roughly the requested accuracy, and the requested bias among the wrong answers.
    assert 0.58 <= df["correct"].mean() <= 0.82
    wrong = df[~df["correct"] & (df["true_position"] != 1)]
    assert (wrong["chosen_position"] == 1).mean() > 0.35  # 4 / 7 expected, 1 / 4 without bias

    # The server's own CSV export gives the same analysis as its database.
    csv_path = tmp_path / "export.csv"
    csv_path.write_text(_export_csv(srv.url, "small"))
    _same_tables(answers, load_answers(csv=csv_path))

    out = tmp_path / "report"
    assert main(["report", "--db", srv.db_url, "--experiment", "small", "--out", str(out),
                 "--dpi", "60", "--bootstrap", "100", "--model-intervals", "wald"]) == 0
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "simulated" in html
    # the galleries' images come from the server's database: every trial names its images
    items = pd.read_csv(out / "items.csv")
    assert items["query"].str.match(r"L\d{5}").all() and items["candidate_5"].notna().all()
    assert "Images: database" in html
    overview = pd.read_csv(out / "overview.csv")
    assert overview.to_dict("records") == [{"population": "simulated", "participants": 12,
                                            "answers": 120, "catch answers": 12,
                                            "trials answered": 10}]


def test_experiment_without_answers_and_unknown_experiment(sqlite_server, capsys, tmp_path):
    srv = sqlite_server
    assert main(["report", "--db", srv.db_url, "--experiment", "empty",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "experiment 'empty' has no answers yet" in err and "analysis simulate" in err
    assert not (tmp_path / "r").exists()
    assert main(["accuracy", "--db", srv.db_url, "--experiment", "nope"]) == 2
    assert "experiments there: empty, small" in capsys.readouterr().err
    assert main(["accuracy", "--db", srv.db_url]) == 2
    assert "choose one with --experiment: empty, small" in capsys.readouterr().err


def test_simulate_reports_server_errors(sqlite_server, capsys, tmp_path):
    srv = sqlite_server
    args = ["simulate", "--server", srv.url, "--participants", "1"]
    assert main(args + ["--experiment", "small", "--admin-password", "wrong-password"]) == 2
    assert "wrong admin password?" in capsys.readouterr().err
    assert main(args + ["--experiment", "nope", "--admin-password", PW]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert main(args + ["--experiment", "small", "--admin-password-file",
                        str(tmp_path / "absent")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.postgres
def test_database_loading_on_postgresql(postgres_url, tmp_path, kit):
    srv = kit.start_server(tmp_path, postgres_url, n_trials=6)
    try:
        result = simulate(srv.url, "small", 4, accuracy=0.5, seed=2, admin_password=PW)
        assert result["participants"] == 4 and result["answers"] == 24
        answers = load_answers(db=postgres_url, experiment="small")
        assert len(answers.df) == 24 and answers.populations == ["simulated"]
        assert answers.df["correct"].sum() == result["correct"]
        assert answers.df["catch"].sum() == 4  # the last trial is a catch trial
        assert answers.df["trial_order"].tolist() == list(range(1, 7)) * 4
        csv_path = tmp_path / "export.csv"
        csv_path.write_text(_export_csv(srv.url, "small"))
        _same_tables(answers, load_answers(csv=csv_path))
        out = tmp_path / "report"
        assert main(["report", "--db", postgres_url, "--experiment", "small", "--dpi", "60",
                     "--bootstrap", "100", "--model-intervals", "wald",
                     "--out", str(out)]) == 0
        assert (out / "report.html").is_file()
        # images as bytes from PostgreSQL, readable as pictures
        from analysis.items import from_database
        images = from_database(postgres_url, "small")
        t = images.trials["t0001"]
        assert images.image(t["query"]).size[0] > 0
        assert all(images.image(c) is not None for c in t["candidates"])
    finally:
        srv.stop()

"""The `flask --app server` commands as a user runs them: db upgrade, load-experiment
(validation, idempotence, never overwriting answers), experiment-settings,
admin set-password; and the production SECRET_KEY rule."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from .conftest import ROOT, flask_cli, make_app, server_env, write_experiment


class Result:
    def __init__(self, r):
        self.returncode = r.exit_code
        self.stdout = r.stdout
        self.stderr = r.stderr if r.stderr_bytes is not None else r.output


@pytest.fixture
def env(tmp_path):
    """Run the app's commands in-process through Flask's CLI runner (a subprocess per
    command costs seconds; test_cli_subprocess runs the real `flask` once)."""
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    runner = app.test_cli_runner()

    def run(*args, check=True):
        res = Result(runner.invoke(args=list(args)))
        if check:
            assert res.returncode == 0, res.stderr
        return res
    return run


def flask_run(env, *args, check=True):
    return env(*args, check=check)


def _db(tmp_path):
    return sqlite3.connect(tmp_path / "cli.sqlite3")


def test_load_twice_changes_nothing(tmp_path, env, small_experiment):
    r = flask_run(env, "load-experiment", str(small_experiment), "--name", "s1",
                  "--break-every", "3", "--order", "fixed")
    assert "created" in r.stdout and "6 trials" in r.stdout
    before = _db(tmp_path).execute("select id, token from images order by id").fetchall()
    r = flask_run(env, "load-experiment", str(small_experiment), "--name", "s1")
    assert "unchanged" in r.stdout
    con = _db(tmp_path)
    assert con.execute("select id, token from images order by id").fetchall() == before
    assert con.execute("select count(*) from trials").fetchone() == (6,)
    assert con.execute("select break_every, trial_order from experiments").fetchone() == (3, "fixed")
    # The contract columns analysis reads with plain SQL.
    con.execute("select id, experiment_id, key, condition, subset, pair, catch, true_index, "
                "machine_choices from trials").fetchall()
    con.execute("select id, experiment_id, code, population, assignment_id, worker_id, hit_id "
                "from participants").fetchall()
    con.execute("select id, participant_id, trial_id, chosen_index, rt_ms, received_at, "
                "trial_order from responses").fetchall()
    # Default name: the file's stem.
    assert "created" in flask_run(env, "load-experiment", str(small_experiment)).stdout
    assert con.execute("select name from experiments order by name").fetchall() == [("s1",), ("small",)]


def test_bad_files_give_clear_errors(tmp_path, env, small_experiment):
    study = tmp_path / "study"
    shutil.copytree(small_experiment.parents[1], study)
    exp = study / "experiments" / "small.json"
    doc = json.loads(exp.read_text())
    cases = []
    bad = dict(doc, format="nope")
    cases.append((bad, "format must be 'tll-experiment'"))
    bad = json.loads(json.dumps(doc))
    bad["trials"][0]["candidates"] = bad["trials"][0]["candidates"][:4]
    cases.append((bad, "candidates must be a list of five"))
    bad = json.loads(json.dumps(doc))
    bad["trials"][1]["true_index"] = 5
    cases.append((bad, "true_index must be an integer 0..4"))
    bad = json.loads(json.dumps(doc))
    bad["images"][0]["sha256"] = "0" * 64
    cases.append((bad, "does not match the recorded sha256"))
    bad = json.loads(json.dumps(doc))
    bad["trials"][2]["query"] = "L99999"
    cases.append((bad, "is not among the images"))
    for i, (d, msg) in enumerate(cases):
        f = study / "experiments" / f"bad{i}.json"
        f.write_text(json.dumps(d))
        r = flask_run(env, "load-experiment", str(f), check=False)
        assert r.returncode == 2 and msg in r.stderr, (msg, r.stderr)
        assert "Traceback" not in r.stderr
    (study / "images" / "right" / "00003.png").unlink()
    r = flask_run(env, "load-experiment", str(exp), check=False)
    assert r.returncode == 2 and "R00003: file" in r.stderr and "is missing" in r.stderr
    r = flask_run(env, "load-experiment", str(tmp_path / "none.json"), check=False)
    assert r.returncode == 2 and "no such file" in r.stderr
    (tmp_path / "garbage.json").write_text("{not json")
    r = flask_run(env, "load-experiment", str(tmp_path / "garbage.json"), check=False)
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    assert _db(tmp_path).execute("select count(*) from experiments").fetchone() == (0,)


def test_experiment_with_answers_is_never_overwritten(tmp_path, env):
    f = write_experiment(tmp_path / "study")
    flask_run(env, "load-experiment", str(f), "--name", "x")
    con = _db(tmp_path)
    # A changed file without answers replaces the experiment.
    doc = json.loads(f.read_text())
    doc["seed"] = 7
    f.write_text(json.dumps(doc))
    assert "replaced" in flask_run(env, "load-experiment", str(f), "--name", "x").stdout
    pid = con.execute("select id from trials limit 1").fetchone()[0]
    con.execute("insert into participants (experiment_id, code, attempt, population, token, "
                "sequence, created, user_agent) select id, 'c', 1, 'lab', 'tok', '[%d]', "
                "'2026-01-01', '' from experiments" % pid)
    con.execute("insert into responses (participant_id, trial_id, trial_order, chosen_index, "
                "received_at) values (1, %d, 1, 2, '2026-01-01')" % pid)
    con.commit()
    doc["seed"] = 8
    f.write_text(json.dumps(doc))
    r = flask_run(env, "load-experiment", str(f), "--name", "x", check=False)
    assert r.returncode == 2 and "never overwritten" in r.stderr
    assert con.execute("select seed from experiments").fetchone() == (7,)
    assert con.execute("select count(*) from responses").fetchone() == (1,)


def test_settings_and_password(tmp_path, env, small_experiment):
    flask_run(env, "load-experiment", str(small_experiment), "--name", "s")
    consent = tmp_path / "consent.txt"
    consent.write_text("Our own consent text.\n")
    r = flask_run(env, "experiment-settings", "s", "--consent-file", str(consent),
                  "--allow-repeats", "--no-practice", "--break-every", "10")
    assert "repeats=allow" in r.stdout and "Our own consent text." in r.stdout
    row = _db(tmp_path).execute("select consent_text, repeats, practice, break_every "
                                "from experiments").fetchone()
    assert row == ("Our own consent text.", "allow", 0, 10)
    r = flask_run(env, "experiment-settings", "s", "--repeats", "per-hit",
                  "--min-viewport", "1100x650")
    assert "repeats=per-hit" in r.stdout and "min_viewport=1100x650" in r.stdout
    r = flask_run(env, "experiment-settings", "s", "--min-viewport", "wide", check=False)
    assert r.returncode == 2 and "WIDTHxHEIGHT" in r.stderr and "Traceback" not in r.stderr
    r = flask_run(env, "experiment-settings", "s", "--repeats", "twice", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = flask_run(env, "experiment-settings", "nope", check=False)
    assert r.returncode == 2 and "unknown experiment" in r.stderr
    r = flask_run(env, "experiment-settings", "s", "--order", "sideways", check=False)
    assert r.returncode == 2
    r = flask_run(env, "admin", "set-password", "--password", "short", check=False)
    assert r.returncode == 2 and "at least 8" in r.stderr
    flask_run(env, "admin", "set-password", "--password", "a long password")
    h = _db(tmp_path).execute("select password_hash from admin_users").fetchone()[0]
    assert "a long password" not in h and h.startswith(("scrypt:", "pbkdf2:"))


def test_cli_subprocess(tmp_path, small_experiment):
    """The real `flask --app server` commands in a subprocess, as users run them."""
    e = server_env(tmp_path, f"sqlite:///{tmp_path / 'sub.sqlite3'}")
    r = flask_cli(e, "load-experiment", str(small_experiment), check=False)
    assert r.returncode == 2 and "db upgrade" in r.stderr and "Traceback" not in r.stderr
    flask_cli(e, "db", "upgrade")
    assert "created" in flask_cli(e, "load-experiment", str(small_experiment)).stdout
    key = tmp_path / "instance" / "secret_key"
    first = key.read_text()
    assert "unchanged" in flask_cli(e, "load-experiment", str(small_experiment)).stdout
    # Development keeps one generated key in the instance folder.
    assert key.read_text() == first and len(first.strip()) == 64
    # The web side never imports torch or dlib.
    import subprocess
    import sys
    probe = subprocess.run([sys.executable, "-c", "import sys, server; server.create_app(); "
                            "bad = [m for m in ('torch', 'torchvision', 'dlib') if m in sys.modules]; "
                            "print(bad); sys.exit(1 if bad else 0)"],
                           env=e, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stdout + probe.stderr


def test_production_needs_secret_key(tmp_path, monkeypatch):
    from server import create_app
    from server.config import ConfigError

    monkeypatch.setenv("TLL_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("TLL_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, instance_path=tmp_path / "i")
    assert not (tmp_path / "i" / "secret_key").exists()
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    app = create_app({"SQLALCHEMY_DATABASE_URI": "postgres://u@h/d"}, instance_path=tmp_path / "i")
    assert app.config["SECRET_KEY"] == "s" * 40 and app.config["SESSION_COOKIE_SECURE"]
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/d"

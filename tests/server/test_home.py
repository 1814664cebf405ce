"""The researcher's home (server/home.py) over plain HTTP: admin only, the design, the
machine side's results read from a small fake study folder of the machine side's shape,
the PNG route's path check, live progress per platform and cell, and the report made in
a background process and served from the admin area."""
from __future__ import annotations

import base64
import csv
import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

from server.models import Participant, Response, Trial, db
from tests.server.conftest import login, make_app, write_experiment

HOME = "/manage/home/small"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:correct horse").decode()}
TABLE1 = [["feature_set", "kind", "metric", "N", "pairs_with_feature", "R@1", "R@5", "R@10",
           "R@20", "R@50", "R@100"],
          ["efficientnet_lite0", "generic", "cosine", "8", "8", "37.5", "62.5", "100.0",
           "100.0", "100.0", "100.0"],
          ["face/dlib_hog", "face", "euclidean", "8", "3", "12.5", "25.0", "37.5", "37.5",
           "100.0", "100.0"]]
DESIGN = {"name": "home-test", "trials_per_hit": 1, "catch_trials": 1,
          "conditions": [{"condition": "random", "subset": "TLL_obj", "count": 2},
                         {"condition": "generic", "subset": "TLL_d", "count": 1},
                         {"condition": "face", "subset": "TLL_obj", "count": 1},
                         {"condition": "face_generic", "subset": "TLL_d", "count": 1}],
          "feature_sets": {"generic": "generic/efficientnet_lite0", "face": "face/dlib_hog"}}


def write_machine_results(study: Path) -> None:
    """Write the machine side's files the home reads: Table 1 with its plots for TLL_d,
    and the TLL_d subset with the rules that dropped pairs (shapes of experiments/)."""
    ev = study / "evaluation" / "TLL_d"
    ev.mkdir(parents=True)
    with open(ev / "table1.csv", "w", newline="") as f:
        csv.writer(f).writerows(TABLE1)
    for name, colour in (("recall_curves.png", (200, 30, 30)), ("recall_zoom.png", (30, 30, 200))):
        PILImage.new("RGB", (64, 48), colour).save(ev / name)
    sub = study / "subsets"
    sub.mkdir()
    (sub / "TLL_d.json").write_text(json.dumps({
        "name": "TLL_d", "ids": ["00000", "00001", "00002", "00003", "00004"],
        "params": {"within_cosine": 0.1, "cross_cosine": 0.15},
        "rules": ["left_duplicate", "cross_duplicate"], "feature_sets": ["generic/efficientnet_lite0"],
        "dropped": [{"id": "00005", "rule": "cross_duplicate", "other": "R00001", "distance": 0.12},
                    {"id": "00006", "rule": "cross_duplicate", "other": "R00002", "distance": 0.13},
                    {"id": "00007", "rule": "left_duplicate", "other": "L00001", "distance": 0.05}]}))
    (study / "secret.png").write_bytes((ev / "recall_zoom.png").read_bytes())


def build_home_app(tmp: Path, db_url: str | None = None):
    """Return an app (SQLite unless `db_url`) with experiment `small` (6 trials, design
    DESIGN) loaded from a study folder that holds machine results; admin password
    `correct horse`."""
    from server.loader import load_experiment
    from server.manage import set_password

    study = tmp / "study"
    path = write_experiment(study)
    doc = json.loads(path.read_text())
    doc["design"] = DESIGN
    path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")
    write_machine_results(study)
    app = make_app(tmp, db_url, TLL_TARGET_ANSWERS_PER_TRIAL=3)
    with app.app_context():
        load_experiment(path, name="small", settings={"trial_order": "fixed"})
        set_password("correct horse")
    return app, study


@pytest.fixture
def home_app(tmp_path):
    return build_home_app(tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def any_home_app(request, tmp_path):
    """`home_app` once on SQLite and once on a real PostgreSQL server."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    app, study = build_home_app(tmp_path, url)
    yield app, study
    with app.app_context():
        db.engine.dispose()


def test_home_is_admin_only(home_app):
    app, _ = home_app
    c = app.test_client()
    for path in ("/manage/home/small", "/manage/home/small/trials",
                 "/manage/home/small/study/TLL_d/recall_curves.png",
                 "/manage/home/small/report/latest/report.html"):
        r = c.get(path)
        assert r.status_code == 303 and "/manage/login" in r.headers["Location"], path
    assert c.get("/manage/api/experiments/small/progress").status_code == 401
    assert c.get("/manage/api/experiments/small/report").status_code == 401
    assert c.post("/manage/home/small/report").status_code in (303, 400)
    assert not (Path(app.instance_path) / "reports").exists()


def test_home_shows_design_machine_results_and_next_steps(home_app):
    app, study = home_app
    c = app.test_client()
    login(c, HOME)
    html = c.get("/manage/home/small").get_data(as_text=True)
    # The design: every cell of the file's design with the loaded trials and target.
    for cond in DESIGN["conditions"]:
        assert f"<td>{cond['subset']}</td><td>{cond['condition']}</td><td>{cond['count']}</td>" in html
    assert "<td>TLL_d</td><td>catch</td><td>—</td>\n<td>1</td><td>3</td>" in html
    assert "<td>TLL_obj</td><td>random</td><td>2</td>\n<td>2</td><td>6</td>" in html
    # Table 1 as the study folder holds it, and its plots by the admin-only route.
    for row in TABLE1:
        assert "".join(f"<td>{v}</td>" for v in row) in html or row is TABLE1[0]
    assert 'src="/manage/home/small/study/TLL_d/recall_curves.png"' in html
    assert html.index("recall_curves.png") < html.index("recall_zoom.png")
    # Subset sizes with the rules that dropped pairs and the thresholds.
    assert "<td>TLL_d</td><td>5</td><td>3</td>" in html
    assert "cross_duplicate: 2, left_duplicate: 1" in html
    assert "cross_cosine = 0.15, within_cosine = 0.1" in html
    # The machine's accuracy on the trials, counted independently from the file.
    doc = json.loads((study / "experiments" / "small.json").read_text())
    for key in ("generic/efficientnet_lite0", "face/dlib_hog"):
        for cond in ("random", "generic", "face", "face_generic"):
            ts = [t for t in doc["trials"] if t["condition"] == cond]
            right = sum(t["machine_choices"][key] == t["true_index"] for t in ts)
            chosen = sum(t["machine_choices"][key] is not None for t in ts)
            assert (f"<tr><td>{key}</td><td>{cond}</td><td>{len(ts)}</td><td>{chosen}</td>"
                    f"<td>{right}</td>") in html
    # Next steps for this experiment.
    assert "http://localhost/lab/small/" in html
    assert "mturk publish small --base-url http://localhost --assignments 3" in html
    assert "mturk emulate --port 5050 --allow-http-localhost" in html
    assert "python -m analysis simulate --server http://localhost --experiment small" in html
    assert "--production" in html
    # The page has no inline script (CSP) and no meta refresh.
    assert "<script>" not in html and "http-equiv" not in html
    assert "script-src 'self'" in c.get("/manage/home/small").headers["Content-Security-Policy"]


def test_study_png_path_check(home_app):
    app, study = home_app
    c = app.test_client()
    login(c, HOME)
    r = c.get("/manage/home/small/study/TLL_d/recall_curves.png")
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.data == (study / "evaluation" / "TLL_d" / "recall_curves.png").read_bytes()
    os.symlink(study / "secret.png", study / "evaluation" / "TLL_d" / "link.png")
    for bad in ("TLL_d/..%2F..%2Fsecret.png", "..%2F..%2Fsecret.png/x.png", "TLL_d/link.png",
                "TLL_d/table1.csv", "..%2Fstudy/secret.png", "TLL_d/nothing.png",
                "%2E%2E/secret.png"):
        assert c.get(f"/manage/home/small/study/{bad}").status_code == 404, bad


def test_home_without_study_folder(home_app):
    app, study = home_app
    (study / "experiments" / "small.json").rename(study / "moved.json")
    c = app.test_client()
    login(c, HOME)
    r = c.get("/manage/home/small")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="no-study"' in html and "not reachable" in html
    assert "<td>random</td>" in html  # the design comes from the database
    assert c.get("/manage/home/small/study/TLL_d/recall_curves.png").status_code == 404
    assert c.get("/manage/home/nosuch").status_code == 404


def _participant(app, code, platform, environment, status, completed, answers):
    from server.models import utcnow
    with app.app_context():
        trials = db.session.execute(db.select(Trial).order_by(Trial.position)).scalars().all()
        trials = [t for t in trials if t.experiment.name == "small"]
        p = Participant(experiment_id=trials[0].experiment_id, code=code, token=code * 3,
                        population=platform, platform=platform, environment=environment,
                        submission_status=status, sequence=json.dumps([t.id for t in trials]),
                        completed_at=utcnow() if completed else None)
        db.session.add(p)
        db.session.flush()
        for i, (t, right) in enumerate(zip(trials, answers)):
            db.session.add(Response(participant_id=p.id, trial_id=t.id, trial_order=i + 1,
                                    chosen_index=t.true_index if right else (t.true_index + 1) % 5))
        db.session.commit()


def test_progress_per_platform_and_cell(any_home_app):
    app, _ = any_home_app
    c = app.test_client()
    empty = c.get("/manage/api/experiments/small/progress", headers=AUTH).json
    assert empty["participants"] == [] and empty["answers"] == 0
    _participant(app, "lab1", "lab", "lab", "recorded", True, [1, 1, 0, 1, 0, 1])
    _participant(app, "lab2", "lab", "lab", "recorded", False, [1, 0])
    _participant(app, "mt1", "mturk", "sandbox", "submitted", True, [1, 1, 1, 1, 1, 1])
    _participant(app, "mt2", "mturk", "production", "submitted", True, [0, 0, 0, 0, 0, 0])
    _participant(app, "mt3", "mturk", "production", "returned", False, [1])
    js = c.get("/manage/api/experiments/small/progress", headers=AUTH).json
    groups = {(g["platform"], g["environment"]): g for g in js["participants"]}
    assert groups[("lab", "lab")] == {"platform": "lab", "environment": "lab", "started": 2,
                                      "completed": 1, "withdrawn": 0, "excluded": 0}
    assert groups[("mturk", "sandbox")]["excluded"] == 1  # a rehearsal never counts
    assert groups[("mturk", "production")] == {"platform": "mturk", "environment": "production",
                                               "started": 2, "completed": 1, "withdrawn": 0,
                                               "excluded": 1}
    cells = {c["key"]: c for c in js["cells"]}
    # Trials in position order: t1 TLL_obj/random, t2 TLL_d/generic, t3 TLL_obj/face,
    # t4 TLL_d/face_generic, t5 TLL_obj/random, t6 TLL_d/catch.
    # TLL_obj/random is positions 0 and 4: lab1 both, lab2 the first, mt1 and mt2 both,
    # mt3 the first.
    assert cells["TLL_obj/random"]["answers"] == 2 + 1 + 2 + 2 + 1
    assert cells["TLL_obj/random"]["true_match"] == 1 + 1 + 2 + 0 + 1
    assert cells["TLL_obj/random"]["target"] == 6
    assert cells["TLL_d/generic"]["answers"] == 4 and cells["TLL_d/generic"]["true_match"] == 2
    assert cells["TLL_d/catch"]["answers"] == 3 and cells["TLL_d/catch"]["target"] == 3
    assert js["answers"] == 6 + 2 + 6 + 6 + 1


def wait_report(c, timeout=180.0) -> dict:
    """Poll the report status until it is no longer running (bounded); return it."""
    end = time.time() + timeout
    while time.time() < end:
        js = c.get("/manage/api/experiments/small/report").json
        if js["current"] and js["current"]["state"] != "running":
            return js
        time.sleep(0.5)
    raise AssertionError("the report did not finish in time")


def test_report_in_background_and_served(any_home_app):
    app, _ = any_home_app
    c = app.test_client()
    token = login(c, HOME)
    # No answers yet: the report process fails and says why; nothing is served.
    r = c.post("/manage/home/small/report", data={"csrf_token": token},
               headers={"Accept": "application/json"})
    assert r.status_code == 202 and r.json["state"] == "running"
    js = wait_report(c)
    assert js["current"]["state"] == "failed" and js["latest"] is None
    assert "answer" in js["current"]["log"].lower()
    assert c.get("/manage/home/small/report/latest/report.html").status_code == 404
    # A POST without the CSRF token starts nothing.
    assert c.post("/manage/home/small/report").status_code == 400

    for i in range(3):
        _participant(app, f"sim{i}", "simulated", "simulated", "recorded", True,
                     [1, i % 2, 1, 0, 1, 1])
    t0 = time.time()
    r = c.post("/manage/home/small/report", data={"csrf_token": token})
    # The request returns at once: the work is another process's.
    assert r.status_code == 303 and time.time() - t0 < 5
    js = wait_report(c)
    assert js["current"]["state"] == "done", js
    latest = js["latest"]
    page = c.get(latest["url"])
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "counted 18 of 18 answers" in page.get_data(as_text=True)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "img-src 'self' data:" in csp
    assert c.get("/manage/home/small/report/latest/report.html").data == page.data
    out = Path(app.instance_path) / "reports" / "small" / latest["id"] / "out"
    pngs = sorted(p.name for p in out.glob("*.png"))
    csvs = sorted(p.name for p in out.glob("*.csv"))
    assert pngs and csvs
    r = c.get(f"/manage/home/small/report/{latest['id']}/{pngs[0]}")
    assert r.status_code == 200 and r.data[:8] == b"\x89PNG\r\n\x1a\n"
    r = c.get(f"/manage/home/small/report/{latest['id']}/{csvs[0]}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    for bad in (f"{latest['id']}/..%2F..%2F..%2Fserver.sqlite3", f"{latest['id']}/log.txt",
                "..%2Fsmall/report.html", "20990101T000000.000000Z-abcdef/report.html",
                "20990101T000000Z-abcdef/report.html"):
        assert c.get(f"/manage/home/small/report/{bad}").status_code == 404, bad
    home = c.get("/manage/home/small").get_data(as_text=True)
    assert f"/manage/home/small/report/{latest['id']}/report.html" in home


def test_index_names_no_study(home_app):
    app, _ = home_app
    html = app.test_client().get("/").get_data(as_text=True)
    assert "small" not in html and "/lab/" not in html


def test_gallery_marks_true_match(home_app):
    app, _ = home_app
    c = app.test_client()
    login(c, HOME)
    html = c.get("/manage/home/small/trials").get_data(as_text=True)
    with app.app_context():
        trials = db.session.execute(db.select(Trial).order_by(Trial.position)).scalars().all()
        for t in trials:
            card = html.split(f'id="trial-{t.key}"', 1)[1].split("</article>", 1)[0]
            items = card.split("<li ")[1:]
            assert len(items) == 5
            assert [i.startswith('class="true-match"') for i in items] == \
                [k == t.true_index for k in range(5)]
    # Images by their opaque tokens only: no file name of the study reaches the page.
    assert ".png" not in html and html.count('src="/i/') == 6 * 6


def test_old_reports_are_pruned(home_app, monkeypatch):
    from server import home
    app, _ = home_app
    monkeypatch.setattr(home, "KEEP_REPORTS", 3)
    base = Path(app.instance_path) / "reports" / "small"
    for k in range(5):
        job = base / f"2026010{k + 1}T000000.000000Z-00000{k}"
        (job / "out").mkdir(parents=True)
        (job / "job.json").write_text(json.dumps({"started": time.time() - 100 + k}))
        (job / "rc").write_text("0\n")
        (job / "out" / "report.html").write_text(f"<p>report {k}</p>")
    (base / "not-a-job").mkdir()
    c = app.test_client()
    token = login(c, HOME)
    assert c.get("/manage/home/small/report/latest/report.html").data == b"<p>report 4</p>"
    r = c.post("/manage/home/small/report", data={"csrf_token": token},
               headers={"Accept": "application/json"})
    assert r.status_code == 202
    kept = sorted(p.name for p in base.iterdir())
    # The new job and the two newest finished ones; other folders are not touched.
    assert kept == ["20260104T000000.000000Z-000003", "20260105T000000.000000Z-000004", r.json["id"],
                    "not-a-job"]
    wait_report(c)  # (fails: no answers) the latest finished report stays served
    assert c.get("/manage/home/small/report/latest/report.html").data == b"<p>report 4</p>"


def test_report_process_gets_the_database_url_outside_its_argv(home_app, monkeypatch):
    """The report's process list entry never shows the database URL (it may hold a
    PostgreSQL password): the URL travels in the environment (TLL_ANALYSIS_DB)."""
    from server import home
    app, _ = home_app
    seen = {}

    class Fake:
        def __init__(self, args, env=None, **kw):
            seen["args"], seen["env"] = args, env

        def wait(self):
            return 0

    monkeypatch.setattr(home.subprocess, "Popen", Fake)
    c = app.test_client()
    token = login(c, HOME)
    r = c.post("/manage/home/small/report", data={"csrf_token": token},
               headers={"Accept": "application/json"})
    assert r.status_code == 202
    with app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
    assert url not in " ".join(seen["args"]) and "--db" not in " ".join(seen["args"])
    assert seen["env"]["TLL_ANALYSIS_DB"] == url

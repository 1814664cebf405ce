"""The researcher's home in the admin area (/manage/home/<experiment>): the design, the
machine side's results read from the study folder (Table 1, recall curves, subsets), the
machine's accuracy on the experiment's trials, a gallery of the trials, live progress
(polled as JSON by static/home.js), the analysis report run in a background process, and
the next steps for this experiment.

The web side reads the machine side's files (CSV, JSON, PNG) directly and never imports
experiments/ or torch; the report is `python -m analysis report` in its own process
(state kept in files under the instance folder, so every gunicorn worker sees it)."""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from sqlalchemy import case, func, select

from . import ROOT
from . import recording as rec
from .manage import login_required
from .models import Experiment, Image, Participant, Trial, db
from .models import Response as Answer

bp = Blueprint("home", __name__, url_prefix="/manage")

# Answers wanted per trial when the design does not say (the paper: 20 workers per HIT).
DEFAULT_TARGET_PER_TRIAL = 20
REPORT_NICE = 10
KEEP_REPORTS = 10
JOB_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
REPORT_FILES = re.compile(r"^[A-Za-z0-9_.-]+\.(html|png|csv|svg)$")
MIMES = {"html": "text/html", "png": "image/png", "csv": "text/csv", "svg": "image/svg+xml"}
# The report is our own HTML with figures embedded as data: URIs and one <style>: allowed
# on the report route only, with no script at all.
REPORT_CSP = {"default-src": "'none'", "img-src": "'self' data:",
              "style-src": "'unsafe-inline'", "script-src": "'none'",
              "object-src": "'none'", "base-uri": "'none'", "form-action": "'none'",
              "frame-ancestors": "'none'"}


# --------------------------------------------------------------------------- design
def design_cells(exp: Experiment) -> list[dict]:
    """Return the design's cells, one per (subset, condition) plus `catch` when the
    experiment has catch trials: {subset, condition, planned (the design's count),
    trials (loaded), target (answers wanted)}."""
    design = json.loads(exp.design or "{}")
    per_trial = int(current_app.config.get("TLL_TARGET_ANSWERS_PER_TRIAL",
                                            DEFAULT_TARGET_PER_TRIAL))
    loaded = Counter((t.subset, t.condition) for t in exp.trials)
    cells, seen = [], set()
    for c in design.get("conditions") or []:
        key = (str(c.get("subset", "")), str(c.get("condition", "")))
        seen.add(key)
        cells.append({"subset": key[0], "condition": key[1], "planned": c.get("count"),
                      "trials": loaded.get(key, 0)})
    for key in sorted(set(loaded) - seen):
        # Catch trials and any cell the design does not list (a hand-written file).
        cells.append({"subset": key[0], "condition": key[1], "planned": None,
                      "trials": loaded[key]})
    for c in cells:
        c["key"] = f"{c['subset']}/{c['condition']}"
        c["target"] = c["trials"] * per_trial
    return cells


def machine_accuracy(exp: Experiment) -> list[dict]:
    """Return, per feature set and condition, how often the machine's choice recorded in
    the experiment file is the true match: {feature_set, condition, trials, with_choice,
    correct, share (of all trials; a trial without a choice counts as wrong)}."""
    acc: dict[tuple[str, str], list[int]] = {}
    for t in exp.trials:
        if t.catch:
            continue
        for key, choice in json.loads(t.machine_choices or "{}").items():
            n = acc.setdefault((key, t.condition), [0, 0, 0])
            n[0] += 1
            if choice is not None:
                n[1] += 1
                n[2] += int(choice == t.true_index)
    return [{"feature_set": k, "condition": c, "trials": n, "with_choice": w, "correct": r,
             "share": r / n if n else None}
            for (k, c), (n, w, r) in sorted(acc.items())]


# --------------------------------------------------------------------------- study folder
@lru_cache(maxsize=32)
def _image_root(path: str, mtime: float) -> str | None:
    with open(path, encoding="utf-8") as f:
        root = json.load(f).get("image_root")
    return root if isinstance(root, str) else None


def study_folder(exp: Experiment) -> tuple[Path | None, str]:
    """Return (the study folder of `exp`, '') when it is reachable from this server, else
    (None, why not): the experiment file's folder joined with its `image_root`."""
    src = Path(exp.source_path or "")
    if not exp.source_path or not src.is_file():
        return None, f"the experiment file {exp.source_path or '(unknown)'} is not reachable from this server"
    try:
        root = _image_root(str(src), src.stat().st_mtime)
    except (OSError, ValueError) as e:
        return None, f"the experiment file {src} cannot be read: {e.__class__.__name__}"
    if root is None:
        return None, f"the experiment file {src} has no image_root"
    folder = (src.parent / root).resolve()
    if not folder.is_dir():
        return None, f"the study folder {folder} is not reachable from this server"
    return folder, ""


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return (rows[0], rows[1:]) if rows else ([], [])


def evaluations(folder: Path) -> list[dict]:
    """Return each evaluation under `folder`/evaluation (one per subset): {subset,
    header, rows (Table 1), plots (PNG names, recall curves first)}."""
    out = []
    base = folder / "evaluation"
    if not base.is_dir():
        return out
    for d in sorted(p for p in base.iterdir() if p.is_dir() and (p / "table1.csv").is_file()):
        header, rows = _read_csv(d / "table1.csv")
        pngs = sorted((p.name for p in d.glob("*.png") if p.is_file()),
                      key=lambda n: (not n.startswith("recall_curves"),
                                     not n.startswith("recall"), n))
        out.append({"subset": d.name, "header": header, "rows": rows, "plots": pngs})
    return out


def subsets(folder: Path) -> list[dict]:
    """Return the study's subsets: {name, size, dropped, by_rule (Counter of the rules that
    dropped pairs), rules (the rules applied), params (thresholds), feature_sets}."""
    out = []
    base = folder / "subsets"
    if not base.is_dir():
        return out
    for f in sorted(base.glob("*.json")):
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out.append({"name": f.stem, "error": "not readable JSON"})
            continue
        dropped = doc.get("dropped") or []
        out.append({"name": doc.get("name", f.stem), "size": len(doc.get("ids") or []),
                    "dropped": len(dropped),
                    "by_rule": sorted(Counter(d.get("rule", "?") for d in dropped).items()),
                    "rules": doc.get("rules") or [], "params": doc.get("params") or {},
                    "feature_sets": doc.get("feature_sets") or []})
    return out


# --------------------------------------------------------------------------- progress
def counted_by_default(platform: str, environment: str, status: str) -> bool:
    """Return True when the analysis' default rules (analysis.counting.DEFAULTS, the one
    table of them) count a participant with this provenance; KeyError for an unknown
    platform."""
    from analysis.counting import DEFAULTS  # the analysis' own table, read lazily

    rule = DEFAULTS[platform]
    return environment in rule["environments"] and (
        rule["statuses"] is None or status in rule["statuses"])


def progress(exp: Experiment) -> dict:
    """Return live progress: participants started / completed / withdrawn / excluded per
    (platform, environment), and answers per design cell with the target and the true-match share."""
    q = (select(Participant.platform, Participant.environment, Participant.submission_status,
                func.count(Participant.id),
                func.sum(case((Participant.completed_at.is_not(None), 1), else_=0)),
                func.sum(case((Participant.withdrawn_at.is_not(None), 1), else_=0)))
         .where(Participant.experiment_id == exp.id)
         .group_by(Participant.platform, Participant.environment,
                   Participant.submission_status))
    groups: dict[tuple[str, str], dict] = {}
    for plat, env, status, n, done, gone in db.session.execute(q).all():
        g = groups.setdefault((plat, env), {"platform": plat, "environment": env,
                                            "started": 0, "completed": 0, "withdrawn": 0,
                                            "excluded": 0})
        g["started"] += int(n)
        g["completed"] += int(done or 0)
        g["withdrawn"] += int(gone or 0)
        try:
            counted = counted_by_default(plat, env, status)
        except KeyError:
            counted = False
        # Withdrawn participants are the analysis' first exclusion rule.
        g["excluded"] += int(n) if not counted else int(gone or 0)
    aq = (select(Trial.subset, Trial.condition, func.count(Answer.id),
                 func.sum(case((Answer.chosen_index == Trial.true_index, 1), else_=0)))
          .join(Answer, Answer.trial_id == Trial.id)
          .where(Trial.experiment_id == exp.id).group_by(Trial.subset, Trial.condition))
    answers = {(s, c): (int(n), int(k or 0)) for s, c, n, k in db.session.execute(aq).all()}
    cells = []
    for c in design_cells(exp):
        n, k = answers.get((c["subset"], c["condition"]), (0, 0))
        cells.append({**c, "answers": n, "true_match": k, "share": (k / n) if n else None})
    return {"experiment": exp.name, "participants": sorted(groups.values(),
                                                           key=lambda g: (g["platform"], g["environment"])),
            "cells": cells, "answers": sum(c["answers"] for c in cells),
            "time": datetime.now(UTC).isoformat(timespec="seconds")}


# --------------------------------------------------------------------------- reports
def _reports_dir(exp: Experiment) -> Path:
    return Path(current_app.instance_path) / "reports" / exp.name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_state(job: Path) -> dict:
    """Return a report job's state from its files: {id, state (running | done | failed),
    started, elapsed_s, stage (the last line it printed), rc}."""
    info = json.loads((job / "job.json").read_text())
    rc_file, log = job / "rc", job / "log.txt"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    stage = next((ln for ln in reversed(lines) if ln.strip()), "starting")
    rc = None
    if rc_file.is_file():
        rc = int(rc_file.read_text().strip() or 1)
        state = "done" if rc == 0 and (job / "out" / "report.html").is_file() else "failed"
        end = rc_file.stat().st_mtime
    else:
        pid_file = job / "pid"
        pid = int(pid_file.read_text().strip()) if pid_file.is_file() else None
        state = "running" if (pid is None and time.time() - info["started"] < 30) or \
            (pid is not None and _alive(pid)) else "failed"
        end = time.time()
        if state == "failed":
            stage = "the report process stopped without finishing"
    return {"id": job.name, "state": state, "started": info["started"],
            "elapsed_s": round(end - info["started"], 1), "stage": stage[:300], "rc": rc,
            "log": "\n".join(lines[-15:]) if state == "failed" else ""}


def jobs(exp: Experiment) -> list[dict]:
    """Return the experiment's report jobs, newest first."""
    base = _reports_dir(exp)
    if not base.is_dir():
        return []
    return [job_state(d) for d in sorted(base.iterdir(), reverse=True)
            if JOB_ID.match(d.name) and (d / "job.json").is_file()]


def start_report(exp: Experiment) -> dict:
    """Start `python -m analysis report` on the current answers in a background process
    (its own session, so it outlives a request and never runs in a web thread); return
    the new job's state, or the running one's when a report is already being made."""
    previous = jobs(exp)
    for j in previous:
        if j["state"] == "running":
            return j
    # Keep the newest KEEP_REPORTS reports (the latest finished one always among them).
    for j in previous[KEEP_REPORTS - 1:]:
        shutil.rmtree(_reports_dir(exp) / j["id"], ignore_errors=True)
    # Microseconds: two reports within one second still sort newest first by name.
    job_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)
    job = _reports_dir(exp) / job_id
    job.mkdir(parents=True)
    (job / "job.json").write_text(json.dumps({"started": time.time(), "experiment": exp.name}))
    url = db.engine.url.render_as_string(hide_password=False)
    # The database URL (which may hold a password) goes in the environment, not in argv,
    # which every user on the machine can read in the process list.
    cmd = [sys.executable, "-m", "analysis", "report",
           "--experiment", exp.name, "--out", str(job / "out")]
    # sh writes the exit status itself, so the state survives the web worker that began it;
    # `nice` leaves the CPU to the answer path first on a small machine.
    # The pid file appears whole (written aside, then renamed), as the exit status does:
    # a status request must never read it half-written.
    script = (f"echo $$ > pid.tmp && mv pid.tmp pid; nice -n {REPORT_NICE} {shlex.join(cmd)} > log.txt 2>&1; "
              "echo $? > rc.tmp && mv rc.tmp rc")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", MPLBACKEND="Agg",
               TLL_ANALYSIS_DB=url)
    proc = subprocess.Popen(["sh", "-c", script], cwd=job, env=env, start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # Only reaps the finished child (no zombie); the work is in the other process.
    threading.Thread(target=proc.wait, daemon=True).start()
    return job_state(job)


def latest_report(exp: Experiment) -> dict | None:
    """Return the newest finished report job, or None."""
    return next((j for j in jobs(exp) if j["state"] == "done"), None)


# --------------------------------------------------------------------------- routes
def _next_steps(exp: Experiment) -> dict:
    base = request.host_url.rstrip("/")
    name = shlex.quote(exp.name)
    flask = ".venv/bin/flask --app server"
    return {
        "link": url_for("lab.landing", name=exp.name, _external=True),
        "dry_run": [
            f"{flask} mturk emulate --port 5050 --allow-http-localhost --state build/mturk-local.json",
            "export MTURK_ENDPOINT_URL=http://127.0.0.1:5050 "
            "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
            f"{flask} mturk publish {name} --base-url {base} --assignments 3",
            "# open http://127.0.0.1:5050/ → a HIT → Accept → answer → Submit HIT",
            f"{flask} mturk status {name}",
            f"{flask} mturk sync {name}",
            f"{flask} mturk review {name}",
            f"{flask} mturk approve {name} --passed-catch",
            f"{flask} mturk expire {name} && {flask} mturk delete {name}",
        ],
        "simulate": (f".venv/bin/python -m analysis simulate --server {base} --experiment {name} "
                     "--participants 20 --accuracy 0.75 --admin-password-file FILE"),
        "publish": [
            "unset MTURK_ENDPOINT_URL   # the real MTurk; AWS credentials as for the AWS CLI",
            f"{flask} mturk publish {name} --base-url https://YOUR.HOST --reward 0.05 --assignments 20",
            f"{flask} mturk publish {name} --base-url https://YOUR.HOST --reward 0.05 "
            "--assignments 20 --production",
            f"{flask} mturk sync {name} && {flask} mturk review {name}",
        ],
    }


@bp.get("/home/<name>")
@login_required
def home(name: str):
    exp = rec.get_experiment(name)
    folder, why = study_folder(exp)
    return render_template(
        "manage/home.html", exp=exp, design=json.loads(exp.design or "{}"),
        cells=design_cells(exp), machine=machine_accuracy(exp), folder=folder, why=why,
        evaluations=evaluations(folder) if folder else [],
        subsets=subsets(folder) if folder else [], progress=progress(exp),
        jobs=jobs(exp)[:5], latest=latest_report(exp), steps=_next_steps(exp))


@bp.get("/home/<name>/trials")
@login_required
def gallery(name: str):
    exp = rec.get_experiment(name)
    toks = dict(db.session.execute(select(Image.id, Image.token)
                                   .where(Image.experiment_id == exp.id)).all())
    trials = [{"key": t.key, "condition": t.condition, "subset": t.subset, "pair": t.pair,
               "catch": t.catch, "true_index": t.true_index, "hit": t.hit_key,
               "query": toks[t.query_image_id], "candidates": [toks[i] for i in t.candidate_ids()],
               "machine": json.loads(t.machine_choices or "{}")} for t in exp.trials]
    return render_template("manage/home_trials.html", exp=exp, trials=trials)


@bp.get("/home/<name>/study/<subset>/<filename>")
@login_required
def study_png(name: str, subset: str, filename: str):
    """A PNG of the study folder's evaluation/<subset>/, after a path check."""
    exp = rec.get_experiment(name)
    folder, _ = study_folder(exp)
    if folder is None or not filename.endswith(".png"):
        abort(404)
    base = (folder / "evaluation").resolve()
    path = (base / subset / filename).resolve()
    # Resolved (symlinks followed) and still inside evaluation/: no way out of the folder.
    if path.parent.parent != base or not path.is_file():
        abort(404)
    return send_file(path, mimetype="image/png", max_age=0)


@bp.get("/api/experiments/<name>/progress")
@login_required
def api_progress(name: str):
    return jsonify(progress(rec.get_experiment(name)))


@bp.post("/home/<name>/report")
@login_required
def report_start(name: str):
    exp = rec.get_experiment(name)
    j = start_report(exp)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(j), 202
    return redirect(url_for("home.home", name=exp.name, _anchor="report"), 303)


@bp.get("/api/experiments/<name>/report")
@login_required
def api_report(name: str):
    exp = rec.get_experiment(name)
    all_jobs = jobs(exp)
    latest = next((j for j in all_jobs if j["state"] == "done"), None)
    if latest:
        latest["url"] = url_for("home.report_file", name=exp.name, job=latest["id"],
                                filename="report.html")
    return jsonify(current=all_jobs[0] if all_jobs else None, latest=latest)


@bp.get("/home/<name>/report/<job>/<filename>")
@login_required
def report_file(name: str, job: str, filename: str):
    exp = rec.get_experiment(name)
    if job == "latest":
        lj = latest_report(exp)
        if lj is None:
            abort(404)
        job = lj["id"]
    m = REPORT_FILES.match(filename)
    if not JOB_ID.match(job) or not m:
        abort(404)
    path = _reports_dir(exp) / job / "out" / filename
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype=MIMES[m.group(1)], max_age=0)


report_file.talisman_view_options = {"content_security_policy": REPORT_CSP}

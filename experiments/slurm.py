"""Feature extraction and evaluation on a Slurm cluster: a job array (one shard per task,
the same settings for every task) plus a finalize job that runs once every task has
succeeded (``--dependency=afterok``): for features it assembles the feature set and
verifies it, for evaluate it merges the shards' distance passes into the tables.

The job folder ``STUDY_DIR/slurm/<kind>-<name>/`` holds ``task.sh``, ``finalize.sh``,
``job.json`` (the command, the settings and every submission's job ids), ``logs/`` and, once done,
``finalized.json``. `status` reads squeue and sacct (or ``scontrol show job`` where
accounting is off); `resubmit` submits only the failed tasks again, with a new finalize
job depending on them."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from experiments import files

ROOT = Path(__file__).resolve().parents[1]
FAILED_STATES = {"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
                 "PREEMPTED", "CANCELLED"}
LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING",
               "SUSPENDED"}


class SlurmError(Exception):
    """A Slurm step failed or cannot run; the message says what to do."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SlurmError(f"{name} not found: --slurm needs Slurm's client commands "
                         "(sbatch, squeue, scontrol) on PATH")
    return path


def _run(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SlurmError(f"{' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def job_dir(study: str | os.PathLike, key: str) -> Path:
    """Return the job folder of feature set ``key`` of a study."""
    return Path(study).resolve() / "slurm" / key.replace("/", "-")


COMMANDS = ("features", "evaluate")


def write_job(study: str | os.PathLike, key: str, feature_args: list[str], tasks: int,
              cpus_per_task: int, sbatch_args: list[str] | None = None,
              command: str = "features") -> Path:
    """Write the job folder of ``key``: ``task.sh`` (the array, each task ``COMMAND
    STUDY feature_args --shard I/tasks``, COMMAND one of COMMANDS), ``finalize.sh`` and
    ``job.json``; return it."""
    if command not in COMMANDS:
        raise SlurmError(f"unknown command {command!r} (use {' or '.join(COMMANDS)})")
    if tasks < 1 or cpus_per_task < 1:
        raise SlurmError("--tasks and --cpus-per-task must be at least 1")
    folder = job_dir(study, key)
    files.make_dirs(folder / "logs")
    study = str(Path(study).resolve())
    extra = "".join(f"#SBATCH {a}\n" for a in (sbatch_args or []))
    name = key.replace("/", "-")
    quoted = " ".join(shlex.quote(a) for a in feature_args)
    head = f"cd {shlex.quote(str(ROOT))}\n"
    task = (f"#!/bin/bash\n#SBATCH --job-name=tll-{name}\n#SBATCH --array=1-{tasks}\n"
            f"#SBATCH --cpus-per-task={cpus_per_task}\n"
            f"#SBATCH --output={folder}/logs/task-%A-%a.out\n{extra}"
            "# Every task runs the same command with the same settings but its shard: the\n"
            "# settings are recorded with each result and the finalize job refuses a mix.\n"
            f"set -euo pipefail\n{head}"
            f"exec {shlex.quote(sys.executable)} -m experiments {command} {shlex.quote(study)} "
            f"{quoted} --shard \"${{SLURM_ARRAY_TASK_ID}}/{tasks}\"\n")
    finalize = (f"#!/bin/bash\n#SBATCH --job-name=tll-{name}-finalize\n"
                f"#SBATCH --cpus-per-task={cpus_per_task}\n"
                f"#SBATCH --output={folder}/logs/finalize-%j.out\n{extra}"
                f"set -euo pipefail\n{head}"
                f"exec {shlex.quote(sys.executable)} -m experiments slurm finalize "
                f"{shlex.quote(str(folder))}\n")
    files.write_text(folder / "task.sh", task)
    files.write_text(folder / "finalize.sh", finalize)
    for script in ("task.sh", "finalize.sh"):
        (folder / script).chmod(0o755)
    (folder / "finalized.json").unlink(missing_ok=True)
    files.write_json(folder / "job.json", {
        "command": command, "study": study, "key": key, "tasks": tasks, "cpus_per_task": cpus_per_task,
        "feature_args": feature_args, "sbatch_args": sbatch_args or [], "submissions": []})
    return folder


def _load(folder: str | os.PathLike) -> dict:
    try:
        return json.loads((Path(folder) / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SlurmError(f"{folder} is not a job folder written by `features --slurm` or `evaluate --slurm` "
                         "(no readable job.json)") from None


def _submit(folder: Path, job: dict, array: str | None) -> dict:
    sbatch = _tool("sbatch")
    args = [sbatch, "--parsable"] + ([f"--array={array}"] if array else []) + [str(folder / "task.sh")]
    array_id = _run(args).strip().split(";")[0]
    fin = _run([sbatch, "--parsable", f"--dependency=afterok:{array_id}",
                str(folder / "finalize.sh")]).strip().split(";")[0]
    sub = {"array": array_id, "tasks": array or f"1-{job['tasks']}", "finalize": fin}
    job["submissions"].append(sub)
    files.write_json(folder / "job.json", job)
    return sub


def submit(folder: str | os.PathLike) -> dict:
    """Submit the job array and its dependent finalize job; return ``{"array", "tasks",
    "finalize"}`` (the job ids), also recorded in job.json."""
    folder = Path(folder)
    return _submit(folder, _load(folder), None)


def _scontrol_rows(job_id: str) -> list[dict]:
    proc = subprocess.run([_tool("scontrol"), "-o", "show", "job", job_id], capture_output=True,
                          text=True, timeout=60)
    rows = []
    for line in proc.stdout.splitlines():
        f = dict(part.split("=", 1) for part in line.split() if "=" in part)
        rows.append({"job": f.get("JobId"), "task": f.get("ArrayTaskId"),
                     "state": f.get("JobState"), "exit": f.get("ExitCode"),
                     "reason": f.get("Reason", "None")})
    return rows


def _sacct_rows(job_id: str) -> list[dict] | None:
    sacct = shutil.which("sacct")
    if sacct is None:
        return None
    proc = subprocess.run([sacct, "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,ExitCode,Reason"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or "disabled" in proc.stderr + proc.stdout:
        return None
    rows = []
    for line in proc.stdout.splitlines():
        jid, state, code, reason = (line.split("|") + ["", "", "", ""])[:4]
        task = jid.split("_", 1)[1] if "_" in jid else None
        rows.append({"job": jid, "task": task, "state": state.split()[0] if state else "",
                     "exit": code, "reason": reason or "None"})
    return rows


def status(folder: str | os.PathLike) -> tuple[list[dict], str, str]:
    """Return ``(rows, squeue text, source)``: one row per array task and finalize job of
    every submission (``role``, ``job``, ``task``, ``state``, ``exit``, ``reason``), the
    squeue lines of those jobs still queued, and where the states came from (``sacct``,
    or ``scontrol`` where accounting is off)."""
    job = _load(folder)
    ids = [i for s in job["submissions"] for i in (s["array"], s["finalize"])]
    if not ids:
        raise SlurmError(f"{folder}: nothing submitted yet")
    proc = subprocess.run([_tool("squeue"), "-r", "-j", ",".join(ids), "-o",
                           "%.12i %.10T %.22r %j"], capture_output=True, text=True, timeout=60)
    # squeue refuses ids the controller has forgotten (finished over MinJobAge ago)
    queue = proc.stdout if proc.returncode == 0 else "(none of these jobs is queued)\n"
    rows, source = [], "sacct"
    for sub in job["submissions"]:
        for role, jid in (("task", sub["array"]), ("finalize", sub["finalize"])):
            got = _sacct_rows(jid)
            if got is None:
                got, source = _scontrol_rows(jid), "scontrol"
            for r in got:
                rows.append(dict(r, role=role, submission=sub["array"]))
    return rows, queue, source


def status_text(folder: str | os.PathLike) -> str:
    """Return the lines `slurm status` prints."""
    rows, queue, source = status(folder)
    lines = [f"job folder {folder}; states from {source}",
             f"{'role':<9} {'job':>10} {'task':>5} {'state':<12} {'exit':<6} reason"]
    for r in rows:
        lines.append(f"{r['role']:<9} {str(r['job']):>10} {str(r['task'] or '-'):>5} "
                     f"{str(r['state']):<12} {str(r['exit']):<6} {r['reason']}")
    lines.append("squeue:")
    lines += ["  " + line for line in queue.rstrip("\n").splitlines()]
    done = Path(folder) / "finalized.json"
    if done.is_file():
        lines.append(f"finalized: {done}")
    return "\n".join(lines)


def resubmit_failed(folder: str | os.PathLike) -> dict:
    """Submit again only the array tasks whose latest attempt failed, with a new
    finalize job depending on them (the old one, which can never run, is cancelled);
    return the submission. Refused while any task is queued or running."""
    folder = Path(folder)
    job = _load(folder)
    rows, _, _ = status(folder)
    tasks = [r for r in rows if r["role"] == "task" and r["task"]]
    if any(r["state"] in LIVE_STATES for r in tasks):
        raise SlurmError("some tasks are still queued or running: wait for the array to "
                         "finish, then resubmit the failed ones")
    latest: dict[str, str] = {}
    for sub in job["submissions"]:            # later submissions override earlier ones
        for r in tasks:
            if r["submission"] == sub["array"]:
                latest[str(r["task"])] = r["state"]
    failed = sorted((t for t, s in latest.items() if s in FAILED_STATES), key=int)
    if not failed:
        raise SlurmError("no failed task to resubmit")
    for r in rows:
        if r["role"] == "finalize" and r["state"] == "PENDING":
            _run([_tool("scancel"), str(r["job"])])
    return _submit(folder, job, ",".join(failed))


def finalize(folder: str | os.PathLike) -> dict:
    """Assemble the feature set (every task's results are in the cache) with the job's
    settings, verify it and write ``finalized.json``; return the verification. Raise
    SlurmError when the set is incomplete, mixes settings or does not match the job.
    For an evaluate job: write the evaluation from the tasks' shards (which the merge
    checks: every row once, the same pairs, chunk and feature sets)."""
    from experiments.manifest import load_manifest
    from experiments.store import FeatureStore, StoreError

    folder = Path(folder)
    job = _load(folder)
    if job.get("command", "features") == "evaluate":
        return _finalize_evaluate(folder, job)
    proc = subprocess.run([sys.executable, "-m", "experiments", "features", job["study"],
                           *job["feature_args"]], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SlurmError(f"assembling {job['key']} failed: {proc.stderr.strip()}")
    store = FeatureStore(job["study"])
    try:
        fs = store.load(job["key"])
    except StoreError as exc:
        raise SlurmError(str(exc)) from None
    manifest = load_manifest(job["study"])
    images = len({s for p in manifest.pairs for s in (p.left.sha256, p.right.sha256)})
    meta = fs.meta
    checks = {
        "complete": bool(meta.get("complete")),
        "ids_match_manifest": fs.ids == manifest.ids,
        "one_setting": not meta.get("mixed_settings") and len(meta.get("compute", [])) == 1,
        "every_image_computed": sum(c.get("images", 0) for c in meta.get("compute", [])) == images,
    }
    if not all(checks.values()):
        bad = ", ".join(k for k, v in checks.items() if not v)
        raise SlurmError(f"{job['key']} failed verification: {bad}")
    out = {"key": job["key"], "images": images, "pairs": len(manifest.ids),
           "compute": meta["compute"][0], "checks": checks, "created": meta.get("created"),
           "assembled": proc.stdout.strip()}
    files.write_json(folder / "finalized.json", out)
    return out


def _finalize_evaluate(folder: Path, job: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "experiments", "evaluate", job["study"],
                           *job["feature_args"], "--from-shards", str(job["tasks"])],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SlurmError(f"merging the shards of {job['key']} failed: {proc.stderr.strip()}")
    out = {"key": job["key"], "tasks": job["tasks"], "checks": {"shards_merged": True},
           "summary": proc.stdout.strip()}
    files.write_json(folder / "finalized.json", out)
    return out

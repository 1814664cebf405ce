"""Feature extraction through a real single-node Slurm (Debian's slurm-wlm with munge),
started on loopback by a fixture: a job array of shards plus a dependent finalize job,
a failed task resubmitted alone, and a result byte-identical to a single-machine run."""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import slurm as slurm_mod
from experiments import store as store_mod
from experiments.features import extract
from experiments.manifest import load_manifest
from tests.conftest import copy_demo_pairs, run_cli

PAIRS = ["00001", "00002", "00003", "00004", "00005", "00010"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """munged, slurmctld and slurmd for one node, all on 127.0.0.1, with their own key,
    sockets, state and logs in a temporary folder; SLURM_CONF points at it while the
    module runs. Stopped (their own processes only) at the end."""
    for tool in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol"):
        assert shutil.which(tool), f"{tool} missing: run `sh scripts/setup-system.sh test`"
    d = tmp_path_factory.mktemp("slurm")
    (d / "state").mkdir()
    (d / "spool").mkdir()
    user = getpass.getuser()
    subprocess.run(["mungekey", "--create", f"--keyfile={d / 'munge.key'}"], check=True,
                   capture_output=True)
    (d / "munge.key").chmod(0o600)
    procs = []
    old_conf = os.environ.get("SLURM_CONF")
    try:
        procs.append(subprocess.Popen(
            ["munged", "-F", "-f", f"--key-file={d / 'munge.key'}", f"--socket={d / 'munge.socket'}",
             f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
             f"--seed-file={d / 'munged.seed'}"], stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT))
        _wait(lambda: (d / "munge.socket").exists(), 20, "munged's socket")
        conf = d / "slurm.conf"
        conf.write_text(f"""ClusterName=tll
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={d / 'munge.socket'}
CredType=cred/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
NodeName=tllnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=tll Nodes=tllnode Default=YES MaxTime=INFINITE State=UP
""")
        os.environ["SLURM_CONF"] = str(conf)
        procs.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        time.sleep(1)
        procs.append(subprocess.Popen(["slurmd", "-D", "-N", "tllnode", "-f", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))

        def idle():
            p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
            return p.stdout.strip() == "idle"
        _wait(idle, 60, "the node to be idle")
        yield d
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf


def _tasks_done(folder: Path):
    rows, _, _ = slurm_mod.status(folder)
    tasks = [r for r in rows if r["role"] == "task"]
    return rows if tasks and not any(r["state"] in slurm_mod.LIVE_STATES for r in tasks) else None


def _all_ended(folder: Path):
    # finalized.json is written inside the finalize job, which Slurm still shows as
    # COMPLETING for a moment after: wait until no job of the folder is live
    rows, _, _ = slurm_mod.status(folder)
    return rows if rows and not any(r["state"] in slurm_mod.LIVE_STATES for r in rows) else None


def test_features_through_slurm_equal_a_single_machine_run(slurm_cluster, tmp_path, demo_images):
    src = copy_demo_pairs(demo_images, tmp_path / "src", PAIRS)
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    for work in (single, cluster):
        run_cli("experiments", "ingest", str(src), "--workdir", str(work))
    key = "generic/efficientnet_lite0"
    # one machine, with the settings every Slurm task gets
    run_cli("experiments", "features", str(single), "--kind", "generic", "--threads", "1",
            "--deterministic", "--batch-size", "8", "--workers", "0", "--quiet")
    # an image of shard 2 is damaged: task 2 fails, task 1 succeeds, finalize never runs
    m = load_manifest(cluster)
    victim = next(p.right for p in m.pairs if extract.in_shard(p.right.sha256, (2, 2)))
    good = victim.abspath(cluster).read_bytes()
    victim.abspath(cluster).write_bytes(b"not an image any more")
    proc = run_cli("experiments", "features", str(cluster), "--kind", "generic", "--slurm",
                   "--tasks", "2", "--cpus-per-task", "1")
    folder = slurm_mod.job_dir(cluster, key)
    assert "submitted job array" in proc.stdout and str(folder) in proc.stdout
    task_sh = (folder / "task.sh").read_text()
    assert "#SBATCH --array=1-2" in task_sh and '--shard "${SLURM_ARRAY_TASK_ID}/2"' in task_sh
    assert "--threads 1 --deterministic" in task_sh
    rows = _wait(lambda: _tasks_done(folder), 240, "the array to finish")
    states = {r["task"]: r["state"] for r in rows if r["role"] == "task"}
    assert states == {"1": "COMPLETED", "2": "FAILED"}
    fin = [r for r in rows if r["role"] == "finalize"]
    assert fin[0]["state"] == "PENDING" and "Dependency" in fin[0]["reason"]
    shown = run_cli("experiments", "slurm", "status", str(folder)).stdout
    assert "states from scontrol" in shown and "FAILED" in shown and "squeue:" in shown
    assert key not in store_mod.FeatureStore(cluster).keys()
    # repaired, only the failed task runs again, then the new finalize job
    victim.abspath(cluster).write_bytes(good)
    again = run_cli("experiments", "slurm", "resubmit", str(folder)).stdout
    assert again.startswith("resubmitted tasks 2 as job ")
    job = json.loads((folder / "job.json").read_text())
    assert [s["tasks"] for s in job["submissions"]] == ["1-2", "2"]
    _wait(lambda: (folder / "finalized.json").is_file(), 240, "the finalize job")
    done = json.loads((folder / "finalized.json").read_text())
    assert all(done["checks"].values()) and done["pairs"] == len(PAIRS)
    rows = _wait(lambda: _all_ended(folder), 60, "every job of the folder to end")
    assert [r["state"] for r in rows if r["role"] == "finalize"] == ["CANCELLED", "COMPLETED"]
    # the same bytes as the single-machine run; meta.json differs only in `created`
    a, b = (store_mod.FeatureStore(w).folder(key) for w in (single, cluster))
    for name in ("left.npy", "right.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((f / "meta.json").read_text()) for f in (a, b))
    ma.pop("created"), mb.pop("created")
    assert ma == mb and mb["compute"][0]["threads"] == 1 and mb["compute"][0]["deterministic"]
    assert np.load(b / "left.npy").shape == (len(PAIRS), 1280)


def test_evaluate_through_slurm_equals_an_unsharded_run(slurm_cluster, tmp_path, demo_study,
                                                       copy_study):
    """Three array tasks each compute whole blocks of query rows of every feature set
    (generic, face, face_generic); the finalize job merges them into the unsharded tables."""
    study = copy_study(demo_study)  # the job folder is written into the study
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    opts = ["--subset", "all", "--chunk", "8", "--gallery", "0"]
    run_cli("experiments", "evaluate", str(study), *opts, "--device", "cpu",
            "--out", str(single))
    proc = run_cli("experiments", "evaluate", str(study), *opts, "--out", str(cluster),
                   "--slurm", "--tasks", "3", "--cpus-per-task", "1")
    folder = slurm_mod.job_dir(study, "evaluate/all")
    assert "submitted job array" in proc.stdout and str(folder) in proc.stdout
    task_sh = (folder / "task.sh").read_text()
    assert "-m experiments evaluate" in task_sh and '--shard "${SLURM_ARRAY_TASK_ID}/3"' in task_sh
    _wait(lambda: (folder / "finalized.json").is_file(), 240, "the finalize job")
    rows = _wait(lambda: _all_ended(folder), 60, "every job of the folder to end")
    assert {r["state"] for r in rows} == {"COMPLETED"} and len(rows) == 4
    assert sorted((cluster / "shards").iterdir()) == [
        cluster / "shards" / f"shard-{i}-of-3.npz" for i in (1, 2, 3)]
    for name in ("table1.csv", "table2a.csv", "votes.csv", "ranks.csv"):
        assert (cluster / name).read_bytes() == (single / name).read_bytes(), name
    kinds = set(np.genfromtxt(single / "table1.csv", delimiter=",", dtype=str, skip_header=1,
                              usecols=1))
    assert kinds == {"generic", "face", "face_generic"}

"""scripts/setup-system.sh on a "fresh machine": PATH holds only stand-ins (apt-get,
sudo, id, python3, chromium...) that record what they were asked to do, so the test sees
what would be installed as root, through passwordless sudo, and with neither."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "setup-system.sh"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path):
    """Return a function building a fake machine: (uid, sudo allowed, tools present,
    python version) -> run(target) -> (exit status, stderr, recorded calls)."""
    def build(uid: int = 0, sudo: bool = False, present=(), python=None, venv=True):
        bin_ = tmp_path / "bin"
        bin_.mkdir()
        log = tmp_path / "calls.log"
        log.touch()
        _stub(bin_ / "id", f'[ "$1" = "-u" ] && echo {uid} || echo "uid={uid}"')
        _stub(bin_ / "apt-get", f'echo "apt-get $*" >> {log}')
        _stub(bin_ / "sudo", f'echo "sudo $*" >> {log}\n'
                             f'{"" if sudo else "exit 1"}\n'
                             '[ "$1" = "-n" ] && shift\nexec "$@"')
        os.symlink("/usr/bin/env", bin_ / "env")
        os.symlink("/bin/true", bin_ / "true")
        if python is None:
            os.symlink(sys.executable, bin_ / "python3")
        else:
            old = int(tuple(map(int, python.split("."))) < (3, 11))
            # Answers the version questions; anything else (import ensurepip) fails.
            _stub(bin_ / "python3", 'case "$*" in *print*) echo %s;; *version_info*) exit %d;; '
                                    '*) exit 1;; esac' % (python, old))
        pg = tmp_path / "pg" / "15" / "bin"
        pg.mkdir(parents=True)
        for tool in present:
            if tool == "postgresql":
                _stub(pg / "initdb", "exit 0")
            else:
                _stub(bin_ / tool, "exit 0")
        venv_dir = tmp_path / "venv"
        if venv:
            (venv_dir / "bin").mkdir(parents=True)
            _stub(venv_dir / "bin" / "python", "exit 0")
        env = {"PATH": str(bin_), "HOME": str(tmp_path), "VENV": str(venv_dir),
               "TLL_PG_INITDB_GLOB": str(tmp_path / "pg" / "*" / "bin" / "initdb"),
               "TLL_NGINX": str(bin_ / "nginx"), "TLL_SLURMCTLD": str(bin_ / "slurmctld"),
               "TLL_MUNGED": str(bin_ / "munged")}

        def run(target: str):
            r = subprocess.run(["/bin/sh", str(SCRIPT), target], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
            return r.returncode, r.stderr, log.read_text().splitlines()
        return run
    return build


def test_root_installs_what_the_tests_need_with_apt_get(machine):
    rc, err, calls = machine(uid=0)("test")
    assert rc == 0, err
    assert calls == ["apt-get update -qq", "apt-get install -y r-base-core r-cran-lme4 "
                     "r-cran-jsonlite chromium postgresql nginx openssl slurm-wlm munge"]


def test_passwordless_sudo_installs_only_what_is_missing(machine):
    rc, err, calls = machine(uid=1000, sudo=True, present=("chromium", "Rscript"))("test")
    assert rc == 0, err
    assert [c for c in calls if c.startswith("sudo") and "install" in c] == [
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql nginx "
        "openssl slurm-wlm munge"]
    assert calls[-1] == "apt-get install -y postgresql nginx openssl slurm-wlm munge"  # sudo


def test_neither_root_nor_sudo_prints_the_command_and_fails(machine):
    rc, err, calls = machine(uid=1000, sudo=False, present=("Rscript",))("test")
    assert rc == 1
    assert err.count("\n") == 1
    assert "sudo apt-get install -y chromium postgresql nginx openssl slurm-wlm munge" in err
    assert not [c for c in calls if c.startswith("apt-get") or "install" in c]


def test_nothing_is_installed_when_everything_is_there(machine):
    rc, err, calls = machine(uid=1000, present=("chromium", "postgresql", "nginx", "openssl",
                                                "slurmctld", "munged", "Rscript"))("test")
    assert (rc, err, calls) == (0, "", [])


def test_demo_needs_nothing_beyond_python_and_r(machine):
    rc, err, calls = machine(uid=0, present=("Rscript",))("demo")
    assert (rc, calls) == (0, [])


def test_demo_installs_r_and_lme4_for_the_report(machine):
    rc, err, calls = machine(uid=0)("demo")
    assert rc == 0 and calls[-1] == "apt-get install -y r-base-core r-cran-lme4 r-cran-jsonlite"


def test_r_without_lme4_gets_lme4(machine, tmp_path):
    # an Rscript whose requireNamespace() fails, as on a machine with R but without lme4
    run = machine(uid=0, present=("chromium", "postgresql", "nginx", "openssl",
                                      "slurmctld", "munged"))
    (tmp_path / "bin" / "Rscript").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "Rscript").chmod(0o755)
    rc, err, calls = run("test")
    assert rc == 0 and calls[-1] == "apt-get install -y r-base-core r-cran-lme4 r-cran-jsonlite"


def test_bench_needs_postgresql_and_nginx(machine):
    rc, err, calls = machine(uid=0, present=("chromium",))("bench")
    assert not any("r-cran" in c for c in calls)
    assert rc == 0 and calls[-1] == "apt-get install -y postgresql nginx"


def test_old_python_is_refused_with_a_clear_line(machine):
    rc, err, calls = machine(uid=0, python="3.9")("demo")
    assert rc == 2 and calls == []
    assert "Python 3.9" in err and "3.11 or newer" in err and err.count("\n") == 1


def test_a_fresh_debian_gets_python3_venv_for_the_virtual_environment(machine, tmp_path):
    run = machine(uid=0, python="3.11", venv=False, present=("Rscript",))
    rc, err, calls = run("demo")
    assert rc == 0 and calls[-1] == "apt-get install -y python3-venv"

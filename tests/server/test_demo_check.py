"""`make demo` on a taken port, an address not on this machine or a bad SIMULATE stops at
once, before anything is built or served, with one error line saying what to run instead
(the check target `demo-check`, then scripts/demo-serve.sh's own check)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import pytest

from tests.conftest import free_port

from .conftest import ROOT


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for name in ("PORT", "HOST", "SIMULATE", "DEMO", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # A check that let the pipeline start: stop the whole build.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{args} did not stop within {timeout} s") from None
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture
def taken_port():
    """A port some other server listens on, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _one_error(res, demo) -> str:
    """Return the one error line of a `make demo` that stopped before building."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(lines) == 2 and lines[1].startswith("make: *** [Makefile:"), res.stderr
    assert "demo-check" in lines[1]
    assert res.stdout == ""  # no pipeline step, no links printed
    assert not demo.exists()
    return lines[0]


def test_make_demo_on_a_taken_port_stops_before_building(tmp_path, taken_port):
    demo = tmp_path / "demo"
    res = _run(["make", "demo", f"PORT={taken_port}", f"DEMO={demo}", "SIMULATE=3"])
    line = _one_error(res, demo)
    m = re.fullmatch(rf"error: port {taken_port} on 127\.0\.0\.1 is in use; "
                     r"run make demo PORT=(\d+)", line)
    assert m, line
    suggested = int(m.group(1))
    assert suggested != taken_port
    with socket.socket() as s:  # the suggested port is one gunicorn could listen on
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", suggested))


@pytest.mark.parametrize("var, line", [
    ("SIMULATE=many", "error: SIMULATE must be a number of participants (0 or more), got 'many'"),
    ("PORT=http", "error: PORT must be a port number (1-65535), got 'http'"),
    ("HOST=192.0.2.1", "error: HOST '192.0.2.1' is not an address of this machine; run make "
                       "demo HOST=127.0.0.1"),
])
def test_make_demo_with_bad_settings_stops_before_building(tmp_path, var, line):
    demo = tmp_path / "demo"
    res = _run(["make", "demo", f"PORT={free_port()}", f"DEMO={demo}", var])
    assert _one_error(res, demo) == line


def test_the_serving_script_checks_the_port_itself(tmp_path, taken_port):
    """scripts/demo-serve.sh run alone (or after a build that took minutes) checks the port
    before touching the study folder."""
    demo = tmp_path / "demo"
    env = dict(os.environ, DEMO=str(demo), HOST="127.0.0.1", PORT=str(taken_port),
               SIMULATE="2")
    res = subprocess.run(["sh", "scripts/demo-serve.sh"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert re.fullmatch(rf"error: port {taken_port} on 127\.0\.0\.1 is in use; run make "
                        r"demo PORT=\d+", res.stderr.strip()), res.stderr
    assert res.stdout == "" and not demo.exists()

"""A serving `flask --app server ...` command started as a user starts it: in a
subprocess, waited for on its port, stopped by a signal."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def start(args: list[str], url: str, env: dict, log) -> subprocess.Popen:
    """Start `python -m flask --app server ARGS` in the repository, its output into `log`,
    and return it once `url` answers; fail with its output if it exits or is silent 30 s."""
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "server", *args],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            requests.get(url, timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    stop(proc, signal.SIGKILL)
    log.seek(0)
    raise AssertionError(f"`flask {' '.join(args)}` did not serve {url} "
                         f"(exit {proc.returncode}):\n{log.read()}")


def stop(proc: subprocess.Popen, sig: int) -> int:
    """Send `sig` to the command and return its exit status (killed after 10 s)."""
    proc.send_signal(sig)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"the command ignored signal {sig} for 10 s") from None

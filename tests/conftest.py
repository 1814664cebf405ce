"""Shared fixtures: the demo study, a throw-away PostgreSQL server, and a Chromium browser.

Services are real: PostgreSQL is started from the Debian binaries on
a loopback port for the test session, Chromium is Debian's, driven by Playwright. When a
binary is missing the fixture fails with what to install; it never skips.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `python -m <args>` with the test interpreter; return the completed process."""
    full_env = dict(os.environ)
    full_env.setdefault("PYTHONPATH", str(ROOT))
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for screenshots and other artefacts that CI keeps."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# --------------------------------------------------------------------------- demo study
@pytest.fixture(scope="session")
def demo_images(tmp_path_factory) -> Path:
    """The demo pair set in the TLL left/ right/ layout (written once per session)."""
    out = tmp_path_factory.mktemp("demo-images")
    run_cli("experiments", "demo-data", str(out))
    return out


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory, demo_images) -> Path:
    """A work directory with the demo pairs ingested and generic + face + face_generic
    features extracted with the default (packaged) backbone and the HOG detector.
    Read-only for tests: copy it (copy_study) before changing anything."""
    work = tmp_path_factory.mktemp("demo-study")
    run_cli("experiments", "ingest", str(demo_images), "--workdir", str(work))
    for kind in ("generic", "face", "face_generic"):
        run_cli("experiments", "features", str(work), "--kind", kind)
    return work


def copy_demo_pairs(demo_images: Path, dst: Path, ids: list[str]) -> Path:
    """Copy the demo pairs `ids` into a TLL-layout folder `dst` of their own; return `dst`."""
    for side in ("left", "right"):
        (dst / side).mkdir(parents=True)
        for pid in ids:
            shutil.copy(demo_images / side / f"{pid}.jpg", dst / side / f"{pid}.jpg")
    return dst


@pytest.fixture
def copy_study(tmp_path):
    """Return a function that copies a work directory into this test's tmp_path."""
    def _copy(src: Path) -> Path:
        dst = tmp_path / "study"
        shutil.copytree(src, dst)
        return dst
    return _copy


# --------------------------------------------------------------------------- PostgreSQL
def _pg_bin(name: str) -> str | None:
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else shutil.which(name)


@pytest.fixture(scope="session")
def postgres_server():
    """Start a throw-away PostgreSQL cluster on 127.0.0.1; yield a function that creates a
    fresh database and returns its SQLAlchemy URL. Stopped at the end of the session."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.fail("PostgreSQL server binaries not found: `apt-get install postgresql` "
                    "(.ci/run does this)")
    base = Path(tempfile.mkdtemp(prefix="tll-pg-", dir="/tmp"))
    data = base / "data"
    port = free_port()
    # initdb refuses to run as root: run the server as the postgres system user then.
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    subprocess.run(prefix + [initdb, "-D", str(data), "-U", "postgres", "-A", "trust",
                             "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    opts = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"),
                             "-w", "-t", "60", "start"], check=True, capture_output=True)
    import psycopg

    counter = {"n": 0}

    def make_db() -> str:
        counter["n"] += 1
        name = f"tll_test_{counter['n']}"
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"

    try:
        yield make_db
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server()


# --------------------------------------------------------------------------- Chromium
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """A headless Debian Chromium driven by Playwright (one per session)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("Chromium not found: `apt-get install chromium` (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page for one test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = ctx.new_page()
    try:
        yield pg
    finally:
        ctx.close()

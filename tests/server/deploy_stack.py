"""The production stack of deploy/, run on loopback by the tests: a TLS certificate made
with the openssl CLI, Debian's nginx configured from deploy/nginx/nginx.conf,
tll-site.conf and tll-proxy.conf themselves, and gunicorn started with
deploy/gunicorn.conf.py.

The templating step (render_nginx) copies the deployed files and substitutes only what
differs between a host and a test: the ports (80, 443, gunicorn's 8000), the server name
(study.example.org becomes study.test), the certificate paths and the file-system paths
(pid, logs, includes, static/, the ACME folder). Every substitution must find its text,
so a changed deploy file fails the test instead of running something else. The IPv6
listens are dropped: servers in tests listen on 127.0.0.1 only.
"""
from __future__ import annotations

import http.client
import re
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port
from tests.server.conftest import server_env, stop, wait_http

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX = "/usr/sbin/nginx"
HOST = "study.test"
DEPLOYED_HOST = "study.example.org"


def make_cert(folder: Path, host: str = HOST) -> tuple[Path, Path]:
    """Make a self-signed ECDSA P-256 certificate for `host` (cheap handshakes); return
    (certificate path, key path)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def _sub(text: str, old: str, new: str, regex: bool = False) -> str:
    out, n = (re.subn(old, new, text) if regex else (text.replace(old, new), text.count(old)))
    assert n, f"deploy/nginx no longer contains {old!r}: update render_nginx"
    return out


@dataclass
class Ports:
    """The loopback ports of one stack."""
    http: int
    https: int
    app: int


def render_nginx(folder: Path, ports: Ports, cert: Path, key: Path) -> Path:
    """Write the deploy/nginx files into `folder` with the test's ports, name and paths
    substituted; return the main configuration's path."""
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "conf.d").mkdir(exist_ok=True)
    (folder / "acme").mkdir(exist_ok=True)
    proxy = (DEPLOY / "nginx" / "tll-proxy.conf").read_text()
    (folder / "tll-proxy.conf").write_text(proxy)
    site = (DEPLOY / "nginx" / "tll-site.conf").read_text()
    site = _sub(site, r"\n *listen \[::\]:\d+[^;]*;", "", regex=True)
    site = _sub(site, r"listen 80\b", f"listen 127.0.0.1:{ports.http}", regex=True)
    site = _sub(site, r"listen 443\b", f"listen 127.0.0.1:{ports.https}", regex=True)
    site = _sub(site, "server 127.0.0.1:8000;", f"server 127.0.0.1:{ports.app};")
    site = _sub(site, f"/etc/letsencrypt/live/{DEPLOYED_HOST}/fullchain.pem", str(cert))
    site = _sub(site, f"/etc/letsencrypt/live/{DEPLOYED_HOST}/privkey.pem", str(key))
    site = _sub(site, f"https://{DEPLOYED_HOST}$request_uri",
                f"https://{HOST}:{ports.https}$request_uri")
    site = _sub(site, DEPLOYED_HOST, HOST)
    site = _sub(site, "/srv/tll/static/", f"{ROOT}/static/")
    site = _sub(site, "/var/www/letsencrypt", str(folder / "acme"))
    site = _sub(site, "/etc/nginx/snippets/tll-proxy.conf", str(folder / "tll-proxy.conf"))
    (folder / "tll-site.conf").write_text(site)
    main = (DEPLOY / "nginx" / "nginx.conf").read_text()
    main = _sub(main, "pid /run/nginx.pid;", f"pid {folder}/nginx.pid;")
    main = _sub(main, "/var/log/nginx/", f"{folder}/logs/")
    main = _sub(main, "/etc/nginx/conf.d/", f"{folder}/conf.d/")
    main = _sub(main, "include /etc/nginx/sites-enabled/*;",
                f"include {folder}/tll-site.conf;")
    conf = folder / "nginx.conf"
    conf.write_text(main)
    return conf


def check_nginx(conf: Path) -> subprocess.CompletedProcess:
    """Run `nginx -t` on `conf`; return the completed process."""
    return subprocess.run([NGINX, "-t", "-p", str(conf.parent), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)


def start_nginx(conf: Path) -> subprocess.Popen:
    """Start nginx in the foreground on `conf` (its own process group); return it."""
    return subprocess.Popen([NGINX, "-g", "daemon off;", "-p", str(conf.parent), "-c",
                             str(conf)], start_new_session=True, stderr=subprocess.PIPE)


def start_gunicorn(folder: Path, db_url: str, port: int, workers: int = 2,
                   **env) -> subprocess.Popen:
    """Start gunicorn with deploy/gunicorn.conf.py on 127.0.0.1:`port` in production
    behind one proxy (extra environment `env`); return it once it answers."""
    full = server_env(folder, db_url)
    full.update({"TLL_BIND": f"127.0.0.1:{port}", "TLL_WORKERS": str(workers),
                 "TLL_ENV": "production", "TLL_PROXIES": "1",
                 "SECRET_KEY": "e2e-" + "5" * 60, **env})
    log = open(folder / f"gunicorn-{port}.log", "ab")  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             str(DEPLOY / "gunicorn.conf.py"), "server:create_app()"],
                            cwd=ROOT, env=full, start_new_session=True, stdout=log,
                            stderr=log)
    log.close()
    wait_http(f"http://127.0.0.1:{port}/", proc=proc)
    return proc


def tls_context(cert: Path) -> ssl.SSLContext:
    """Return a client TLS context that trusts the test certificate."""
    return ssl.create_default_context(cafile=str(cert))


class Connection(http.client.HTTPSConnection):
    """HTTPS to study.test (SNI and Host) on 127.0.0.1:`port`, from the loopback address
    `source` (all of 127.0.0.0/8 is loopback)."""

    def __init__(self, port: int, ctx: ssl.SSLContext, source: str = "127.0.0.1",
                 timeout: float = 10.0):
        super().__init__(HOST, port, context=ctx, timeout=timeout)
        self._source, self._ctx = source, ctx

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout,
                                       source_address=(self._source, 0))
        self.sock = self._ctx.wrap_socket(raw, server_hostname=HOST)


@dataclass
class Stack:
    """A running nginx + gunicorn pair and what a test needs to reach it."""
    ports: Ports
    cert: Path
    nginx: subprocess.Popen
    gunicorn: subprocess.Popen
    folder: Path

    @property
    def base(self) -> str:
        """The site's public URL (study.test mapped to loopback)."""
        return f"https://{HOST}:{self.ports.https}"

    def stop(self) -> None:
        """Stop nginx and gunicorn."""
        stop(self.nginx)
        stop(self.gunicorn)


def start_stack(folder: Path, db_url: str, **env) -> Stack:
    """Start gunicorn (production, on `db_url`) and nginx with TLS in front; return the
    Stack once both answer."""
    ports = Ports(free_port(), free_port(), free_port())
    cert, key = make_cert(folder / "tls")
    conf = render_nginx(folder / "nginx", ports, cert, key)
    checked = check_nginx(conf)
    assert checked.returncode == 0, checked.stderr
    gunicorn = start_gunicorn(folder, db_url, ports.app, **env)
    nginx = start_nginx(conf)
    stack = Stack(ports, cert, nginx, gunicorn, folder)
    ctx = tls_context(cert)
    for _ in range(100):
        try:
            c = Connection(ports.https, ctx, timeout=2)
            c.request("GET", "/", headers={"Host": HOST})
            c.getresponse().read()
            c.close()
            return stack
        except OSError:
            if nginx.poll() is not None:
                stack.stop()
                raise AssertionError("nginx exited: " + nginx.stderr.read().decode()) from None
            time.sleep(0.1)
    stack.stop()
    raise AssertionError("nginx did not answer over TLS")

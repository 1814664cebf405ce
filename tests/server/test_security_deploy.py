"""The production set-up of deploy/: nginx (Debian's, on loopback with a test-only main
config that includes deploy/nginx/tll-proxy.conf) in front of gunicorn (deploy's
gunicorn.conf.py). Fifty slow clients hold connections open, and a normal participant
still gets every answer acknowledged and stored."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.server.conftest import server_env, stop, wait_http

ROOT = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"


def _nginx_conf(tmp: Path, port: int, app_port: int) -> Path:
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process on;
worker_processes 1;
user root;  # tests run as root; the real site uses Debian's www-data
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream tll_app {{ server 127.0.0.1:{app_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {ROOT}/static/; }}
        include {ROOT}/deploy/nginx/tll-proxy.conf;
    }}
}}
""")
    return conf


def _json(method: str, url: str, body=None, timeout=5.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def _slow_client(port: int) -> socket.socket:
    """Open a connection that sends its headers and the first bytes of a body, then
    stalls (a slow or malicious client)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /api/v1/experiments/small/participants HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"con")
    return s


def _raw_status(port: int, raw: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply else 0


def test_nginx_config_is_valid(tmp_path):
    conf = _nginx_conf(tmp_path, free_port(), free_port())
    r = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    site = (ROOT / "deploy" / "nginx" / "tll-site.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3" in site and "return 301 https://" in site
    unit = (ROOT / "deploy" / "tll.service").read_text()
    assert "Restart=always" in unit and "gunicorn -c deploy/gunicorn.conf.py" in unit


def test_50_slow_clients_do_not_stop_a_participant(tmp_path, sqlite_template):
    shutil.copy(sqlite_template, tmp_path / "server.sqlite3")
    db_url = f"sqlite:///{tmp_path / 'server.sqlite3'}"
    app_port, port = free_port(), free_port()
    env = server_env(tmp_path, db_url)
    env.update({"TLL_BIND": f"127.0.0.1:{app_port}", "TLL_WORKERS": "2", "TLL_PROXIES": "1"})
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
         "server:create_app()"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c",
                              str(_nginx_conf(tmp_path / "nginx", port, app_port))],
                             start_new_session=True, stderr=subprocess.PIPE)
    slow = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"http://127.0.0.1:{app_port}/", proc=gunicorn)
        wait_http(base + "/", proc=nginx)
        for _ in range(50):
            slow.append(_slow_client(port))
        time.sleep(0.5)  # nginx holds them; gunicorn's two workers stay free
        status, start = _json("POST", base + "/api/v1/experiments/small/participants",
                              {"consent": True, "code": "NEXTINLINE"})
        assert status == 201
        tok = start["participant"]
        for n in range(1, 7):
            t0 = time.monotonic()
            status, body = _json("POST", f"{base}/api/v1/participants/{tok}/answers",
                                 {"n": n, "choice": n % 5}, timeout=5)
            assert status == 201 and body["stored"] and body["answered"] == n
            # The acknowledgement comes while the 50 slow clients are still connected.
            assert time.monotonic() - t0 < 5
        for s in slow:  # still open: nginx has neither answered nor dropped them
            s.setblocking(False)
            try:
                assert s.recv(1) != b""
            except BlockingIOError:
                pass
        status, st = _json("GET", f"{base}/api/v1/participants/{tok}")
        assert st["answered"] == 6 and st["completed"] is True
        # The client's address reaches the app through the proxy (login throttling).
        r = urllib.request.urlopen(base + "/lab/small/", timeout=5)
        assert r.status == 200 and r.headers["Content-Security-Policy"]
        # A malformed chunked body, straight to gunicorn and through nginx: a 4xx.
        for p in (app_port, port):
            for body in (b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"):
                status = _raw_status(p, b"POST /api/v1/experiments/small/participants "
                                        b"HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                        b"\r\nTransfer-Encoding: chunked\r\nConnection: close"
                                        b"\r\n\r\n" + body)
                assert 400 <= status < 500, (p, body, status)
    finally:
        for s in slow:
            s.close()
        stop(nginx)
        stop(gunicorn)
    import sqlite3
    with sqlite3.connect(tmp_path / "server.sqlite3") as con:
        rows = con.execute("SELECT r.trial_order, r.chosen_index FROM responses r JOIN "
                           "participants p ON p.id = r.participant_id WHERE p.code = "
                           "'NEXTINLINE' ORDER BY r.trial_order").fetchall()
    assert rows == [(n, n % 5) for n in range(1, 7)]

"""The files of deploy/ as a host installs them: nginx accepts the rendered configuration
(deploy/nginx/nginx.conf, tll-site.conf, tll-proxy.conf with the test's ports and paths,
tests/server/deploy_stack.py), and the settings that protect the site are in it. The
stack itself runs in tests/server/test_production.py."""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import free_port
from tests.server.deploy_stack import Ports, check_nginx, make_cert, render_nginx

ROOT = Path(__file__).resolve().parents[2]


def test_nginx_config_is_valid(tmp_path):
    cert, key = make_cert(tmp_path / "tls")
    conf = render_nginx(tmp_path / "nginx", Ports(free_port(), free_port(), free_port()),
                        cert, key)
    r = check_nginx(conf)
    assert r.returncode == 0, r.stderr
    site = (ROOT / "deploy" / "nginx" / "tll-site.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3" in site
    # A fixed name in the redirect, never the client's Host; unknown hosts dropped.
    assert "return 301 https://study.example.org$request_uri;" in site and "$host" not in site
    default = re.search(r"server \{[^}]*default_server[^}]*\}", site).group(0)
    assert "return 444;" in default and "ssl_reject_handshake on;" in default
    proxy = (ROOT / "deploy" / "nginx" / "tll-proxy.conf").read_text()
    for setting in ("limit_conn tll_conn", "limit_req zone=tll_req", "zone=tll_login",
                    "client_header_timeout", "client_body_timeout", "send_timeout",
                    "keepalive_timeout"):
        assert setting in proxy, setting
    main = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    rlimit = int(re.search(r"worker_rlimit_nofile (\d+);", main).group(1))
    conns = int(re.search(r"worker_connections (\d+);", main).group(1))
    assert rlimit >= 2 * conns >= 2 * 1600  # a client and an upstream descriptor each
    unit = (ROOT / "deploy" / "tll.service").read_text()
    assert "Restart=always" in unit and "gunicorn -c deploy/gunicorn.conf.py" in unit
    assert "KillMode=mixed" in unit
    gunicorn = (ROOT / "deploy" / "gunicorn.conf.py").read_text()
    assert "control_socket_disable = True" in gunicorn and "PR_SET_PDEATHSIG" in gunicorn
    pins = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^gunicorn==\d+\.\d+\.\d+", pins, re.M)

"""gunicorn settings for the study server behind nginx (deploy/nginx/).

Run: gunicorn -c deploy/gunicorn.conf.py "server:create_app()"
Environment: TLL_BIND (default 127.0.0.1:8000), TLL_WORKERS (default 2 x CPUs + 1).
Synchronous workers are safe only behind a buffering proxy: nginx reads slow clients'
requests completely before passing them on (a worker is never held by a slow client).
"""
import multiprocessing
import os

bind = os.environ.get("TLL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("TLL_WORKERS", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
# Only nginx on this host may say who the client is (X-Forwarded-*).
forwarded_allow_ips = "127.0.0.1,::1"
accesslog = "-"
errorlog = "-"

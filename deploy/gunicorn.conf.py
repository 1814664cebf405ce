"""gunicorn settings for the study server behind nginx (deploy/nginx/).

Run: gunicorn -c deploy/gunicorn.conf.py "server:create_app()"
Environment: TLL_BIND (default 127.0.0.1:8000), TLL_WORKERS (default: the number of CPUs,
at least 2), TLL_THREADS (threads per worker, default 4), TLL_ACCESS_LOG (a file, or "-"
for standard output; default none: nginx keeps the access log).

Threaded workers (gthread): a worker is one Python process, so one CPU's worth; its
threads overlap one request's database wait (SQLite's sync, PostgreSQL's round trips)
with the next request's work, and on SQLite the answers they hold at once share one
commit (server/groupcommit.py). benchmarks/bench_server.py runs exactly these settings.
Workers are safe only behind a buffering proxy: nginx reads slow clients' requests
completely before passing them on (a worker is never held by a slow client).
"""
import ctypes
import multiprocessing
import os
import signal

bind = os.environ.get("TLL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("TLL_WORKERS", max(2, multiprocessing.cpu_count())))
worker_class = "gthread"
threads = int(os.environ.get("TLL_THREADS", 4))
timeout = 30
graceful_timeout = 20
# nginx keeps idle connections to gunicorn for 60 s (tll-site.conf's upstream); gunicorn
# must keep them longer, or it closes one just as nginx sends a request on it (a 502).
# An idle kept-alive connection holds no thread in gthread workers.
keepalive = 75
# Only nginx on this host may say who the client is (X-Forwarded-*).
forwarded_allow_ips = "127.0.0.1,::1"
# A line per request costs the worker about a tenth of an answer's CPU; nginx logs them.
accesslog = os.environ.get("TLL_ACCESS_LOG") or None
errorlog = "-"
# No control socket ($HOME/.gunicorn/gunicorn.ctl, shared by every gunicorn of the user):
# the server is managed by systemd and signals only.
control_socket_disable = True

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def post_fork(server, worker):
    """Have the kernel SIGKILL this worker the moment its master dies (Linux), so that a
    killed master (SIGKILL, OOM killer) leaves no orphaned worker holding the port and
    serving on with stale state; a graceful stop (SIGTERM, HUP) is unaffected. Returns
    nothing."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: systemd's KillMode=mixed still applies
        return
    if os.getppid() != server.pid:  # the master died before prctl took effect
        os._exit(1)

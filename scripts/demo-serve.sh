#!/bin/sh
# Serve the demo experiment (called by `make demo` after the machine side built it).
# Env: DEMO (study folder, default build/demo), HOST, PORT, PY (python of the venv);
# optional EXPERIMENT_FILE and EXPERIMENT_NAME (default $DEMO/experiments/demo.json, demo);
# SIMULATE=N (default 0): N simulated participants answer through the HTTP API once the
# server is up, so the admin area's home can make a full report at once.
# `sh scripts/demo-serve.sh --check` only checks SIMULATE and that HOST:PORT is free
# (`make demo` runs it before building anything); the serving run checks both again.
# Steps: db upgrade, load-experiment (idempotent), admin password (generated once, kept in
# the demo's instance folder), print the links, then gunicorn (Ctrl-C stops it): exec'd,
# or with SIMULATE started in the background, waited for, simulated against, waited on.
set -eu
DEMO=${DEMO:-build/demo}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
PY=${PY:-.venv/bin/python}
SIMULATE=${SIMULATE:-0}
case "$SIMULATE" in
  ''|*[!0-9]*) echo "error: SIMULATE must be a number of participants (0 or more), got '$SIMULATE'" >&2
               exit 2 ;;
esac

# One line and exit 2 unless gunicorn could listen on HOST:PORT now: a server already
# there would otherwise get the simulated participants' answers.
port_free() {
  "$PY" - "$HOST" "$PORT" <<'PYEOF'
import errno, socket, sys

host, port = sys.argv[1], sys.argv[2]
hint = "" if host == "127.0.0.1" else f" HOST={host}"


def listenable(p: int):
    """Return None if host:p can be bound as gunicorn binds it, else the OSError."""
    try:
        infos = socket.getaddrinfo(host, p, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return e
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError as e:
                return e
    return None


def free_after(p: int):
    """Return the first port after p (within 100) that host can listen on, else None."""
    return next((q for q in range(p + 1, min(p + 101, 65536)) if listenable(q) is None), None)


def stop(problem: str, p: int):
    q = free_after(p)
    todo = f"; run make demo PORT={q}{hint}" if q else "; choose another PORT"
    sys.exit(f"error: {problem}{todo}")


if not port.isdigit() or not 0 < int(port) < 65536:
    sys.exit(f"error: PORT must be a port number (1-65535), got '{port}'")
err = listenable(int(port))
if isinstance(err, socket.gaierror) or getattr(err, "errno", None) == errno.EADDRNOTAVAIL:
    sys.exit(f"error: HOST '{host}' is not an address of this machine; run make demo "
             "HOST=127.0.0.1")
if err is not None and err.errno == errno.EADDRINUSE:
    stop(f"port {port} on {host} is in use", int(port))
if err is not None:
    stop(f"cannot listen on port {port} on {host} ({err.strerror})", int(port))
PYEOF
}
port_free || exit 2
if [ "${1:-}" = "--check" ]; then
  exit 0
fi
cd "$(dirname "$0")/.."
mkdir -p "$DEMO"
DEMO_ABS=$(cd "$DEMO" && pwd)
EXPERIMENT_FILE=${EXPERIMENT_FILE:-$DEMO_ABS/experiments/demo.json}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-demo}
export TLL_INSTANCE="$DEMO_ABS/instance"
export DATABASE_URL="sqlite:///$DEMO_ABS/server.sqlite3"
unset TLL_ENV || true
# Simulated participants all start from this machine's one address.
export TLL_PARTICIPANT_RATE="${TLL_PARTICIPANT_RATE:-100000 per minute}"

if [ ! -f "$EXPERIMENT_FILE" ]; then
  echo "error: $EXPERIMENT_FILE not found: run \`$PY -m experiments demo $DEMO\` first" >&2
  exit 2
fi
"$PY" -m flask --app server db upgrade 2>&1 | grep -v '^INFO' || true
"$PY" -m flask --app server load-experiment "$EXPERIMENT_FILE" --name "$EXPERIMENT_NAME"

mkdir -p "$TLL_INSTANCE"
PWFILE="$TLL_INSTANCE/admin_password"
if [ ! -s "$PWFILE" ]; then
  (umask 077 && "$PY" -c "import secrets; print(secrets.token_urlsafe(12))" > "$PWFILE")
fi
PASSWORD=$(cat "$PWFILE")
"$PY" -m flask --app server admin set-password --password "$PASSWORD" >/dev/null

# The set-up above took seconds: the port may have been taken meanwhile.
port_free || exit 2
BASE="http://$HOST:$PORT"
cat <<MSG

  Demo server for experiment '$EXPERIMENT_NAME' (SQLite: $DEMO_ABS/server.sqlite3)
  Participant link: $BASE/lab/$EXPERIMENT_NAME/
  Admin link:       $BASE/manage/   (user: admin, password: $PASSWORD
                    kept in $PWFILE)
  Researcher's home: $BASE/manage/home/$EXPERIMENT_NAME
  Stop with Ctrl-C.

MSG
if [ "$SIMULATE" -eq 0 ]; then
  exec "$PY" -m gunicorn --bind "$HOST:$PORT" --workers 2 --threads 4 --graceful-timeout 3 \
    --access-logfile - "server:create_app()"
fi

"$PY" -m gunicorn --bind "$HOST:$PORT" --workers 2 --threads 4 --graceful-timeout 3 \
  "server:create_app()" &
GUNICORN=$!
# A background job of a non-interactive shell ignores Ctrl-C: pass it on ourselves.
trap 'kill -INT "$GUNICORN" 2>/dev/null || true' INT TERM
tries=0
until "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$BASE/lab/$EXPERIMENT_NAME/" 2>/dev/null; do
  tries=$((tries + 1))
  if ! kill -0 "$GUNICORN" 2>/dev/null || [ "$tries" -ge 300 ]; then
    echo "error: the server did not answer on $BASE within 60 s; not simulating" >&2
    kill -TERM "$GUNICORN" 2>/dev/null || true
    wait "$GUNICORN" || true
    exit 1
  fi
  sleep 0.2
done
echo "  Simulating $SIMULATE participants through $BASE ..."
if "$PY" -m analysis simulate --server "$BASE" --experiment "$EXPERIMENT_NAME" \
    --participants "$SIMULATE" --admin-password-file "$PWFILE"; then
  echo "  Done: press 'Make the report' on $BASE/manage/home/$EXPERIMENT_NAME#report"
else
  echo "warning: the simulation failed (above); the server keeps running" >&2
fi
status=0
while kill -0 "$GUNICORN" 2>/dev/null; do
  wait "$GUNICORN" && status=0 || status=$?
done
exit "$status"

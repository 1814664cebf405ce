#!/bin/sh
# Serve the demo experiment (called by `make demo` after the machine side built it).
# Env: DEMO (study folder, default build/demo), HOST, PORT, PY (python of the venv);
# optional EXPERIMENT_FILE and EXPERIMENT_NAME (default $DEMO/experiments/demo.json, demo).
# Steps: db upgrade, load-experiment (idempotent), admin password (generated once, kept in
# the demo's instance folder), print the links, then exec gunicorn (Ctrl-C stops it).
set -eu
DEMO=${DEMO:-build/demo}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
PY=${PY:-.venv/bin/python}
cd "$(dirname "$0")/.."
mkdir -p "$DEMO"
DEMO_ABS=$(cd "$DEMO" && pwd)
EXPERIMENT_FILE=${EXPERIMENT_FILE:-$DEMO_ABS/experiments/demo.json}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-demo}
export TLL_INSTANCE="$DEMO_ABS/instance"
export DATABASE_URL="sqlite:///$DEMO_ABS/server.sqlite3"
unset TLL_ENV || true

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

BASE="http://$HOST:$PORT"
cat <<MSG

  Demo server for experiment '$EXPERIMENT_NAME' (SQLite: $DEMO_ABS/server.sqlite3)
  Participant link: $BASE/lab/$EXPERIMENT_NAME/
  Admin link:       $BASE/manage/   (user: admin, password: $PASSWORD
                    kept in $PWFILE)
  Stop with Ctrl-C.

MSG
exec "$PY" -m gunicorn --bind "$HOST:$PORT" --workers 2 --threads 4 --graceful-timeout 3 \
  --access-logfile - "server:create_app()"

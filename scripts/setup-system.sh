#!/bin/sh
# Install what `make test`, `make demo` or `make bench` needs beyond Python, when missing.
#
#   sh scripts/setup-system.sh test|demo|bench
#
# - Python: `$PYTHON` (default python3) must be 3.11 or newer; a fresh Debian also needs
#   `python3-venv` for `python3 -m venv` (only checked while .venv does not exist yet).
# - test:  Debian's `chromium` (headless browser tests), the PostgreSQL server binaries
#          (`postgresql`: the tests start a throw-away cluster), `nginx` and `openssl` (the
#          production test makes its TLS certificate with the openssl CLI), `slurm-wlm`
#          and `munge` (the Slurm test starts a one-node cluster on loopback).
# - bench: `postgresql` and `nginx`.
# - test and demo: R with lme4 and jsonlite (`r-base-core r-cran-lme4 r-cran-jsonlite`):
#          the analysis report fits its mixed model with lme4's glmer through Rscript.
# - demo:  otherwise nothing beyond Python (SQLite, gunicorn from the virtual environment).
# Missing packages are installed with apt-get when running as root, or through
# passwordless sudo (`sudo -n`); otherwise the script prints the exact command on one line
# and exits 1. Nothing is installed when everything is there.
# Env: PYTHON, VENV (default .venv), TLL_PG_INITDB_GLOB (where initdb lives, default
# /usr/lib/postgresql/*/bin/initdb), TLL_NGINX (default /usr/sbin/nginx, outside a user's PATH),
# TLL_SLURMCTLD (default /usr/sbin/slurmctld), TLL_MUNGED (default /usr/sbin/munged).
set -eu

what=${1:-test}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PG_GLOB=${TLL_PG_INITDB_GLOB:-/usr/lib/postgresql/*/bin/initdb}
NGINX=${TLL_NGINX:-/usr/sbin/nginx}
SLURMCTLD=${TLL_SLURMCTLD:-/usr/sbin/slurmctld}
MUNGED=${TLL_MUNGED:-/usr/sbin/munged}

case "$what" in
  test|demo|bench) ;;
  *) echo "error: usage: sh scripts/setup-system.sh test|demo|bench (not '$what')" >&2; exit 2 ;;
esac

# --- Python 3.11+
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found: the project needs Python 3.11 or newer (Debian: apt-get install python3 python3-venv)" >&2
  exit 2
fi
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "?")
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
  echo "error: $PYTHON is Python $version; the project needs Python 3.11 or newer (install it, then run make PYTHON=python3.11 ...)" >&2
  exit 2
fi

need=""
add() { need="${need:+$need }$1"; }

if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  add python3-venv
fi

have_pg() {
  for f in $PG_GLOB; do
    [ -x "$f" ] && return 0
  done
  command -v initdb >/dev/null 2>&1
}

have_lme4() {
  command -v Rscript >/dev/null 2>&1 &&
    Rscript -e 'quit(status = !all(sapply(c("lme4", "jsonlite"), requireNamespace, quietly = TRUE)))' >/dev/null 2>&1
}

case "$what" in
  test|demo) have_lme4 || add "r-base-core r-cran-lme4 r-cran-jsonlite" ;;
esac

case "$what" in
  test)
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || add chromium
    have_pg || add postgresql
    command -v nginx >/dev/null 2>&1 || [ -x "$NGINX" ] || add nginx
    command -v openssl >/dev/null 2>&1 || add openssl
    [ -x "$SLURMCTLD" ] || add slurm-wlm
    [ -x "$MUNGED" ] || add munge
    ;;
  bench)
    have_pg || add postgresql
    command -v nginx >/dev/null 2>&1 || [ -x "$NGINX" ] || add nginx
    ;;
esac

[ -z "$need" ] && exit 0

cmd="apt-get install -y $need"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing $need and there is no apt-get here: install them with your system's package manager" >&2
  exit 1
fi
if [ "$(id -u)" = "0" ]; then
  echo "setup-system: installing $need (apt-get, as root)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $cmd
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  echo "setup-system: installing $need (sudo apt-get)"
  sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo -n env DEBIAN_FRONTEND=noninteractive $cmd
else
  echo "error: missing $need: run \`sudo apt-get update && sudo $cmd\` (or as root), then make $what again" >&2
  exit 1
fi

#!/usr/bin/env bash
# What `make test-remote` needs besides the project's .venv, installed once (idempotent):
# Debian's PostgreSQL (BuildGrid's scheduler refuses SQLite) and bubblewrap, and BuildGrid from
# PyPI in its own venv. pip resolves buildgrid 0.4.4 on Python 3.11 (later releases need 3.12+);
# the first install takes ~10 minutes (many wheels), later runs find it in place.
set -euo pipefail
BGD_HOME=${BGD_HOME:-/var/cache/distroless-buildgrid}
BGD_VERSION=0.4.4

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v bwrap >/dev/null || need+=(bubblewrap)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if ! "$BGD_HOME/venv/bin/python" -c "import buildgrid, psycopg2, sys; from importlib.metadata import version; sys.exit(version('buildgrid') != '$BGD_VERSION')" 2>/dev/null; then
  mkdir -p "$BGD_HOME"
  /usr/bin/python3 -m venv "$BGD_HOME/venv"
  "$BGD_HOME/venv/bin/pip" install -q --upgrade pip
  "$BGD_HOME/venv/bin/pip" install -q "buildgrid==$BGD_VERSION" psycopg2-binary
fi
"$BGD_HOME/venv/bin/bgd" --help >/dev/null
echo "buildgrid $BGD_VERSION in $BGD_HOME/venv"

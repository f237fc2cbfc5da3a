#!/usr/bin/env bash
# Starts, stops and reports a local PostgreSQL + pgvector instance for imgpick's database tier (the engine comes
# from scripts/setup.sh; see scripts/lib/pg-env.sh for where it lives and which user runs it).
#
#   scripts/pg.sh start [--port N] [--dir DIR] [--foreground]   prints the URL: postgres://imgpick:…@127.0.0.1:N/imgpick
#   scripts/pg.sh stop [--dir DIR]
#   scripts/pg.sh status [--dir DIR]                            exit 3 when it is not running
#   scripts/pg.sh url [--dir DIR]                               the URL of a running instance (exit 3 if none)
#   scripts/pg.sh psql [--dir DIR] [-- PSQL-ARGS…]              a psql shell on the imgpick database
#
# DIR (default $PG_DEFAULT_DIR) holds the data folder, postgres.log, the port and the password. Without --port,
# start reuses DIR's last port when it is free, else picks a free one. --foreground keeps the server attached
# (its log on stderr) and shuts it down cleanly on Ctrl-C. The server listens on 127.0.0.1 only, password auth
# (scram-sha-256; the password is generated once per DIR), no Unix socket.
#   IMGPICK_PG_FAST=1   no fsync (test instances: faster, and a crash loses the data)
# Exit codes: 0 ok, 1 error, 2 bad usage, 3 not running, 4 engine not installed (run scripts/setup.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/pg-env.sh
source "$ROOT/scripts/lib/pg-env.sh"

die() { echo "pg.sh: $*" >&2; exit 1; }
info() { echo "pg.sh: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

cmd="${1:-}"; [ $# -gt 0 ] && shift
DIR="${IMGPICK_PG_DIR:-$PG_DEFAULT_DIR}"; PORT=""; FOREGROUND=0; PSQL_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="${2:?--port needs a number}"; shift 2 ;;
    --port=*) PORT="${1#*=}"; shift ;;
    --dir) DIR="${2:?--dir needs a folder}"; shift 2 ;;
    --dir=*) DIR="${1#*=}"; shift ;;
    --foreground) FOREGROUND=1; shift ;;
    --) shift; PSQL_ARGS=("$@"); break ;;
    *) echo "pg.sh: unknown argument $1" >&2; usage ;;
  esac
done
if [ -n "$PORT" ] && ! [[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1 && "$PORT" -le 65535 ]]; then
  die "--port must be a TCP port from 1 to 65535, got '$PORT'"
fi
mkdir -p "$(dirname "$DIR")"
DIR="$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")"
DATA="$DIR/data"
LOG="$DIR/postgres.log"

need_engine() {
  pg_engine_ok && return 0
  echo "pg.sh: the PostgreSQL engine is not installed ($PG_BIN has no postgres); run scripts/setup.sh" >&2
  exit 4
}
running() { [ -f "$DATA/PG_VERSION" ] && as_pg_user "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }
url() { echo "postgres://$PG_DB_USER:$(cat "$DIR/password")@127.0.0.1:$(cat "$DIR/port")/$PG_DB_NAME"; }
port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
psql_on() {  # psql_on DB ARGS… : as the instance's superuser over TCP
  local db="$1"; shift
  PGPASSWORD="$(cat "$DIR/password")" PGCONNECT_TIMEOUT=5 PGOPTIONS="-c client_min_messages=warning" \
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(cat "$DIR/port")" -U "$PG_DB_USER" -d "$db" "$@"
}

# Creates DIR for the server's user and initialises the cluster once.
init_dir() {
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown "$PG_USER:" "$DIR"; fi
  chmod 700 "$DIR"
  as_pg_user test -w "$DIR" \
    || die "$PG_USER cannot write $DIR: a parent folder is closed to it (e.g. one under /root); pick a --dir it can reach, such as one under /tmp or $PG_HOME"
  [ -f "$DATA/PG_VERSION" ] && return 0
  info "initialising a new cluster in $DATA"
  # Generated once: the URL carries it, the server never accepts a connection without it.
  head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$DIR/password"
  chmod 600 "$DIR/password"
  local pwfile="$DIR/.initdb-pw"
  cp "$DIR/password" "$pwfile"
  if [ "$(id -u)" = 0 ]; then chown "$PG_USER:" "$pwfile"; fi
  as_pg_user "$PG_BIN/initdb" -D "$DATA" -U "$PG_DB_USER" --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C ${IMGPICK_PG_FAST:+--no-sync} >"$DIR/initdb.log" 2>&1 \
    || { rm -f "$pwfile"; tail -n 20 "$DIR/initdb.log" >&2; die "initdb failed (log: $DIR/initdb.log)"; }
  rm -f "$pwfile"
  # imgpick.conf is rewritten on every start (the port may change); postgresql.conf includes it last.
  echo "include_if_exists = 'imgpick.conf'" | as_pg_user tee -a "$DATA/postgresql.conf" >/dev/null
}

write_conf() {
  {
    echo "# written by scripts/pg.sh on every start"
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $1"
    echo "unix_socket_directories = ''"
    echo "password_encryption = 'scram-sha-256'"
    [ -n "${IMGPICK_PG_FAST:-}" ] && printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n'
    true
  } | as_pg_user tee "$DATA/imgpick.conf" >/dev/null
}

start() {
  need_engine
  pg_ensure_user || die "could not create the system user $PG_USER (the server cannot run as root)"
  if running; then
    [ -n "$PORT" ] && [ "$PORT" != "$(cat "$DIR/port")" ] && die "already running on port $(cat "$DIR/port") (stop it first to change the port)"
    info "already running ($DATA)"
    url
    return 0
  fi
  init_dir
  local tries=1 port="$PORT"
  [ -z "$port" ] && [ -f "$DIR/port" ] && port_free "$(cat "$DIR/port")" && port="$(cat "$DIR/port")"
  [ -z "$PORT" ] && tries=3
  while :; do
    [ -z "$port" ] && port="$(free_port)"
    write_conf "$port"
    echo "$port" >"$DIR/port"
    : >"$LOG"
    if [ "$(id -u)" = 0 ]; then chown "$PG_USER:" "$LOG"; fi
    if as_pg_user "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null; then break; fi
    tries=$((tries - 1))
    if [ "$tries" -gt 0 ] && grep -q 'could not bind\|already in use' "$LOG"; then
      info "port $port was taken meanwhile; trying another"; port=""; continue
    fi
    tail -n 20 "$LOG" >&2
    die "the server did not start on 127.0.0.1:$port (log: $LOG)"
  done
  if [ -z "$(psql_on postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB_NAME'")" ]; then
    psql_on postgres -c "CREATE DATABASE $PG_DB_NAME" || die "could not create the database $PG_DB_NAME"
  fi
  psql_on "$PG_DB_NAME" -c "CREATE EXTENSION IF NOT EXISTS vector" || die "CREATE EXTENSION vector failed (log: $LOG)"
  info "PostgreSQL $(psql_on "$PG_DB_NAME" -tAc "SELECT current_setting('server_version') || ' + pgvector ' || extversion FROM pg_extension WHERE extname = 'vector'") on 127.0.0.1:$port (data: $DATA, log: $LOG)"
  url
}

stop() {
  if ! running; then info "not running ($DATA)"; return 0; fi
  as_pg_user "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed (log: $LOG)"
  info "stopped ($DATA)"
}

status() {
  if ! running; then info "not running ($DATA)"; exit 3; fi
  local pid; pid="$(head -1 "$DATA/postmaster.pid" 2>/dev/null || echo '?')"
  echo "running: pid $pid, $(url)"
  echo "data: $DATA ($(du -sh "$DATA" 2>/dev/null | cut -f1)), log: $LOG"
  psql_on "$PG_DB_NAME" -tAc "SELECT 'gallery: ' || coalesce((SELECT model_id || ', ' || rows_total || ' images, ' || state
    FROM imgpick_meta WHERE slot = 'live'), 'none loaded') WHERE to_regclass('imgpick_meta') IS NOT NULL" 2>/dev/null || true
}

foreground() {
  # Set before starting: a Ctrl-C that comes while the server starts stops it as well.
  trap 'trap - INT TERM; echo >&2; stop; exit 0' INT TERM
  start
  local pid; pid="$(head -1 "$DATA/postmaster.pid")"
  info "running in the foreground; Ctrl-C stops it"
  tail -n 0 -f --pid="$pid" "$LOG" >&2 &
  wait $! || true
  trap - INT TERM
  running && { stop; exit 0; }
  die "the server exited by itself (log: $LOG)"
}

case "$cmd" in
  start) if [ "$FOREGROUND" = 1 ]; then foreground; else start; fi ;;
  stop) need_engine; stop ;;
  status) need_engine; status ;;
  url) need_engine; running || { info "not running ($DATA)"; exit 3; }; url ;;
  psql) need_engine; running || { info "not running ($DATA); start it with scripts/pg.sh start"; exit 3; }
        psql_on "$PG_DB_NAME" "${PSQL_ARGS[@]}" ;;
  ""|-h|--help|help) usage ;;
  *) echo "pg.sh: unknown command $cmd" >&2; usage ;;
esac

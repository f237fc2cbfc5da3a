#!/usr/bin/env bash
# /api/search through `web --db` (the database tier) under load, on 127.0.0.1 only: requests/s, p50/p99 latency,
# 503s, the server's peak threads and its resident memory before the first row and after the last, at 1, 16 and
# 64 concurrent keep-alive connections; the same rows for the in-memory engine (`web` without --db) on the same
# gallery, for comparison. Prints a Markdown table; measured numbers are kept in docs/scale.md.
#   scripts/bench/web-db.sh                     # 100,000 images, 20 s per row
#   N=20000 SECS=10 EF=200 scripts/bench/web-db.sh
#   IMGPICK_TRAINER_BIN=path/to/trainer scripts/bench/web-db.sh   # load with this trainer (no build)
# The gallery: N random unit vectors for static/model (web/examples/bench_gallery.rs: int8, like trainer publish),
# loaded with `trainer db-load` (halfvec, HNSW m 24 / ef_construction 96) into a PostgreSQL instance of this run's
# own (scripts/pg.sh, scratch folder, removed afterwards). Random vectors are the hard case for a graph index (docs/
# scale.md): each search walks ef_search (EF, default 800 as shipped) candidates either way, so the cost per query is
# what a real gallery of that size costs. Needs static/model (trainer export) and scripts/setup.sh's PostgreSQL.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
die() { echo "web-db: $*" >&2; exit 1; }
trap 'echo "web-db: failed at line $LINENO: $BASH_COMMAND" >&2' ERR  # a 100k run once stopped without a word
N="${N:-100000}"
SECS="${SECS:-20}"
EF="${EF:-800}"
QUERY="${QUERY:-a+dog+running+on+the+beach}"

[ -f static/model/manifest.json ] || die "static/model is missing (export a model with trainer export)"
cargo build -q --release -p web --bin web --example load --example bench_gallery
TRAINER="${IMGPICK_TRAINER_BIN:-}"  # a trainer binary to load with (default: the release build, else the debug one)
if [ -z "$TRAINER" ]; then
  if [ -x target/release/trainer ]; then TRAINER=target/release/trainer; else cargo build -q -p trainer; TRAINER=target/debug/trainer; fi
fi
LOAD="$ROOT/target/release/examples/load"

WORK="$(mktemp -d -t imgpick-web-db-XXXXXX)"
chmod 755 "$WORK"  # as root the database server runs as imgpick-pg, which must enter it
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  scripts/pg.sh stop --dir "$WORK/pg" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

URL_DB="$(IMGPICK_PG_FAST=1 scripts/pg.sh start --dir "$WORK/pg" 2>"$WORK/pg-start.log")" \
  || { cat "$WORK/pg-start.log" >&2; die "could not start PostgreSQL (scripts/setup.sh installs it)"; }
"$ROOT/target/release/examples/bench_gallery" static/model "$WORK/gallery" "$N" >/dev/null
started=$(date +%s)
IMGPICK_DB_URL="$URL_DB" RUST_LOG=warn "$TRAINER" db-load --model static/model --gallery "$WORK/gallery" >"$WORK/db-load.log"
echo "web-db: $N images loaded in $(( $(date +%s) - started )) s ($(tail -n 2 "$WORK/db-load.log" | head -1))" >&2

# The page's files linked in, the synthetic gallery as gallery/.
mkdir -p "$WORK/static"
for f in static/*; do [ "$(basename "$f")" = gallery ] || ln -s "$ROOT/$f" "$WORK/static/"; done
ln -s "$WORK/gallery" "$WORK/static/gallery"

# start NAME ARGS…: a server on a free port; sets URL and PID.
start() {
  local name="$1"; shift
  "$ROOT/target/release/web" --port 0 --static-dir "$WORK/static" --watch-interval-secs 0 "$@" >"$WORK/$name.log" 2>&1 &
  PID=$!; PIDS+=("$PID"); URL=""
  for _ in $(seq 1 600); do
    URL="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/$name.log" | head -1 || true)"
    [ -n "$URL" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "the $name server exited"; }
    sleep 0.1
  done
  [ -n "$URL" ] || die "the $name server did not start in 60 s"
  # Startup work (compressing the page's text files once) must not overlap the rows: wait for a quiet second.
  local last now quiet=0
  last="$(awk '{print $14 + $15}' "/proc/$PID/stat")"
  for _ in $(seq 1 120); do
    sleep 0.5
    now="$(awk '{print $14 + $15}' "/proc/$PID/stat")"
    if [ $((now - last)) -le 1 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    last="$now"
    [ "$quiet" -ge 2 ] && break
  done
}
# One table row from load's JSON line (stdin): backend, RSS before, RSS after.
ROW='
import json, sys
r = json.loads(sys.stdin.read())
ms = lambda v: "-" if v is None else "%.1f" % v
bad = " (%d other, %d errors)" % (r["other_status"], r["errors"]) if r["other_status"] or r["errors"] else ""
print("| %s | %d | %.0f%s | %.0f | %s | %s | %s | %s → %s |" % (sys.argv[1], r["concurrency"], r["ok_rps"], bad,
      r["busy_503"] / r["seconds"], ms(r["p50_ms"]), ms(r["p99_ms"]), r["peak_threads"], sys.argv[2], sys.argv[3]))'
rss_mb() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "web-db: $N images, ef_search $EF, $SECS s per row, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| backend | connections | req/s (2xx) | 503/s | p50 ms | p99 ms | peak threads | RSS MB before → after |"
echo "|---|---|---|---|---|---|---|---|"
for backend in database memory; do
  if [ "$backend" = database ]; then start "$backend" --db "$URL_DB" --db-ef-search "$EF"; else start "$backend"; fi
  path="/api/search?q=$QUERY&k=10"
  "$LOAD" --url "$URL$path" -c 1 --secs 1 >/dev/null  # warm-up: the first search connects / pages the gallery in
  before="$(rss_mb "$PID")"
  for c in 1 16 64; do
    "$LOAD" --url "$URL$path" -c "$c" --secs "$SECS" --pid "$PID" >"$WORK/row.json"
    after="$(rss_mb "$PID")"
    python3 -c "$ROW" "$backend" "$before" "$after" <"$WORK/row.json"
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true
done

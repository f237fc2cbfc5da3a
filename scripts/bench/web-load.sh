#!/usr/bin/env bash
# Load benchmark of the `web` server, on 127.0.0.1 only: requests/s, p50/p99 latency, the server's peak thread
# count and resident memory, for /api/search at 1, 16 and 64 concurrent keep-alive connections, for the wasm
# package (brotli accepted, as browsers ask for it) and for a small file. Prints a Markdown table; measured
# numbers are kept in docs/benchmarks.md ("Web server under load").
#   scripts/bench/web-load.sh                         # the current server (release build)
#   WEB_BIN=/path/to/other/web scripts/bench/web-load.sh   # another build, e.g. a baseline built in a git worktree
#   SECS=10 scripts/bench/web-load.sh                 # seconds per row (default 8)
# Needs static/model and static/pkg (scripts/build-wasm.sh). Uses static/gallery when one is published, else
# a synthetic 1,000-image gallery for static/model (web/examples/bench_gallery.rs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
die() { echo "web-load: $*" >&2; exit 1; }
SECS="${SECS:-8}"
QUERY="${QUERY:-a+dog+running+on+the+beach}"

[ -f static/model/manifest.json ] || die "static/model is missing (export a model with trainer export)"
[ -f static/pkg/wasm_model_bg.wasm ] || die "static/pkg is missing: run scripts/build-wasm.sh first"
cargo build -q --release -p web --bin web --example load --example bench_gallery
WEB_BIN="${WEB_BIN:-$ROOT/target/release/web}"
LOAD="$ROOT/target/release/examples/load"

WORK="$(mktemp -d -t imgpick-web-load-XXXXXX)"
PID=""
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# The page's files linked in (top-level links are served, see web/src/files.rs); the published gallery or a
# synthetic one.
mkdir -p "$WORK/static"
for f in static/*; do [ "$(basename "$f")" = gallery ] || ln -s "$ROOT/$f" "$WORK/static/"; done
if [ -f static/gallery/gallery.json ]; then
  ln -s "$ROOT/static/gallery" "$WORK/static/gallery"
  GALLERY="static/gallery"
else
  "$ROOT/target/release/examples/bench_gallery" static/model "$WORK/static/gallery" 1000 >/dev/null
  GALLERY="synthetic, 1,000 images"
fi

"$WEB_BIN" --port 0 --static-dir "$WORK/static" >"$WORK/server.log" 2>&1 &
PID=$!
URL=""
for _ in $(seq 1 600); do
  URL="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/server.log" | head -1 || true)"
  [ -n "$URL" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
  sleep 0.1
done
[ -n "$URL" ] || die "the server did not start in 60 s"

# Startup work (a new server compresses its text files once, in the background) must not overlap the rows:
# wait until the server has used no CPU for a second (60 s at most).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
last="$(cpu_ticks)"; quiet=0
for _ in $(seq 1 120); do
  sleep 0.5
  now="$(cpu_ticks)"
  if [ $((now - last)) -le 1 ]; then quiet=$((quiet + 1)); else quiet=0; fi
  last="$now"
  [ "$quiet" -ge 2 ] && break
done

BR='Accept-Encoding: gzip, deflate, br'
ROWS=(
  "search|1|/api/search?q=$QUERY&k=10|"
  "search|16|/api/search?q=$QUERY&k=10|"
  "search|64|/api/search?q=$QUERY&k=10|"
  "wasm (br)|1|/pkg/wasm_model_bg.wasm|$BR"
  "wasm (br)|16|/pkg/wasm_model_bg.wasm|$BR"
  "index.html|1|/index.html|$BR"
)
# Warm-up: the first search loads lazily-built state, the first wasm request may compress it.
for row in "${ROWS[@]}"; do
  IFS='|' read -r _ _ path header <<<"$row"
  "$LOAD" --url "$URL$path" -c 1 --secs 1 ${header:+--header "$header"} >/dev/null
done
echo "web-load: $WEB_BIN, gallery: $GALLERY, $SECS s per row, $(nproc) cores"
echo
echo "| request | connections | req/s (2xx) | 503/s | p50 ms | p99 ms | peak threads | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
  IFS='|' read -r name c path header <<<"$row"
  "$LOAD" --url "$URL$path" -c "$c" --secs "$SECS" --pid "$PID" ${header:+--header "$header"} \
    | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
ms = lambda v: "-" if v is None else "%.1f" % v
busy = r["busy_503"] / r["seconds"]
bad = " (%d other, %d errors)" % (r["other_status"], r["errors"]) if r["other_status"] or r["errors"] else ""
print("| %s | %d | %.0f%s | %.0f | %s | %s | %s | %.0f |" % (sys.argv[1], r["concurrency"], r["ok_rps"], bad, busy,
      ms(r["p50_ms"]), ms(r["p99_ms"]), r["peak_threads"], r["peak_rss_mb"]))' "$name"
done

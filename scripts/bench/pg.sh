#!/usr/bin/env bash
# The database tier at scale: N synthetic images (default 1 M) made from a real published gallery, loaded into a
# local PostgreSQL + pgvector instance of its own; prints load and HNSW build time, table and index size, recall@10
# against the exact shipped scoring over an ef_search sweep, and query latency p50/p99 (db/examples/bench.rs).
#
#   scripts/bench/pg.sh [--base GALLERY_DIR] [BENCH-ARGS…]     e.g. --n 100000 --types halfvec,vector --ef 40,100
#
# The base gallery gives real image vectors, hubness and captions (the queries); default static/gallery (make demo).
# Any gallery published with static/model works, e.g. Flickr8k val (research use only; stays under target/):
#   target/debug/trainer publish --model static/model --images ../shared/data/flickr8k/images \
#     --captions ../shared/data/flickr8k/captions_val.json --out target/bench/flickr8k-val --dtype f16
# Cost at 1 M images, one storage type, on this 2-core machine: 17–19 minutes with both cores busy (and other jobs
# running; most of it the HNSW build), 8.4 GB peak memory for the bench process (the synthetic gallery is built in
# memory), up to --maintenance-work-mem (2 GB) for the index build, ~4 GB of disk in a scratch folder removed afterwards.
# Results: docs/scale.md, "PostgreSQL + pgvector (measured)".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
die() { echo "bench/pg.sh: $*" >&2; exit 1; }

BASE=static/gallery
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE="${2:?--base needs a gallery folder}"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ -f "$BASE/gallery.bin" ] || die "no gallery in $BASE: run make demo, or publish one and pass --base (see the top of $0)"

# Release: the text encoder and the exact Rust scan are workspace code, unoptimised in the dev profile.
cargo build -q --release -p db --example bench
scratch="$(mktemp -d "${TMPDIR:-/tmp}/imgpick-pg-bench.XXXXXX")"
chmod 755 "$scratch"  # as root the server runs as imgpick-pg, which must enter it
cleanup() { scripts/pg.sh stop --dir "$scratch/pg" >/dev/null 2>&1 || true; rm -rf "$scratch"; }
trap cleanup EXIT
url="$(scripts/pg.sh start --dir "$scratch/pg")"
target/release/examples/bench --url "$url" --model static/model --base "$BASE" "${ARGS[@]}"

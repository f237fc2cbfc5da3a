#!/usr/bin/env bash
# `trainer publish` throughput, natively: images/s embedding a folder of photos with the shipped model's views
# (manifest retrieval.image_views: 7) and with one view (--plain), each beside the pass of earlier versions
# (--one-at-a-time: each photo decoded on the network's thread just before its pass) with the ratio, a rerun that
# finds everything cached, and a run killed halfway then resumed (what the resume re-embeds). Then `trainer index`
# partitioning the published gallery.
# Prints a Markdown table; measured numbers are kept in docs/benchmarks.md ("Publishing throughput").
#   scripts/bench/publish.sh                       # 300 Flickr8k val photos when ../shared has them, else assets/photos
#   N=1000 THREADS=1 scripts/bench/publish.sh      # more photos; libtorch threads (default: all cores)
#   IMAGES=/my/photos scripts/bench/publish.sh     # any folder of photos (the first N files, sorted)
#   BATCH=4 scripts/bench/publish.sh               # images per forward pass (default: publish's, 1)
# Needs static/model (trainer export) and the installed backbone weights (scripts/setup.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
die() { echo "publish-bench: $*" >&2; exit 1; }
N="${N:-300}"
THREADS="${THREADS:-}"
FLICKR8K="${IMGPICK_FLICKR8K:-$(cd .. && pwd)/shared/data/flickr8k}"
if [ -z "${IMAGES:-}" ]; then
  if [ -f "$FLICKR8K/captions_val.json" ]; then IMAGES=val; else IMAGES="$ROOT/assets/photos"; fi
fi
[ -f static/model/manifest.json ] || die "static/model is missing (export a model with trainer export)"
cargo build -q -p trainer  # the dev profile optimises dependencies (libtorch does the work)
TRAINER="$ROOT/target/debug/trainer"
thread_args=()
[ -z "$THREADS" ] || thread_args=(--threads "$THREADS")
batch_args=()
[ -z "${BATCH:-}" ] || batch_args=(--batch-images "$BATCH")

WORK="$(mktemp -d -t imgpick-publish-bench-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/images"
# The photos, hard-linked (or copied across file systems) so the bench never touches the originals.
if [ "$IMAGES" = val ]; then
  python3 - "$FLICKR8K" "$N" "$WORK/images" <<'PY'
import json, os, shutil, sys
root, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = sorted({im["file_name"] for im in json.load(open(os.path.join(root, "captions_val.json")))["images"]})[:n]
for f in files:
    src, dst = os.path.join(root, "images", f), os.path.join(out, os.path.basename(f))
    try: os.link(src, dst)
    except OSError: shutil.copyfile(src, dst)
PY
  source_name="Flickr8k val"
else
  [ -d "$IMAGES" ] || die "IMAGES=$IMAGES is not a folder"
  find "$IMAGES" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) | sort | head -n "$N" |
    while IFS= read -r f; do ln "$f" "$WORK/images/" 2>/dev/null || cp "$f" "$WORK/images/"; done
  source_name="$(basename "$IMAGES")"
fi
count="$(find "$WORK/images" -type f | wc -l)"
[ "$count" -gt 0 ] || die "no photos to publish"
mb="$(du -sm "$WORK/images" | cut -f1)"
views="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])).get("retrieval") or {}; print(len(r.get("image_views") or ["original"]))' static/model/manifest.json)"

rows=()
now() { date +%s.%N; }
# publish OUT [ARGS...]: prints seconds
publish() {
  local out="$1"; shift
  local t0; t0="$(now)"
  RUST_LOG=error "$TRAINER" "${thread_args[@]}" publish --model static/model --images "$WORK/images" --out "$out" "$@" >"$WORK/last.log" 2>&1 \
    || { cat "$WORK/last.log" >&2; die "trainer publish failed"; }
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(now)"
}
FIXED=""  # seconds a publish takes with nothing to embed (model, gallery files, summary): the rerun's time
row() {  # setting, images, seconds, note
  local rate; rate="$(python3 -c "
import sys
n, s, fixed = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
whole = f'{n / s:.1f}' if s > 0 and n else '-'
embed = f'{n / (s - float(fixed)):.1f}' if fixed and n and s > float(fixed) else '-'
print(f'{whole} | {embed}')" "$2" "$3" "$FIXED")"
  rows+=("| $1 | $2 | $3 s | $rate | $4 |")
}

echo "publish-bench: $count photos ($source_name, $mb MB), $views views as shipped, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# each setting beside earlier versions' pass, run one after the other so both see the same load
one="$(publish "$WORK/one" --plain "${batch_args[@]}")"
one_before="$(publish "$WORK/one-before" --plain --one-at-a-time)"
shipped="$(publish "$WORK/shipped" "${batch_args[@]}")"
shipped_before="$(publish "$WORK/shipped-before" --one-at-a-time)"
FIXED="$(publish "$WORK/shipped")"
faster() {  # seconds now, seconds before: how many times the embedding rate (less the fixed cost)
  python3 -c "import sys; now, before, fixed = map(float, sys.argv[1:]); print(f'{(before - fixed) / (now - fixed):.2f}' if now > fixed and before > fixed else '-')" "$1" "$2" "$FIXED"
}
row "one view (--plain)" "$count" "$one" "decode on a thread ahead of the network; $(faster "$one" "$one_before")× the rate of the pass before"
row "one view, one at a time (before)" "$count" "$one_before" "each photo decoded on the network's thread before its pass (--one-at-a-time)"
row "shipped views ($views)" "$count" "$shipped" "as \`make demo\` publishes; $(faster "$shipped" "$shipped_before")× the rate of the pass before"
row "shipped views, one at a time (before)" "$count" "$shipped_before" "--one-at-a-time"
row "rerun, nothing changed" 0 "$FIXED" "every vector from .publish-cache.jsonl: the fixed cost"

# Killed once half the photos are in its cache, then resumed: the rerun embeds only what is missing.
RUST_LOG=error "$TRAINER" "${thread_args[@]}" publish --plain --model static/model --images "$WORK/images" --out "$WORK/killed" >/dev/null 2>&1 &
pid=$!
cache="$WORK/killed/.publish-cache.jsonl"
cached() { local n; n="$(grep -c '"vector"' "$cache" 2>/dev/null || true)"; echo "${n:-0}"; }
while kill -0 "$pid" 2>/dev/null && [ "$(cached)" -lt $((count / 2)) ]; do sleep 0.05; done
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
cached="$(cached)"
s="$(publish "$WORK/killed" --plain)"
embedded="$(sed -n 's/.*(\([0-9]*\) embedded, \([0-9]*\) unchanged.*/\1/p' "$WORK/last.log")"
row "resume after a kill (one view)" "$embedded" "$s" "killed with $cached of $count in the cache; the resume embedded $embedded"

t0="$(now)"
RUST_LOG=error "$TRAINER" index --gallery "$WORK/shipped" --out "$WORK/partitioned" >"$WORK/index.log" 2>&1 || { cat "$WORK/index.log" >&2; die "trainer index failed"; }
s="$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(now)")"
rows+=("| trainer index (partition the published gallery) | - | $s s | - | - | $(tail -1 "$WORK/index.log" | cut -d';' -f1) |")

echo
echo "| setting | images embedded | time | images/s | images/s less the fixed cost | note |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "(libtorch threads: ${THREADS:-all cores}; images per pass: ${BATCH:-the default}; load average at the end $(cut -d' ' -f1-3 /proc/loadavg))"

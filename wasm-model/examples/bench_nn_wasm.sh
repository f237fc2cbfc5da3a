#!/usr/bin/env bash
# candle-nn or hand-written, in wasm: builds the package with feature `nn-bench` (the shipped build's profile,
# SIMD128 and wasm-opt flags; scripts/build-wasm.sh) into target/wasm-nn-bench/ — static/pkg is not touched —
# and prints the `nn_bench` table in Node for static/model (or [model_dir]).
# Usage: wasm-model/examples/bench_nn_wasm.sh [model_dir]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/target/wasm-nn-bench"
die() { echo "bench_nn_wasm: FAILED: $*" >&2; exit 1; }
# shellcheck source=../../scripts/lib/wasm-env.sh
source "$ROOT/scripts/lib/wasm-env.sh"
for tool in wasm-bindgen wasm-opt; do
  [ -x "$ROOT/.tools/$tool" ] || die "$ROOT/.tools/$tool is missing: run scripts/setup.sh"
done
cd "$ROOT"
cargo build -q -p wasm-model --lib --no-default-features --features nn-bench --profile wasm-release \
  --target wasm32-unknown-unknown || die "cargo build for wasm32 failed"
mkdir -p "$OUT"
"$ROOT/.tools/wasm-bindgen" --target web --out-dir "$OUT" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/wasm_model.wasm" || die "wasm-bindgen failed"
"$ROOT/.tools/wasm-opt" -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/wasm_model_bg.wasm" -o "$OUT/wasm_model_bg.wasm" || die "wasm-opt failed"
node "$ROOT/wasm-model/examples/bench_nn.mjs" "$OUT" "${1:-$ROOT/static/model}"

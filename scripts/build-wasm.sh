#!/usr/bin/env bash
# Builds the browser package static/pkg/ (wasm_model.js + wasm_model_bg.wasm): cargo (Debian's wasm32 Rust,
# profile wasm-release, SIMD128) → wasm-bindgen --target web → wasm-opt -O3. Fast when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/static/pkg"
die() { echo "build-wasm: FAILED: $*" >&2; exit 1; }

# shellcheck source=lib/wasm-env.sh
source "$ROOT/scripts/lib/wasm-env.sh"
for tool in wasm-bindgen wasm-opt; do
  [ -x "$ROOT/.tools/$tool" ] || die "$ROOT/.tools/$tool is missing: run scripts/setup.sh"
done
cd "$ROOT"
cargo build -q -p wasm-model --lib --no-default-features --profile wasm-release --target wasm32-unknown-unknown \
  || die "cargo build for wasm32 failed (see the errors above)"
WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/wasm_model.wasm"
[ -f "$WASM" ] || die "cargo did not produce $WASM"

# Rebuild the package only when the compiled module or the tools changed.
stamp="$(cat "$WASM" "$0" | sha256sum | cut -c1-16) $("$ROOT/.tools/wasm-bindgen" --version)"
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ] && [ -f "$OUT/wasm_model_bg.wasm" ]; then
  echo "build-wasm: static/pkg is up to date"
else
  mkdir -p "$OUT"
  "$ROOT/.tools/wasm-bindgen" --target web --out-dir "$OUT" "$WASM" || die "wasm-bindgen failed"
  # The features rustc enables for wasm32 by default, plus SIMD128 (binaryen refuses what is not enabled).
  "$ROOT/.tools/wasm-opt" -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$OUT/wasm_model_bg.wasm" -o "$OUT/wasm_model_bg.opt.wasm" || die "wasm-opt failed"
  mv "$OUT/wasm_model_bg.opt.wasm" "$OUT/wasm_model_bg.wasm"
  echo "$stamp" >"$OUT/.stamp"
fi
size() { stat -c %s "$1"; }
printf 'build-wasm: %-22s %9s bytes  (%s gzip -9)\n' \
  "wasm (cargo)" "$(size "$WASM")" "$(gzip -9c "$WASM" | wc -c)" \
  "static/pkg wasm (opt)" "$(size "$OUT/wasm_model_bg.wasm")" "$(gzip -9c "$OUT/wasm_model_bg.wasm" | wc -c)" \
  "static/pkg js glue" "$(size "$OUT/wasm_model.js")" "$(gzip -9c "$OUT/wasm_model.js" | wc -c)"

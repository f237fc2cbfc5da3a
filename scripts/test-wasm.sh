#!/usr/bin/env bash
# Runs wasm-model's wasm tests (tests/wasm_*.rs, wasm-bindgen-test) for wasm32 with SIMD128,
# in Node and in headless Chromium.   Usage: scripts/test-wasm.sh [node|chromium|all]   (default all)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "test-wasm: FAILED: $*" >&2; exit 1; }
mode="${1:-all}"
case "$mode" in node|chromium|all) ;; *) die "unknown mode '$mode' (use node, chromium or all)";; esac

# shellcheck source=lib/wasm-env.sh
source "$ROOT/scripts/lib/wasm-env.sh"
RUNNER="$ROOT/.tools/wasm-bindgen-test-runner"
[ -x "$RUNNER" ] || die "$RUNNER is missing: run scripts/setup.sh"
command -v node >/dev/null || die "node is not installed"

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$RUNNER"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-120}"
cd "$ROOT"
# --no-default-features: the browser build must not need the `native` (file path) feature.
cargo_test=(cargo test -p wasm-model --no-default-features --target wasm32-unknown-unknown
            --test wasm_smoke --test wasm_engine --test wasm_image)

echo "test-wasm: building the wasm tests (Debian $(rustc --version | cut -d' ' -f2))"
"${cargo_test[@]}" --no-run || die "the wasm32 test build failed (see the errors above)"

if [ "$mode" != chromium ]; then
  echo "test-wasm: Node $(node --version)"
  "${cargo_test[@]}" || die "wasm tests failed in Node"
fi
if [ "$mode" != node ]; then
  [ -x /usr/bin/chromedriver ] || die "/usr/bin/chromedriver is missing: run scripts/setup.sh (Debian chromium-driver)"
  echo "test-wasm: headless Chromium ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
  # The runner starts chromedriver and asks for headless Chrome with --no-sandbox (needed as root);
  # wasm-model/webdriver.json adds the binary and the flags this machine needs. chromedriver's Chrome profiles
  # (~110 MB each) are left behind in TMPDIR when the runner stops it, so they get a TMPDIR of their own.
  browser_tmp="$(mktemp -d -t imgpick-wasm-chromium-XXXXXX)"
  trap 'rm -rf "$browser_tmp"' EXIT
  TMPDIR="$browser_tmp" WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver \
    WASM_BINDGEN_TEST_WEBDRIVER_JSON="$ROOT/wasm-model/webdriver.json" "${cargo_test[@]}" \
    || die "wasm tests failed in headless Chromium"
fi
echo "test-wasm: OK ($mode)"

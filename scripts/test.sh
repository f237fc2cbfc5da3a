#!/usr/bin/env bash
# The whole test suite (what `make test` runs after setup): native Rust tests of every crate, the wasm tests in
# Node and headless Chromium, then the browser end-to-end tests against the real page.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "native tests (cargo test --workspace)"
cargo test --workspace --no-fail-fast

step "wasm tests (Node and headless Chromium)"
scripts/test-wasm.sh

step "wasm package for the page"
scripts/build-wasm.sh

step "browser end-to-end tests"
scripts/test-e2e.sh

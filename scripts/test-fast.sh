#!/usr/bin/env bash
# The quick tier (what `make test-fast` runs; about a minute with a warm build): every crate's unit and
# integration tests (`cargo test --workspace --lib --bins --tests`: no doc tests, no wasm build, no browser) and
# the page's modules in Node. The tests that need Flickr8k are #[ignore]d and stay ignored here. Run the whole
# suite, `make test` (scripts/test.sh), before you commit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "native unit and integration tests (cargo test --workspace --lib --bins --tests)"
cargo test --workspace --lib --bins --tests --no-fail-fast

step "page modules (Node: every import resolves, protocol.js is consistent)"
node --no-warnings --experimental-vm-modules --test tests/page/

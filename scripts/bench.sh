#!/usr/bin/env bash
# Every benchmark of imgpick, each printing its own table (what `make bench` runs). Measured numbers and the
# date they were taken are kept in docs/benchmarks.md. PyTorch reference columns need a full torch install:
#   python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch==2.11.0 torchvision safetensors pillow
#   TORCH_PYTHON=/tmp/tv-venv/bin/python make bench
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "wasm-model: encode + rank latency; top-k over 1M x 256 int8 vs memcpy (criterion)"
cargo bench -q -p wasm-model --bench search

step "search latency: native vs wasm (Node) on static/model + static/gallery"
scripts/build-wasm.sh
GALLERY="" scripts/gallery/ensure-gallery.sh
cargo run -q --release -p wasm-model --example bench_native
node scripts/bench/wasm.mjs

step "trainer: EfficientNet-Lite0 feature extraction, tch vs PyTorch"
scripts/bench/backbone.sh

step "trainer: one training step, tch vs PyTorch"
scripts/bench/train-step.sh

step "my photos: embedding images/s in Chromium vs native candle vs tch; memory for 1,000 added photos"
scripts/bench/embed.sh

step "page in headless Chromium: ready time, query latency, bytes per visit"
cargo build -q -p web
node scripts/bench/page.mjs

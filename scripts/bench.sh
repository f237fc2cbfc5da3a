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

step "web server under load: /api/search, the wasm package, a small file at 1/16/64 connections"
scripts/bench/web-load.sh

step "trainer publish: images/s with one view and the shipped views, cached rerun, resume after a kill, trainer index"
scripts/bench/publish.sh

step "partitioned gallery: scan kernel vs memcpy (native); page at 10k/100k/1M: scripts/bench/partitioned.mjs (needs built sites)"
cargo run -q --release -p wasm-model --example bench_partitioned -- scan

step "database tier: 100k synthetic images in PostgreSQL + pgvector (1 M: scripts/bench/pg.sh, 17-19 min)"
scripts/bench/pg.sh --n 100000 --ef 40,100,200,400

step "/api/search from the database vs the in-memory engine at 1/16/64 connections (20,000 images)"
N=20000 SECS=10 scripts/bench/web-db.sh

#!/usr/bin/env bash
# Lite0 feature extraction (batch 32, 224 px, 2 threads): tch (this repo) vs PyTorch, images/s.
# Runs `cargo bench --bench backbone_features` and scripts/bench_backbone_torch.py in one go and prints
# a table. PyTorch needs a full torch install (the project's slim venv cannot import torch):
#   python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch==2.11.0 safetensors pillow
#   TORCH_PYTHON=/tmp/tv-venv/bin/python scripts/bench_backbone.sh
# Without it, only the tch rows are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH="${IMGPICK_BENCH_BATCH:-32}"
THREADS="${IMGPICK_BENCH_THREADS:-2}"
TORCH_PYTHON="${TORCH_PYTHON:-/tmp/tv-venv/bin/python}"
export IMGPICK_BENCH_BATCH="$BATCH" IMGPICK_BENCH_THREADS="$THREADS" OMP_WAIT_POLICY=PASSIVE
export IMGPICK_ASSETS="${IMGPICK_ASSETS:-$PWD/assets}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

cargo bench -p trainer --bench backbone_features -- --noplot >&2
TORCH_JSON=""
if [ -x "$TORCH_PYTHON" ] && "$TORCH_PYTHON" -c "import torch" 2>/dev/null; then
    TORCH_JSON="$("$TORCH_PYTHON" scripts/bench_backbone_torch.py --batch "$BATCH" --threads "$THREADS")"
else
    echo "note: no importable torch at $TORCH_PYTHON; skipping the PyTorch reference" >&2
fi

python3 - "$TARGET_DIR/criterion/lite0_features_b${BATCH}_t${THREADS}" "$BATCH" "$THREADS" "$TORCH_JSON" <<'PY'
import json, os, sys
crit_dir, batch, threads, torch_json = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tch = {}
for layout in ("channels_last", "nchw"):
    with open(os.path.join(crit_dir, layout, "new", "estimates.json")) as f:
        ns = json.load(f)["mean"]["point_estimate"]
    tch[layout] = batch / (ns * 1e-9)
torch = {r["layout"]: r["images_per_s"] for r in map(json.loads, filter(None, torch_json.splitlines()))}
print(f"Lite0 feature extraction, batch {batch}, 224 px, {threads} threads (images/s, higher is better)")
print("| layout | tch | PyTorch | tch / PyTorch |")
print("|---|---|---|---|")
for layout in ("channels_last", "nchw"):
    t = torch.get(layout)
    print(f"| {layout} | {tch[layout]:.1f} | {t if t else 'n/a'} | {tch[layout] / t:.2f} |" if t else
          f"| {layout} | {tch[layout]:.1f} | n/a | n/a |")
PY

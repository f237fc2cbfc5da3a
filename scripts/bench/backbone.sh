#!/usr/bin/env bash
# Lite0 feature extraction (batch 32, 224 px, 2 threads): tch (this repo) vs PyTorch, images/s.
# Runs `cargo bench --bench backbone_features` and scripts/bench/backbone_torch.py in one go and prints
# a table. PyTorch needs a full torch install (the project's slim venv cannot import torch):
#   python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch==2.11.0 safetensors pillow
#   TORCH_PYTHON=/tmp/tv-venv/bin/python scripts/bench/backbone.sh
# Without it, only the tch rows are printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
BATCH="${IMGPICK_BENCH_BATCH:-32}"
THREADS="${IMGPICK_BENCH_THREADS:-2}"
TORCH_PYTHON="${TORCH_PYTHON:-/tmp/tv-venv/bin/python}"
export IMGPICK_BENCH_BATCH="$BATCH" IMGPICK_BENCH_THREADS="$THREADS" OMP_WAIT_POLICY=PASSIVE
export IMGPICK_ASSETS="${IMGPICK_ASSETS:-$PWD/assets}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

cargo bench -p trainer --bench backbone_features -- --noplot >&2
TORCH_JSON=""
if [ -x "$TORCH_PYTHON" ] && "$TORCH_PYTHON" -c "import torch" 2>/dev/null; then
    TORCH_JSON="$("$TORCH_PYTHON" scripts/bench/backbone_torch.py --batch "$BATCH" --threads "$THREADS")"
else
    echo "note: no importable torch at $TORCH_PYTHON; skipping the PyTorch reference" >&2
fi

python3 - "$TARGET_DIR/criterion" "$BATCH" "$THREADS" "$TORCH_JSON" <<'PY'
import json, os, sys
crit, batch, threads, torch_json = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def images_per_s(group, name):
    path = os.path.join(crit, f"{group}_b{batch}_t{threads}", name, "new", "estimates.json")
    if not os.path.exists(path):
        sys.exit(f"missing {path}: did the bench run? trainer/Cargo.toml needs "
                 "[[bench]] name = \"backbone_features\" harness = false")
    with open(path) as f:
        return batch / (json.load(f)["mean"]["point_estimate"] * 1e-9)

torch = {r["layout"]: r["images_per_s"] for r in map(json.loads, filter(None, torch_json.splitlines()))}
print(f"Lite0 feature extraction, batch {batch}, 224 px, {threads} threads (images/s, higher is better)")
print("| layout | tch | PyTorch | tch / PyTorch |")
print("|---|---|---|---|")
for layout in ("channels_last", "nchw"):
    ours, ref = images_per_s("lite0_features", layout), torch.get(layout)
    print(f"| {layout} | {ours:.1f} | {ref:.1f} | {ours / ref:.2f} |" if ref else f"| {layout} | {ours:.1f} | n/a | n/a |")
print()
print(f"Lite0 partial fine-tuning step on cached activations (forward + backward), batch {batch}, {threads} threads")
print("| trained part | layout | images/s |")
print("|---|---|---|")
for k in (5, 6):
    for layout in ("channels_last", "nchw"):
        print(f"| stages {k}.. + head | {layout} | {images_per_s('lite0_finetune_step', f'from_stage{k}_{layout}'):.1f} |")
PY

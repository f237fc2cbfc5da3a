#!/usr/bin/env bash
# One training step of the shipped configuration (static/model/manifest.json: GloVe-50 vocab 16000 -> bi-LSTM 256
# -> mean -> 512; image side as configured: the shipped fine-tune is Lite0 stage 6 + head conv + GPO on cached
# stage-6 activations; InfoNCE, clipping + Adam), batch 128, 2 threads:
# tch (cargo bench --bench train_step, the trainer's own model/loss code) vs PyTorch
# (scripts/bench/train_step_torch.py: the same model written the PyTorch way; the same with idiomatic packed nn.LSTM;
# the same with the trainer's batch-norm folding and glibc allocator settings), back to back,
# ROUNDS times (default 2; the machine is shared, so compare within a round). Prints a markdown table.
# `tch` runs the trainer's own code: run::build_model, contrastive loss, optim::Adam (clipping + update).
# PyTorch needs a full torch install (the project's slim venv cannot import torch):
#   python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch==2.11.0
#   TORCH_PYTHON=/tmp/tv-venv/bin/python scripts/bench/train-step.sh
# Without it, only the tch column is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${IMGPICK_BENCH_THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
BATCH="${IMGPICK_BENCH_BATCH:-$(python3 -c 'import json; print(json.load(open("static/model/manifest.json"))["training"]["config"]["batch_size"])')}"
TORCH_PYTHON="${TORCH_PYTHON:-}"
export IMGPICK_BENCH_BATCH="$BATCH" IMGPICK_BENCH_THREADS="$THREADS" OMP_WAIT_POLICY=PASSIVE
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
HAVE_TORCH=0
if [ -n "$TORCH_PYTHON" ] && [ -x "$TORCH_PYTHON" ] && "$TORCH_PYTHON" -c "import torch" 2>/dev/null; then
    HAVE_TORCH=1
fi

ROWS=()
for round in $(seq 1 "$ROUNDS"); do
    cargo bench -p trainer --bench train_step -- --noplot >&2
    tch_s=""
    for fn in tch; do
        est="$TARGET_DIR/criterion/train_step_b${BATCH}_t${THREADS}/$fn/new/estimates.json"
        [ -f "$est" ] || { echo "missing $est: did the bench run? (trainer/Cargo.toml needs [[bench]] name = \"train_step\")" >&2; exit 1; }
        tch_s="$tch_s $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"] * 1e-9)' "$est")"
    done
    torch_json=""
    if [ "$HAVE_TORCH" = 1 ]; then
        torch_json="$("$TORCH_PYTHON" scripts/bench/train_step_torch.py --batch "$BATCH" --threads "$THREADS" \
            --variant reference packed | tr '\n' ' ')"
        # PyTorch given the trainer's other two speed-ups: batch norm folded, and glibc told what
        # trainer::keep_freed_memory tells it (heap blocks up to 32 MiB, no trimming).
        torch_json="$torch_json $(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=2147483647 "$TORCH_PYTHON" \
            scripts/bench/train_step_torch.py --batch "$BATCH" --threads "$THREADS" --variant folded | tr '\n' ' ')"
    fi
    ROWS+=("$round|$tch_s|$torch_json")
done

python3 - "$BATCH" "$THREADS" "$HAVE_TORCH" "${ROWS[@]}" <<'PY'
import json, sys
batch, threads, have_torch, rows = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
print(f"Training step, shipped config, batch {batch}, {threads} threads (median step; higher is better)")
if have_torch:
    print("| round | tch steps/s | tch captions/s | PyTorch steps/s | PyTorch captions/s | tch / PyTorch "
          "| PyTorch + BN folding + allocator steps/s | tch / that | PyTorch packed nn.LSTM steps/s | tch / packed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
else:
    print("| round | tch steps/s | tch captions/s |")
    print("|---|---|---|")
for row in rows:
    rnd, tch_s, torch_json = row.split("|", 2)
    tch = 1 / float(tch_s.split()[0])
    if not have_torch:
        print(f"| {rnd} | {tch:.2f} | {tch * batch:.0f} |")
        continue
    dec = json.JSONDecoder()
    res, s = {}, torch_json.strip()
    while s:
        obj, end = dec.raw_decode(s)
        res[obj["variant"]] = obj["steps_per_s"]
        s = s[end:].strip()
    ref, fold, pk = res["reference"], res["folded"], res["packed"]
    print(f"| {rnd} | {tch:.2f} | {tch * batch:.0f} | {ref:.2f} | {ref * batch:.0f} | {tch / ref:.2f} "
          f"| {fold:.2f} | {tch / fold:.2f} | {pk:.2f} | {tch / pk:.2f} |")
if not have_torch:
    print("\nPyTorch column: set TORCH_PYTHON to a python with full torch, e.g.\n"
          "  python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch==2.11.0\n"
          "  TORCH_PYTHON=/tmp/tv-venv/bin/python scripts/bench/train-step.sh")
PY

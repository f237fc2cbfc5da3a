#!/usr/bin/env bash
# Makes sure a model directory (default static/model) has the image encoder the page downloads when the user adds
# their own photos: image_encoder.safetensors, named in manifest.json (files.image_encoder + files_sha256).
# The file is generated, not committed: `trainer export-image-encoder` writes it from the installed ImageNet weights
# of the model's backbone (assets/efficientnet_lite0.safetensors, or _lite1 / _lite2, which scripts/setup.sh
# installs when static/model names them) and the bytes are deterministic (the converted weights are pinned by
# SHA-256), so the committed manifest's checksum matches every regeneration. Idempotent: does nothing when the file
# is there and matches the manifest; after `trainer export` rewrote the directory (no entry) or on a fresh checkout
# (no file) it runs the trainer. Backbones without a browser port (DenseNet-121) are skipped with a message.
#   scripts/build-image-encoder.sh [MODEL_DIR]      env: TRAINER (command; default target/debug/trainer, built if needed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODEL="${1:-static/model}"
die() { echo "build-image-encoder: $*" >&2; exit 1; }
[ -f "$MODEL/manifest.json" ] || die "no model in $MODEL (manifest.json missing)"

# Prints the backbone (as the manifest spells it, `-` read as `_`) and, on a second line, "ok" when the manifest
# names the file and its SHA-256 matches, else why not ("skip: …" when the page cannot embed photos with it).
check() {
  python3 - "$MODEL" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
backbone = str(m.get("image", {}).get("backbone")).replace("-", "_")
print(backbone)
name = (m.get("files") or {}).get("image_encoder")
if backbone not in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
    print(f"skip: the backbone is {backbone} (only the EfficientNet-Lite family runs in the browser)"); sys.exit()
if not (m.get("files") or {}).get("image_head"):
    print("skip: the model has no image head"); sys.exit()
if not name:
    print("the manifest has no files.image_encoder"); sys.exit()
p = os.path.join(d, name)
if not os.path.exists(p):
    print(f"{name} is missing"); sys.exit()
want = (m.get("files_sha256") or {}).get(name)
have = hashlib.sha256(open(p, "rb").read()).hexdigest()
print("ok" if want == have else f"{name} has SHA-256 {have[:12]}…, the manifest says {str(want)[:12]}…")
PY
}

{ read -r backbone; read -r state; } < <(check)
case "$state" in
  ok) echo "build-image-encoder: $MODEL/image_encoder.safetensors ($backbone) is up to date"; exit 0 ;;
  skip:*) echo "build-image-encoder: ${state#skip: }; the page will not offer \"My photos\"" >&2; exit 0 ;;
esac
weights="${IMGPICK_ASSETS:-assets}/$backbone.safetensors"  # where the trainer looks too
[ -f "$weights" ] || die "$MODEL needs the $backbone ImageNet weights ($weights is missing): run scripts/setup.sh (it installs the weights static/model names; \`scripts/setup.sh backbones\` installs Lite1 and Lite2 for any model)"
echo "build-image-encoder: $state; writing it from $weights with \`trainer export-image-encoder\`"
if [ -z "${TRAINER:-}" ]; then
  if [ ! -x target/debug/trainer ]; then cargo build -q -p trainer || die "building the trainer failed"; fi
  TRAINER="$ROOT/target/debug/trainer"
fi
# shellcheck disable=SC2086  # TRAINER may be a command with arguments
$TRAINER export-image-encoder --model "$MODEL" --weights "$weights" --threads 1
{ read -r _; read -r state; } < <(check)
[ "$state" = ok ] || die "after export-image-encoder: $state"

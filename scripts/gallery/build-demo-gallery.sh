#!/usr/bin/env bash
# Publishes a gallery for the page into static/gallery (or --out DIR) with the model in static/model.
#
#   scripts/gallery/build-demo-gallery.sh                      # the default demo gallery (scripts/gallery/captions.json)
#   scripts/gallery/build-demo-gallery.sh path/to/images       # any folder (captions from path/to/images/captions.json if present)
#   scripts/gallery/build-demo-gallery.sh --captions c.json path/to/images
#
# Env: TRAINER (command that runs the trainer; default: target/debug/trainer, built if needed),
#      MODEL (default static/model), OUT (default static/gallery).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MODEL="${MODEL:-static/model}"
OUT="${OUT:-static/gallery}"
CAPTIONS=""
IMAGES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --captions) CAPTIONS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) IMAGES="$1"; shift ;;
  esac
done
die() { echo "build-demo-gallery: $*" >&2; exit 1; }

[ -f "$MODEL/manifest.json" ] || die "no model in $MODEL (manifest.json missing): train and export one (see README), or pass --model DIR"
if [ -z "${TRAINER:-}" ]; then
  cargo build -q -p trainer || die "building the trainer failed"  # debug: libtorch does the heavy work
  TRAINER="$ROOT/target/debug/trainer"
fi

if [ -z "$IMAGES" ]; then
  # The default demo gallery, from redistributable packages only.
  STAGING="$ROOT/target/demo-gallery"
  python3 scripts/gallery/demo_gallery.py --staging "$STAGING" || die "staging the default gallery failed (see above)"
  IMAGES="$STAGING/images"
  CAPTIONS="$STAGING/captions.json"
else
  [ -d "$IMAGES" ] || die "$IMAGES is not a folder of images"
  [ -z "$CAPTIONS" ] && [ -f "$IMAGES/captions.json" ] && CAPTIONS="$IMAGES/captions.json"
fi

args=(publish --model "$MODEL" --images "$IMAGES" --out "$OUT")
[ -n "$CAPTIONS" ] && args+=(--captions "$CAPTIONS")
# shellcheck disable=SC2086  # TRAINER may be a command with arguments (e.g. "cargo run -q -p trainer --")
$TRAINER "${args[@]}"

# The page downloads the model, the vocabulary and the gallery index before the first search: keep them small.
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
total=0
# What every visitor downloads; image_encoder.safetensors and image_head.safetensors are fetched only when
# someone adds their own photos; hubness_bank.safetensors is read by `trainer publish` only, never by the page.
for f in "$MODEL"/manifest.json "$MODEL"/vocab.txt "$MODEL"/*.safetensors "$OUT"/gallery.bin "$OUT"/gallery.json; do
  case "$(basename "$f")" in image_encoder.safetensors|image_head.safetensors|hubness_bank.safetensors) continue ;; esac
  total=$((total + $(size "$f")))
done
gallery=$(( $(size "$OUT/gallery.bin") + $(size "$OUT/gallery.json") ))
echo "build-demo-gallery: gallery index $((gallery / 1024)) KiB; first load (text model + vocab + gallery index) $((total / 1024)) KiB (budget 8192 KiB)"
[ "$total" -le $((8 * 1024 * 1024)) ] || echo "build-demo-gallery: WARNING: over the 8 MB download budget" >&2

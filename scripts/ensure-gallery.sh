#!/usr/bin/env bash
# Makes sure static/ holds a model and a gallery made with it (what `make demo` serves).
#   GALLERY=dir [GALLERY_CAPTIONS=captions.json]  publish that folder of images instead of the default demo gallery
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -f static/model/manifest.json ]; then
  echo "ensure-gallery: static/model/manifest.json is missing — train and export a model first (see README: Retrain)" >&2
  exit 1
fi
cargo build -q --release -p trainer
model_id="$(sed -n 's/.*"model_id" *: *"\([0-9a-f]*\)".*/\1/p' static/model/manifest.json | head -1)"

if [ -n "${GALLERY:-}" ]; then
  [ -d "$GALLERY" ] || { echo "ensure-gallery: GALLERY=$GALLERY is not a folder" >&2; exit 1; }
  args=(--model static/model --images "$GALLERY" --out static/gallery)
  [ -n "${GALLERY_CAPTIONS:-}" ] && args+=(--captions "$GALLERY_CAPTIONS")
  rm -f static/gallery/.default-demo
  exec target/release/trainer publish "${args[@]}"
fi

if [ -f static/gallery/gallery.json ] && grep -q "\"model_id\": *\"$model_id\"" static/gallery/gallery.json \
   && [ -f static/gallery/.default-demo ]; then
  echo "ensure-gallery: default demo gallery is up to date (model $model_id)"
  exit 0
fi
scripts/build-demo-gallery.sh
touch static/gallery/.default-demo

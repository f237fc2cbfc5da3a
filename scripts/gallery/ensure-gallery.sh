#!/usr/bin/env bash
# Makes sure static/ holds a model and a gallery made with it (what `make demo` serves).
#   GALLERY=dir [GALLERY_CAPTIONS=captions.json]  publish that folder of images instead of the default demo gallery
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [ ! -f static/model/manifest.json ]; then
  echo "ensure-gallery: static/model/manifest.json is missing — train and export a model first (see README: Retrain)" >&2
  exit 1
fi

if [ -n "${GALLERY:-}" ]; then
  rm -f static/gallery/.default-demo
  args=()
  [ -n "${GALLERY_CAPTIONS:-}" ] && args+=(--captions "$GALLERY_CAPTIONS")
  exec scripts/gallery/build-demo-gallery.sh "${args[@]}" "$GALLERY"
fi

# The default demo gallery is rebuilt only when the model, its retrieval scoring or the gallery's list
# (captions.json, sources.json) changed (publish itself is incremental, but staging and building the trainer
# cost time on every `make demo`).
# Bumped when trainer publish writes galleries that an older one lacks (2: items carry width, height and
# licence_id, #20 — the page's layout filters need them; 3: large JPEGs decoded DCT-scaled with the shorter side
# ≥ 4× the network input, #17 — publish's cache records the decode, so this republish re-embeds every image;
# 4: images with transparency shown to the network on grey 128, padded to a square, #21 — the decode rule again),
# so an existing default gallery is republished.
GALLERY_REVISION=4
model_id="$(sed -n 's/.*"model_id" *: *"\([0-9a-f]*\)".*/\1/p' static/model/manifest.json | head -1)"
stamp="$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); r = m.get("retrieval")
print(m["model_id"], json.dumps(r, sort_keys=True) if r else "plain", m.get("files_sha256", {}).get("hubness_bank.safetensors", "-"))' static/model/manifest.json) $(cat scripts/gallery/captions.json scripts/gallery/sources.json | sha256sum | cut -c1-16) r$GALLERY_REVISION"
if [ -f static/gallery/.default-demo ] && [ "$(cat static/gallery/.default-demo)" = "$stamp" ] \
   && grep -q "\"model_id\": *\"$model_id\"" static/gallery/gallery.json 2>/dev/null; then
  echo "ensure-gallery: default demo gallery is up to date (model $model_id, same scoring)"
  exit 0
fi
scripts/gallery/build-demo-gallery.sh
echo "$stamp" >static/gallery/.default-demo

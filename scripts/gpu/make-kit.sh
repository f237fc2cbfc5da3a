#!/usr/bin/env bash
# Builds target/gpu-kit/: what a lent GPU machine (`device` tool: torch 2.11 + CUDA, no Rust, nothing from ../shared)
# needs to run the trainer there — the release `trainer` binary (it links libtorch dynamically; on the device it uses
# the libtorch inside the installed torch package, same version), the Lite0 weights, the 20,000 most frequent GloVe
# words, the asset photos with captions (each photo listed REPLICAS times, so batches are full-sized) and run.sh.
# About 35 MB, under the 64 MiB the device tool carries. Then, with the device tool:
#   run(command="bash target/gpu-kit/run.sh", carry=["target/gpu-kit"], timeout_s=500)
# Locally (CPU smoke test of the same script, with a full torch install such as /tmp/tv-venv):
#   TORCH_PYTHON=/tmp/tv-venv/bin/python OUT=/tmp/gpu-out bash target/gpu-kit/run.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
KIT=target/gpu-kit
REPLICAS="${REPLICAS:-40}"
cargo build -q --release -p trainer
rm -rf "$KIT" && mkdir -p "$KIT/photos"
cp target/release/trainer "$KIT/"
cp assets/efficientnet_lite0.safetensors "$KIT/"
cp assets/photos/* "$KIT/photos/"
cp scripts/gpu/run.sh "$KIT/"
python3 - "$KIT" "$REPLICAS" <<'PY'
import json, os, struct, sys
kit, replicas = sys.argv[1], int(sys.argv[2])
# GloVe: the first 20,000 rows (the file is ordered by frequency), same safetensors layout as the installed one.
n, dim = 20000, 50
src = open("assets/glove.6B.50d.safetensors", "rb")
header_len = struct.unpack("<Q", src.read(8))[0]
src.seek(8 + header_len)
data = src.read(n * dim * 4)
header = json.dumps({"vectors": {"dtype": "F32", "shape": [n, dim], "data_offsets": [0, len(data)]}}).encode()
header += b" " * (-len(header) % 8)
with open(f"{kit}/glove.20k.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + data)
words = open("assets/glove.6B.50d.words.txt").read().splitlines()[:n]
open(f"{kit}/glove.20k.words.txt", "w").write("\n".join(words) + "\n")
# Captions: two per photo from its file name (as the trainer's tests do); every photo listed `replicas` times.
files = sorted(os.listdir(f"{kit}/photos"))
images, anns = [], []
for r in range(replicas):
    for f in files:
        i = len(images)
        images.append({"id": i, "file_name": f})
        words = f.rsplit(".", 1)[0].split("_", 1)[-1].replace("_", " ")
        anns += [{"image_id": i, "caption": f"a photo of a {words}"}, {"image_id": i, "caption": f"{words} in a picture"}]
json.dump({"images": images, "annotations": anns}, open(f"{kit}/captions.json", "w"))
val = {"images": images[:len(files)], "annotations": [a for a in anns if a["image_id"] < len(files)]}
json.dump(val, open(f"{kit}/captions_val.json", "w"))
PY
du -sh "$KIT"

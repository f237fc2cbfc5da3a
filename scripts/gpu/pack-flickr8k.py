#!/usr/bin/env python3
"""Packs Flickr8k compactly for a lent GPU machine (the device tool carries at most 64 MiB with the repo).

Each photo becomes its centre square, resized to SIDE px and stored as lossy WebP (about 4-5 KiB at 176 px); the
trainer decodes WebP and upsamples to its 224 px input. Captions: train + extra merged into one file, val as is,
both reduced to the fields the trainer reads. Needs Pillow with WebP (e.g. a torchvision venv).
Usage: pack-flickr8k.py FLICKR8K_DIR OUT_DIR [SIDE] [QUALITY]
Research-use data: the pack lives under target/ (ignored) and must never be committed.
"""
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from PIL import Image

SRC, OUT = sys.argv[1], sys.argv[2]
SIDE = int(sys.argv[3]) if len(sys.argv) > 3 else 176
QUALITY = int(sys.argv[4]) if len(sys.argv) > 4 else 60


def pack(name):
    stem = name.rsplit(".", 1)[0]
    with Image.open(os.path.join(SRC, "images", name)) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((SIDE, SIDE), Image.BICUBIC)
        im.save(os.path.join(OUT, "images", stem + ".webp"), "WEBP", quality=QUALITY, method=6)
    return name, stem + ".webp"


def slim(files, renamed):
    images, anns = [], []
    for f in files:
        d = json.load(open(os.path.join(SRC, f)))
        images += [{"id": im["id"], "file_name": renamed[im["file_name"]]} for im in d["images"]]
        anns += [{"image_id": a["image_id"], "caption": a["caption"]} for a in d["annotations"]]
    return {"images": images, "annotations": anns}


if __name__ == "__main__":
    os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
    splits = {"captions_train.json": ["captions_train.json", "captions_train_extra.json"], "captions_val.json": ["captions_val.json"]}
    names = sorted({im["file_name"] for fs in splits.values() for f in fs for im in json.load(open(os.path.join(SRC, f)))["images"]})
    with ProcessPoolExecutor() as pool:
        renamed = dict(pool.map(pack, names, chunksize=64))
    for out, files in splits.items():
        json.dump(slim(files, renamed), open(os.path.join(OUT, out), "w"), separators=(",", ":"))
    total = sum(e.stat().st_size for e in os.scandir(os.path.join(OUT, "images")))
    print(f"{len(names)} images at {SIDE} px, WebP q{QUALITY}: {total / 2**20:.1f} MiB")

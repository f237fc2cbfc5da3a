"""GCompris (Debian gcompris-qt-data): its photos and their per-file licence and source.

The images sit as WebP inside Qt resource bundles (share/gcompris-qt/rcc/*.rcc); next to them each resource
folder has a README of Debian-copyright-like stanzas (Copyright, License, Source or Comment, Files) that gives
every image its author, licence and source. Standard library only.
"""
import re
from pathlib import PurePosixPath

from qt_rcc import RccBundle

URL_RE = re.compile(r"https?://\S+")
FILE_RE = re.compile(r"^[\w./*-]+\.(webp|svgz?|png|jpe?g|ogg|wav|gif)$", re.IGNORECASE)
# README spellings -> SPDX ids; anything not listed here is treated as unclear and left out.
LICENCES = {
    "public domain": "Public-Domain",
    "cc0-1.0": "CC0-1.0",
    "cc0": "CC0-1.0",
    "cc-by-sa 4.0": "CC-BY-SA-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-sa 3.0": "CC-BY-SA-3.0",
    "cc-by 4.0": "CC-BY-4.0",
    "cc-by 3.0": "CC-BY-3.0",
    "cc-by-3.0": "CC-BY-3.0",
    "cc-by 2.0": "CC-BY-2.0",
    "cc-by-2.0": "CC-BY-2.0",
    "gplv3": "GPL-3.0-only",
    "gplv3 or later": "GPL-3.0-or-later",
    "gplv2+": "GPL-2.0-or-later",
}


def parse_readme(text):
    """Stanzas of a GCompris resource README as dicts: copyright, licence (SPDX or None), source, files."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            m = re.match(r"^([A-Za-z]+):\s*(.*)$", line)
            if m and m.group(1).lower() in ("copyright", "license", "licence", "source", "comment", "comments", "files"):
                key = m.group(1).lower().replace("licence", "license").replace("comments", "comment")
                fields[key] = [m.group(2).strip()] if m.group(2).strip() else []
            elif FILE_RE.match(line.strip()):
                # Some stanzas list their files without a "Files:" line.
                fields.setdefault("files", []).append(line.strip())
            elif key and line.strip():
                fields[key].append(line.strip())
        files = fields.get("files", [])
        if not files:
            continue
        licence_text = " ".join(fields.get("license", [])).strip()
        urls = URL_RE.findall(" ".join(fields.get("source", []) + fields.get("comment", [])))
        stanzas.append({
            "copyright": "; ".join(fields.get("copyright", [])),
            "licence": LICENCES.get(licence_text.lower()),
            "licence_text": licence_text,
            "source": urls[0].rstrip(".,)") if urls else None,
            "comment": " ".join(fields.get("comment", [])),
            "files": [f for f in files if not URL_RE.match(f)],
        })
    return stanzas


def readme_index(bundle_files):
    """Maps every image path in a bundle to its README stanza (README and image in the same folder or below)."""
    index = {}
    for path, data in bundle_files.items():
        if PurePosixPath(path).name.lower() != "readme":
            continue
        folder = PurePosixPath(path).parent
        for stanza in parse_readme(data.decode("utf-8", errors="replace")):
            for name in stanza["files"]:
                index[str(folder / name)] = stanza
    return index


def images(rcc_dir, bundles):
    """Yields (bundle name, path inside it, bytes, stanza or None) for every WebP/JPEG/PNG in the named bundles."""
    for name in bundles:
        files = RccBundle.open(rcc_dir / f"{name}.rcc").as_dict()
        stanzas = readme_index(files)
        for path in sorted(files):
            if path.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                yield name, path, files[path], stanzas.get(path)

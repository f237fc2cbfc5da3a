"""Tests of the default demo gallery: the committed captions file, the .rcc and README readers, and staging.

  python3 -m unittest discover -s scripts/gallery -p 'test_*.py' -v

The staging tests need the packages unpacked by scripts/gallery/fetch-sources.sh ($IMGPICK_HOME/gallery); without
them they are skipped with a message saying so. Standard library only.
"""
import json
import os
import struct
import sys
import tempfile
import unittest
import zlib
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import demo_gallery  # noqa: E402
import gcompris  # noqa: E402
from qt_rcc import RccBundle, RccError  # noqa: E402

# Licences a redistributable gallery may carry (SPDX ids); anything else must be looked at before it is added.
ALLOWED_LICENCES = {
    "CC0-1.0", "Public-Domain", "MIT", "CC-BY-2.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0",
    "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "LGPL-3.0-only", "GFDL-1.2-or-later",
}
CAPTIONS = json.loads((HERE / "captions.json").read_text(encoding="utf-8"))["images"]
SOURCES = json.loads((HERE / "sources.json").read_text(encoding="utf-8"))
HOME = Path(os.environ.get("IMGPICK_HOME", Path.home() / ".cache/imgpick"))
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")


class CaptionsFile(unittest.TestCase):
    def test_every_image_has_caption_kind_licence_source_and_url(self):
        self.assertEqual(demo_gallery.validate(CAPTIONS), [])
        for key, e in CAPTIONS.items():
            self.assertIn(e["licence"], ALLOWED_LICENCES, key)
            self.assertTrue(e["url"].startswith("https://"), key)

    def test_captions_are_sentences_not_file_names(self):
        for key, e in CAPTIONS.items():
            c = e["caption"]
            self.assertNotRegex(c, r"\.(jpe?g|png|gif|webp)\b|_|\d{3,}x\d{3,}", key)
            self.assertGreaterEqual(len(c.split()), 2, f"{key}: one-word caption {c!r}")
            self.assertEqual(c, c.strip(), key)
        counts = Counter(e["caption"].lower() for e in CAPTIONS.values())
        self.assertEqual([c for c, n in counts.items() if n > 1], [], "captions that say the same about two images")

    def test_mostly_real_photographs(self):
        kinds = Counter(e["kind"] for e in CAPTIONS.values())
        self.assertGreaterEqual(len(CAPTIONS), 700)
        self.assertGreater(kinds["photo"] / len(CAPTIONS), 0.5, kinds)
        self.assertLess(kinds["clipart"] / len(CAPTIONS), 0.1, kinds)

    def test_every_key_names_a_pinned_root(self):
        roots = SOURCES["roots"]
        for key in CAPTIONS:
            prefix = key.split("/")[0]
            self.assertIn(prefix, roots, key)
            pkg = roots[prefix].get("package")
            if pkg:
                self.assertIn(pkg, SOURCES["debian"], f"{key}: package {pkg} has no pin")
        for name, pin in SOURCES["debian"].items():
            self.assertRegex(pin["sha256"], r"^[0-9a-f]{64}$", name)

    def test_validate_names_missing_fields(self):
        bad = {"x/a.jpg": {"caption": " ", "kind": "drawing", "licence": "MIT", "source": "s"}}
        problems = demo_gallery.validate(bad)
        self.assertIn("x/a.jpg: no caption", problems)
        self.assertIn("x/a.jpg: no url", problems)
        self.assertTrue(any("kind 'drawing'" in p for p in problems))


def rcc_bytes(version=2):
    """A small Qt resource bundle: /a/readme (plain), /a/x.webp (zlib-compressed), /b.png."""
    names, name_off = b"", {}
    for n in ("a", "b.png", "readme", "x.webp"):
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    payload, data_off = b"", {}
    for n, blob, compress in (("readme", b"Files: x.webp", False), ("x.webp", b"RIFF....WEBP" * 20, True),
                              ("b.png", b"\x89PNG\r\n\x1a\n", False)):
        data_off[n] = len(payload)
        body = struct.pack(">I", len(blob)) + zlib.compress(blob) if compress else blob
        payload += struct.pack(">I", len(body)) + body
    extra = b"\0" * 8 if version >= 2 else b""

    def d(name, count, first):
        return struct.pack(">IHII", name_off.get(name, 0), 0x02, count, first) + extra

    def f(name, compressed):
        return struct.pack(">IHHHI", name_off[name], 0x01 if compressed else 0, 0, 0, data_off[name]) + extra

    tree = d("", 2, 1) + d("a", 2, 3) + f("b.png", False) + f("readme", False) + f("x.webp", True)
    header_len = 20 + (4 if version >= 3 else 0)
    tree_at = header_len
    data_at = tree_at + len(tree)
    names_at = data_at + len(payload)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at) + (b"\0" * 4 if version >= 3 else b"")
    return header + tree + payload + names


class QtResourceBundle(unittest.TestCase):
    def test_reads_tree_and_compressed_files(self):
        for version in (1, 2, 3):
            files = RccBundle(rcc_bytes(version)).as_dict()
            self.assertEqual(sorted(files), ["a/readme", "a/x.webp", "b.png"], version)
            self.assertEqual(files["a/x.webp"], b"RIFF....WEBP" * 20)
            self.assertEqual(files["a/readme"], b"Files: x.webp")

    def test_rejects_what_is_not_a_bundle(self):
        with self.assertRaisesRegex(RccError, "not a Qt resource bundle"):
            RccBundle(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "x.rcc")
        with self.assertRaisesRegex(RccError, "unsupported rcc format version 9"):
            RccBundle(b"qres" + struct.pack(">IIII", 9, 0, 0, 0), "x.rcc")


class GcomprisReadme(unittest.TestCase):
    TEXT = """Copyright: Timothee Giet, 2018
License: CC-BY-SA 4.0
Files:
  background.svg

Copyright: Daniel Schwen
License: CC-BY-SA 4.0
Source: https://commons.wikimedia.org/wiki/File:Chichen_Itza_3.jpg
Files:
wonders/chichenItza.webp

Copyright: 2000, 2008 Bruno Coudoin and others
License: Public domain
Nagoya_0.webp
Nagoya_background.webp
Comment: based on a photo by Base64, license CC-BY-SA 3.0, source at https://commons.wikimedia.org/wiki/File:Nagoya.jpg

Copyright: someone
License: Some Custom Licence
Files: odd.webp
"""

    def test_stanzas_give_licence_source_and_files(self):
        st = gcompris.parse_readme(self.TEXT)
        self.assertEqual([s["files"] for s in st],
                         [["background.svg"], ["wonders/chichenItza.webp"], ["Nagoya_0.webp", "Nagoya_background.webp"], ["odd.webp"]])
        self.assertEqual(st[1]["licence"], "CC-BY-SA-4.0")
        self.assertEqual(st[1]["source"], "https://commons.wikimedia.org/wiki/File:Chichen_Itza_3.jpg")
        self.assertEqual(st[2]["licence"], "Public-Domain")
        self.assertEqual(st[2]["source"], "https://commons.wikimedia.org/wiki/File:Nagoya.jpg")
        self.assertIsNone(st[3]["licence"], "an unknown licence is unclear, not guessed")

    def test_readme_index_maps_images_in_its_folder(self):
        files = {"x/resource/README": self.TEXT.encode(), "x/resource/wonders/chichenItza.webp": b""}
        index = gcompris.readme_index(files)
        self.assertEqual(index["x/resource/wonders/chichenItza.webp"]["copyright"], "Daniel Schwen")


@unittest.skipUnless((HOME / "gallery").is_dir(),
                     f"skipped: the gallery's packages are not unpacked in {HOME}/gallery (scripts/gallery/fetch-sources.sh)")
class Staging(unittest.TestCase):
    def stage(self, staging):
        return demo_gallery.stage_default(HERE / "captions.json", HERE / "sources.json", HOME, HERE.parent.parent / "assets", staging)

    def test_same_packages_give_the_same_gallery(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            a, b = Path(a), Path(b)
            self.stage(a)
            self.stage(b)
            self.stage(b)  # a re-run over an existing staging changes nothing either
            self.assertEqual((a / "captions.json").read_bytes(), (b / "captions.json").read_bytes())
            listing = {}
            for root in (a, b):
                listing[root] = sorted(p.relative_to(root / "images").as_posix() for p in (root / "images").rglob("*")
                                       if p.is_file() or p.is_symlink())
            self.assertEqual(listing[a], listing[b])
            self.assertEqual(listing[a], sorted(CAPTIONS))
            for rel in listing[a]:
                pa, pb = a / "images" / rel, b / "images" / rel
                if pa.is_symlink():
                    self.assertEqual(os.readlink(pa), os.readlink(pb), rel)
                else:
                    self.assertEqual(pa.read_bytes(), pb.read_bytes(), rel)
                    self.assertEqual(pa.stat().st_mtime, pb.stat().st_mtime, rel)

    def test_every_staged_image_is_an_image_with_its_caption(self):
        with tempfile.TemporaryDirectory() as s:
            s = Path(s)
            self.stage(s)
            coco = json.loads((s / "captions.json").read_text(encoding="utf-8"))
            self.assertEqual(len(coco["images"]), len(CAPTIONS))
            by_id = {a["image_id"]: a["caption"] for a in coco["annotations"]}
            for im in coco["images"]:
                # a regular file inside the folder: `trainer publish` refuses symbolic links out of it
                self.assertFalse((s / "images" / im["file_name"]).is_symlink(), im["file_name"])
                head = (s / "images" / im["file_name"]).read_bytes()[:12]
                self.assertTrue(head.startswith(MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"), im["file_name"])
                self.assertEqual(by_id[im["id"]], CAPTIONS[im["file_name"]]["caption"])
                self.assertEqual(im["licence"], CAPTIONS[im["file_name"]]["licence"])

    def test_stale_files_are_removed(self):
        with tempfile.TemporaryDirectory() as s:
            s = Path(s)
            (s / "images" / "old").mkdir(parents=True)
            (s / "images" / "old" / "gone.png").write_bytes(b"x")
            self.stage(s)
            self.assertFalse((s / "images" / "old").exists())


class StagingErrors(unittest.TestCase):
    def test_missing_packages_name_the_fix(self):
        with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as s:
            with self.assertRaisesRegex(demo_gallery.StagingError, "fetch-sources.sh"):
                demo_gallery.stage_default(HERE / "captions.json", HERE / "sources.json", Path(home),
                                           HERE.parent.parent / "assets", Path(s))

    def test_unknown_root_is_named(self):
        r = demo_gallery.Resolver({"roots": {}}, Path("/nonexistent"), Path("/nonexistent"))
        with self.assertRaisesRegex(demo_gallery.StagingError, "unknown root 'nowhere'"):
            r.resolve("nowhere/x.jpg")


if __name__ == "__main__":
    unittest.main()

//! Gallery thumbnails: `thumbs/<2 hex digits>/<32 hex digits>.jpg`, named by the SHA-256 of their own bytes.
//! Named by content, a changed photo gets a new name (browsers keep a thumbnail for a week under its old
//! one); sharded by the first byte, no folder holds more than 1/256 of them (about 4,000 for a million
//! images). Publish removes only stale files of this naming, never anything else in `thumbs/`.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};

use crate::backbone;

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 256;
const FOLDER: &str = "thumbs";

/// The JPEG bytes of `img`'s thumbnail (transparency flattened onto white).
pub fn encode(img: &image::DynamicImage) -> Result<Vec<u8>> {
    let rgb = backbone::preprocess::flatten_onto_white(img);
    let t = image::DynamicImage::ImageRgb8(rgb).thumbnail(THUMB_SIZE, THUMB_SIZE).to_rgb8();
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80).encode_image(&t)?;
    Ok(bytes)
}

/// Where thumbnail `bytes` live, relative to the gallery folder.
pub fn name_of(bytes: &[u8]) -> String {
    let hash = wasm_model::model_dir::sha256_hex(bytes);
    format!("{FOLDER}/{}/{}.jpg", &hash[..2], &hash[..32])
}

/// Writes thumbnail `bytes` under `out` (atomically; not again when that content is already there) and
/// returns its name.
pub fn write(out: &Path, bytes: &[u8]) -> Result<String> {
    let name = name_of(bytes);
    let path = out.join(&name);
    if !path.is_file() {
        let dir = path.parent().expect("a thumbnail path has a folder");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        crate::write_atomic(&path, bytes)?;
    }
    Ok(name)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Removes the thumbnails under `out/thumbs` that `keep` does not name: files of this naming, and the flat
/// `thumbs/<16 hex>.jpg` of older publishes. Anything else stays. Returns how many were removed.
pub fn remove_stale(out: &Path, keep: &HashSet<&str>) -> Result<usize> {
    let root = out.join(FOLDER);
    let list = |dir: &Path| -> Result<Vec<std::fs::DirEntry>> {
        match std::fs::read_dir(dir) {
            Ok(rd) => rd.collect::<std::io::Result<Vec<_>>>().with_context(|| format!("cannot list {}", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot list {}", dir.display())),
        }
    };
    let remove = |path: &Path| std::fs::remove_file(path).with_context(|| format!("cannot remove the stale thumbnail {}", path.display()));
    let mut removed = 0;
    for entry in list(&root)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().with_context(|| format!("cannot read {}", entry.path().display()))?;
        if kind.is_dir() && is_hex(&name, 2) {
            for thumb in list(&entry.path())? {
                let file = thumb.file_name().to_string_lossy().into_owned();
                let ours = file.strip_suffix(".jpg").is_some_and(|h| is_hex(h, 32) && h.starts_with(&name));
                if ours && !keep.contains(format!("{FOLDER}/{name}/{file}").as_str()) {
                    remove(&thumb.path())?;
                    removed += 1;
                }
            }
            // an emptied shard folder goes too (a folder with someone's file in it stays)
            let _ = std::fs::remove_dir(entry.path());
        } else if kind.is_file() && name.strip_suffix(".jpg").is_some_and(|h| is_hex(h, 16)) {
            remove(&entry.path())?; // the flat layout of older publishes
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stale_thumbnails_of_this_naming_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let a = write(out, b"picture a").unwrap();
        let b = write(out, b"picture b").unwrap();
        assert_eq!(write(out, b"picture a").unwrap(), a, "same bytes, same name");
        assert!(a.starts_with("thumbs/") && a.ends_with(".jpg") && a.len() == "thumbs/ab/".len() + 32 + 4, "{a}");
        std::fs::write(out.join("thumbs/0123456789abcdef.jpg"), b"old layout").unwrap();
        std::fs::write(out.join("thumbs/mine.txt"), b"not ours").unwrap();
        std::fs::create_dir_all(out.join("thumbs/zz")).unwrap();
        std::fs::write(out.join("thumbs/zz/keep.jpg"), b"not ours").unwrap();
        let removed = remove_stale(out, &HashSet::from([a.as_str()])).unwrap();
        assert_eq!(removed, 2);
        assert!(out.join(&a).is_file() && !out.join(&b).exists());
        assert!(!out.join(Path::new(&b).parent().unwrap()).exists() || Path::new(&b).parent() == Path::new(&a).parent(), "emptied shard removed");
        assert!(out.join("thumbs/mine.txt").is_file() && out.join("thumbs/zz/keep.jpg").is_file());
        assert!(!out.join("thumbs/0123456789abcdef.jpg").exists());
    }
}

//! The embedding cache of a gallery folder (`.publish-cache.jsonl`): each embedded file's size, mtime,
//! thumbnail and vector, so a re-run embeds only new or changed files. It is appended to as each image is done
//! (one line, one write), so a killed publish keeps everything finished before the kill; a line cut short by
//! the kill is dropped when the cache is next opened. A finished publish rewrites it with exactly the
//! published files. The first line names the model id, image views and decode it holds vectors for; a cache of
//! another model, view set or decode is started afresh.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const CACHE_FILE: &str = ".publish-cache.jsonl";
/// The cache of older publishes (one JSON file written at the very end): no longer read, removed after a
/// publish (its thumbnails had other names, so nothing in it would be reused).
pub const OLD_CACHE_FILE: &str = ".publish-cache.json";
const FORMAT: &str = "imgpick-publish-cache";
/// How often appended records are forced to disk (they reach the OS at once; this is against power loss).
const SYNC_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Header {
    format: String,
    model_id: String,
    /// The image views averaged into each vector (manifest `retrieval.image_views`; empty = original only).
    views: Vec<String>,
    /// How photos were decoded for the network (wasm-model `decode_rule`: which JPEGs are decoded scaled down,
    /// and how images with transparency are shown to it).
    /// One value for the whole cache, not per file: a change re-embeds every file once, as a new model does,
    /// instead of re-deriving each cached file's format and size to find the few it concerns. Empty in caches
    /// of older publishes (before 2026-12-05 a full-size decode, then a 2× rule), which therefore start afresh.
    #[serde(default)]
    decode: String,
}

/// What publishing one file produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Relative to the image folder, as in `gallery.json`.
    pub file: String,
    pub size: u64,
    pub mtime_ns: u128,
    /// Relative to the gallery folder.
    pub thumb: String,
    pub vector: Vec<f32>,
    /// The picture's size as shown (after its EXIF orientation); `None` in records of older publishes, which
    /// publish then completes from the file's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_size: Option<(u32, u32)>,
}

/// An open cache: the records read back, and the file that new ones are appended to.
pub struct EmbedCache {
    path: PathBuf,
    header: Header,
    file: std::fs::File,
    records: HashMap<String, Record>,
    last_sync: Instant,
}

impl EmbedCache {
    /// Opens `out`'s cache for `model_id`, `views` and `decode`: its records when it was made for them, else empty.
    pub fn open(out: &Path, model_id: &str, views: &[String], decode: &str) -> Result<EmbedCache> {
        let path = out.join(CACHE_FILE);
        let header = Header { format: FORMAT.into(), model_id: model_id.into(), views: views.to_vec(), decode: decode.into() };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut records = HashMap::new();
        let mut lines = bytes.split_inclusive(|&b| b == b'\n');
        let same = lines.next().and_then(|l| serde_json::from_slice::<Header>(l).ok()).is_some_and(|h| h == header);
        // the length of the good part: the header and every whole record line
        let mut good = 0;
        if same {
            good = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            for line in lines {
                match serde_json::from_slice::<Record>(line) {
                    Ok(r) if line.ends_with(b"\n") => {
                        good += line.len();
                        records.insert(r.file.clone(), r); // a later line for a file replaces an earlier one
                    }
                    _ => break, // cut short by a kill (or damaged): keep what came before
                }
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.set_len(good as u64).with_context(|| format!("cannot truncate {}", path.display()))?;
        if good == 0 {
            file.write_all(&line_of(&header)?).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(EmbedCache { path, header, file, records, last_sync: Instant::now() })
    }

    /// The record of `file` if it was made from a file of this size and modification time.
    pub fn get(&self, file: &str, size: u64, mtime_ns: u128) -> Option<&Record> {
        self.records.get(file).filter(|r| r.size == size && r.mtime_ns == mtime_ns)
    }

    /// Appends `record` (one line, one write: it survives a kill of this process from now on).
    pub fn append(&mut self, record: Record) -> Result<()> {
        self.file.write_all(&line_of(&record)?).with_context(|| format!("cannot append to {}", self.path.display()))?;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.file.sync_data().with_context(|| format!("cannot sync {}", self.path.display()))?;
            self.last_sync = Instant::now();
        }
        self.records.insert(record.file.clone(), record);
        Ok(())
    }

    /// Rewrites the cache (atomically) with the records of `files` only, in that order: what was published.
    pub fn compact<'a>(&self, files: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let mut bytes = line_of(&self.header)?;
        for f in files {
            if let Some(r) = self.records.get(f) {
                bytes.extend(line_of(r)?);
            }
        }
        crate::write_atomic(&self.path, &bytes)
    }
}

fn line_of<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file: &str, x: f32) -> Record {
        Record { file: file.into(), size: 10, mtime_ns: 1_700_000_000_123_456_789, thumb: format!("thumbs/00/{file}.jpg"), vector: vec![x, -0.1234567, 1e-7], shown_size: Some((640, 480)) }
    }

    /// Records survive a reopen exactly (vectors bit for bit); a line cut short is dropped and later appends
    /// go after the last whole line; another model, view set or decode starts afresh.
    #[test]
    fn appended_records_survive_and_a_torn_line_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let views = vec!["original".to_string()];
        let mut c = EmbedCache::open(tmp.path(), "m1", &views, "d1").unwrap();
        c.append(record("a.jpg", 0.1)).unwrap();
        c.append(record("b.jpg", 0.2)).unwrap();
        c.append(record("a.jpg", 0.3)).unwrap(); // a re-embedded file: the later record wins
        drop(c);
        // a kill in the middle of the next record's write
        let path = tmp.path().join(CACHE_FILE);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"file":"c.jpg","size":1,"mti"#).unwrap();
        drop(f);
        let mut c = EmbedCache::open(tmp.path(), "m1", &views, "d1").unwrap();
        assert_eq!(c.get("a.jpg", 10, 1_700_000_000_123_456_789), Some(&record("a.jpg", 0.3)));
        assert_eq!(c.get("b.jpg", 10, 1_700_000_000_123_456_789), Some(&record("b.jpg", 0.2)));
        assert_eq!(c.get("b.jpg", 11, 1_700_000_000_123_456_789), None, "another size");
        assert!(c.get("c.jpg", 1, 0).is_none());
        c.append(record("d.jpg", 0.4)).unwrap();
        drop(c);
        let c = EmbedCache::open(tmp.path(), "m1", &views, "d1").unwrap();
        assert!(c.get("d.jpg", 10, 1_700_000_000_123_456_789).is_some(), "appended after the torn line was cut");
        c.compact(["d.jpg", "a.jpg"]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "header + two records: {text}");
        let other_decode = EmbedCache::open(tmp.path(), "m1", &views, "d2").unwrap();
        assert!(other_decode.get("d.jpg", 10, 1_700_000_000_123_456_789).is_none(), "another decode: a fresh cache");
        drop(other_decode);
        EmbedCache::open(tmp.path(), "m1", &views, "d1").unwrap().append(record("d.jpg", 0.4)).unwrap();
        assert!(EmbedCache::open(tmp.path(), "m2", &views, "d1").unwrap().get("d.jpg", 10, 1_700_000_000_123_456_789).is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1, "another model: a fresh cache");
    }
}

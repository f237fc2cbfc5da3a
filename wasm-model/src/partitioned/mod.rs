//! The partitioned gallery (README "Partitioned gallery"): a gallery too large to download whole, split by a
//! k-means coarse quantiser into lists that a reader fetches on demand. `gallery.json` is a small descriptor,
//! `index.bin` the header a page loads first (centroids, list sizes, each list's CRC), `lists/…/NNNNNN.bin` one
//! shard per list (ids, int8 rows, scales, hubness), `meta/…/NNNNNN.json` the per-image metadata in blocks of
//! consecutive ids. This file: the errors and the file names; `header`, `shard`, `meta`: the three formats;
//! `gallery` + `search`: the reader (probe planning, shard cache, scanning), `whole`: every row at once;
//! `kmeans` + `build` (+ `fs`): the writer.

use crate::model_dir::is_model_id;

mod build;
mod gallery;
mod header;
mod kmeans;
mod meta;
mod search;
mod shard;
mod whole;

#[cfg(feature = "native")]
pub mod fs;

pub use build::{partition, BuildError, BuildParams, BuildSummary, DEFAULT_PROBE};
pub use gallery::{PartitionedGallery, ShardSource, DEFAULT_SHARD_MEMORY};
pub use header::{Descriptor, Header, DESCRIPTOR_FORMAT, HEADER_FILE, HEADER_MAGIC, MAX_LISTS};
pub use kmeans::{assign, train_centroids, KMeansParams};
pub use meta::{MetaBlock, PartitionedItem, META_FORMAT};
pub use search::{PlannedSearch, Progress};
pub use shard::{Shard, SHARD_MAGIC};

/// Version of every file of the partitioned format (descriptor, header, shards, metadata blocks).
pub const PARTITIONED_FORMAT_VERSION: u32 = 1;
/// Galleries with more images than this are published partitioned by `--format auto`: at 2,000 images the flat
/// files (int8 rows + gallery.json) are ~1.8 MB, which with the model and the wasm package (~5.2 MB) is about
/// the 8 MB first-load budget's limit.
pub const AUTO_PARTITION_ABOVE: usize = 2_000;
/// Files per folder under `lists/` and `meta/` (static hosts and file systems slow down on huge folders).
pub const FILES_PER_FOLDER: usize = 1000;

/// A file of the gallery's parts folder (named by the gallery id), relative to the gallery folder:
/// `<gallery id>/lists/000/000123.bin`. Files named by `shard_file`, `meta_file` and `HEADER_FILE` live there.
pub fn parts_path(gallery_id: &str, file: &str) -> String {
    format!("{gallery_id}/{file}")
}

/// The shard file of list `list`, relative to the parts folder: `lists/000/000123.bin`.
pub fn shard_file(list: u32) -> String {
    format!("lists/{:03}/{:06}.bin", list as usize / FILES_PER_FOLDER, list)
}

/// The metadata block file of block `block` (ids `block * meta_block ..`), relative to the parts folder:
/// `meta/000/000042.json`.
pub fn meta_file(block: u32) -> String {
    format!("meta/{:03}/{:06}.json", block as usize / FILES_PER_FOLDER, block)
}

/// What is wrong with which file of a partitioned gallery. Every refusal names the file (relative to the
/// gallery folder) so the page and the CLI can say which one to fix.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file}: {problem}")]
pub struct PartitionedError {
    pub file: String,
    pub problem: Problem,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Problem {
    #[error("{len} bytes is too short for this file; it is truncated")]
    TooShort { len: usize },
    #[error("wrong magic (expected {expected:?}); this is not that part of an imgpick partitioned gallery")]
    Magic { expected: String },
    #[error("format version {found}, this build reads version {PARTITIONED_FORMAT_VERSION} (republish the gallery)")]
    Version { found: u32 },
    #[error("{actual} bytes, but its header needs {expected} (the file is truncated or corrupt)")]
    Length { expected: usize, actual: usize },
    #[error("CRC-32 mismatch (stored {stored:08x}, computed {computed:08x}); the file is corrupt: download or republish it")]
    Crc { stored: u32, computed: u32 },
    #[error("CRC-32 {found:08x} differs from {expected:08x} that index.bin pins for it: it belongs to another publish of the gallery (a stale copy?); republish or clear the cache")]
    PinnedCrc { found: u32, expected: u32 },
    #[error("{what} is {found}, expected {expected} (the file belongs to another gallery, model or list)")]
    Mismatch { what: &'static str, found: String, expected: String },
    #[error("{0}")]
    Invalid(String),
    #[error("not loaded: fetch it and add it to the engine first")]
    NotLoaded,
    #[error("cannot be read: {0}")]
    Io(String),
}

impl PartitionedError {
    pub fn new(file: impl Into<String>, problem: Problem) -> Self {
        Self { file: file.into(), problem }
    }
    pub(crate) fn invalid(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(file, Problem::Invalid(message.into()))
    }
    pub(crate) fn mismatch(file: impl Into<String>, what: &'static str, found: impl ToString, expected: impl ToString) -> Self {
        Self::new(file, Problem::Mismatch { what, found: found.to_string(), expected: expected.to_string() })
    }
}

/// Little-endian reads and writes of the binary files (lengths are checked before any read).
pub(crate) mod bytes {
    pub fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
    }
    pub fn f32s(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
    }
    pub fn u32s(b: &[u8]) -> Vec<u32> {
        b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
    }
    pub fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
        values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    pub fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
        values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    /// Appends the CRC-32 of everything written so far.
    pub fn seal(mut out: Vec<u8>) -> Vec<u8> {
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
    /// `(stored, computed)` CRC of a sealed file (at least 4 bytes long).
    pub fn crcs(b: &[u8]) -> (u32, u32) {
        let at = b.len() - 4;
        (u32_at(b, at), crc32fast::hash(&b[..at]))
    }
}

/// Checks a 32-hex-character id field (model id, gallery id) read from a binary header.
pub(crate) fn hex_id(file: &str, what: &'static str, raw: &[u8]) -> Result<String, PartitionedError> {
    match std::str::from_utf8(raw) {
        Ok(s) if is_model_id(s) => Ok(s.to_owned()),
        _ => Err(PartitionedError::invalid(file, format!("{what} is not 32 lower-case hex characters"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_in_small_folders() {
        assert_eq!(shard_file(0), "lists/000/000000.bin");
        assert_eq!(shard_file(999), "lists/000/000999.bin");
        assert_eq!(shard_file(1000), "lists/001/001000.bin");
        assert_eq!(meta_file(7812), "meta/007/007812.json");
    }
}

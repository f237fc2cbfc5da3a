//! The reader's state: a checked header, the shards loaded so far (a byte-bounded LRU, so a page that ran many
//! queries holds at most the cap) and, natively, where to read missing shards and metadata from. The page has no
//! source: its worker fetches shards (Cache API) and hands them over with `add_shard`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{meta_file, shard_file, Descriptor, Header, MetaBlock, PartitionedError, PartitionedItem, Problem, Shard, HEADER_FILE};

/// Shard bytes kept in memory by default: 256 list shards of 1,000 × 512-d rows (the page; natively the whole
/// 1 M-image gallery is 0.5 GB and `web` sets its own cap).
pub const DEFAULT_SHARD_MEMORY: usize = 128 << 20;
/// Metadata blocks a native reader keeps (each ~25 KB of JSON).
const META_BLOCKS_KEPT: usize = 256;

/// Where a native reader gets files of the gallery folder (paths relative to it).
pub trait ShardSource: Send + Sync + std::fmt::Debug {
    fn read(&self, file: &str) -> Result<Vec<u8>, PartitionedError>;
}

#[derive(Debug)]
struct Lru<T> {
    entries: HashMap<u32, (Arc<T>, u64)>,
    tick: u64,
    bytes: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Self { entries: HashMap::new(), tick: 0, bytes: 0 }
    }
}

impl<T> Lru<T> {
    fn get(&mut self, key: u32) -> Option<Arc<T>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(&key).map(|(v, used)| {
            *used = tick;
            v.clone()
        })
    }

    /// Inserts `value` (of `size` bytes), then drops the least recently used others until `bytes ≤ cap`.
    fn insert(&mut self, key: u32, value: Arc<T>, size: usize, cap: usize, size_of: impl Fn(&T) -> usize) {
        self.tick += 1;
        if let Some((old, _)) = self.entries.insert(key, (value, self.tick)) {
            self.bytes -= size_of(&old);
        }
        self.bytes += size;
        while self.bytes > cap && self.entries.len() > 1 {
            let (&oldest, _) = self.entries.iter().filter(|(k, _)| **k != key).min_by_key(|(k, (_, used))| (*used, **k)).expect("more than one entry");
            let (old, _) = self.entries.remove(&oldest).expect("present");
            self.bytes -= size_of(&old);
        }
    }
}

/// A partitioned gallery being read.
#[derive(Debug)]
pub struct PartitionedGallery {
    header: Header,
    source: Option<Box<dyn ShardSource>>,
    shards: Mutex<Lru<Shard>>,
    shard_memory: usize,
    meta: Mutex<Lru<MetaBlock>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PartitionedGallery {
    /// Checks `gallery.json` (the descriptor) and `index.bin` against each other and against the model.
    pub fn new(descriptor_json: &str, header: &[u8], model_id: &str, embed_dim: usize) -> Result<Self, PartitionedError> {
        let d = Descriptor::from_json(descriptor_json)?;
        let header = Header::from_bytes(header)?;
        if header.gallery_id != d.gallery_id || header.count != d.count || header.model_id != d.model_id {
            return Err(PartitionedError::mismatch(
                HEADER_FILE,
                "its gallery id / count",
                format!("{} / {}", header.gallery_id, header.count),
                format!("{} / {} (gallery.json's: the two files come from different publishes)", d.gallery_id, d.count),
            ));
        }
        if header.model_id != model_id || header.dim != embed_dim {
            return Err(PartitionedError::new(
                HEADER_FILE,
                Problem::Invalid(format!(
                    "made for model {} (D = {}), but the loaded model is {model_id} (D = {embed_dim}); republish the gallery with `trainer publish` for this model",
                    header.model_id, header.dim
                )),
            ));
        }
        Ok(Self { header, source: None, shards: Mutex::default(), shard_memory: DEFAULT_SHARD_MEMORY, meta: Mutex::default() })
    }

    /// Reads missing shards and metadata from `source` (native readers: the gallery folder).
    pub fn with_source(mut self, source: Box<dyn ShardSource>) -> Self {
        self.source = Some(source);
        self
    }

    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn has_source(&self) -> bool {
        self.source.is_some()
    }

    /// Caps the shard bytes kept in memory (at least what one query's lists need twice over).
    pub fn set_shard_memory(&mut self, bytes: usize) {
        let largest = self.header.list_sizes.iter().max().copied().unwrap_or(0) as usize;
        self.shard_memory = bytes.max(2 * self.header.probe * largest * (self.header.dim + 12));
    }

    /// `(bytes, shards)` held now.
    pub fn shard_memory(&self) -> (usize, usize) {
        let s = lock(&self.shards);
        (s.bytes, s.entries.len())
    }

    /// Checks a shard file against the header and keeps it; returns its list.
    pub fn add_shard(&self, bytes: &[u8]) -> Result<u32, PartitionedError> {
        let shard = Shard::from_bytes(bytes, &self.header)?;
        let (list, size) = (shard.list, shard.memory());
        lock(&self.shards).insert(list, Arc::new(shard), size, self.shard_memory, Shard::memory);
        Ok(list)
    }

    /// List `list`'s shard if it is in memory.
    pub fn shard(&self, list: u32) -> Option<Arc<Shard>> {
        lock(&self.shards).get(list)
    }

    /// List `list`'s shard, read from the source when it is not in memory.
    pub fn load(&self, list: u32) -> Result<Arc<Shard>, PartitionedError> {
        if let Some(s) = self.shard(list) {
            return Ok(s);
        }
        let file = shard_file(list);
        let source = self.source.as_ref().ok_or_else(|| PartitionedError::new(&file, Problem::NotLoaded))?;
        let list = self.add_shard(&source.read(&file)?)?;
        self.shard(list).ok_or_else(|| PartitionedError::new(file, Problem::NotLoaded))
    }

    /// Metadata block `block`, read from the source (native readers).
    pub fn meta_block(&self, block: u32) -> Result<Arc<MetaBlock>, PartitionedError> {
        if let Some(m) = lock(&self.meta).get(block) {
            return Ok(m);
        }
        let file = meta_file(block);
        let source = self.source.as_ref().ok_or_else(|| PartitionedError::new(&file, Problem::NotLoaded))?;
        let bytes = source.read(&file)?;
        let json = std::str::from_utf8(&bytes).map_err(|_| PartitionedError::invalid(&file, "is not UTF-8"))?;
        let m = Arc::new(MetaBlock::from_json(json, block, &self.header)?);
        lock(&self.meta).insert(block, m.clone(), 1, META_BLOCKS_KEPT, |_| 1);
        Ok(m)
    }

    /// The metadata block holding gallery id `id`.
    pub fn block_of(&self, id: usize) -> u32 {
        (id / self.header.meta_block) as u32
    }

    /// Image `id`'s metadata (native readers).
    pub fn item(&self, id: usize) -> Result<PartitionedItem, PartitionedError> {
        let m = self.meta_block(self.block_of(id))?;
        m.get(id).cloned().ok_or_else(|| PartitionedError::invalid(meta_file(self.block_of(id)), format!("has no item {id}")))
    }

    /// Row `id` as f32: from a shard in memory, else (with a source) via its metadata's list.
    pub fn row(&self, id: usize) -> Result<Vec<f32>, PartitionedError> {
        let id32 = id as u32;
        let found = lock(&self.shards).entries.values().find_map(|(s, _)| s.position(id32).map(|p| s.row(p)));
        if let Some(row) = found {
            return Ok(row);
        }
        if self.source.is_none() {
            return Err(PartitionedError::invalid(
                meta_file(self.block_of(id)),
                format!("image {id}'s list is not loaded: read its list here, then add that shard"),
            ));
        }
        let list = self.item(id)?.list;
        let shard = self.load(list)?;
        let pos = shard.position(id32).ok_or_else(|| PartitionedError::invalid(shard_file(list), format!("does not hold image {id}, which its metadata places there")))?;
        Ok(shard.row(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_keeps_the_cap_and_the_newest_entry() {
        let mut lru: Lru<usize> = Lru::default();
        for k in 0..5 {
            lru.insert(k, Arc::new(10), 10, 30, |v| *v);
        }
        assert_eq!(lru.bytes, 30);
        assert!(lru.get(0).is_none() && lru.get(4).is_some());
        lru.get(2); // used: survives the next insert
        lru.insert(9, Arc::new(10), 10, 30, |v| *v);
        assert!(lru.get(2).is_some() && lru.get(3).is_none());
        // An entry larger than the cap is still kept (alone): the query that needs it can scan it.
        lru.insert(7, Arc::new(100), 100, 30, |v| *v);
        assert_eq!((lru.entries.len(), lru.bytes), (1, 100));
    }
}

//! Per-image metadata of a partitioned gallery, fetched lazily in blocks of consecutive ids
//! (`meta/…/NNNNNN.json`): what results show (file, thumbnail, caption, licence, source, url) and the list that
//! holds each image's vector (what "more like this" and "why this picture?" need to find its row).

use serde::{Deserialize, Serialize};

use super::{meta_file, Header, PartitionedError, Problem, PARTITIONED_FORMAT_VERSION};
use crate::gallery::GalleryItem;

pub const META_FORMAT: &str = "imgpick-partitioned-meta";

/// `gallery.json`'s item, plus the list its vector is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionedItem {
    #[serde(flatten)]
    pub item: GalleryItem,
    pub list: u32,
}

/// One metadata block: items `block × meta_block ..` (the last block may be shorter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaBlock {
    pub format: String,
    pub format_version: u32,
    pub gallery_id: String,
    pub block: u32,
    pub items: Vec<PartitionedItem>,
}

impl MetaBlock {
    pub fn new(gallery_id: &str, block: u32, items: Vec<PartitionedItem>) -> Self {
        Self { format: META_FORMAT.into(), format_version: PARTITIONED_FORMAT_VERSION, gallery_id: gallery_id.into(), block, items }
    }

    /// Parses block `block` and checks it against the header: format, version, gallery id, block number, the
    /// ids it must hold, and lists in range.
    pub fn from_json(json: &str, block: u32, header: &Header) -> Result<Self, PartitionedError> {
        let file = meta_file(block);
        let m: Self = serde_json::from_str(json).map_err(|e| PartitionedError::invalid(&file, format!("is not a metadata block ({e})")))?;
        if m.format != META_FORMAT {
            return Err(PartitionedError::mismatch(file, "`format`", &m.format, META_FORMAT));
        }
        if m.format_version != PARTITIONED_FORMAT_VERSION {
            return Err(PartitionedError::new(file, Problem::Version { found: m.format_version }));
        }
        if m.gallery_id != header.gallery_id {
            return Err(PartitionedError::mismatch(file, "its gallery id", &m.gallery_id, &header.gallery_id));
        }
        if m.block != block {
            return Err(PartitionedError::mismatch(file, "its block", m.block, block));
        }
        let first = block as usize * header.meta_block;
        let expected = header.count.saturating_sub(first).min(header.meta_block);
        if m.items.len() != expected {
            return Err(PartitionedError::mismatch(file, "its item count", m.items.len(), expected));
        }
        if let Some((i, it)) = m.items.iter().enumerate().find(|(i, it)| it.item.id != first + i || it.list as usize >= header.lists()) {
            return Err(PartitionedError::invalid(file, format!("item {i} has id {} in list {}; expected id {} in one of {} lists", it.item.id, it.list, first + i, header.lists())));
        }
        if let Some(problem) = m.items.iter().enumerate().find_map(|(i, it)| it.item.field_problem().map(|p| format!("item {i} {p}"))) {
            return Err(PartitionedError::invalid(file, problem));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a metadata block always serialises") + "\n"
    }

    /// The item of gallery id `id`, when this block holds it.
    pub fn get(&self, id: usize) -> Option<&PartitionedItem> {
        let first = self.items.first()?.item.id;
        self.items.get(id.checked_sub(first)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: usize, list: u32) -> PartitionedItem {
        let item = GalleryItem {
            id, file: format!("{id}.jpg"), thumb: format!("thumbs/{id}.webp"), caption: "c".into(), source: String::new(),
            licence: "CC0".into(), url: None, hubness: None,
            ..Default::default()
        };
        PartitionedItem { item, list }
    }

    fn header() -> Header {
        Header {
            count: 6, dim: 2, probe: 1, meta_block: 4, model_id: "0".repeat(32), gallery_id: "a".repeat(32), hubness_mean: 0.0,
            list_sizes: vec![3, 3], list_crcs: vec![0, 0], list_hubness: vec![0.0; 2], centroid_scales: vec![0.0; 2], centroids: vec![0; 4],
        }
    }

    #[test]
    fn blocks_round_trip_and_are_checked() {
        let h = header();
        let last = MetaBlock::new(&h.gallery_id, 1, vec![item(4, 0), item(5, 1)]);
        let parsed = MetaBlock::from_json(&last.to_json(), 1, &h).unwrap();
        assert_eq!(parsed, last);
        assert_eq!(parsed.get(5).unwrap().list, 1);
        assert!(parsed.get(3).is_none() && parsed.get(6).is_none());
        let msg = |json: &str, block| MetaBlock::from_json(json, block, &h).unwrap_err().to_string();
        assert!(msg(&last.to_json(), 0).starts_with("meta/000/000000.json: its block is 1, expected 0"));
        assert!(msg("{", 1).contains("not a metadata block"));
        let other = MetaBlock::new(&"b".repeat(32), 1, vec![item(4, 0), item(5, 1)]);
        assert!(msg(&other.to_json(), 1).contains("gallery id"));
        let short = MetaBlock::new(&h.gallery_id, 1, vec![item(4, 0)]);
        assert!(msg(&short.to_json(), 1).contains("item count is 1, expected 2"));
        let bad_list = MetaBlock::new(&h.gallery_id, 1, vec![item(4, 0), item(5, 2)]);
        assert!(msg(&bad_list.to_json(), 1).contains("list 2"));
    }
}

//! A whole partitioned gallery read back as one flat gallery (int8 rows in id order) and its items: the reverse
//! of `build`, for readers that need every row at once rather than the lists a query plans — the database
//! loader. Every file goes through the same checks as a query's (`Shard::from_bytes`, `MetaBlock::from_json`),
//! and the rows are the shards' bytes, so the flat gallery scores exactly as the partitioned one.

use super::{shard_file, PartitionedError, PartitionedGallery};
use crate::gallery::{Gallery, GalleryItem};

impl PartitionedGallery {
    /// Every row and item (needs a source: natively, the gallery folder). Items keep their own `hubness`
    /// (`None` where the image had none), as the flat `gallery.json` had them.
    pub fn read_whole(&self) -> Result<(Gallery, Vec<GalleryItem>), PartitionedError> {
        let h = self.header();
        let (count, dim) = (h.count, h.dim);
        let mut codes = vec![0i8; count * dim];
        let mut scales = vec![0f32; count];
        let mut seen = vec![false; count];
        for list in 0..h.lists() as u32 {
            let shard = self.load(list)?;
            for (pos, &id) in shard.ids.iter().enumerate() {
                let id = id as usize; // < count: Shard::from_bytes checked it
                if std::mem::replace(&mut seen[id], true) {
                    return Err(PartitionedError::invalid(shard_file(list), format!("holds image {id}, which another list holds too")));
                }
                codes[id * dim..(id + 1) * dim].copy_from_slice(&shard.codes[pos * dim..(pos + 1) * dim]);
                scales[id] = shard.scales[pos];
            }
        }
        // the list sizes sum to the count, so a duplicate above is the only way an image can be missing; checked anyway
        if let Some(id) = seen.iter().position(|s| !s) {
            return Err(PartitionedError::invalid(super::HEADER_FILE, format!("no list holds image {id}")));
        }
        let mut items = Vec::with_capacity(count);
        for block in 0..count.div_ceil(h.meta_block) as u32 {
            items.extend(self.meta_block(block)?.items.iter().map(|it| it.item.clone()));
        }
        let gallery = Gallery::from_int8(&h.model_id, dim, codes, scales).map_err(|e| PartitionedError::invalid(super::HEADER_FILE, e.to_string()))?;
        Ok((gallery, items))
    }
}

//! `trainer index`: a published flat gallery folder → a partitioned gallery in another folder (what
//! `publish --format partitioned` writes, without embedding anything): the same rows, items and summary, and
//! the thumbnails the items name, hard-linked (copied across file systems) so the new folder is complete.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use wasm_model::gallery::{Gallery, GalleryIndex};
use wasm_model::partitioned::{BuildSummary, Descriptor};

use super::output::{refuse_overlap, OutputLock};
use super::tier::{write_partitioned_tier, Partitioning};

pub struct PartitionOptions {
    /// A flat gallery folder (`gallery.bin` + `gallery.json` + the thumbnails they name).
    pub gallery: PathBuf,
    pub out: PathBuf,
    pub partitioning: Partitioning,
}

/// Whether `thumb` (an item's path) stays inside the gallery folder: relative, no `..`.
fn stays_inside(thumb: &str) -> bool {
    !thumb.is_empty() && Path::new(thumb).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Puts `from` at `to` (a hard link, or a copy across file systems), unless `to` already exists.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

pub fn partition_gallery(opts: &PartitionOptions) -> Result<BuildSummary> {
    let (dir, out) = (&opts.gallery, &opts.out);
    let json_path = dir.join("gallery.json");
    let json = std::fs::read_to_string(&json_path).with_context(|| format!("cannot read {} (publish a gallery there with `trainer publish`)", json_path.display()))?;
    if Descriptor::is_partitioned(&json) {
        bail!("{} is already a partitioned gallery: `trainer index` partitions a flat one (gallery.bin + gallery.json)", dir.display());
    }
    // the same folder (or one inside the other) would lose gallery.bin or mix two galleries' files
    refuse_overlap(dir, out).map_err(|_| {
        anyhow::anyhow!(
            "--gallery {} and --out {} overlap: `trainer index` writes a new folder. To turn a published gallery into a \
             partitioned one in place, publish it again with `trainer publish --format partitioned` (nothing is re-embedded)",
            dir.display(),
            out.display()
        )
    })?;
    let bin_path = dir.join("gallery.bin");
    let bin = std::fs::read(&bin_path).with_context(|| format!("cannot read {}", bin_path.display()))?;
    let gallery = Gallery::from_bytes(&bin).with_context(|| format!("{}", bin_path.display()))?;
    let index = GalleryIndex::from_json(&json).with_context(|| format!("{}", json_path.display()))?;
    index.check_gallery(&gallery).with_context(|| format!("{}", dir.display()))?;
    if index.count == 0 {
        bail!("{} holds no images: nothing to partition", dir.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create --out {}", out.display()))?;
    let _lock = OutputLock::take(out)?;
    for (i, it) in index.items.iter().enumerate() {
        if !stays_inside(&it.thumb) {
            bail!("{}: item {i}'s thumb {:?} is not a path inside the gallery folder: not copied (republish the gallery)", json_path.display(), it.thumb);
        }
        let from = dir.join(&it.thumb);
        if from.is_file() {
            link_or_copy(&from, &out.join(&it.thumb))?;
        } else {
            tracing::warn!("{}: item {i}'s thumbnail {} is missing", dir.display(), it.thumb);
        }
    }
    write_partitioned_tier(out, &gallery, &index, opts.partitioning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_must_stay_inside_the_gallery_folder() {
        for ok in ["thumbs/ab/0123.jpg", "t.jpg"] {
            assert!(stays_inside(ok), "{ok}");
        }
        for bad in ["", "../x.jpg", "thumbs/../../x.jpg", "/etc/passwd", "./t.jpg"] {
            assert!(!stays_inside(bad), "{bad}");
        }
    }
}

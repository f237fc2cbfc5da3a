//! Which tier `publish` writes (wasm-model README "Partitioned gallery") and writing it: flat `gallery.bin` +
//! `gallery.json`, or partitioned through wasm-model's builder (a temporary folder renamed into place, then the
//! descriptor). Either way the other tier's files go only once the new gallery is in place, so a kill at any
//! moment leaves the previous gallery readable, and the next publish (which finds every vector in its cache)
//! finishes the job.

use std::path::Path;

use anyhow::{Context, Result};
use wasm_model::gallery::{Gallery, GalleryIndex};
use wasm_model::partitioned::fs::{remove_other_tiers, write_partitioned};
use wasm_model::partitioned::{BuildParams, BuildSummary, AUTO_PARTITION_ABOVE};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GalleryFormat {
    /// `gallery.bin` + `gallery.json`: the page downloads the whole gallery.
    Flat,
    /// Lists fetched per query: for galleries too large to download whole.
    Partitioned,
    /// Partitioned above `AUTO_PARTITION_ABOVE` (2,000) images, else flat.
    Auto,
}

impl GalleryFormat {
    pub fn partitioned_for(self, count: usize) -> bool {
        match self {
            GalleryFormat::Flat => false,
            GalleryFormat::Partitioned => true,
            GalleryFormat::Auto => count > AUTO_PARTITION_ABOVE,
        }
    }
}

/// How a partitioned gallery is cut (`--lists`, `--probe`; `None`: wasm-model's measured defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Partitioning {
    pub lists: Option<usize>,
    pub probe: Option<usize>,
}

impl Partitioning {
    pub fn params(self, index: &GalleryIndex) -> BuildParams {
        BuildParams { lists: self.lists, probe: self.probe, summary: index.summary.clone(), ..BuildParams::default() }
    }
}

/// Writes the flat tier: `gallery.bin`, then `gallery.json` (each atomically), then removes a partitioned
/// gallery's parts that the folder held before.
pub fn write_flat(out: &Path, bin: &[u8], index: &GalleryIndex) -> Result<()> {
    crate::write_atomic(&out.join("gallery.bin"), bin)?;
    crate::write_atomic(&out.join("gallery.json"), index.to_json().as_bytes())?;
    remove_other_tiers(out, None).with_context(|| format!("cannot remove the partitioned gallery {} held before", out.display()))
}

/// Writes the partitioned tier of `gallery` + `index` (its summary goes into the descriptor); removes
/// `gallery.bin` and older parts once the new descriptor is in place.
pub fn write_partitioned_tier(out: &Path, gallery: &Gallery, index: &GalleryIndex, partitioning: Partitioning) -> Result<BuildSummary> {
    write_partitioned(gallery, &index.items, &partitioning.params(index), out)
        .with_context(|| format!("cannot write the partitioned gallery into {}", out.display()))
}

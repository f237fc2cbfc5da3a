//! The writer: a flat gallery (int8 rows + items) → the partitioned files. Deterministic for a given input and
//! machine (k-means seed fixed, ties to the lower list, rows of a list in id order, the gallery id a hash of
//! the content), so republishing the same gallery gives the same files and the same cache keys.

use sha2::{Digest, Sha256};

use super::header::quantise_rows;
use super::kmeans::{assign, train_centroids, KMeansParams};
use super::{meta_file, shard_file, Descriptor, Header, MetaBlock, PartitionedItem, Shard, DESCRIPTOR_FORMAT, HEADER_FILE, PARTITIONED_FORMAT_VERSION};
use crate::gallery::{write_gallery_bin, Gallery, GalleryDtype, GalleryError, GalleryItem, GallerySummary};
use crate::model_dir::hex;

/// Lists probed per query (all of them when there are fewer), chosen by measurement with Flickr8k val captions
/// as queries (docs/benchmarks.md "Partitioned gallery"): recall@10 against the exact ranking 0.98 at 100k
/// images (632 lists; 16 probes: 0.966) and 0.995 at 1 M (2,048 lists), ~2 MB / ~6 MB of shards per cold query.
pub const DEFAULT_PROBE: usize = 24;

/// How to partition (the defaults are the measured choice: docs/benchmarks.md "Partitioned gallery").
#[derive(Debug, Clone, PartialEq)]
pub struct BuildParams {
    /// Number of lists; `None`: 2√N (clamped to 1..=4096).
    pub lists: Option<usize>,
    /// Lists probed per query; `None`: `DEFAULT_PROBE`.
    pub probe: Option<usize>,
    /// Items per metadata block.
    pub meta_block: usize,
    /// k-means trains on at most this many rows per list (a seeded sample).
    pub train_per_list: usize,
    pub iterations: usize,
    pub seed: u64,
    /// Copied into the descriptor `gallery.json` (`trainer publish` computes it on the flat gallery); not part
    /// of the gallery id.
    pub summary: Option<GallerySummary>,
}

impl Default for BuildParams {
    fn default() -> Self {
        Self { lists: None, probe: None, meta_block: 128, train_per_list: 64, iterations: 12, seed: 0x1_06_9b_1c, summary: None }
    }
}

impl BuildParams {
    pub fn lists_for(&self, count: usize) -> usize {
        let default = ((2.0 * (count as f64).sqrt()).round() as usize).clamp(1, 4096);
        self.lists.unwrap_or(default).clamp(1, count.max(1))
    }
    pub fn probe_for(&self, lists: usize) -> usize {
        self.probe.unwrap_or(DEFAULT_PROBE).clamp(1, lists)
    }
}

/// What `partition` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSummary {
    pub count: usize,
    pub lists: usize,
    pub probe: usize,
    pub gallery_id: String,
    pub header_bytes: usize,
    pub shard_bytes: usize,
    pub meta_bytes: usize,
    pub largest_list: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Gallery(#[from] GalleryError),
    #[error("k-means: {0}")]
    KMeans(#[from] candle_core::Error),
    #[error("cannot write {file}: {source}")]
    Write { file: String, source: std::io::Error },
    #[error("{0}")]
    Input(String),
}

/// Partitions `gallery` (its rows; int8 copied verbatim, f32/f16 quantised as `gallery.bin` int8 would be) with
/// `items` (gallery.json's) for model `model_id`, handing each file to `write(path relative to the gallery
/// folder, bytes)`: shards, metadata blocks, `index.bin`, and `gallery.json` last.
pub fn partition(
    gallery: &Gallery,
    items: &[GalleryItem],
    params: &BuildParams,
    write: &mut dyn FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> Result<BuildSummary, BuildError> {
    let (count, dim, model_id) = (gallery.len(), gallery.dim(), gallery.model_id().to_owned());
    if count == 0 || items.len() != count || items.iter().enumerate().any(|(i, it)| it.id != i) {
        return Err(BuildError::Input(format!("need a non-empty gallery with one item per row in id order ({count} rows, {} items)", items.len())));
    }
    if params.meta_block == 0 {
        return Err(BuildError::Input("the metadata block size must be at least 1".into()));
    }
    let requantised;
    let (codes, scales) = match gallery.int8_rows() {
        Some(rows) => rows,
        None => {
            let rows: Vec<f32> = (0..count).flat_map(|i| gallery.row(i).expect("id < len")).collect();
            requantised = Gallery::from_bytes(&write_gallery_bin(&model_id, dim, &rows, GalleryDtype::Int8)?)?;
            requantised.int8_rows().expect("written as int8")
        }
    };
    let row = |i: usize| codes[i * dim..(i + 1) * dim].iter().map(move |&q| q as f32 * scales[i]);

    // Hubness exactly as `Engine::new` resolves it: the mean of the known values, summed in id order.
    let known: Vec<f32> = items.iter().filter_map(|it| it.hubness).filter(|h| h.is_finite()).collect();
    let hubness_mean = if known.is_empty() { 0.0 } else { known.iter().sum::<f32>() / known.len() as f32 };
    let hubness: Vec<f32> = items.iter().map(|it| it.hubness.filter(|h| h.is_finite()).unwrap_or(hubness_mean)).collect();

    let lists = params.lists_for(count);
    let sample_len = (lists * params.train_per_list).clamp(lists, count);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(params.seed ^ 0x5a17);
    let mut sample_ids = rand::seq::index::sample(&mut rng, count, sample_len).into_vec();
    sample_ids.sort_unstable();
    let sample: Vec<f32> = sample_ids.iter().flat_map(|&i| row(i)).collect();
    let trained = train_centroids(&sample, dim, &KMeansParams { lists, iterations: params.iterations, seed: params.seed })?;
    let (centroid_scales, centroids) = quantise_rows(&trained, dim);
    // Rows go to the list whose stored (int8) centroid fits them best: where a query for them will look.
    let stored: Vec<f32> = centroids.chunks_exact(dim).zip(&centroid_scales).flat_map(|(c, s)| c.iter().map(move |&q| q as f32 * s)).collect();
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); lists];
    let mut buf = Vec::with_capacity(4096 * dim);
    for start in (0..count).step_by(4096) {
        buf.clear();
        (start..(start + 4096).min(count)).for_each(|i| buf.extend(row(i)));
        for (i, (l, _)) in assign(&buf, dim, &stored)?.into_iter().enumerate() {
            members[l as usize].push((start + i) as u32);
        }
    }
    let shard = |l: usize| {
        let ids = members[l].clone();
        let mut s = Shard { list: l as u32, dim, scales: Vec::with_capacity(ids.len()), hubness: Vec::with_capacity(ids.len()), codes: Vec::with_capacity(ids.len() * dim), ids };
        for &id in &s.ids {
            let i = id as usize;
            s.scales.push(scales[i]);
            s.hubness.push(hubness[i]);
            s.codes.extend_from_slice(&codes[i * dim..(i + 1) * dim]);
        }
        s
    };
    let list_of: Vec<u32> = {
        let mut v = vec![0u32; count];
        members.iter().enumerate().for_each(|(l, ids)| ids.iter().for_each(|&id| v[id as usize] = l as u32));
        v
    };
    let blocks = count.div_ceil(params.meta_block);
    let block_items = |b: usize| -> Vec<PartitionedItem> {
        (b * params.meta_block..((b + 1) * params.meta_block).min(count))
            .map(|i| PartitionedItem { item: items[i].clone(), list: list_of[i] })
            .collect()
    };
    let list_hubness: Vec<f32> = members
        .iter()
        .map(|ids| if ids.is_empty() { hubness_mean } else { ids.iter().map(|&i| hubness[i as usize]).sum::<f32>() / ids.len() as f32 })
        .collect();
    let mut header = Header {
        count,
        dim,
        probe: params.probe_for(lists),
        meta_block: params.meta_block,
        model_id: model_id.clone(),
        gallery_id: String::new(),
        hubness_mean,
        list_sizes: members.iter().map(|m| m.len() as u32).collect(),
        list_crcs: vec![0; lists],
        list_hubness,
        centroid_scales,
        centroids,
    };

    // The gallery id: a hash of everything the files hold but itself (first pass), then the files (second).
    let mut h = Sha256::new();
    h.update(b"imgpick-partitioned-gallery\0");
    h.update(header.to_bytes());
    for l in 0..lists {
        h.update(shard(l).body_bytes());
    }
    for b in 0..blocks {
        for it in block_items(b) {
            h.update(serde_json::to_vec(&it).expect("items serialise"));
        }
    }
    header.gallery_id = hex(&h.finalize()[..16]);

    let mut put = |file: &str, bytes: &[u8]| write(file, bytes).map_err(|source| BuildError::Write { file: file.to_owned(), source });
    let mut summary = BuildSummary { count, lists, probe: header.probe, gallery_id: header.gallery_id.clone(), header_bytes: 0, shard_bytes: 0, meta_bytes: 0, largest_list: 0 };
    for l in 0..lists {
        let s = shard(l);
        let bytes = s.to_bytes(&model_id, &header.gallery_id);
        header.list_crcs[l] = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
        summary.shard_bytes += bytes.len();
        summary.largest_list = summary.largest_list.max(s.len());
        put(&shard_file(l as u32), &bytes)?;
    }
    for b in 0..blocks {
        let json = MetaBlock::new(&header.gallery_id, b as u32, block_items(b)).to_json();
        summary.meta_bytes += json.len();
        put(&meta_file(b as u32), json.as_bytes())?;
    }
    let header_bytes = header.to_bytes();
    summary.header_bytes = header_bytes.len();
    put(HEADER_FILE, &header_bytes)?;
    let descriptor = Descriptor {
        format: DESCRIPTOR_FORMAT.into(),
        format_version: PARTITIONED_FORMAT_VERSION,
        model_id,
        gallery_id: header.gallery_id.clone(),
        count,
        header: HEADER_FILE.into(),
        summary: params.summary.clone(),
    };
    put("gallery.json", descriptor.to_json().as_bytes())?;
    Ok(summary)
}

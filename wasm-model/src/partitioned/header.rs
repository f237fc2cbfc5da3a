//! The first-load part of a partitioned gallery: the descriptor `gallery.json` (which tier this gallery is, its
//! model and gallery ids) and the header `index.bin` (centroids, list sizes, each list's pinned CRC and mean
//! hubness). README "Partitioned gallery" has the byte layout.

use serde::{Deserialize, Serialize};

use super::bytes::{crcs, f32s, put_f32s, put_u32s, seal, u32_at, u32s};
use super::{hex_id, PartitionedError, Problem, PARTITIONED_FORMAT_VERSION};
use crate::gallery::{GallerySummary, MAX_DIM};
use crate::model_dir::is_model_id;
use crate::rank::dot_i8_f32;

pub const DESCRIPTOR_FORMAT: &str = "imgpick-partitioned-gallery";
pub const HEADER_FILE: &str = "index.bin";
pub const HEADER_MAGIC: &[u8; 8] = b"IMGPIVF\0";
const FIXED_LEN: usize = 128;
/// Bounds the header's allocations for hostile files (a 1 M-image gallery uses 2,048 lists).
pub const MAX_LISTS: usize = 1 << 16;
const DESCRIPTOR_FILE: &str = "gallery.json";

/// `gallery.json` of a partitioned gallery. Its `format` is what tells a reader which tier the folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    pub format: String,
    pub format_version: u32,
    pub model_id: String,
    pub gallery_id: String,
    pub count: usize,
    /// The header file, relative to the gallery folder (always `index.bin`).
    pub header: String,
    /// What the gallery holds and prompts that work on it, as a flat `gallery.json`'s `summary` (the page's
    /// empty state); optional. Not part of the gallery id (no part file holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<GallerySummary>,
}

impl Descriptor {
    /// Whether `gallery_json` is a partitioned gallery's descriptor (cheap: looks at `format` only).
    pub fn is_partitioned(gallery_json: &str) -> bool {
        #[derive(Deserialize)]
        struct Format {
            format: String,
        }
        serde_json::from_str::<Format>(gallery_json).is_ok_and(|f| f.format == DESCRIPTOR_FORMAT)
    }

    pub fn from_json(json: &str) -> Result<Self, PartitionedError> {
        let d: Self = serde_json::from_str(json).map_err(|e| PartitionedError::invalid(DESCRIPTOR_FILE, e.to_string()))?;
        if d.format != DESCRIPTOR_FORMAT {
            return Err(PartitionedError::mismatch(DESCRIPTOR_FILE, "`format`", &d.format, DESCRIPTOR_FORMAT));
        }
        if d.format_version != PARTITIONED_FORMAT_VERSION {
            return Err(PartitionedError::new(DESCRIPTOR_FILE, Problem::Version { found: d.format_version }));
        }
        if !is_model_id(&d.model_id) || !is_model_id(&d.gallery_id) {
            return Err(PartitionedError::invalid(DESCRIPTOR_FILE, "`model_id` and `gallery_id` must be 32 lower-case hex characters"));
        }
        if d.header != HEADER_FILE {
            return Err(PartitionedError::mismatch(DESCRIPTOR_FILE, "`header`", &d.header, HEADER_FILE));
        }
        Ok(d)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a descriptor always serialises") + "\n"
    }
}

/// `index.bin`: everything a query needs before its first shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub count: usize,
    pub dim: usize,
    /// Lists probed per query (the same for every reader, so a shared link ranks the same everywhere).
    pub probe: usize,
    /// Images per metadata block (`meta/…`).
    pub meta_block: usize,
    pub model_id: String,
    pub gallery_id: String,
    /// The gallery's mean hubness: rows published without one were given it, and added photos get it.
    pub hubness_mean: f32,
    pub list_sizes: Vec<u32>,
    /// CRC-32 of each list's shard file as published: a shard from another publish is refused by name.
    pub list_crcs: Vec<u32>,
    /// Mean hubness of each list's rows: text queries rank lists by `centroid · q − weight × this`.
    pub list_hubness: Vec<f32>,
    /// Centroids, int8 with one f32 scale per list (`round(c / s)`, `s = max|c| / 127`), L × D.
    pub centroid_scales: Vec<f32>,
    pub centroids: Vec<i8>,
}

impl Header {
    pub fn lists(&self) -> usize {
        self.list_sizes.len()
    }

    /// The byte length of a header with `lists` lists of dimension `dim`.
    pub fn byte_len(lists: usize, dim: usize) -> usize {
        FIXED_LEN + lists * (16 + dim) + 4
    }

    /// Parses and checks `index.bin`: magic, version, lengths, CRC, ids, sizes adding up to the count.
    pub fn from_bytes(b: &[u8]) -> Result<Self, PartitionedError> {
        let err = |p| PartitionedError::new(HEADER_FILE, p);
        if b.len() < FIXED_LEN + 4 {
            return Err(err(Problem::TooShort { len: b.len() }));
        }
        if &b[..8] != HEADER_MAGIC {
            return Err(err(Problem::Magic { expected: "IMGPIVF\\0".into() }));
        }
        let version = u32_at(b, 8);
        if version != PARTITIONED_FORMAT_VERSION {
            return Err(err(Problem::Version { found: version }));
        }
        let [count, dim, lists, probe, meta_block] = [12, 16, 20, 24, 28].map(|o| u32_at(b, o) as usize);
        if dim == 0 || dim > MAX_DIM || lists == 0 || lists > MAX_LISTS {
            return Err(PartitionedError::invalid(HEADER_FILE, format!("dimension {dim} or list count {lists} is out of range")));
        }
        let expected = Self::byte_len(lists, dim);
        if b.len() != expected {
            return Err(err(Problem::Length { expected, actual: b.len() }));
        }
        let (stored, computed) = crcs(b);
        if stored != computed {
            return Err(err(Problem::Crc { stored, computed }));
        }
        let model_id = hex_id(HEADER_FILE, "model id", &b[32..64])?;
        let gallery_id = hex_id(HEADER_FILE, "gallery id", &b[64..96])?;
        let hubness_mean = f32::from_le_bytes(b[96..100].try_into().expect("4 bytes"));
        let table = |i: usize| FIXED_LEN + i * lists * 4..FIXED_LEN + (i + 1) * lists * 4;
        let list_sizes = u32s(&b[table(0)]);
        let list_crcs = u32s(&b[table(1)]);
        let list_hubness = f32s(&b[table(2)]);
        let centroid_scales = f32s(&b[table(3)]);
        let centroids: Vec<i8> = b[FIXED_LEN + 16 * lists..b.len() - 4].iter().map(|&v| v as i8).collect();
        if probe == 0 || probe > lists || meta_block == 0 {
            return Err(PartitionedError::invalid(HEADER_FILE, format!("probe {probe} (of {lists} lists) or metadata block {meta_block} is out of range")));
        }
        let total: u64 = list_sizes.iter().map(|&s| s as u64).sum();
        if total != count as u64 {
            return Err(PartitionedError::invalid(HEADER_FILE, format!("list sizes add up to {total}, but the gallery has {count} images")));
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !hubness_mean.is_finite() || !finite(&list_hubness) || !finite(&centroid_scales) || centroid_scales.iter().any(|s| *s < 0.0) {
            return Err(PartitionedError::invalid(HEADER_FILE, "a hubness or centroid scale is not a finite number"));
        }
        Ok(Self { count, dim, probe, meta_block, model_id, gallery_id, hubness_mean, list_sizes, list_crcs, list_hubness, centroid_scales, centroids })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let lists = self.lists();
        let mut out = Vec::with_capacity(Self::byte_len(lists, self.dim));
        out.extend_from_slice(HEADER_MAGIC);
        put_u32s(&mut out, &[PARTITIONED_FORMAT_VERSION, self.count as u32, self.dim as u32, lists as u32, self.probe as u32, self.meta_block as u32]);
        out.extend_from_slice(self.model_id.as_bytes());
        out.extend_from_slice(self.gallery_id.as_bytes());
        put_f32s(&mut out, &[self.hubness_mean]);
        out.resize(FIXED_LEN, 0);
        put_u32s(&mut out, &self.list_sizes);
        put_u32s(&mut out, &self.list_crcs);
        put_f32s(&mut out, &self.list_hubness);
        put_f32s(&mut out, &self.centroid_scales);
        out.extend(self.centroids.iter().map(|&v| v as u8));
        seal(out)
    }

    /// Centroid `list` · `query` (the int8 centroid widened, times its scale: the same kernel as the rows).
    pub fn centroid_score(&self, list: usize, query: &[f32]) -> f32 {
        dot_i8_f32(&self.centroids[list * self.dim..(list + 1) * self.dim], query) * self.centroid_scales[list]
    }

    /// Centroid `list` as f32.
    pub fn centroid(&self, list: usize) -> Vec<f32> {
        let s = self.centroid_scales[list];
        self.centroids[list * self.dim..(list + 1) * self.dim].iter().map(|&v| v as f32 * s).collect()
    }

    /// The lists to scan for `query`, best first: by centroid score less `penalty_weight` × the list's mean
    /// hubness (the hubness term of the shipped score, folded into the list's centroid), ties to the lower list.
    pub fn plan(&self, query: &[f32], penalty_weight: f32, probe: usize) -> Vec<u32> {
        let mut scored: Vec<(f32, u32)> = (0..self.lists())
            .map(|l| {
                let s = self.centroid_score(l, query) - penalty_weight * self.list_hubness[l];
                (if s.is_nan() { f32::NEG_INFINITY } else { s }, l as u32)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().take(probe.clamp(1, self.lists())).map(|(_, l)| l).collect()
    }
}

/// Quantises rows to int8 with one scale per row, as `gallery.bin` does: `s = max|x| / 127`, `round(x / s)`.
pub(crate) fn quantise_rows(rows: &[f32], dim: usize) -> (Vec<f32>, Vec<i8>) {
    let mut scales = Vec::with_capacity(rows.len() / dim);
    let mut codes = Vec::with_capacity(rows.len());
    for r in rows.chunks_exact(dim) {
        let s = r.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        scales.push(s);
        codes.extend(r.iter().map(|x| if s > 0.0 { (x / s).round().clamp(-127.0, 127.0) as i8 } else { 0 }));
    }
    (scales, codes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::random_rows;
    use proptest::prelude::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";
    const GID: &str = "fedcba9876543210fedcba9876543210";

    pub(crate) fn header(lists: usize, dim: usize) -> Header {
        let (centroid_scales, centroids) = quantise_rows(&random_rows(lists, dim, 5), dim);
        Header {
            count: 10 * lists,
            dim,
            probe: 2.min(lists),
            meta_block: 4,
            model_id: ID.into(),
            gallery_id: GID.into(),
            hubness_mean: 0.25,
            list_sizes: vec![10; lists],
            list_crcs: (0..lists as u32).collect(),
            list_hubness: (0..lists).map(|l| 0.2 + 0.01 * l as f32).collect(),
            centroid_scales,
            centroids,
        }
    }

    fn fix_crc(mut b: Vec<u8>) -> Vec<u8> {
        b.truncate(b.len() - 4);
        seal(b)
    }

    #[test]
    fn header_round_trips_and_plans_best_lists_first() {
        let h = header(5, 8);
        let b = h.to_bytes();
        assert_eq!(b.len(), Header::byte_len(5, 8));
        let parsed = Header::from_bytes(&b).unwrap();
        assert_eq!(parsed, h);
        let q = h.centroid(3);
        assert_eq!(h.plan(&q, 0.0, 2)[0], 3, "a centroid's own direction probes its list first");
        assert_eq!(h.plan(&q, 0.0, 99).len(), 5);
        // A large hubness weight reorders: the list with the least hubness (0) comes first.
        assert_eq!(h.plan(&q, 1000.0, 1), [0]);
    }

    #[test]
    fn header_refuses_broken_files_by_name() {
        let good = header(3, 8).to_bytes();
        let msg = |b: &[u8]| Header::from_bytes(b).unwrap_err().to_string();
        assert!(msg(&good[..20]).starts_with("index.bin: 20 bytes"), "{}", msg(&good[..20]));
        let mut b = good.clone();
        b[0] = b'X';
        assert!(msg(&b).contains("magic"));
        let mut b = good.clone();
        b[8] = 9;
        assert!(msg(&b).contains("version 9"));
        assert!(msg(&good[..good.len() - 1]).contains("truncated"));
        let mut b = good.clone();
        b[200] ^= 1;
        assert!(msg(&b).contains("CRC-32 mismatch"));
        let mut b = good.clone();
        b[12] = 99; // count no longer the sum of the list sizes
        assert!(msg(&fix_crc(b)).contains("add up to 30"));
        let mut b = good.clone();
        b[24] = 7; // probe 7 of 3 lists
        assert!(msg(&fix_crc(b)).contains("probe 7"));
        let mut b = good;
        b[32] = b'Z';
        assert!(msg(&fix_crc(b)).contains("model id"));
    }

    #[test]
    fn descriptor_is_checked() {
        let d = Descriptor { format: DESCRIPTOR_FORMAT.into(), format_version: 1, model_id: ID.into(), gallery_id: GID.into(), count: 3, header: HEADER_FILE.into(), summary: None };
        assert!(Descriptor::is_partitioned(&d.to_json()));
        assert_eq!(Descriptor::from_json(&d.to_json()).unwrap(), d);
        assert!(!d.to_json().contains("summary"), "left out when absent (descriptors written before it read the same)");
        let summary = crate::gallery::GallerySummary { themes: vec![crate::gallery::ThemeCount { theme: "animals".into(), count: 2 }], examples: Vec::new() };
        let with = Descriptor { summary: Some(summary), ..d.clone() };
        assert_eq!(Descriptor::from_json(&with.to_json()).unwrap(), with);
        assert!(!Descriptor::is_partitioned(r#"{"format":"imgpick-gallery","items":[]}"#));
        let bad = d.to_json().replace("\"format_version\": 1", "\"format_version\": 2");
        assert!(Descriptor::from_json(&bad).unwrap_err().to_string().contains("gallery.json: format version 2"));
        let bad = d.to_json().replace(GID, "nope");
        assert!(Descriptor::from_json(&bad).is_err());
    }

    proptest! {
        #[test]
        fn header_parser_never_panics(pos in 0usize..400, val in any::<u8>(), cut in 0usize..400, fix in any::<bool>()) {
            let mut b = header(3, 8).to_bytes();
            let p = pos % b.len();
            b[p] = val;
            b.truncate(b.len() - cut.min(b.len()));
            let b = if fix && b.len() >= 4 { fix_crc(b) } else { b };
            if let Ok(h) = Header::from_bytes(&b) {
                let _ = h.plan(&[0.5; 8], 0.5, 2);
            }
        }
    }
}

//! One list's shard file (`lists/…/NNNNNN.bin`): the ids, int8 rows, scales and hubness of the images k-means
//! put in that list, with everything needed to refuse a wrong file by name (magic, version, list, model and
//! gallery ids, count, CRC). README "Partitioned gallery" has the byte layout.

use super::bytes::{crcs, f32s, put_f32s, put_u32s, seal, u32_at, u32s};
use super::{hex_id, shard_file, Header, PartitionedError, Problem, PARTITIONED_FORMAT_VERSION};
use crate::rank::scores_i8;

pub const SHARD_MAGIC: &[u8; 8] = b"IMGPLST\0";
const FIXED_LEN: usize = 96;

/// A list's rows, held for scanning.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    pub list: u32,
    pub dim: usize,
    /// Gallery ids, ascending.
    pub ids: Vec<u32>,
    pub scales: Vec<f32>,
    /// Each row's hubness (the gallery mean where the image had none).
    pub hubness: Vec<f32>,
    /// int8 rows, `ids.len()` × `dim`.
    pub codes: Vec<i8>,
}

impl Shard {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes held in memory (what the shard cache counts).
    pub fn memory(&self) -> usize {
        self.codes.len() + 12 * self.ids.len()
    }

    /// The byte length of a shard of `n` rows of dimension `dim`.
    pub fn byte_len(n: usize, dim: usize) -> usize {
        FIXED_LEN + n * (12 + dim) + 4
    }

    /// Parses a shard and checks it against the header: magic, version, list id, model and gallery ids, row count,
    /// dimension, length, its own CRC and the CRC the header pins for this list, ids ascending and in range.
    pub fn from_bytes(b: &[u8], header: &Header) -> Result<Self, PartitionedError> {
        let file = if b.len() >= 16 && &b[..8] == SHARD_MAGIC { shard_file(u32_at(b, 12)) } else { "shard".to_owned() };
        let err = |p| PartitionedError::new(file.clone(), p);
        if b.len() < FIXED_LEN + 4 {
            return Err(err(Problem::TooShort { len: b.len() }));
        }
        if &b[..8] != SHARD_MAGIC {
            return Err(err(Problem::Magic { expected: "IMGPLST\\0".into() }));
        }
        let version = u32_at(b, 8);
        if version != PARTITIONED_FORMAT_VERSION {
            return Err(err(Problem::Version { found: version }));
        }
        let [list, n, dim] = [12, 16, 20].map(|o| u32_at(b, o) as usize);
        if list >= header.lists() {
            return Err(PartitionedError::invalid(file, format!("list {list} is not in this gallery ({} lists)", header.lists())));
        }
        let expected_n = header.list_sizes[list] as usize;
        if n != expected_n || dim != header.dim {
            return Err(PartitionedError::mismatch(file, "rows × dimension", format!("{n} × {dim}"), format!("{expected_n} × {}", header.dim)));
        }
        let expected = Self::byte_len(n, dim);
        if b.len() != expected {
            return Err(err(Problem::Length { expected, actual: b.len() }));
        }
        let (stored, computed) = crcs(b);
        if stored != computed {
            return Err(err(Problem::Crc { stored, computed }));
        }
        let model_id = hex_id(&file, "model id", &b[24..56])?;
        if model_id != header.model_id {
            return Err(PartitionedError::mismatch(file, "its model id", model_id, &header.model_id));
        }
        let gallery_id = hex_id(&file, "gallery id", &b[56..88])?;
        if gallery_id != header.gallery_id {
            return Err(PartitionedError::mismatch(file, "its gallery id", gallery_id, &header.gallery_id));
        }
        if stored != header.list_crcs[list] {
            return Err(err(Problem::PinnedCrc { found: stored, expected: header.list_crcs[list] }));
        }
        let at = |i: usize| FIXED_LEN + i * 4 * n..FIXED_LEN + (i + 1) * 4 * n;
        let ids = u32s(&b[at(0)]);
        let scales = f32s(&b[at(1)]);
        let hubness = f32s(&b[at(2)]);
        let codes: Vec<i8> = b[FIXED_LEN + 12 * n..b.len() - 4].iter().map(|&v| v as i8).collect();
        if ids.windows(2).any(|w| w[0] >= w[1]) || ids.last().is_some_and(|&id| id as usize >= header.count) {
            return Err(PartitionedError::invalid(file, "ids are not ascending, or one is past the gallery's count"));
        }
        if scales.iter().chain(&hubness).any(|x| !x.is_finite()) || scales.iter().any(|s| *s < 0.0) {
            return Err(PartitionedError::invalid(file, "a scale or hubness is not a finite number"));
        }
        Ok(Self { list: list as u32, dim, ids, scales, hubness, codes })
    }

    /// The file's bytes for `model_id` and `gallery_id` (its CRC is what the header pins).
    pub fn to_bytes(&self, model_id: &str, gallery_id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::byte_len(self.len(), self.dim));
        out.extend_from_slice(SHARD_MAGIC);
        put_u32s(&mut out, &[PARTITIONED_FORMAT_VERSION, self.list, self.len() as u32, self.dim as u32]);
        out.extend_from_slice(model_id.as_bytes());
        out.extend_from_slice(gallery_id.as_bytes());
        out.resize(FIXED_LEN, 0);
        put_u32s(&mut out, &self.ids);
        put_f32s(&mut out, &self.scales);
        put_f32s(&mut out, &self.hubness);
        out.extend(self.codes.iter().map(|&v| v as u8));
        seal(out)
    }

    /// The content that identifies the shard (everything but the ids in its header), for the gallery id.
    pub(crate) fn body_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * (12 + self.dim));
        put_u32s(&mut out, &[self.list, self.len() as u32]);
        put_u32s(&mut out, &self.ids);
        put_f32s(&mut out, &self.scales);
        put_f32s(&mut out, &self.hubness);
        out.extend(self.codes.iter().map(|&v| v as u8));
        out
    }

    /// Position of gallery id `id` in this shard.
    pub fn position(&self, id: u32) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// Row `pos` as f32 (`code × scale`, as `Gallery::row` dequantises).
    pub fn row(&self, pos: usize) -> Vec<f32> {
        let s = self.scales[pos];
        self.codes[pos * self.dim..(pos + 1) * self.dim].iter().map(|&q| q as f32 * s).collect()
    }

    /// The shipped score of every row for `query` into `out`: `scale × Σ code·q` (the flat gallery's int8
    /// kernel) less `penalty_weight × hubness` (0 for image-to-image queries).
    pub fn scores_into(&self, query: &[f32], penalty_weight: f32, out: &mut Vec<f32>) {
        out.clear();
        scores_i8(&self.codes, &self.scales, self.dim, query, out);
        out.iter_mut().zip(&self.hubness).for_each(|(s, h)| *s -= penalty_weight * h);
    }
}

#[cfg(test)]
mod tests {
    use super::super::header::quantise_rows;
    use super::*;
    use crate::testutil::random_rows;
    use proptest::prelude::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";
    const GID: &str = "fedcba9876543210fedcba9876543210";

    /// A 2-list header and list 1's shard (ids 1, 4, 6 of 7) that it pins.
    fn pair() -> (Header, Vec<u8>) {
        let (scales, codes) = quantise_rows(&random_rows(3, 8, 1), 8);
        let shard = Shard { list: 1, dim: 8, ids: vec![1, 4, 6], scales, hubness: vec![0.1, 0.2, 0.3], codes };
        let (centroid_scales, centroids) = quantise_rows(&random_rows(2, 8, 2), 8);
        let mut h = Header {
            count: 7, dim: 8, probe: 1, meta_block: 4, model_id: ID.into(), gallery_id: GID.into(), hubness_mean: 0.2,
            list_sizes: vec![4, 3], list_crcs: vec![0, 0], list_hubness: vec![0.2, 0.2], centroid_scales, centroids,
        };
        let bytes = shard.to_bytes(ID, GID);
        h.list_crcs[1] = crcs(&bytes).0;
        (h, bytes)
    }

    fn fix_crc(mut b: Vec<u8>) -> Vec<u8> {
        b.truncate(b.len() - 4);
        seal(b)
    }

    #[test]
    fn shard_round_trips_and_scores_like_the_flat_kernel() {
        let (h, b) = pair();
        let s = Shard::from_bytes(&b, &h).unwrap();
        assert_eq!((s.list, s.len(), s.position(4), s.position(5)), (1, 3, Some(1), None));
        let q = s.row(2);
        let mut out = Vec::new();
        s.scores_into(&q, 0.5, &mut out);
        let mut flat = Vec::new();
        scores_i8(&s.codes, &s.scales, 8, &q, &mut flat);
        assert_eq!(out[0], flat[0] - 0.5 * 0.1);
        assert!((flat[2] - 1.0).abs() < 0.02, "self-score {}", flat[2]);
    }

    #[test]
    fn wrong_truncated_or_stale_shards_are_refused_by_name() {
        let (h, good) = pair();
        let msg = |b: &[u8], h: &Header| Shard::from_bytes(b, h).unwrap_err().to_string();
        let m = msg(&good[..good.len() - 10], &h);
        assert!(m.starts_with("lists/000/000001.bin: ") && m.contains("truncated"), "{m}");
        let mut b = good.clone();
        b[120] ^= 4;
        assert!(msg(&b, &h).contains("CRC-32 mismatch"));
        // The same list from another publish: a valid file whose CRC the header does not pin.
        let mut other = h.clone();
        other.list_crcs[1] ^= 1;
        assert!(msg(&good, &other).contains("stale"), "{}", msg(&good, &other));
        // From another model or gallery.
        let mut other = h.clone();
        other.model_id = "ffffffffffffffffffffffffffffffff".into();
        assert!(msg(&good, &other).contains("model id"));
        let mut other = h.clone();
        other.gallery_id = "ffffffffffffffffffffffffffffffff".into();
        assert!(msg(&good, &other).contains("gallery id"));
        // Another list's size.
        let mut other = h.clone();
        other.list_sizes = vec![3, 4];
        assert!(msg(&good, &other).contains("rows × dimension"));
        let mut b = good.clone();
        b[96..100].copy_from_slice(&9u32.to_le_bytes()); // id 9 ≥ count 7
        let b = fix_crc(b);
        let mut pinned = h.clone();
        pinned.list_crcs[1] = crcs(&b).0;
        assert!(msg(&b, &pinned).contains("ascending"));
        assert!(msg(b"IMGPGAL\0 not a shard at all, a flat gallery ............................................................", &h).contains("magic"));
    }

    proptest! {
        #[test]
        fn shard_parser_never_panics(pos in 0usize..200, val in any::<u8>(), cut in 0usize..200, fix in any::<bool>()) {
            let (h, mut b) = pair();
            let p = pos % b.len();
            b[p] = val;
            b.truncate(b.len() - cut.min(b.len()));
            let b = if fix && b.len() >= 4 { fix_crc(b) } else { b };
            let _ = Shard::from_bytes(&b, &h);
        }
    }
}

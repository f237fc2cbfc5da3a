//! The gallery (README "Gallery"): `gallery.bin` (L2-normalised image embeddings, f32/f16/int8, CRC-32),
//! its reader and writer, here; `gallery.json` (per-image metadata) in `index`. Every refusal is a
//! [`GalleryError`].

use serde::{Deserialize, Serialize};

use crate::model_dir::is_model_id;
use crate::rank::{dot_f32, scores_i8};
use crate::tensors::{decode, encode, encode_f32, FloatDtype};

mod index;
mod licence;
mod summary;

pub use index::{GalleryIndex, GalleryItem, GALLERY_INDEX_FORMAT};
pub use licence::{licence_info, normalise_licence, LicenceInfo, LICENCES, UNKNOWN_LICENCE};
pub use summary::{count_themes, names_word, themes_of, ExamplePrompt, GallerySummary, ThemeCount, EXAMPLE_DEPTH, THEMES};

pub const GALLERY_MAGIC: &[u8; 8] = b"IMGPGAL\0";
pub const GALLERY_FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
/// Largest accepted dimension (bounds allocations and the int8 kernel's integer range).
pub const MAX_DIM: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum GalleryDtype {
    F32 = 1,
    F16 = 2,
    Int8 = 3,
}

impl GalleryDtype {
    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::F32),
            2 => Some(Self::F16),
            3 => Some(Self::Int8),
            _ => None,
        }
    }
    fn element_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
            Self::Int8 => 1,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GalleryError {
    #[error("gallery.bin: {len} bytes is shorter than the 68-byte minimum (header + CRC); the file is truncated")]
    TooShort { len: usize },
    #[error("gallery.bin: wrong magic (expected \"IMGPGAL\\0\"); this is not an imgpick gallery file")]
    Magic,
    #[error("gallery.bin: format version {found}, this build reads version 1 (republish the gallery with `trainer publish`)")]
    Version { found: u32 },
    #[error("gallery.bin: unknown dtype code {found} (1 = f32, 2 = f16, 3 = int8)")]
    Dtype { found: u32 },
    #[error("gallery.bin: dimension {dim} is out of range 1..={MAX_DIM}")]
    DimRange { dim: usize },
    #[error("gallery.bin: {actual} bytes, but N = {n} and D = {dim} need {expected} (the file is truncated or corrupt)")]
    Length { n: usize, dim: usize, expected: usize, actual: usize },
    #[error("gallery.bin: CRC-32 mismatch (stored {stored:08x}, computed {computed:08x}); the file is corrupt, download or republish it")]
    Crc { stored: u32, computed: u32 },
    #[error("gallery.bin: model id is not 32 lower-case hex characters")]
    ModelIdFormat,
    #[error("gallery.bin: row {row} holds a non-finite value or scale")]
    NotFinite { row: usize },
    #[error("gallery: dimension {gallery} differs from the model's embed_dim {model} (the gallery was made for another model; republish it with this model)")]
    Dim { gallery: usize, model: usize },
    #[error("gallery: made for model {gallery}, but the loaded model is {model} (republish the gallery with `trainer publish` for this model)")]
    ModelMismatch { gallery: String, model: String },
    #[error("gallery writer: {rows} values is not a multiple of D = {dim}")]
    RowsShape { rows: usize, dim: usize },
    #[error("gallery rows: {values} int8 values for {scales} scales of D = {dim} (the rows and their scales disagree)")]
    Int8Shape { values: usize, scales: usize, dim: usize },
    #[error("gallery.json: {0}")]
    IndexJson(String),
    #[error("gallery.json: {0}")]
    Index(String),
}

/// The image embeddings of a gallery, held for scoring. f16 files are widened to f32 on load.
#[derive(Debug, Clone)]
pub struct Gallery {
    model_id: String,
    dim: usize,
    len: usize,
    stored: GalleryDtype,
    rows: Rows,
}

#[derive(Debug, Clone)]
enum Rows {
    F32(Vec<f32>),
    Int8 { scales: Vec<f32>, values: Vec<i8> },
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

impl Gallery {
    /// Parses and checks `gallery.bin` (magic, version, dtype, length, CRC, finiteness).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GalleryError> {
        if bytes.len() < HEADER_LEN + 4 {
            return Err(GalleryError::TooShort { len: bytes.len() });
        }
        if &bytes[..8] != GALLERY_MAGIC {
            return Err(GalleryError::Magic);
        }
        let version = u32_at(bytes, 8);
        if version != GALLERY_FORMAT_VERSION {
            return Err(GalleryError::Version { found: version });
        }
        let code = u32_at(bytes, 12);
        let dtype = GalleryDtype::from_code(code).ok_or(GalleryError::Dtype { found: code })?;
        let (n, dim) = (u32_at(bytes, 16) as usize, u32_at(bytes, 20) as usize);
        if dim == 0 || dim > MAX_DIM {
            return Err(GalleryError::DimRange { dim });
        }
        let body = n
            .checked_mul(dim)
            .and_then(|e| e.checked_mul(dtype.element_size()))
            .and_then(|b| b.checked_add(if dtype == GalleryDtype::Int8 { 4 * n } else { 0 }));
        let expected = body.and_then(|b| b.checked_add(HEADER_LEN + 4));
        if expected != Some(bytes.len()) {
            return Err(GalleryError::Length { n, dim, expected: expected.unwrap_or(usize::MAX), actual: bytes.len() });
        }
        let crc_at = bytes.len() - 4;
        let (stored, computed) = (u32_at(bytes, crc_at), crc32fast::hash(&bytes[..crc_at]));
        if stored != computed {
            return Err(GalleryError::Crc { stored, computed });
        }
        let model_id = std::str::from_utf8(&bytes[24..56]).map_err(|_| GalleryError::ModelIdFormat)?;
        if !is_model_id(model_id) {
            return Err(GalleryError::ModelIdFormat);
        }
        let data = &bytes[HEADER_LEN..crc_at];
        // The length check above makes every slice a whole number of values; the error cannot happen.
        let floats = |b: &[u8], dtype: FloatDtype| {
            decode(b, dtype).map_err(|_| GalleryError::Length { n, dim, expected: bytes.len(), actual: bytes.len() })
        };
        let rows = match dtype {
            GalleryDtype::F32 => Rows::F32(floats(data, FloatDtype::F32)?),
            GalleryDtype::F16 => Rows::F32(floats(data, FloatDtype::F16)?),
            GalleryDtype::Int8 => {
                let (s, v) = data.split_at(4 * n);
                let scales = floats(s, FloatDtype::F32)?;
                if let Some(row) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
                    return Err(GalleryError::NotFinite { row });
                }
                Rows::Int8 { scales, values: v.iter().map(|&b| b as i8).collect() }
            }
        };
        if let Rows::F32(v) = &rows {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(GalleryError::NotFinite { row: i / dim });
            }
        }
        Ok(Self { model_id: model_id.to_owned(), dim, len: n, stored: dtype, rows })
    }

    /// An int8 gallery from its rows (`codes`: N × `dim`, row-major) and per-row scales, checked as
    /// [`Gallery::from_bytes`] checks a file: what a reader of a partitioned gallery's shards rebuilds, so
    /// that its scores equal the flat gallery's bit for bit.
    pub fn from_int8(model_id: &str, dim: usize, codes: Vec<i8>, scales: Vec<f32>) -> Result<Self, GalleryError> {
        if dim == 0 || dim > MAX_DIM {
            return Err(GalleryError::DimRange { dim });
        }
        if !is_model_id(model_id) {
            return Err(GalleryError::ModelIdFormat);
        }
        let n = scales.len();
        if codes.len() != n * dim {
            return Err(GalleryError::Int8Shape { values: codes.len(), scales: n, dim });
        }
        if let Some(row) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
            return Err(GalleryError::NotFinite { row });
        }
        Ok(Self { model_id: model_id.to_owned(), dim, len: n, stored: GalleryDtype::Int8, rows: Rows::Int8 { scales, values: codes } })
    }

    /// Refuses a gallery made for another model (different id or dimension).
    pub fn check_model(&self, model_id: &str, embed_dim: usize) -> Result<(), GalleryError> {
        if self.dim != embed_dim {
            return Err(GalleryError::Dim { gallery: self.dim, model: embed_dim });
        }
        if self.model_id != model_id {
            return Err(GalleryError::ModelMismatch { gallery: self.model_id.clone(), model: model_id.into() });
        }
        Ok(())
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The dtype the file stored (f16 rows are held as f32 in memory).
    pub fn stored_dtype(&self) -> GalleryDtype {
        self.stored
    }

    /// The int8 rows (row-major) and their scales, when the file stored int8 (what a partitioned gallery copies
    /// verbatim, so its scores equal this gallery's).
    pub fn int8_rows(&self) -> Option<(&[i8], &[f32])> {
        match &self.rows {
            Rows::Int8 { scales, values } => Some((values, scales)),
            Rows::F32(_) => None,
        }
    }

    /// Row `id` as f32 (dequantised for int8), or `None` when out of range.
    pub fn row(&self, id: usize) -> Option<Vec<f32>> {
        if id >= self.len {
            return None;
        }
        let r = id * self.dim..(id + 1) * self.dim;
        Some(match &self.rows {
            Rows::F32(v) => v[r].to_vec(),
            Rows::Int8 { scales, values } => values[r].iter().map(|&q| q as f32 * scales[id]).collect(),
        })
    }

    /// Cosine scores of every row against `query` (an L2-normalised vector of length D) into `out`.
    pub fn scores_into(&self, query: &[f32], out: &mut Vec<f32>) {
        out.clear();
        if query.len() != self.dim {
            out.resize(self.len, f32::NAN);
            return;
        }
        match &self.rows {
            Rows::F32(v) => out.extend(v.chunks_exact(self.dim).map(|row| dot_f32(row, query))),
            Rows::Int8 { scales, values } => {
                scores_i8(values, scales, self.dim, query, out);
            }
        }
    }

    pub fn scores(&self, query: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len);
        self.scores_into(query, &mut out);
        out
    }
}

/// Writes `gallery.bin` for row-major `rows` (N × `dim`); rows are L2-normalised here before storing.
pub fn write_gallery_bin(model_id: &str, dim: usize, rows: &[f32], dtype: GalleryDtype) -> Result<Vec<u8>, GalleryError> {
    if dim == 0 || dim > MAX_DIM {
        return Err(GalleryError::DimRange { dim });
    }
    if !rows.len().is_multiple_of(dim) {
        return Err(GalleryError::RowsShape { rows: rows.len(), dim });
    }
    if !is_model_id(model_id) {
        return Err(GalleryError::ModelIdFormat);
    }
    let n = rows.len() / dim;
    if let Some(i) = rows.iter().position(|x| !x.is_finite()) {
        return Err(GalleryError::NotFinite { row: i / dim });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + n * (4 + dim * dtype.element_size()) + 4);
    out.extend_from_slice(GALLERY_MAGIC);
    for v in [GALLERY_FORMAT_VERSION, dtype as u32, n as u32, dim as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(model_id.as_bytes());
    out.extend_from_slice(&[0u8; 8]);
    let normalized: Vec<Vec<f32>> = rows
        .chunks_exact(dim)
        .map(|r| {
            let norm = dot_f32(r, r).sqrt().max(1e-12);
            r.iter().map(|x| x / norm).collect()
        })
        .collect();
    match dtype {
        GalleryDtype::F32 => out.extend_from_slice(&encode(&normalized.concat(), FloatDtype::F32)),
        GalleryDtype::F16 => out.extend_from_slice(&encode(&normalized.concat(), FloatDtype::F16)),
        GalleryDtype::Int8 => {
            let scales: Vec<f32> = normalized.iter().map(|r| r.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0).collect();
            out.extend_from_slice(&encode_f32(&scales));
            for (r, s) in normalized.iter().zip(&scales) {
                out.extend(r.iter().map(|x| if *s > 0.0 { (x / s).round().clamp(-127.0, 127.0) as i8 as u8 } else { 0 }));
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::random_rows;
    use proptest::prelude::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn bin(dtype: GalleryDtype) -> Vec<u8> {
        write_gallery_bin(ID, 8, &random_rows(5, 8, 3), dtype).unwrap()
    }

    /// Rewrites the CRC after a deliberate edit, so the test reaches the check after it.
    fn fix_crc(mut b: Vec<u8>) -> Vec<u8> {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Rows and scales taken from an int8 file rebuild the same gallery (scores bit for bit); shapes that
    /// disagree and bad scales are refused.
    #[test]
    fn int8_rows_rebuild_the_same_gallery() {
        let g = Gallery::from_bytes(&bin(GalleryDtype::Int8)).unwrap();
        let (codes, scales) = g.int8_rows().unwrap();
        let rebuilt = Gallery::from_int8(ID, 8, codes.to_vec(), scales.to_vec()).unwrap();
        let q: Vec<f32> = random_rows(1, 8, 9);
        assert_eq!(rebuilt.scores(&q), g.scores(&q));
        assert_eq!((rebuilt.len(), rebuilt.stored_dtype(), rebuilt.model_id()), (5, GalleryDtype::Int8, ID));
        let e = Gallery::from_int8(ID, 8, codes[8..].to_vec(), scales.to_vec()).unwrap_err();
        assert!(e.to_string().contains("32 int8 values for 5 scales"), "{e}");
        let mut bad = scales.to_vec();
        bad[2] = f32::NAN;
        assert_eq!(Gallery::from_int8(ID, 8, codes.to_vec(), bad).unwrap_err(), GalleryError::NotFinite { row: 2 });
        assert_eq!(Gallery::from_int8("x", 8, codes.to_vec(), scales.to_vec()).unwrap_err(), GalleryError::ModelIdFormat);
    }

    #[test]
    fn round_trips_every_dtype() {
        let rows = random_rows(5, 8, 3);
        for (dtype, tol) in [(GalleryDtype::F32, 1e-7), (GalleryDtype::F16, 1e-3), (GalleryDtype::Int8, 1e-2)] {
            let g = Gallery::from_bytes(&bin(dtype)).unwrap();
            assert_eq!((g.len(), g.dim(), g.model_id(), g.stored_dtype()), (5, 8, ID, dtype));
            for i in 0..5 {
                let r = g.row(i).unwrap();
                for (a, b) in r.iter().zip(&rows[i * 8..]) {
                    assert!((a - b).abs() < tol, "{dtype:?} {a} vs {b}");
                }
            }
            assert!(g.row(5).is_none());
            let q = &rows[8..16];
            let s = g.scores(q);
            assert!((s[1] - 1.0).abs() < 2e-2, "{dtype:?} self-score {}", s[1]);
            for i in 0..5 {
                let exact = dot_f32(&rows[i * 8..(i + 1) * 8], q);
                assert!((s[i] - exact).abs() < 2e-2, "{dtype:?}");
            }
        }
    }

    #[test]
    fn writer_normalises_and_checks_inputs() {
        let b = write_gallery_bin(ID, 2, &[3.0, 4.0], GalleryDtype::F32).unwrap();
        assert_eq!(Gallery::from_bytes(&b).unwrap().row(0).unwrap(), [0.6, 0.8]);
        assert_eq!(write_gallery_bin(ID, 3, &[1.0; 4], GalleryDtype::F32), Err(GalleryError::RowsShape { rows: 4, dim: 3 }));
        assert_eq!(write_gallery_bin("xyz", 1, &[1.0], GalleryDtype::F32), Err(GalleryError::ModelIdFormat));
        assert_eq!(write_gallery_bin(ID, 1, &[1.0, f32::NAN], GalleryDtype::F32), Err(GalleryError::NotFinite { row: 1 }));
        // An all-zero row quantises to zeros without dividing by zero.
        let g = Gallery::from_bytes(&write_gallery_bin(ID, 2, &[0.0, 0.0], GalleryDtype::Int8).unwrap()).unwrap();
        assert_eq!(g.scores(&[1.0, 0.0]), [0.0]);
    }

    #[test]
    fn refuses_every_broken_file() {
        let good = bin(GalleryDtype::Int8);
        use GalleryError::*;
        assert_eq!(Gallery::from_bytes(&[]).unwrap_err(), TooShort { len: 0 });
        assert_eq!(Gallery::from_bytes(&good[..40]).unwrap_err(), TooShort { len: 40 });
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(Gallery::from_bytes(&b).unwrap_err(), Magic);
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(Gallery::from_bytes(&b).unwrap_err(), Version { found: 2 });
        let mut b = good.clone();
        b[12] = 9;
        assert_eq!(Gallery::from_bytes(&b).unwrap_err(), Dtype { found: 9 });
        assert!(matches!(Gallery::from_bytes(&good[..good.len() - 1]).unwrap_err(), Length { .. }));
        let mut b = good.clone();
        b[16] = 0xff; // N = 255 with the data of 5 rows
        assert!(matches!(Gallery::from_bytes(&b).unwrap_err(), Length { n: 255, .. }));
        let mut b = good.clone();
        b[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Gallery::from_bytes(&b).unwrap_err(), DimRange { .. }));
        let mut b = good.clone();
        b[100] ^= 1;
        assert!(matches!(Gallery::from_bytes(&b).unwrap_err(), Crc { .. }));
        let mut b = good.clone();
        b[24] = b'G';
        assert_eq!(Gallery::from_bytes(&fix_crc(b)).unwrap_err(), ModelIdFormat);
        let mut b = good.clone();
        b[64..68].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(Gallery::from_bytes(&fix_crc(b)).unwrap_err(), NotFinite { row: 0 });
        let mut b = bin(GalleryDtype::F32);
        b[64 + 4 * 8..64 + 4 * 9].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert_eq!(Gallery::from_bytes(&fix_crc(b)).unwrap_err(), NotFinite { row: 1 });

        let g = Gallery::from_bytes(&good).unwrap();
        assert!(g.check_model(ID, 8).is_ok());
        assert_eq!(g.check_model(ID, 16).unwrap_err(), Dim { gallery: 8, model: 16 });
        let other = "ffffffffffffffffffffffffffffffff";
        let e = g.check_model(other, 8).unwrap_err();
        assert!(e.to_string().contains(other) && e.to_string().contains("republish"), "{e}");
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_random_bytes(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Gallery::from_bytes(&b);
        }

        #[test]
        fn parser_never_panics_on_mutated_files(pos in 0usize..200, val in any::<u8>(), cut in 0usize..200, fix in any::<bool>()) {
            let mut b = bin(GalleryDtype::Int8);
            let p = pos % b.len();
            b[p] = val;
            b.truncate(b.len() - cut.min(b.len()));
            let b = if fix && b.len() >= 4 { fix_crc(b) } else { b };
            if let Ok(g) = Gallery::from_bytes(&b) {
                let _ = g.scores(&[0.5; 8]);
                let _ = g.row(0);
            }
        }
    }
}

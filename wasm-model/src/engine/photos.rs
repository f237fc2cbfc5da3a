//! The user's own photos: the image encoder (with its checksums, and standalone for the page's embedding
//! workers) and the vectors added to the searchable set (ids after the gallery's, in memory only), kept as
//! int8 rows like an int8 gallery's.

use super::{Engine, EngineError};
use crate::image_encoder::{ImageEncoder, ImageEncoderError};
use crate::model_dir::{Manifest, ModelError};
use crate::rank::scores_i8;

/// The user's photos joined to the searchable set, in id order (id = gallery length + index): each an int8 row
/// with a per-row scale, quantised and scored exactly as an int8 gallery (`gallery.bin` dtype 3,
/// `rank::scores_i8`), so 100,000 photos of 512 dimensions take 51 MB instead of 205 MB as f32. `file` and
/// `thumb` are the caller's (the page keeps its own and passes none when restoring in bulk).
#[derive(Debug, Clone, Default)]
pub struct AddedPhotos {
    dim: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// (file, thumb) per photo; empty strings do not allocate.
    names: Vec<(Box<str>, Box<str>)>,
}

/// An L2-normalised copy of `vector` quantised as the int8 gallery writer does (`write_gallery_bin`):
/// `scale = max|x| / 127`, `code = round(x / scale)`. Refuses a zero, NaN or infinite vector.
pub fn quantize_i8(vector: &[f32]) -> Result<(Vec<i8>, f32), EngineError> {
    // Normalised with the gallery writer's own dot product, so the codes equal its bytes (tested).
    let norm = crate::rank::dot_f32(vector, vector).sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(EngineError::VectorNotFinite);
    }
    let unit: Vec<f32> = vector.iter().map(|x| x / norm.max(1e-12)).collect();
    let scale = unit.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
    let codes = unit.iter().map(|x| if scale > 0.0 { (x / scale).round().clamp(-127.0, 127.0) as i8 } else { 0 }).collect();
    Ok((codes, scale))
}

impl AddedPhotos {
    pub fn new(dim: usize) -> Self {
        Self { dim, ..Self::default() }
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// `(file, thumb)` of photo `i` (an index, not an id).
    pub fn names(&self, i: usize) -> Option<(&str, &str)> {
        self.names.get(i).map(|(f, t)| (&**f, &**t))
    }

    /// Photo `i`'s row as f32 (code × scale; unit length up to the quantisation).
    pub fn row(&self, i: usize) -> Option<Vec<f32>> {
        let scale = *self.scales.get(i)?;
        Some(self.codes[i * self.dim..(i + 1) * self.dim].iter().map(|&c| c as f32 * scale).collect())
    }

    /// Photo `i`'s stored codes and scale.
    pub fn quantized(&self, i: usize) -> Option<(&[i8], f32)> {
        let scale = *self.scales.get(i)?;
        Some((&self.codes[i * self.dim..(i + 1) * self.dim], scale))
    }

    /// Appends one score per photo to `out`: its cosine with `query` less `penalty` (NaN for a query of
    /// another length).
    pub fn scores_into(&self, query: &[f32], penalty: f32, out: &mut Vec<f32>) {
        if query.len() != self.dim {
            out.extend(std::iter::repeat_n(f32::NAN, self.len()));
            return;
        }
        let start = out.len();
        scores_i8(&self.codes, &self.scales, self.dim, query, out);
        if penalty != 0.0 {
            out[start..].iter_mut().for_each(|s| *s -= penalty);
        }
    }

    /// Room for `additional` more photos, so a bulk restore grows the rows once instead of doubling them (the
    /// wasm heap never shrinks: with 100,000 photos it was 150 MB without this, 71 MB with it).
    pub fn reserve(&mut self, additional: usize) {
        self.codes.reserve_exact(additional * self.dim);
        self.scales.reserve_exact(additional);
        self.names.reserve_exact(additional);
    }

    /// Appends rows already quantised (`codes`: `scales.len()` rows of `dim`); checked first, so a bad batch
    /// adds nothing.
    fn push_quantized(&mut self, codes: &[i8], scales: &[f32], names: impl Iterator<Item = (Box<str>, Box<str>)>) -> Result<(), EngineError> {
        if codes.len() != scales.len() * self.dim {
            return Err(EngineError::VectorDim { found: codes.len() / scales.len().max(1), expected: self.dim });
        }
        if scales.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(EngineError::VectorNotFinite);
        }
        self.codes.extend_from_slice(codes);
        self.scales.extend_from_slice(scales);
        self.names.extend(names.take(scales.len()));
        self.names.resize(self.scales.len(), Default::default());
        Ok(())
    }

    fn clear(&mut self) {
        self.codes.clear();
        self.scales.clear();
        self.names.clear();
    }
}

/// The one place an [`ImageEncoder`] is built from a manifest and its two weight files (checksums are the
/// caller's job: [`Engine::load_image_encoder`], [`standalone_image_encoder`]).
fn build_image_encoder(m: &Manifest, image_encoder: &[u8], image_head: &[u8]) -> Result<ImageEncoder, EngineError> {
    Ok(ImageEncoder::new(&m.image, m.embed_dim, image_encoder, image_head)?)
}

/// An image encoder without a text encoder or a gallery: what the page's embedding Web Workers run. Both
/// weight files are checked against the manifest's `files_sha256` (the image head is also covered by
/// `model_id`, which the search worker's [`Engine`] verifies).
pub fn standalone_image_encoder(
    manifest_json: &str,
    image_encoder: &[u8],
    image_head: &[u8],
) -> Result<ImageEncoder, EngineError> {
    let m: Manifest = serde_json::from_str(manifest_json).map_err(|e| ModelError::ManifestJson(e.to_string()))?;
    let missing = "is not set: this model cannot embed photos (`trainer export-image-encoder` adds the encoder)";
    let check = |field: &str, name: Option<&String>, bytes: &[u8]| crate::model_dir::verify_side_file(&m, field, name, missing, bytes);
    check("image_encoder", m.files.image_encoder.as_ref(), image_encoder)?;
    check("image_head", m.files.image_head.as_ref(), image_head)?;
    build_image_encoder(&m, image_encoder, image_head)
}

impl Engine {
    /// Loads `image_encoder.safetensors` (checked against the manifest's `files_sha256`) together with the
    /// model's image head, so [`Engine::embed_image`] and [`Engine::add_image`] work. The head must have been
    /// given already (at construction or by [`Engine::load_image_head`]); else see
    /// [`Engine::load_image_encoder_with_head`].
    pub fn load_image_encoder(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        self.model.verify_image_encoder(bytes)?;
        if self.model.image_head_pending() {
            return Err(EngineError::ImageHeadNotLoaded);
        }
        let head = self.model.image_head.as_deref().ok_or(ImageEncoderError::NoImageHead)?;
        self.image_encoder = Some(build_image_encoder(&self.model.manifest, bytes, head)?);
        Ok(())
    }

    /// [`Engine::load_image_head`] (when `image_head` is given), then [`Engine::load_image_encoder`]: both
    /// files are checked before anything changes.
    pub fn load_image_encoder_with_head(&mut self, encoder: &[u8], image_head: Option<&[u8]>) -> Result<(), EngineError> {
        self.model.verify_image_encoder(encoder)?;
        if let Some(head) = image_head {
            self.load_image_head(head)?;
        }
        self.load_image_encoder(encoder)
    }

    /// Gives the engine `image_head.safetensors` when it was built without it: checked against the manifest's
    /// `files_sha256` and `model_id` (wrong bytes are an error naming the file; nothing changes then).
    pub fn load_image_head(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        Ok(self.model.attach_image_head(bytes)?)
    }

    /// Whether the image head's bytes are held (given at construction or by [`Engine::load_image_head`]).
    pub fn has_image_head(&self) -> bool {
        self.model.image_head.is_some()
    }

    pub fn has_image_encoder(&self) -> bool {
        self.image_encoder.is_some()
    }

    /// An encoded photo (JPEG/PNG/WebP) → its L2-normalised vector (the one `trainer publish` computes).
    pub fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>, EngineError> {
        let enc = self.image_encoder.as_ref().ok_or(EngineError::NoImageEncoder)?;
        Ok(enc.embed(bytes)?)
    }

    /// Embeds a photo and adds it to the searchable set; returns its id.
    pub fn add_image(&mut self, file: &str, thumb: &str, bytes: &[u8]) -> Result<u32, EngineError> {
        let v = self.embed_image(bytes)?;
        self.add_vector(file, thumb, v)
    }

    /// Adds a precomputed vector (e.g. from an embedding worker); returns its id. The vector is L2-normalised
    /// and quantised here ([`quantize_i8`]).
    pub fn add_vector(&mut self, file: &str, thumb: &str, vector: Vec<f32>) -> Result<u32, EngineError> {
        let (codes, scale) = self.quantize(&vector)?;
        self.added.push_quantized(&codes, &[scale], std::iter::once((file.into(), thumb.into())))?;
        Ok((self.gallery_len() + self.added.len() - 1) as u32)
    }

    /// [`quantize_i8`] for this model's dimension: what the page stores, and gives back to
    /// [`Engine::add_quantized`] (now and on every later visit), so a restored photo scores exactly as before.
    pub fn quantize(&self, vector: &[f32]) -> Result<(Vec<i8>, f32), EngineError> {
        let dim = self.model.manifest.embed_dim;
        if vector.len() != dim {
            return Err(EngineError::VectorDim { found: vector.len(), expected: dim });
        }
        quantize_i8(vector)
    }

    /// Adds `scales.len()` quantised rows at once (`codes`: row-major, `embed_dim` each), without names;
    /// returns the first one's id. The page's restore: 100,000 photos in ~200 calls.
    pub fn add_quantized(&mut self, codes: &[i8], scales: &[f32]) -> Result<u32, EngineError> {
        let first = self.gallery_len() + self.added.len();
        self.added.push_quantized(codes, scales, std::iter::empty())?;
        Ok(first as u32)
    }

    /// Makes room for `photos` more added photos (see [`AddedPhotos::reserve`]); the page calls it before a restore.
    pub fn reserve_added(&mut self, photos: usize) {
        self.added.reserve(photos);
    }

    /// The added photos, in id order (id = `gallery_len() + index`).
    pub fn added(&self) -> &AddedPhotos {
        &self.added
    }

    /// Forgets every added photo.
    pub fn clear_added(&mut self) {
        self.added.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{engine, items};
    use super::*;
    use crate::engine::Scope;
    use crate::gallery::{write_gallery_bin, GalleryDtype, GalleryIndex};
    use crate::testutil::{random_rows, small_config};

    #[test]
    fn added_vectors_join_the_search_and_scopes_filter() {
        let mut e = engine(GalleryDtype::F32);
        let q = e.query_vector("w2 w5").unwrap();
        // An added row equal to the query (scaled: it is normalised on the way in) must rank first.
        let id = e.add_vector("mine.jpg", "blob:1", q.iter().map(|x| x * 3.0).collect()).unwrap();
        assert_eq!(id, 30);
        assert_eq!(e.len(), 31);
        let hits = e.search("w2 w5", 5).unwrap();
        assert_eq!((hits[0].id, hits[0].file.as_str(), hits[0].thumb.as_str()), (30, "mine.jpg", "blob:1"));
        assert!((hits[0].score - 1.0).abs() < 1e-2, "int8 rows: {}", hits[0].score);
        let mine = e.search_in("w2 w5", 5, Scope::Added).unwrap();
        assert_eq!(mine.iter().map(|h| h.id).collect::<Vec<_>>(), [30]);
        let demo = e.search_in("w2 w5", 5, Scope::Gallery).unwrap();
        assert!(demo.len() == 5 && demo.iter().all(|h| h.id < 30));
        assert!(e.similar(30, 3).unwrap().iter().all(|h| h.id != 30));
        assert!(e.explain("w2", 30).is_ok());
        // bad vectors are refused, nothing is added
        assert!(matches!(e.add_vector("x", "", vec![1.0; 5]), Err(EngineError::VectorDim { found: 5, expected: 6 })));
        assert!(matches!(e.add_vector("x", "", vec![0.0; 6]), Err(EngineError::VectorNotFinite)));
        assert!(matches!(e.add_vector("x", "", vec![f32::NAN; 6]), Err(EngineError::VectorNotFinite)));
        assert!(matches!(e.embed_image(b"\x89PNG"), Err(EngineError::NoImageEncoder)));
        assert_eq!(e.len(), 31);
        e.clear_added();
        assert_eq!(e.len(), 30);
        assert!(e.search("w2 w5", 40).unwrap().iter().all(|h| h.id < 30));
    }

    /// The added rows are the int8 gallery's rows: the same codes and scales as `write_gallery_bin` writes, so
    /// they score as an int8 gallery does.
    #[test]
    fn quantized_rows_equal_the_int8_gallery_writer() {
        let rows = random_rows(25, 6, 7);
        let bin = write_gallery_bin(&"0".repeat(32), 6, &rows, GalleryDtype::Int8).unwrap();
        let g = crate::gallery::Gallery::from_bytes(&bin).unwrap();
        for (i, row) in rows.chunks_exact(6).enumerate() {
            let (codes, scale) = quantize_i8(row).unwrap();
            let decoded: Vec<f32> = codes.iter().map(|&c| c as f32 * scale).collect();
            assert_eq!(decoded, g.row(i).unwrap(), "row {i}");
        }
        assert!(matches!(quantize_i8(&[0.0; 6]), Err(EngineError::VectorNotFinite)));
        assert!(matches!(quantize_i8(&[1.0, f32::INFINITY]), Err(EngineError::VectorNotFinite)));
    }

    /// The page's restore: quantised rows in bulk score exactly as the same vectors added one by one; a bad batch
    /// adds nothing.
    #[test]
    fn bulk_quantized_rows_score_as_added_vectors() {
        let (mut one_by_one, mut bulk) = (engine(GalleryDtype::Int8), engine(GalleryDtype::Int8));
        let rows = random_rows(40, 6, 11);
        let (mut codes, mut scales) = (Vec::new(), Vec::new());
        for (i, row) in rows.chunks_exact(6).enumerate() {
            one_by_one.add_vector(&format!("p{i}.jpg"), "", row.to_vec()).unwrap();
            let (c, s) = bulk.quantize(row).unwrap();
            codes.extend(c);
            scales.push(s);
        }
        assert_eq!(bulk.add_quantized(&codes[..6 * 10], &scales[..10]).unwrap(), 30);
        assert_eq!(bulk.add_quantized(&codes[6 * 10..], &scales[10..]).unwrap(), 40);
        let score_ids = |e: &Engine| e.search_in("w3 w4", 50, Scope::Added).unwrap().into_iter().map(|h| (h.id, h.score)).collect::<Vec<_>>();
        assert_eq!(score_ids(&bulk), score_ids(&one_by_one));
        assert_eq!(bulk.similar(35, 5).unwrap().iter().map(|h| h.id).collect::<Vec<_>>(),
            one_by_one.similar(35, 5).unwrap().iter().map(|h| h.id).collect::<Vec<_>>());
        assert_eq!(bulk.added().names(3), Some(("", "")), "bulk rows carry no names (the page keeps them)");
        assert_eq!(one_by_one.added().names(3), Some(("p3.jpg", "")));
        assert_eq!(bulk.added().quantized(7).unwrap(), (&codes[42..48], scales[7]));
        // Wrong lengths, a NaN or negative scale, a vector of another size: refused, nothing added.
        assert!(matches!(bulk.add_quantized(&codes[..7], &scales[..1]), Err(EngineError::VectorDim { .. })));
        assert!(matches!(bulk.add_quantized(&codes[..6], &[f32::NAN]), Err(EngineError::VectorNotFinite)));
        assert!(matches!(bulk.add_quantized(&codes[..6], &[-1.0]), Err(EngineError::VectorNotFinite)));
        assert!(matches!(bulk.quantize(&[1.0; 5]), Err(EngineError::VectorDim { found: 5, expected: 6 })));
        assert_eq!(bulk.added().len(), 40);
    }

    /// int8 rows rank like the f32 vectors they came from: for random unit vectors (a harder case than real
    /// photo vectors, which spread less), the top-10 of 40 queries over 3,000 rows mostly agree.
    #[test]
    fn int8_rows_rank_like_f32() {
        let dim = 64;
        let rows = random_rows(3000, dim, 5);
        let mut added = AddedPhotos::new(dim);
        for row in rows.chunks_exact(dim) {
            let (c, s) = quantize_i8(row).unwrap();
            added.push_quantized(&c, &[s], std::iter::empty()).unwrap();
        }
        let unit: Vec<Vec<f32>> = rows.chunks_exact(dim).map(|r| {
            let n = crate::rank::dot_f32(r, r).sqrt();
            r.iter().map(|x| x / n).collect()
        }).collect();
        let mut common = 0;
        for q in random_rows(40, dim, 6).chunks_exact(dim) {
            let exact: Vec<f32> = unit.iter().map(|r| crate::rank::dot_f32(q, r)).collect();
            let mut int8 = Vec::new();
            added.scores_into(q, 0.0, &mut int8);
            let top = |s: &[f32]| crate::rank::top_k(s, 10, None).into_iter().map(|x| x.id).collect::<Vec<_>>();
            let (a, b) = (top(&exact), top(&int8));
            common += a.iter().filter(|id| b.contains(id)).count();
        }
        assert!(common >= 380, "{common} of 400 top-10 places in common");
    }

    /// The page builds its engine without `image_head.safetensors` (downloaded only when photos are added):
    /// everything but embedding works, and the head is checked (checksum, model id) when it comes.
    #[test]
    fn works_without_the_image_head_until_it_is_loaded() {
        use crate::testutil::{image_config, random_image_head, random_model_with_head};
        let mut model = random_model_with_head(small_config(), 6, 9, random_image_head(6, 3), image_config());
        let encoder_file = b"stand-in for image_encoder.safetensors".to_vec();
        model.set_image_encoder(&encoder_file);
        let (manifest, head) = (model.manifest_json(), model.image_head.clone().unwrap());
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), GalleryDtype::F32).unwrap();
        let json = GalleryIndex::new(&id, items(30)).to_json();
        let mut e = Engine::from_bytes_with_head(&manifest, &model.vocab_txt, &model.text_encoder, None, &bin, &json).unwrap();
        assert!(!e.has_image_head() && !e.has_image_encoder());
        assert_eq!(e.model_id(), id);
        // Text search, similar, explain, added vectors and scopes: the same answers as with the head.
        let full = Engine::from_bytes_with_head(&manifest, &model.vocab_txt, &model.text_encoder, Some(&head), &bin, &json).unwrap();
        assert!(full.has_image_head());
        assert_eq!(e.search("w2 w5 -w7", 8).unwrap(), full.search("w2 w5 -w7", 8).unwrap());
        assert_eq!(e.similar(3, 5).unwrap(), full.similar(3, 5).unwrap());
        assert_eq!(e.explain("w3 w4", 7).unwrap(), full.explain("w3 w4", 7).unwrap());
        let q = e.query_vector("w6").unwrap();
        assert_eq!(e.add_vector("mine.jpg", "blob:1", q.clone()).unwrap(), 30);
        assert_eq!(e.search_in("w6", 3, Scope::Added).unwrap()[0].file, "mine.jpg");
        assert_eq!(e.search_in("w6", 3, Scope::All).unwrap()[0].id, 30);
        // Embedding needs the head: a clear error until it is loaded.
        assert!(matches!(e.embed_image(b"\xff\xd8"), Err(EngineError::NoImageEncoder)));
        let err = e.load_image_encoder(&encoder_file).unwrap_err();
        assert!(matches!(err, EngineError::ImageHeadNotLoaded), "{err}");
        assert!(err.to_string().contains("image_head.safetensors"), "{err}");
        // Wrong head bytes: refused, naming the file; still no head.
        let mut bad = head.clone();
        *bad.last_mut().unwrap() ^= 1;
        let err = e.load_image_head(&bad).unwrap_err().to_string();
        assert!(err.contains("image_head.safetensors") && err.contains("SHA-256"), "{err}");
        let err = e.load_image_encoder_with_head(&encoder_file, Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("image_head.safetensors"), "{err}");
        // A wrong encoder file is refused before the head is taken.
        let err = e.load_image_encoder_with_head(b"other", Some(&head)).unwrap_err().to_string();
        assert!(err.contains("image_encoder"), "{err}");
        assert!(!e.has_image_head());
        // Another model's head (even with its checksum in the manifest) does not match the model id.
        let other = random_image_head(6, 4);
        let mut mf = model.manifest.clone();
        mf.files_sha256.insert(crate::model_dir::IMAGE_HEAD_FILE.into(), crate::model_dir::sha256_hex(&other));
        let mut tampered = Engine::from_bytes_with_head(&serde_json::to_string(&mf).unwrap(), &model.vocab_txt,
            &model.text_encoder, None, &bin, &json).unwrap();
        let err = tampered.load_image_head(&other).unwrap_err().to_string();
        assert!(err.contains("model_id"), "{err}");
        // The right head.
        e.load_image_head(&head).unwrap();
        assert!(e.has_image_head());
        assert_eq!(e.model().image_head.as_deref(), Some(&head[..]));
        e.load_image_head(&head).unwrap(); // again: fine
        // A model without a head has none to load.
        let mut plain = engine(GalleryDtype::F32);
        assert!(plain.load_image_head(&head).unwrap_err().to_string().contains("no image head"));
    }
}

//! The user's own photos: the image encoder (with its checksums, and standalone for the page's embedding
//! workers) and the vectors added to the searchable set (ids after the gallery's, in memory only).

use serde::Serialize;

use super::{Engine, EngineError};
use crate::image_encoder::{ImageEncoder, ImageEncoderError};
use crate::model_dir::{Manifest, ModelError};

/// One of the user's photos joined to the searchable set.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AddedImage {
    pub file: String,
    /// What the page shows (e.g. a blob: URL of a thumbnail it made); opaque to the engine.
    pub thumb: String,
    pub vector: Vec<f32>,
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

    /// Adds a precomputed vector (e.g. restored from the page's local storage); returns its id. The
    /// vector is L2-normalised here.
    pub fn add_vector(&mut self, file: &str, thumb: &str, mut vector: Vec<f32>) -> Result<u32, EngineError> {
        let dim = self.model.manifest.embed_dim;
        if vector.len() != dim {
            return Err(EngineError::VectorDim { found: vector.len(), expected: dim });
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(EngineError::VectorNotFinite);
        }
        vector.iter_mut().for_each(|x| *x /= norm);
        self.added.push(AddedImage { file: file.into(), thumb: thumb.into(), vector });
        Ok((self.gallery_len() + self.added.len() - 1) as u32)
    }

    /// The added photos, in id order (id = `gallery_len() + index`).
    pub fn added(&self) -> &[AddedImage] {
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
        assert!((hits[0].score - 1.0).abs() < 1e-5);
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

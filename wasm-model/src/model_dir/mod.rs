//! The model directory (README "Model directory"): `manifest.json`, `vocab.txt`, `text_encoder.safetensors`
//! and an optional `image_head.safetensors`. Read from bytes (browser) or, with feature `native`, a folder;
//! written by the trainer's `export` through [`ModelDir::build`] + [`ModelDir::write`]. This file: the file
//! names, the error type and [`ModelDir`] (construction, the deferred image head). Submodules:
//! `manifest` (the JSON types), `views` (test-time image views), `checksum` (SHA-256, `model_id`),
//! `validate` (what a directory must hold), `side_files` (image encoder and hubness bank, outside
//! `model_id`), `fs` (folders, feature `native`).

use std::collections::BTreeMap;

use crate::tokenizer::TOKENIZER_VERSION;
use crate::vocab::{Vocab, VocabError};

mod checksum;
#[cfg(feature = "native")]
mod fs;
mod manifest;
mod side_files;
mod validate;
mod views;

pub use checksum::{compute_model_id, hex, is_model_id, sha256_hex};
pub use manifest::{Backbone, FileNames, ImageConfig, ImagePooling, Manifest, Pooling, Retrieval, StrongMatch, TextConfig};
pub use side_files::{parse_hubness_bank, verify_side_file};
pub use validate::text_tensor_shapes;
pub use views::{ImageView, Zoom};

pub const MODEL_FORMAT: &str = "imgpick-model";
pub const MODEL_FORMAT_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const VOCAB_FILE: &str = "vocab.txt";
pub const TEXT_ENCODER_FILE: &str = "text_encoder.safetensors";
pub const IMAGE_HEAD_FILE: &str = "image_head.safetensors";
/// Optional backbone weights for embedding photos (README "Image encoder"); outside `model_id`, verified by
/// `files_sha256`.
pub const IMAGE_ENCODER_FILE: &str = "image_encoder.safetensors";
/// Optional: embeddings of a sample of training captions (tensor `captions`, `[N, embed_dim]`, f16/f32,
/// L2-normalised), from which `trainer publish` computes each gallery image's hubness. Outside `model_id`
/// (derived from the text encoder); verified by `files_sha256`. The browser never downloads it.
pub const HUBNESS_BANK_FILE: &str = "hubness_bank.safetensors";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("manifest.json is not valid: {0} (re-export the model with `trainer export`)")]
    ManifestJson(String),
    #[error("manifest.json: `format` is {found:?}, expected \"imgpick-model\" (is this a model directory?)")]
    Format { found: String },
    #[error("manifest.json: `{field}` is {found}, this build reads {expected} (rebuild the page or re-export the model)")]
    Version { field: &'static str, found: u32, expected: u32 },
    #[error("manifest.json: `{field}` {problem}")]
    Field { field: String, problem: String },
    #[error("{file}: SHA-256 is {actual} but manifest.json says {expected} (the file is corrupt or from another export; copy the whole model directory again)")]
    Checksum { file: String, expected: String, actual: String },
    #[error("manifest.json: `model_id` is {found} but the files hash to {actual} (the directory mixes files of different exports)")]
    ModelId { found: String, actual: String },
    #[error("{0}")]
    Vocab(#[from] VocabError),
    #[error("{file}: not a readable safetensors file: {reason}")]
    Safetensors { file: String, reason: String },
    #[error("{file}: tensor `{name}` {problem} (manifest.json `text`/`embed_dim` and the weights disagree; re-export)")]
    Tensor { file: String, name: String, problem: String },
    #[error("{file}: tensor `{name}` holds a value that is not finite (NaN or infinity) at element {index}: the training diverged or the file is corrupt; export a healthy run")]
    NotFinite { file: String, name: String, index: usize },
    #[error("{path}: {source} (pass the folder that holds manifest.json)")]
    Io { path: String, source: std::io::Error },
}

/// A complete, validated model directory held in memory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub manifest: Manifest,
    pub vocab: Vocab,
    pub vocab_txt: String,
    pub text_encoder: Vec<u8>,
    pub image_head: Option<Vec<u8>>,
}

impl ModelDir {
    /// Parses and validates a model directory from its files' contents (what the browser fetched).
    pub fn from_bytes(
        manifest_json: &str,
        vocab_txt: &str,
        text_encoder: &[u8],
        image_head: Option<&[u8]>,
    ) -> Result<Self, ModelError> {
        let manifest: Manifest =
            serde_json::from_str(manifest_json).map_err(|e| ModelError::ManifestJson(e.to_string()))?;
        let vocab = Vocab::from_text(vocab_txt)?;
        let dir = Self {
            manifest,
            vocab,
            vocab_txt: vocab_txt.to_owned(),
            text_encoder: text_encoder.to_vec(),
            image_head: image_head.map(<[u8]>::to_vec),
        };
        dir.validate()?;
        Ok(dir)
    }

    /// Like [`ModelDir::from_bytes`], without `image_head.safetensors` even when the manifest names one: the
    /// page needs the head only to embed the user's photos, so it downloads it then. Every other check runs
    /// (format, versions, the vocabulary's and text encoder's `files_sha256`, tensor shapes); `model_id`, which
    /// covers the head's bytes, is verified when they arrive ([`ModelDir::attach_image_head`]). With a manifest
    /// that names no head this is `from_bytes(.., None)`.
    pub fn from_bytes_deferring_image_head(
        manifest_json: &str,
        vocab_txt: &str,
        text_encoder: &[u8],
    ) -> Result<Self, ModelError> {
        let manifest: Manifest =
            serde_json::from_str(manifest_json).map_err(|e| ModelError::ManifestJson(e.to_string()))?;
        let vocab = Vocab::from_text(vocab_txt)?;
        let dir = Self { manifest, vocab, vocab_txt: vocab_txt.to_owned(), text_encoder: text_encoder.to_vec(), image_head: None };
        dir.validate_inner(true)?;
        Ok(dir)
    }

    /// Whether the manifest names an image head whose bytes were not given yet
    /// ([`ModelDir::from_bytes_deferring_image_head`]).
    pub fn image_head_pending(&self) -> bool {
        self.manifest.files.image_head.is_some() && self.image_head.is_none()
    }

    /// Gives the directory its `image_head.safetensors` (deferred at construction): checked against the
    /// manifest's `files_sha256` entry, then `model_id` (text encoder ‖ head ‖ vocabulary) and the head's tensor
    /// shapes. On an error nothing changes. Bytes equal to the head already held are accepted.
    pub fn attach_image_head(&mut self, bytes: &[u8]) -> Result<(), ModelError> {
        if self.manifest.files.image_head.is_none() {
            return Err(ModelError::Field {
                field: "files.image_head".into(),
                problem: "is null: this model has no image head, so it cannot embed images".into(),
            });
        }
        if self.image_head.as_deref() == Some(bytes) {
            return Ok(());
        }
        let previous = self.image_head.replace(bytes.to_vec());
        if let Err(e) = self.validate() {
            self.image_head = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Builds a new model directory (the trainer's export): fills in file names, checksums and the model id.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        embed_dim: usize,
        text: TextConfig,
        image: ImageConfig,
        vocab: &Vocab,
        text_encoder: Vec<u8>,
        image_head: Option<Vec<u8>>,
        training: serde_json::Value,
        metrics: serde_json::Value,
        created: String,
    ) -> Result<Self, ModelError> {
        let vocab_txt = vocab.to_text();
        let mut files_sha256 = BTreeMap::new();
        files_sha256.insert(VOCAB_FILE.to_string(), sha256_hex(vocab_txt.as_bytes()));
        files_sha256.insert(TEXT_ENCODER_FILE.to_string(), sha256_hex(&text_encoder));
        if let Some(head) = &image_head {
            files_sha256.insert(IMAGE_HEAD_FILE.to_string(), sha256_hex(head));
        }
        let manifest = Manifest {
            format: MODEL_FORMAT.into(),
            format_version: MODEL_FORMAT_VERSION,
            model_id: compute_model_id(&text_encoder, image_head.as_deref(), vocab_txt.as_bytes()),
            tokenizer_version: TOKENIZER_VERSION,
            embed_dim,
            text,
            image,
            files: FileNames {
                vocab: VOCAB_FILE.into(),
                text_encoder: TEXT_ENCODER_FILE.into(),
                image_head: image_head.as_ref().map(|_| IMAGE_HEAD_FILE.into()),
                image_encoder: None,
                hubness_bank: None,
            },
            files_sha256,
            training,
            metrics,
            created,
            retrieval: None,
        };
        let dir = Self { manifest, vocab: vocab.clone(), vocab_txt, text_encoder, image_head };
        dir.validate()?;
        Ok(dir)
    }

    pub fn model_id(&self) -> &str {
        &self.manifest.model_id
    }

    /// The manifest as pretty JSON (what `manifest.json` holds).
    pub fn manifest_json(&self) -> String {
        serde_json::to_string_pretty(&self.manifest).expect("a manifest always serialises") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_model, small_config};

    fn parts(m: &ModelDir) -> (String, String, Vec<u8>) {
        (m.manifest_json(), m.vocab_txt.clone(), m.text_encoder.clone())
    }

    #[test]
    fn built_model_round_trips_through_bytes() {
        let m = random_model(small_config(), 6, 1, false);
        assert!(is_model_id(m.model_id()));
        let (j, v, t) = parts(&m);
        let back = ModelDir::from_bytes(&j, &v, &t, None).unwrap();
        assert_eq!(back.manifest, m.manifest);
        assert_eq!(
            back.model_id(),
            compute_model_id(&t, None, v.as_bytes()),
            "model id = SHA-256(text encoder ‖ vocab)[..16]"
        );
        // Different weights give a different id.
        assert_ne!(random_model(small_config(), 6, 2, false).model_id(), m.model_id());
    }

    #[test]
    fn a_deferred_image_head_is_checked_when_it_arrives() {
        use crate::testutil::{image_config, random_image_head, random_model_with_head};
        let m = random_model_with_head(small_config(), 6, 1, random_image_head(6, 7), image_config());
        let (j, v, t) = parts(&m);
        let head = m.image_head.clone().unwrap();
        // Strict: a named head must be given.
        assert!(ModelDir::from_bytes(&j, &v, &t, None).unwrap_err().to_string().contains("files.image_head"));
        let mut d = ModelDir::from_bytes_deferring_image_head(&j, &v, &t).unwrap();
        assert!(d.image_head_pending() && d.image_head.is_none());
        assert_eq!(d.model_id(), m.model_id());
        // The text side is still checked.
        let mut t2 = t.clone();
        *t2.last_mut().unwrap() ^= 1;
        assert!(ModelDir::from_bytes_deferring_image_head(&j, &v, &t2).unwrap_err().to_string().contains("text_encoder.safetensors: SHA-256"));
        // Wrong bytes: refused by checksum, nothing changes.
        let mut bad = head.clone();
        *bad.last_mut().unwrap() ^= 1;
        let e = d.attach_image_head(&bad).unwrap_err().to_string();
        assert!(e.contains("image_head.safetensors: SHA-256"), "{e}");
        assert!(d.image_head_pending());
        // Another model's head whose checksum a tampered manifest lists: model_id still refuses it.
        let other = random_image_head(6, 8);
        let mut mf = m.manifest.clone();
        mf.files_sha256.insert(IMAGE_HEAD_FILE.into(), sha256_hex(&other));
        let mut d2 = ModelDir::from_bytes_deferring_image_head(&serde_json::to_string(&mf).unwrap(), &v, &t).unwrap();
        let e = d2.attach_image_head(&other).unwrap_err().to_string();
        assert!(e.contains("model_id") && e.contains("different exports"), "{e}");
        assert!(d2.image_head_pending());
        // The right bytes: the directory is complete and valid.
        d.attach_image_head(&head).unwrap();
        assert!(!d.image_head_pending());
        d.validate().unwrap();
        assert_eq!(d.image_head.as_deref(), Some(&head[..]));
        d.attach_image_head(&head).unwrap();
        assert!(d.attach_image_head(&bad).is_err() && d.image_head.as_deref() == Some(&head[..]));
        // A model without a head: deferring is plain from_bytes, and there is nothing to attach.
        let plain = random_model(small_config(), 6, 1, false);
        let (j, v, t) = parts(&plain);
        let mut d = ModelDir::from_bytes_deferring_image_head(&j, &v, &t).unwrap();
        assert!(!d.image_head_pending());
        assert!(d.attach_image_head(&head).unwrap_err().to_string().contains("no image head"));
        assert!(ModelDir::from_bytes_deferring_image_head(&edit_model_id(&j), &v, &t).unwrap_err().to_string().contains("model_id"));
    }

    fn edit_model_id(j: &str) -> String {
        let mut x: serde_json::Value = serde_json::from_str(j).unwrap();
        x["model_id"] = "00000000000000000000000000000000".into();
        x.to_string()
    }
}

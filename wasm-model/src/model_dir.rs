//! The model directory (README "Model directory"): `manifest.json`, `vocab.txt`, `text_encoder.safetensors`
//! and an optional `image_head.safetensors`. Read from bytes (browser) or, with feature `native`, a folder;
//! written by the trainer's `export` through [`ModelDir::build`] + [`ModelDir::write`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tokenizer::TOKENIZER_VERSION;
use crate::vocab::{Vocab, VocabError};

pub const MODEL_FORMAT: &str = "imgpick-model";
pub const MODEL_FORMAT_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const VOCAB_FILE: &str = "vocab.txt";
pub const TEXT_ENCODER_FILE: &str = "text_encoder.safetensors";
pub const IMAGE_HEAD_FILE: &str = "image_head.safetensors";
/// Optional: embeddings of a sample of training captions (tensor `captions`, `[N, embed_dim]`, f16/f32,
/// L2-normalised), from which `trainer publish` computes each gallery image's hubness. Outside `model_id`
/// (derived from the text encoder); verified by `files_sha256`. The browser never downloads it.
pub const HUBNESS_BANK_FILE: &str = "hubness_bank.safetensors";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Last,
    Mean,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backbone {
    #[serde(rename = "efficientnet_lite0")]
    EfficientnetLite0,
    Densenet121,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub word_dim: usize,
    pub hidden_dim: usize,
    pub layers: usize,
    pub bidirectional: bool,
    pub pooling: Pooling,
}

impl TextConfig {
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub backbone: Backbone,
    pub feature_dim: usize,
    pub image_size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// How the backbone's feature grid becomes one vector (`avg` when absent).
    #[serde(default, skip_serializing_if = "ImagePooling::is_avg")]
    pub pooling: ImagePooling,
    /// The backbone was fine-tuned from this stage on: `image_head.safetensors` holds the tensors of those stages
    /// and the head conv under `backbone.<name>`, and they replace the stock ones of `image_encoder.safetensors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetuned_from: Option<usize>,
}

/// Pooling of the image feature grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImagePooling {
    /// Global average.
    #[default]
    Avg,
    /// Generalised pooling: per channel, the grid values sorted high → low, weighted by
    /// `softmax(gpo.logits)` (image head tensor `gpo.logits`, one weight per grid cell).
    Gpo,
}

impl ImagePooling {
    pub fn is_avg(&self) -> bool {
        *self == ImagePooling::Avg
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileNames {
    pub vocab: String,
    pub text_encoder: String,
    pub image_head: Option<String>,
    /// Optional backbone weights for in-browser image embedding (`image_encoder.safetensors`). Not part of
    /// `model_id` (the backbone is frozen: the id names the trained weights); verified by `files_sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_encoder: Option<String>,
    /// Optional caption bank for the hubness correction ([`HUBNESS_BANK_FILE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubness_bank: Option<String>,
}

/// How a text query is scored against gallery images beyond the cosine of the two vectors (manifest
/// `retrieval`; absent = plain cosine of single-view vectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Gallery vectors are the normalised mean of the embeddings of these views of each image ([`ImageView`]
    /// names: `original`, `flipped`, `zoom-tl`, …): test-time augmentation, paid once when the gallery is published.
    pub image_views: Vec<String>,
    /// Hubness correction (CSLS): a gallery image's `hubness` is its mean cosine to its `hubness_k` nearest
    /// captions of the bank; a text query scores `cosine - hubness_weight * hubness`, so images that are close
    /// to every caption ("hubs") stop crowding the top of every result list.
    pub hubness_k: usize,
    pub hubness_weight: f32,
}

impl Retrieval {
    /// What `trainer export` writes when it has the training captions (measured on Flickr8k val:
    /// docs/runs.md, "Scoring").
    pub fn recommended() -> Self {
        let mut views = vec![ImageView::ORIGINAL, ImageView::FLIPPED];
        views.extend(Zoom::ALL.iter().map(|&z| ImageView::zoomed(z, false)));
        Retrieval { image_views: views.iter().map(ImageView::name).collect(), hubness_k: 10, hubness_weight: 0.5 }
    }

    /// The parsed `image_views`; an unknown name is an error naming it.
    pub fn views(&self) -> Result<Vec<ImageView>, ModelError> {
        if self.image_views.is_empty() {
            return Err(ModelError::Field { field: "retrieval.image_views".into(), problem: "is empty (list at least \"original\")".into() });
        }
        self.image_views
            .iter()
            .map(|name| {
                ImageView::parse(name).ok_or_else(|| ModelError::Field {
                    field: "retrieval.image_views".into(),
                    problem: format!("has {name:?}, which is not a view this build knows ({})", ImageView::NAMES),
                })
            })
            .collect()
    }
}

/// Where a zoomed view crops (see [`ImageView`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zoom {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Centre,
}

impl Zoom {
    pub const ALL: [Zoom; 5] = [Zoom::TopLeft, Zoom::TopRight, Zoom::BottomLeft, Zoom::BottomRight, Zoom::Centre];

    fn tag(self) -> &'static str {
        match self {
            Zoom::TopLeft => "tl",
            Zoom::TopRight => "tr",
            Zoom::BottomLeft => "bl",
            Zoom::BottomRight => "br",
            Zoom::Centre => "c",
        }
    }
}

/// One test-time view of an image (manifest `retrieval.image_views`): the network's usual input (the centred
/// square of the shorter side) or a zoom into it — a square of [`ImageView::ZOOM_SIDE`] of its side at a corner
/// or the centre, scaled back up to the input size — optionally mirrored. Names: `original`, `flipped`,
/// `zoom-tl`, `zoom-tl-flipped`, … (`tl tr bl br c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageView {
    pub zoom: Option<Zoom>,
    pub flipped: bool,
}

impl ImageView {
    pub const ORIGINAL: ImageView = ImageView { zoom: None, flipped: false };
    pub const FLIPPED: ImageView = ImageView { zoom: None, flipped: true };
    /// The valid names, for error messages.
    pub const NAMES: &'static str = "original, flipped, zoom-tl, zoom-tr, zoom-bl, zoom-br, zoom-c, each optionally with -flipped";
    /// Side of a zoomed crop as a fraction of the centred square's side.
    pub const ZOOM_SIDE: f32 = 0.8;

    pub fn zoomed(zoom: Zoom, flipped: bool) -> Self {
        ImageView { zoom: Some(zoom), flipped }
    }

    pub fn name(&self) -> String {
        match (self.zoom, self.flipped) {
            (None, false) => "original".into(),
            (None, true) => "flipped".into(),
            (Some(z), false) => format!("zoom-{}", z.tag()),
            (Some(z), true) => format!("zoom-{}-flipped", z.tag()),
        }
    }

    /// Every view: original, flipped, then each zoom and its mirror.
    pub fn all() -> Vec<ImageView> {
        let mut all = vec![ImageView::ORIGINAL, ImageView::FLIPPED];
        all.extend(Zoom::ALL.iter().flat_map(|&z| [ImageView::zoomed(z, false), ImageView::zoomed(z, true)]));
        all
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::all().into_iter().find(|v| v.name() == name)
    }

    /// The region `(x, y, side)` of a `w`×`h` image this view shows the network, before the usual resize to
    /// the input size (the whole centred square for `original` / `flipped`).
    pub fn crop_rect(&self, w: u32, h: u32) -> (u32, u32, u32) {
        let s = w.min(h);
        let (x0, y0) = ((w - s) / 2, (h - s) / 2);
        let Some(zoom) = self.zoom else { return (x0, y0, s) };
        let z = ((s as f32 * Self::ZOOM_SIDE).round() as u32).clamp(1, s);
        let (dx, dy) = match zoom {
            Zoom::TopLeft => (0, 0),
            Zoom::TopRight => (s - z, 0),
            Zoom::BottomLeft => (0, s - z),
            Zoom::BottomRight => (s - z, s - z),
            Zoom::Centre => ((s - z) / 2, (s - z) / 2),
        };
        (x0 + dx, y0 + dy, z)
    }
}

/// Checks an optional file outside `model_id` (`files.<field>` = `name`) against its `files_sha256` entry; the
/// one check the engine's standalone image encoder also uses.
pub fn verify_side_file(m: &Manifest, field: &str, name: Option<&String>, missing: &str, bytes: &[u8]) -> Result<(), ModelError> {
    let name = name.ok_or_else(|| ModelError::Field { field: format!("files.{field}"), problem: missing.into() })?;
    let expected = m
        .files_sha256
        .get(name)
        .ok_or_else(|| ModelError::Field { field: "files_sha256".into(), problem: format!("has no entry for {name}") })?;
    let actual = sha256_hex(bytes);
    if *expected != actual {
        return Err(ModelError::Checksum { file: name.clone(), expected: expected.clone(), actual });
    }
    Ok(())
}

/// Reads a hubness bank (tensor `captions`, `[N, dim]`, f16 or f32) into row-major f32 rows.
pub fn parse_hubness_bank(bytes: &[u8], dim: usize) -> Result<Vec<f32>, ModelError> {
    let bad = |problem: String| ModelError::Field { field: format!("files.hubness_bank ({HUBNESS_BANK_FILE})"), problem };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("is not a safetensors file: {e}")))?;
    let t = st.tensor("captions").map_err(|_| bad("has no tensor `captions`".into()))?;
    if t.shape().len() != 2 || t.shape()[1] != dim || t.shape()[0] == 0 {
        return Err(bad(format!("`captions` has shape {:?}, expected [N > 0, {dim}]", t.shape())));
    }
    Ok(match t.dtype() {
        safetensors::Dtype::F32 => t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        safetensors::Dtype::F16 => t.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => return Err(bad(format!("`captions` has dtype {other:?}, expected F16 or F32"))),
    })
}

/// `manifest.json`, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub model_id: String,
    pub tokenizer_version: u32,
    pub embed_dim: usize,
    pub text: TextConfig,
    pub image: ImageConfig,
    pub files: FileNames,
    pub files_sha256: BTreeMap<String, String>,
    #[serde(default)]
    pub training: serde_json::Value,
    #[serde(default)]
    pub metrics: serde_json::Value,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
}

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
    #[error("{path}: {source} (pass the folder that holds manifest.json)")]
    Io { path: String, source: std::io::Error },
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The model id: first 16 bytes of SHA-256 over text encoder, image head (if any) and vocab bytes, as hex.
pub fn compute_model_id(text_encoder: &[u8], image_head: Option<&[u8]>, vocab_txt: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(text_encoder);
    if let Some(head) = image_head {
        h.update(head);
    }
    h.update(vocab_txt);
    hex(&h.finalize()[..16])
}

/// Whether `s` is 32 lower-case hex characters (a model id).
pub fn is_model_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Tensor names and shapes `text_encoder.safetensors` must hold for `cfg`.
pub fn text_tensor_shapes(cfg: &TextConfig, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    let h = cfg.hidden_dim;
    let mut out = vec![("embedding.weight".to_string(), vec![cfg.vocab_size, cfg.word_dim])];
    for k in 0..cfg.layers {
        let input = if k == 0 { cfg.word_dim } else { h * cfg.directions() };
        for suffix in ["", "_reverse"].iter().take(cfg.directions()) {
            out.push((format!("lstm.weight_ih_l{k}{suffix}"), vec![4 * h, input]));
            out.push((format!("lstm.weight_hh_l{k}{suffix}"), vec![4 * h, h]));
            out.push((format!("lstm.bias_ih_l{k}{suffix}"), vec![4 * h]));
            out.push((format!("lstm.bias_hh_l{k}{suffix}"), vec![4 * h]));
        }
    }
    out.push(("proj.weight".into(), vec![embed_dim, h * cfg.directions()]));
    out.push(("proj.bias".into(), vec![embed_dim]));
    out
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

    /// Checks format, versions, checksums, model id, vocabulary size and every tensor's shape.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.validate_inner(false)
    }

    /// `validate`; with `allow_pending_head`, a head named by the manifest may be missing (then `model_id`,
    /// which needs its bytes, is not checked).
    fn validate_inner(&self, allow_pending_head: bool) -> Result<(), ModelError> {
        let m = &self.manifest;
        let pending_head = allow_pending_head && self.image_head_pending();
        if m.format != MODEL_FORMAT {
            return Err(ModelError::Format { found: m.format.chars().take(40).collect() });
        }
        if m.format_version != MODEL_FORMAT_VERSION {
            return Err(ModelError::Version {
                field: "format_version",
                found: m.format_version,
                expected: MODEL_FORMAT_VERSION,
            });
        }
        if m.tokenizer_version != TOKENIZER_VERSION {
            return Err(ModelError::Version {
                field: "tokenizer_version",
                found: m.tokenizer_version,
                expected: TOKENIZER_VERSION,
            });
        }
        let field = |f: &str, p: String| ModelError::Field { field: f.into(), problem: p };
        if !is_model_id(&m.model_id) {
            return Err(field("model_id", "must be 32 lower-case hex characters".into()));
        }
        let t = &m.text;
        // Bounds keep a hostile manifest from asking for absurd allocations.
        for (name, v, max) in [
            ("embed_dim", m.embed_dim, 1 << 14),
            ("text.word_dim", t.word_dim, 1 << 14),
            ("text.hidden_dim", t.hidden_dim, 1 << 14),
            ("text.layers", t.layers, 16),
            ("text.vocab_size", t.vocab_size, 1 << 24),
        ] {
            if v == 0 || v > max {
                return Err(field(name, format!("is {v}, expected 1..={max}")));
            }
        }
        if t.vocab_size != self.vocab.len() {
            return Err(field(
                "text.vocab_size",
                format!("is {} but {} has {} lines", t.vocab_size, m.files.vocab, self.vocab.len()),
            ));
        }
        if m.files.image_head.is_some() != self.image_head.is_some() && !pending_head {
            return Err(field(
                "files.image_head",
                "does not match the files given (pass image_head.safetensors exactly when the manifest names it)"
                    .into(),
            ));
        }
        let mut checks = vec![(&m.files.vocab, self.vocab_txt.as_bytes()), (&m.files.text_encoder, &self.text_encoder[..])];
        if let (Some(name), Some(bytes)) = (&m.files.image_head, &self.image_head) {
            checks.push((name, &bytes[..]));
        }
        for (name, bytes) in checks {
            let expected = m
                .files_sha256
                .get(name)
                .ok_or_else(|| field("files_sha256", format!("has no entry for {name}")))?;
            let actual = sha256_hex(bytes);
            if *expected != actual {
                return Err(ModelError::Checksum { file: name.clone(), expected: expected.clone(), actual });
            }
        }
        if !pending_head {
            let actual = compute_model_id(&self.text_encoder, self.image_head.as_deref(), self.vocab_txt.as_bytes());
            if actual != m.model_id {
                return Err(ModelError::ModelId { found: m.model_id.clone(), actual });
            }
        }
        check_tensors(&m.files.text_encoder, &self.text_encoder, &text_tensor_shapes(t, m.embed_dim), None)?;
        if let (Some(name), Some(bytes)) = (&m.files.image_head, &self.image_head) {
            let mut shapes = vec![
                ("proj.weight".to_string(), vec![m.embed_dim, m.image.feature_dim]),
                ("proj.bias".to_string(), vec![m.embed_dim]),
            ];
            if m.image.pooling == ImagePooling::Gpo {
                // one weight per cell of the backbone's grid (stride 32)
                shapes.push(("gpo.logits".to_string(), vec![m.image.image_size.div_ceil(32).pow(2)]));
            }
            // Fine-tuned backbone layers (`backbone.*`) are checked against the architecture by the image encoder.
            let extra_prefix = m.image.finetuned_from.map(|_| "backbone.");
            check_tensors(name, bytes, &shapes, extra_prefix)?;
        }
        Ok(())
    }

    pub fn model_id(&self) -> &str {
        &self.manifest.model_id
    }

    /// Checks `image_encoder.safetensors` bytes against the manifest's `files_sha256` entry (the file is
    /// optional and outside `model_id`, so its checksum is what ties it to this directory).
    pub fn verify_image_encoder(&self, bytes: &[u8]) -> Result<(), ModelError> {
        let missing = "is not set: this model has no image encoder (add it with `trainer export-image-encoder`)";
        verify_side_file(&self.manifest, "image_encoder", self.manifest.files.image_encoder.as_ref(), missing, bytes)
    }

    /// Names `bytes` as this directory's image encoder (sets `files.image_encoder` and its checksum).
    /// `model_id` is unchanged: it covers only the text encoder, the image head and the vocabulary.
    pub fn set_image_encoder(&mut self, bytes: &[u8]) {
        let name = crate::image_encoder::IMAGE_ENCODER_FILE.to_string();
        self.manifest.files_sha256.insert(name.clone(), sha256_hex(bytes));
        self.manifest.files.image_encoder = Some(name);
    }

    /// Checks hubness-bank bytes against the manifest's `files_sha256` entry and returns its rows.
    pub fn verify_hubness_bank(&self, bytes: &[u8]) -> Result<Vec<f32>, ModelError> {
        let m = &self.manifest;
        let missing = "is not set: this model has no hubness bank (re-export it with `trainer export`)";
        verify_side_file(m, "hubness_bank", m.files.hubness_bank.as_ref(), missing, bytes)?;
        parse_hubness_bank(bytes, m.embed_dim)
    }

    /// Names `bytes` as this directory's hubness bank and sets how retrieval uses it; `model_id` is unchanged.
    pub fn set_hubness_bank(&mut self, bytes: &[u8], retrieval: Retrieval) -> Result<(), ModelError> {
        parse_hubness_bank(bytes, self.manifest.embed_dim)?;
        let name = HUBNESS_BANK_FILE.to_string();
        self.manifest.files_sha256.insert(name.clone(), sha256_hex(bytes));
        self.manifest.files.hubness_bank = Some(name);
        retrieval.views()?;
        self.manifest.retrieval = Some(retrieval);
        Ok(())
    }

    /// The manifest as pretty JSON (what `manifest.json` holds).
    pub fn manifest_json(&self) -> String {
        serde_json::to_string_pretty(&self.manifest).expect("a manifest always serialises") + "\n"
    }
}

/// Checks that `bytes` is a safetensors file holding exactly `shapes` in f16 or f32 (plus any tensor named
/// `extra_prefix…`).
fn check_tensors(file: &str, bytes: &[u8], shapes: &[(String, Vec<usize>)], extra_prefix: Option<&str>) -> Result<(), ModelError> {
    use safetensors::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError::Safetensors { file: file.into(), reason: e.to_string() })?;
    let err = |name: &str, problem: String| ModelError::Tensor { file: file.into(), name: name.into(), problem };
    for (name, shape) in shapes {
        let view = st.tensor(name).map_err(|_| err(name, "is missing".into()))?;
        if view.shape() != shape.as_slice() {
            return Err(err(name, format!("has shape {:?}, expected {:?}", view.shape(), shape)));
        }
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16) {
            return Err(err(name, format!("has dtype {:?}, expected F32 or F16", view.dtype())));
        }
    }
    let allowed = |n: &str| shapes.iter().any(|(s, _)| s == n) || extra_prefix.is_some_and(|p| n.starts_with(p));
    if let Some(extra) = st.names().into_iter().find(|n| !allowed(n)) {
        return Err(err(extra, "is not part of this architecture".into()));
    }
    Ok(())
}

#[cfg(feature = "native")]
mod native {
    use super::*;
    use std::path::Path;

    fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
        std::fs::read(path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
    }

    fn read_text(path: &Path) -> Result<String, ModelError> {
        String::from_utf8(read(path)?).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// File names inside the model directory must be plain names (no path traversal from a hostile manifest).
    fn plain_name(name: &str) -> Result<&str, ModelError> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(ModelError::Field { field: "files".into(), problem: format!("names `{name}`, not a plain file name") });
        }
        Ok(name)
    }

    /// Writes `bytes` as `name` into the model directory at `dir` after `set` named it in the manifest, then the
    /// manifest (atomically): a reader never sees a manifest naming a file that is not there yet.
    fn add_side_file(dir: &Path, name: &str, bytes: &[u8], set: impl FnOnce(&mut ModelDir) -> Result<(), ModelError>) -> Result<ModelDir, ModelError> {
        let mut model = ModelDir::load(dir)?;
        set(&mut model)?;
        let file = dir.join(name);
        std::fs::write(&file, bytes).map_err(|source| ModelError::Io { path: file.display().to_string(), source })?;
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(".manifest.json.tmp");
        std::fs::write(&tmp, model.manifest_json())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| ModelError::Io { path: path.display().to_string(), source })?;
        Ok(model)
    }

    impl ModelDir {
        /// Loads and validates the model directory at `dir`.
        pub fn load(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
            let dir = dir.as_ref();
            let manifest_json = read_text(&dir.join(MANIFEST_FILE))?;
            let manifest: Manifest =
                serde_json::from_str(&manifest_json).map_err(|e| ModelError::ManifestJson(e.to_string()))?;
            let vocab = read_text(&dir.join(plain_name(&manifest.files.vocab)?))?;
            let text = read(&dir.join(plain_name(&manifest.files.text_encoder)?))?;
            let head = match &manifest.files.image_head {
                Some(name) => Some(read(&dir.join(plain_name(name)?))?),
                None => None,
            };
            Self::from_bytes(&manifest_json, &vocab, &text, head.as_deref())
        }

        /// `image_encoder.safetensors` of the directory at `dir`, checked against the manifest; `None` when
        /// the manifest names none.
        pub fn load_image_encoder(&self, dir: impl AsRef<Path>) -> Result<Option<Vec<u8>>, ModelError> {
            let Some(name) = &self.manifest.files.image_encoder else { return Ok(None) };
            let bytes = read(&dir.as_ref().join(plain_name(name)?))?;
            self.verify_image_encoder(&bytes)?;
            Ok(Some(bytes))
        }

        /// The hubness bank rows of the directory at `dir`, checked against the manifest; `None` when the
        /// manifest names none.
        pub fn load_hubness_bank(&self, dir: impl AsRef<Path>) -> Result<Option<Vec<f32>>, ModelError> {
            let Some(name) = &self.manifest.files.hubness_bank else { return Ok(None) };
            let bytes = read(&dir.as_ref().join(plain_name(name)?))?;
            Ok(Some(self.verify_hubness_bank(&bytes)?))
        }

        /// Adds the hubness bank to the model directory at `dir` (file first, then the manifest atomically).
        pub fn add_hubness_bank(dir: impl AsRef<Path>, bytes: &[u8], retrieval: Retrieval) -> Result<ModelDir, ModelError> {
            add_side_file(dir.as_ref(), HUBNESS_BANK_FILE, bytes, |m| m.set_hubness_bank(bytes, retrieval))
        }

        /// Adds `image_encoder.safetensors` to the model directory at `dir` and rewrites its manifest
        /// (file first, then the manifest atomically); the other files and `model_id` stay as they are.
        pub fn add_image_encoder(dir: impl AsRef<Path>, bytes: &[u8]) -> Result<ModelDir, ModelError> {
            add_side_file(dir.as_ref(), crate::image_encoder::IMAGE_ENCODER_FILE, bytes, |m| {
                m.set_image_encoder(bytes);
                Ok(())
            })
        }

        /// Writes the directory's files into `dir` (created if missing).
        pub fn write(&self, dir: impl AsRef<Path>) -> Result<(), ModelError> {
            let dir = dir.as_ref();
            fn io(p: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
                move |source| ModelError::Io { path: p.display().to_string(), source }
            }
            if self.image_head_pending() {
                return Err(ModelError::Field {
                    field: "files.image_head".into(),
                    problem: "names a file this directory was loaded without; attach it before writing".into(),
                });
            }
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let m = &self.manifest;
            let mut files: Vec<(&str, &[u8])> = vec![
                (&m.files.vocab, self.vocab_txt.as_bytes()),
                (&m.files.text_encoder, &self.text_encoder),
            ];
            if let (Some(name), Some(bytes)) = (&m.files.image_head, &self.image_head) {
                files.push((name, bytes));
            }
            let manifest = self.manifest_json();
            // The manifest goes last, so a reader never sees a manifest whose files are not there yet.
            files.push((MANIFEST_FILE, manifest.as_bytes()));
            for (name, bytes) in files {
                let path = dir.join(plain_name(name)?);
                std::fs::write(&path, bytes).map_err(io(&path))?;
            }
            Ok(())
        }
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
    fn refuses_broken_directories_naming_the_problem() {
        let m = random_model(small_config(), 6, 1, false);
        let (j, v, t) = parts(&m);
        let err = |j: &str, v: &str, t: &[u8]| ModelDir::from_bytes(j, v, t, None).unwrap_err().to_string();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut x: serde_json::Value = serde_json::from_str(&j).unwrap();
            f(&mut x);
            x.to_string()
        };
        assert!(err("", &v, &t).contains("manifest.json is not valid"));
        assert!(err("{\"format\": 1}", &v, &t).contains("manifest.json"));
        assert!(err(&edit(&|x| x["format"] = "zip".into()), &v, &t).contains("format"));
        assert!(err(&edit(&|x| x["format_version"] = 2.into()), &v, &t).contains("format_version"));
        assert!(err(&edit(&|x| x["tokenizer_version"] = 7.into()), &v, &t).contains("tokenizer_version` is 7"));
        assert!(err(&edit(&|x| x["text"]["layers"] = 0.into()), &v, &t).contains("text.layers"));
        assert!(err(&edit(&|x| x["text"]["vocab_size"] = 13.into()), &v, &t).contains("vocab.txt has 12 lines"));
        let e = err(&edit(&|x| x["model_id"] = "00000000000000000000000000000000".into()), &v, &t);
        assert!(e.contains("model_id") && e.contains("different exports"), "{e}");
        // Changed bytes: checksum names the file.
        let mut t2 = t.clone();
        let last = t2.len() - 1;
        t2[last] ^= 1;
        assert!(err(&j, &v, &t2).contains("text_encoder.safetensors: SHA-256"));
        assert!(err(&j, &(v.clone() + "extra\n"), &t).contains("vocab.txt"));
        // Consistent checksums but shapes that disagree with the manifest.
        let wrong = random_model(TextConfig { hidden_dim: 5, ..small_config() }, 6, 1, false);
        let mut mf = m.manifest.clone();
        mf.files_sha256.insert(TEXT_ENCODER_FILE.into(), sha256_hex(&wrong.text_encoder));
        mf.model_id = compute_model_id(&wrong.text_encoder, None, v.as_bytes());
        let e = err(&serde_json::to_string(&mf).unwrap(), &v, &wrong.text_encoder);
        assert!(e.contains("has shape") && e.contains("re-export"), "{e}");
        // Random and truncated bytes as weights.
        for bytes in [vec![], vec![0xAB; 100], t[..t.len() / 2].to_vec()] {
            let mut mf = m.manifest.clone();
            mf.files_sha256.insert(TEXT_ENCODER_FILE.into(), sha256_hex(&bytes));
            mf.model_id = compute_model_id(&bytes, None, v.as_bytes());
            let e = err(&serde_json::to_string(&mf).unwrap(), &v, &bytes);
            assert!(e.contains("not a readable safetensors file"), "{e}");
        }
        // image_head named but not given.
        assert!(err(&edit(&|x| x["files"]["image_head"] = "image_head.safetensors".into()), &v, &t).contains("image_head"));
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

    #[cfg(feature = "native")]
    #[test]
    fn writes_and_loads_a_directory() {
        let m = random_model(small_config(), 6, 4, true);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        m.write(&dir).unwrap();
        let back = ModelDir::load(&dir).unwrap();
        assert_eq!(back.manifest, m.manifest);
        std::fs::remove_file(dir.join(VOCAB_FILE)).unwrap();
        let e = ModelDir::load(&dir).unwrap_err().to_string();
        assert!(e.contains("vocab.txt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(ModelDir::load(&dir).unwrap_err().to_string().contains("manifest.json"));
    }

    /// The hubness bank: named with its checksum and the retrieval settings, outside `model_id`; wrong bytes,
    /// shapes or dtypes are named errors; the manifest round-trips.
    #[test]
    fn hubness_bank_is_checked_and_outside_model_id() {
        let mut m = random_model(small_config(), 6, 1, false);
        let id = m.model_id().to_owned();
        let bank = |rows: usize, cols: usize| {
            let bytes: Vec<u8> = (0..rows * cols).flat_map(|i| half::f16::from_f32(i as f32 / 10.0).to_le_bytes()).collect();
            let t = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![rows, cols], &bytes).unwrap();
            safetensors::serialize([("captions", t)], None).unwrap()
        };
        let e = m.set_hubness_bank(&bank(3, 5), Retrieval::recommended()).unwrap_err().to_string();
        assert!(e.contains("[N > 0, 6]"), "{e}");
        let good = bank(3, 6);
        m.set_hubness_bank(&good, Retrieval::recommended()).unwrap();
        assert_eq!(m.model_id(), id, "the bank is not part of model_id");
        let rows = m.verify_hubness_bank(&good).unwrap();
        assert_eq!(rows.len(), 18);
        assert!((rows[7] - 0.7).abs() < 1e-3);
        let mut other = good.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(matches!(m.verify_hubness_bank(&other), Err(ModelError::Checksum { .. })));
        let back = ModelDir::from_bytes(&m.manifest_json(), &m.vocab_txt, &m.text_encoder, None).unwrap();
        assert_eq!(back.manifest.retrieval, Some(Retrieval::recommended()));
        assert_eq!(back.manifest.files.hubness_bank.as_deref(), Some(HUBNESS_BANK_FILE));
        let unknown = Retrieval { image_views: vec!["original".into(), "zoom-middle".into()], ..Retrieval::recommended() };
        let e = m.set_hubness_bank(&good, unknown).unwrap_err().to_string();
        assert!(e.contains("retrieval.image_views") && e.contains("zoom-middle"), "{e}");
        let none = Retrieval { image_views: vec![], ..Retrieval::recommended() };
        assert!(m.set_hubness_bank(&good, none).unwrap_err().to_string().contains("is empty"));
    }

    /// Every view name round-trips; crops are squares inside the centred square, at the right corner.
    #[test]
    fn image_views_name_and_crop() {
        let all = ImageView::all();
        let names: std::collections::BTreeSet<String> = all.iter().map(ImageView::name).collect();
        assert_eq!(names.len(), 12, "{names:?}");
        for v in &all {
            assert_eq!(ImageView::parse(&v.name()), Some(*v));
        }
        assert_eq!(ImageView::parse("zoom-c-flipped"), Some(ImageView::zoomed(Zoom::Centre, true)));
        assert_eq!(ImageView::parse("mirror"), None);
        // a 500×375 landscape: the network sees the centred 375² square at x 62; zooms are 300² inside it
        assert_eq!(ImageView::ORIGINAL.crop_rect(500, 375), (62, 0, 375));
        assert_eq!(ImageView::FLIPPED.crop_rect(500, 375), (62, 0, 375));
        assert_eq!(ImageView::zoomed(Zoom::TopLeft, false).crop_rect(500, 375), (62, 0, 300));
        assert_eq!(ImageView::zoomed(Zoom::TopRight, true).crop_rect(500, 375), (137, 0, 300));
        assert_eq!(ImageView::zoomed(Zoom::BottomLeft, false).crop_rect(500, 375), (62, 75, 300));
        assert_eq!(ImageView::zoomed(Zoom::BottomRight, false).crop_rect(500, 375), (137, 75, 300));
        assert_eq!(ImageView::zoomed(Zoom::Centre, false).crop_rect(500, 375), (99, 37, 300));
        // portrait and tiny images stay inside
        assert_eq!(ImageView::zoomed(Zoom::BottomRight, false).crop_rect(224, 300), (45, 83, 179));
        assert_eq!(ImageView::zoomed(Zoom::Centre, false).crop_rect(1, 1), (0, 0, 1));
        let r = Retrieval::recommended();
        assert_eq!(r.views().unwrap()[..2], [ImageView::ORIGINAL, ImageView::FLIPPED]);
    }
}

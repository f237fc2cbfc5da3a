//! `manifest.json`, field for field (README "manifest.json"): the text and image configurations, file names
//! and the optional `retrieval` settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::views::{ImageView, Zoom};
use super::ModelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Last,
    Mean,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Backbone {
    // `efficientnet-lite0`: how the trainer's run configs spelled it
    #[serde(rename = "efficientnet_lite0", alias = "efficientnet-lite0")]
    #[cfg_attr(feature = "clap", value(alias = "lite0", alias = "efficientnet_lite0"))]
    EfficientnetLite0,
    #[cfg_attr(feature = "clap", value(alias = "densenet-121"))]
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
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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

    /// Largest `hubness_k` accepted (the shipped bank holds 2,048 captions; k = 10 is used).
    pub const MAX_HUBNESS_K: usize = 1000;
    /// Largest `hubness_weight` accepted (0.5 is used; the correction is a small shift of a cosine).
    pub const MAX_HUBNESS_WEIGHT: f32 = 10.0;

    /// Checks what a manifest may ask for: known views, each at most once (so at most every view: each is one
    /// more CNN pass per published image), `hubness_k` in 1..=[`Self::MAX_HUBNESS_K`] and a finite
    /// `hubness_weight` in 0..=[`Self::MAX_HUBNESS_WEIGHT`].
    pub fn check(&self) -> Result<(), ModelError> {
        let field = |f: &str, problem: String| ModelError::Field { field: format!("retrieval.{f}"), problem };
        let all = ImageView::all().len();
        if self.image_views.len() > all {
            return Err(field("image_views", format!("lists {} views; there are {all} distinct ones", self.image_views.len())));
        }
        for (i, name) in self.image_views.iter().enumerate() {
            if self.image_views[..i].contains(name) {
                return Err(field("image_views", format!("lists {name:?} twice (each view once)")));
            }
        }
        self.views()?;
        if !(1..=Self::MAX_HUBNESS_K).contains(&self.hubness_k) {
            return Err(field("hubness_k", format!("is {}, expected 1..={}", self.hubness_k, Self::MAX_HUBNESS_K)));
        }
        if !(self.hubness_weight.is_finite() && (0.0..=Self::MAX_HUBNESS_WEIGHT).contains(&self.hubness_weight)) {
            return Err(field("hubness_weight", format!("is {}, expected a number in 0..={}", self.hubness_weight, Self::MAX_HUBNESS_WEIGHT)));
        }
        Ok(())
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

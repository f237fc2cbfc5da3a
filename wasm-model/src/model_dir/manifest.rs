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
    /// EfficientNet-Lite1 (240 px) and -Lite2 (260 px): the same family, wider and deeper (`image_encoder::LiteArch`).
    #[serde(rename = "efficientnet_lite1", alias = "efficientnet-lite1")]
    #[cfg_attr(feature = "clap", value(alias = "lite1", alias = "efficientnet_lite1"))]
    EfficientnetLite1,
    #[serde(rename = "efficientnet_lite2", alias = "efficientnet-lite2")]
    #[cfg_attr(feature = "clap", value(alias = "lite2", alias = "efficientnet_lite2"))]
    EfficientnetLite2,
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
    /// Where a text query's result starts to be a strong match (`trainer calibrate`); absent: not calibrated,
    /// and results carry no strength. Not in `model_id` (the weights are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strong_match: Option<StrongMatch>,
}

/// The calibrated "strong match" threshold of text queries (manifest `retrieval.strong_match`, written by
/// `trainer calibrate`): a result scoring at least `min_score` is a strong match, anything below is a weaker one.
/// Scores are the retrieval scoring's (`cosine − hubness_weight × hubness`), which are absolute (they do not
/// depend on the gallery's size), so a threshold measured on a validation set holds for any gallery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrongMatch {
    /// Results scoring at least this are strong matches.
    pub min_score: f32,
    /// The precision asked for: the lowest score at which, of the calibration queries whose top result scores at
    /// least it, this share had the right image first.
    pub target_precision: f32,
    /// Measured at `min_score` on the calibration data: the top-1 precision of the queries above it, and the
    /// share of all queries whose top result is strong.
    pub precision: f32,
    pub coverage: f32,
    /// Queries (captions) and images it was measured on, and which captions file (its name only).
    pub queries: usize,
    pub images: usize,
    pub captions: String,
}

impl StrongMatch {
    /// Checks a manifest's values: a finite threshold, shares in 0..=1.
    pub fn check(&self) -> Result<(), ModelError> {
        let field = |f: &str, problem: String| ModelError::Field { field: format!("retrieval.strong_match.{f}"), problem };
        if !self.min_score.is_finite() {
            return Err(field("min_score", format!("is {}, expected a finite score", self.min_score)));
        }
        for (name, v) in [("target_precision", self.target_precision), ("precision", self.precision), ("coverage", self.coverage)] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(field(name, format!("is {v}, expected a share in 0..=1")));
            }
        }
        Ok(())
    }

    /// Whether a text query's result with this score is a strong match.
    pub fn is_strong(&self, score: f32) -> bool {
        score >= self.min_score
    }
}

impl Retrieval {
    /// What `trainer export` writes when it has the training captions (measured on Flickr8k val:
    /// docs/runs.md, "Scoring").
    pub fn recommended() -> Self {
        let mut views = vec![ImageView::ORIGINAL, ImageView::FLIPPED];
        views.extend(Zoom::ALL.iter().map(|&z| ImageView::zoomed(z, false)));
        Retrieval { image_views: views.iter().map(ImageView::name).collect(), hubness_k: 10, hubness_weight: 0.5, strong_match: None }
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
        if let Some(s) = &self.strong_match {
            s.check()?;
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

impl Manifest {
    /// The calibrated strong-match threshold of text queries, when the model has one.
    pub fn strong_match(&self) -> Option<&StrongMatch> {
        self.retrieval.as_ref()?.strong_match.as_ref()
    }

    /// Whether a text query's result with this score is a strong match; `None` when the model is not calibrated.
    pub fn match_strength(&self, score: f32) -> Option<bool> {
        self.strong_match().map(|s| s.is_strong(score))
    }
}

#[cfg(test)]
mod tests {
    use crate::model_dir::{ModelDir, Retrieval, StrongMatch};
    use crate::testutil::{random_model, small_config};

    /// Manifest names of the backbones: old manifests read as before, the Lite1/Lite2 names round-trip, the
    /// trainer's dashed spelling is accepted, anything else is refused naming the known ones.
    #[test]
    fn backbone_names_round_trip() {
        use super::Backbone;
        for (b, name) in [
            (Backbone::EfficientnetLite0, "efficientnet_lite0"),
            (Backbone::EfficientnetLite1, "efficientnet_lite1"),
            (Backbone::EfficientnetLite2, "efficientnet_lite2"),
            (Backbone::Densenet121, "densenet121"),
        ] {
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Backbone>(&format!("\"{name}\"")).unwrap(), b);
            let dashed = name.replace('_', "-");
            assert_eq!(serde_json::from_str::<Backbone>(&format!("\"{dashed}\"")).unwrap(), b, "{dashed}");
        }
        let e = serde_json::from_str::<Backbone>("\"efficientnet_lite3\"").unwrap_err().to_string();
        assert!(e.contains("efficientnet_lite3") && e.contains("efficientnet_lite2"), "{e}");
    }

    fn calibrated(min_score: f32) -> StrongMatch {
        StrongMatch { min_score, target_precision: 0.5, precision: 0.52, coverage: 0.3, queries: 5000, images: 1000, captions: "captions_val.json".into() }
    }

    /// `retrieval.strong_match` is optional: manifests without it (every one before `trainer calibrate`) load
    /// and give no strength; with it, the threshold round-trips and splits scores; bad values are refused,
    /// naming the field.
    #[test]
    fn strong_match_is_optional_round_trips_and_is_checked() {
        let m = random_model(small_config(), 6, 1, false);
        let (text, vocab) = (m.text_encoder.clone(), m.vocab_txt.clone());
        let with = |r: Option<Retrieval>| {
            let mut x = m.manifest.clone();
            x.retrieval = r;
            serde_json::to_string(&x).unwrap()
        };
        let old = ModelDir::from_bytes(&with(Some(Retrieval::recommended())), &vocab, &text, None).unwrap();
        assert!(!with(Some(Retrieval::recommended())).contains("strong_match"), "absent, not null");
        assert_eq!((old.manifest.strong_match(), old.manifest.match_strength(0.9)), (None, None));
        let plain = ModelDir::from_bytes(&with(None), &vocab, &text, None).unwrap();
        assert_eq!(plain.manifest.match_strength(0.9), None);

        let r = Retrieval { strong_match: Some(calibrated(0.25)), ..Retrieval::recommended() };
        let dir = ModelDir::from_bytes(&with(Some(r.clone())), &vocab, &text, None).unwrap();
        assert_eq!(dir.manifest.strong_match(), Some(&calibrated(0.25)));
        assert_eq!(dir.manifest.model_id, m.manifest.model_id, "the weights, hence the id, are unchanged");
        assert_eq!((dir.manifest.match_strength(0.25), dir.manifest.match_strength(0.2499)), (Some(true), Some(false)));

        // 1e39 overflows f32 to infinity (JSON has no NaN or infinity to write)
        let json = with(Some(r)).replace("\"min_score\":0.25", "\"min_score\":1e39");
        let e = ModelDir::from_bytes(&json, &vocab, &text, None).unwrap_err().to_string();
        assert!(e.contains("strong_match.min_score"), "{e}");
        for (bad, field) in [
            (StrongMatch { precision: 1.5, ..calibrated(0.2) }, "strong_match.precision"),
            (StrongMatch { coverage: -0.1, ..calibrated(0.2) }, "strong_match.coverage"),
            (StrongMatch { target_precision: 2.0, ..calibrated(0.2) }, "strong_match.target_precision"),
        ] {
            let json = with(Some(Retrieval { strong_match: Some(bad), ..Retrieval::recommended() }));
            let e = ModelDir::from_bytes(&json, &vocab, &text, None).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}

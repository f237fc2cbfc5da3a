//! The training config, typed once: the same structs are `trainer fit`'s flags (clap, with their defaults and
//! help) and a run's `config` in `state.json` (serde). It has five parts — data, text side, image side,
//! objective, optimiser — plus the joint dimension. The files stay flat (the parts are flattened), so every
//! `state.json` written before the parts existed loads as it is; fields added later default to what a run
//! without them did (`tests/fixtures/state-session*.json`).

use std::path::PathBuf;

use clap::{Args, Parser};
use serde::{Deserialize, Serialize};
use wasm_model::model_dir::{ImagePooling, Pooling};

use crate::backbone::BackboneChoice;
use crate::bounds;
use crate::features::View;
use crate::loss::{Loss, LossKind};

/// Everything that defines a run; saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct Config {
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataConfig,
    /// Joint space dimension.
    #[arg(long, default_value_t = 512, help_heading = "Joint space", value_parser = bounds::EMBED_DIM.parser(), allow_negative_numbers = true)]
    pub embed_dim: i64,
    #[command(flatten)]
    #[serde(flatten)]
    pub text: TextTraining,
    #[command(flatten)]
    #[serde(flatten)]
    pub image: ImageTraining,
    #[command(flatten)]
    #[serde(flatten)]
    pub objective: Objective,
    #[command(flatten)]
    #[serde(flatten)]
    pub optimiser: Optimiser,
}

/// What is trained on.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Data")]
pub struct DataConfig {
    /// Training captions (COCO JSON); several files are merged.
    #[arg(long = "train-captions", required = true, num_args = 1..)]
    pub train_captions: Vec<PathBuf>,
    /// Validation captions (VSE protocol, first 5 captions per image); picks the best epoch.
    #[arg(long = "val-captions")]
    pub val_captions: PathBuf,
    /// Folder with the images of both files.
    #[arg(long)]
    pub images: PathBuf,
    /// Feature cache folder.
    #[arg(long = "cache", value_name = "CACHE", default_value = "data-cache/features")]
    pub cache_dir: PathBuf,
}

/// The text encoder: vocabulary, GloVe, LSTM.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Text encoder")]
pub struct TextTraining {
    /// GloVe vectors (safetensors with a `.words.txt` beside it); default: the installed ones.
    #[arg(long)]
    pub glove: Option<PathBuf>,
    /// Caption words kept in the vocabulary need at least this many occurrences.
    #[arg(long, default_value_t = 1, value_parser = bounds::MIN_COUNT.parser(), allow_negative_numbers = true)]
    pub min_count: usize,
    /// Vocabulary size (caption words, then the most frequent GloVe words).
    #[arg(long, default_value_t = 20000, value_parser = bounds::VOCAB_SIZE.parser(), allow_negative_numbers = true)]
    pub vocab_size: usize,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 512, value_parser = bounds::HIDDEN_DIM.parser(), allow_negative_numbers = true)]
    pub hidden_dim: i64,
    /// Stacked LSTM layers.
    #[arg(long, default_value_t = 1, value_parser = bounds::LAYERS.parser(), allow_negative_numbers = true)]
    pub layers: i64,
    /// Bidirectional LSTM.
    #[arg(long)]
    pub bidirectional: bool,
    /// Pooling over LSTM outputs.
    #[arg(long, value_enum, default_value = "last")]
    pub pooling: Pooling,
    /// Probability of replacing a caption word by <unk> in training.
    #[arg(long, default_value_t = 0.0, value_parser = bounds::WORD_DROPOUT.parser(), allow_negative_numbers = true)]
    pub word_dropout: f64,
    /// Learning-rate multiplier for the GloVe-initialised word embeddings (0 = frozen).
    #[arg(long, default_value_t = 0.1, value_parser = bounds::LR_SCALE.parser(), allow_negative_numbers = true)]
    pub embedding_lr_scale: f64,
}

impl TextTraining {
    /// The GloVe file: `--glove`, else the installed one.
    pub fn glove_path(&self) -> PathBuf {
        self.glove.clone().unwrap_or_else(crate::text::Glove::default_path)
    }
}

/// The image side: backbone, what of it is fine-tuned, pooling, training views. Fields missing from an older
/// `state.json` take the defaults below (the behaviour of runs made before they existed).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Image side")]
#[serde(default)]
pub struct ImageTraining {
    #[command(flatten)]
    #[serde(flatten)]
    pub backbone: BackboneChoice,
    /// Also train on horizontally flipped images (cached as a second view).
    #[arg(long = "flips")]
    pub use_flips: bool,
    /// Fine-tune the backbone from stage K on (Lite0: 0..=7, 6 = its last MBConv stage, 7 = only the 1×1 head
    /// conv), trained on cached stage-K activations: affordable on a CPU. Without it the backbone is frozen.
    #[arg(long, value_name = "K", conflicts_with = "finetune", value_parser = bounds::FINETUNE_FROM.parser(), allow_negative_numbers = true)]
    pub finetune_from: Option<usize>,
    /// Learning-rate multiplier for the fine-tuned backbone stages.
    #[arg(long, default_value_t = 0.1, value_parser = bounds::LR_SCALE.parser(), allow_negative_numbers = true)]
    pub backbone_lr_scale: f64,
    /// Pooling of the backbone's feature grid: avg, or gpo (learned, needs --finetune-from).
    #[arg(long, value_enum, default_value = "avg")]
    pub image_pooling: ImagePooling,
    /// With --finetune: train on random square crops whose side is at least this fraction of the shorter
    /// image side (e.g. 0.7), anywhere in the image; 1 = centre crops only.
    #[arg(long, default_value_t = 1.0, requires = "finetune", value_parser = bounds::CROP_SCALE.parser(), allow_negative_numbers = true)]
    pub crop_scale: f64,
    /// Train on these cached views of each image, one drawn at random per pair and step (comma-separated:
    /// original, flipped, zoom-tl, zoom-tr, zoom-bl, zoom-br, zoom-c, each zoom optionally -flipped; a zoom is
    /// 80 % of the picture, scaled up). Replaces --flips; each view is one more feature extraction.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["use_flips", "finetune"])]
    pub train_views: Vec<String>,
}

impl Default for ImageTraining {
    /// `trainer fit`'s defaults.
    fn default() -> Self {
        Config::default().image
    }
}

impl ImageTraining {
    /// The cached views training draws from: `train_views`, else `original` (plus `flipped` with `use_flips`).
    pub fn views(&self) -> anyhow::Result<Vec<View>> {
        use anyhow::Context;
        if self.train_views.is_empty() {
            return Ok(if self.use_flips { vec![View::ORIGINAL, View::FLIPPED] } else { vec![View::ORIGINAL] });
        }
        self.train_views
            .iter()
            .map(|name| View::parse(name).with_context(|| format!("--train-views: {name:?} is not a view ({})", View::NAMES)))
            .collect()
    }
}

/// The contrastive loss.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Loss")]
pub struct Objective {
    /// vse (VSE++ hinge: sum of negatives for --warmup-epochs, then hardest) or infonce.
    #[arg(long, value_enum, default_value = "vse")]
    pub loss: LossKind,
    /// VSE++ margin.
    #[arg(long, default_value_t = 0.2, value_parser = bounds::MARGIN.parser(), allow_negative_numbers = true)]
    pub margin: f64,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = 0.05, value_parser = bounds::TAU.parser(), allow_negative_numbers = true)]
    pub tau: f64,
    /// Epochs on the sum over negatives before switching to the hardest negative.
    #[arg(long, default_value_t = 2)]
    pub warmup_epochs: usize,
}

impl Objective {
    /// The loss of `epoch` (0-based): VSE++ sums over negatives during the warm-up epochs, then takes the hardest.
    pub fn at_epoch(&self, epoch: usize) -> Loss {
        match self.loss {
            LossKind::Vse => Loss::Vse { margin: self.margin, hardest: epoch >= self.warmup_epochs },
            LossKind::Infonce => Loss::InfoNce { tau: self.tau },
        }
    }
}

/// Epochs, batches, Adam and its learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Optimiser")]
pub struct Optimiser {
    /// Epochs of the run.
    #[arg(long, default_value_t = 12, value_parser = bounds::EPOCHS.parser(), allow_negative_numbers = true)]
    pub epochs: usize,
    /// Caption-image pairs per step.
    #[arg(long, default_value_t = 128, value_parser = bounds::BATCH_SIZE.parser(), allow_negative_numbers = true)]
    pub batch_size: usize,
    /// Peak learning rate (Adam; linear warm-up, then cosine decay).
    #[arg(long, default_value_t = 2e-4, value_parser = bounds::LR.parser(), allow_negative_numbers = true)]
    pub lr: f64,
    /// Decoupled weight decay of matrices and conv kernels.
    #[arg(long, default_value_t = 0.0, value_parser = bounds::WEIGHT_DECAY.parser(), allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 200)]
    pub lr_warmup_steps: usize,
    /// Clip the global gradient norm (0 = off).
    #[arg(long, default_value_t = 2.0, value_parser = bounds::GRAD_CLIP.parser(), allow_negative_numbers = true)]
    pub grad_clip: f64,
    /// Seed of the initialisation, the data order and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `trainer fit`'s flags: the [`Config`] and what only concerns this invocation.
#[derive(Debug, Clone, Parser)]
#[command(name = "fit")]
pub struct FitArgs {
    /// Run folder: checkpoints, state.json, vocab.txt, curve.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last finished epoch.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this epoch (continue later with --resume).
    #[arg(long, value_parser = bounds::STOP_AFTER_EPOCH.parser(), allow_negative_numbers = true)]
    pub stop_after_epoch: Option<usize>,
    #[command(flatten)]
    pub config: Config,
    /// Fine-tune the whole CNN end to end (= --finetune-from 0): batches are decoded from the image files
    /// (with --flips, mirrored at random). Meant for a GPU; on a CPU prefer --finetune-from 6.
    #[arg(long, help_heading = "Image side")]
    pub finetune: bool,
}

impl FitArgs {
    /// The run's config (`--finetune` is `finetune_from = 0`).
    pub fn config(&self) -> Config {
        let mut cfg = self.config.clone();
        if self.finetune {
            cfg.image.finetune_from = Some(0);
        }
        cfg
    }
}

impl Config {
    /// The config `trainer fit FLAGS` runs with. Data flags not given default to Flickr8k (train + extra, val)
    /// where [`crate::data::flickr8k_location`] says it is; `--out` is not needed.
    pub fn from_fit_flags(flags: &[&str]) -> Result<Config, clap::Error> {
        let f8k = crate::data::flickr8k_location();
        let given = |flag: &str| flags.contains(&flag);
        let mut args: Vec<std::ffi::OsString> = vec!["fit".into(), "--out".into(), "unused".into()];
        if !given("--train-captions") {
            args.extend(["--train-captions".into(), f8k.join("captions_train.json").into(), f8k.join("captions_train_extra.json").into()]);
        }
        if !given("--val-captions") {
            args.extend(["--val-captions".into(), f8k.join("captions_val.json").into()]);
        }
        if !given("--images") {
            args.extend(["--images".into(), f8k.join("images").into()]);
        }
        args.extend(flags.iter().map(Into::into));
        Ok(FitArgs::try_parse_from(args)?.config())
    }
}

impl Config {
    /// Checks every number against the same [`bounds`] the command line parses with (a config built in code or
    /// read from an edited `state.json` never reaches training with a value that would panic or train nothing).
    pub fn check(&self) -> anyhow::Result<()> {
        let (t, i, o, p) = (&self.text, &self.image, &self.objective, &self.optimiser);
        bounds::EMBED_DIM.check("--embed-dim", self.embed_dim)?;
        bounds::HIDDEN_DIM.check("--hidden-dim", t.hidden_dim)?;
        bounds::LAYERS.check("--layers", t.layers)?;
        bounds::VOCAB_SIZE.check("--vocab-size", t.vocab_size)?;
        bounds::MIN_COUNT.check("--min-count", t.min_count)?;
        bounds::WORD_DROPOUT.check("--word-dropout", t.word_dropout)?;
        bounds::LR_SCALE.check("--embedding-lr-scale", t.embedding_lr_scale)?;
        bounds::LR_SCALE.check("--backbone-lr-scale", i.backbone_lr_scale)?;
        bounds::CROP_SCALE.check("--crop-scale", i.crop_scale)?;
        if let Some(k) = i.finetune_from {
            bounds::FINETUNE_FROM.check("--finetune-from", k)?;
        }
        bounds::MARGIN.check("--margin", o.margin)?;
        bounds::TAU.check("--tau", o.tau)?;
        bounds::EPOCHS.check("--epochs", p.epochs)?;
        bounds::BATCH_SIZE.check("--batch-size", p.batch_size)?;
        bounds::LR.check("--lr", p.lr)?;
        bounds::WEIGHT_DECAY.check("--weight-decay", p.weight_decay)?;
        bounds::GRAD_CLIP.check("--grad-clip", p.grad_clip)?;
        self.image.views()?;
        Ok(())
    }
}

impl Default for Config {
    /// `trainer fit`'s defaults, on Flickr8k ([`Config::from_fit_flags`] with no flags).
    fn default() -> Self {
        Config::from_fit_flags(&[]).expect("fit's default flags parse")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::BackboneKind;

    /// `state.json` as session 1 wrote it (no fine-tuning fields yet) and as sessions 3–7 did (flat, kebab-case
    /// backbone, absolute paths).
    const STATE_SESSION1: &str = include_str!("../tests/fixtures/state-session1.json");
    const STATE_SESSION7: &str = include_str!("../tests/fixtures/state-session7.json");

    #[test]
    fn fit_defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.data.cache_dir, PathBuf::from("data-cache/features"));
        assert_eq!(c.data.train_captions.len(), 2);
        assert_eq!((c.embed_dim, c.text.hidden_dim, c.text.vocab_size, c.text.pooling), (512, 512, 20000, Pooling::Last));
        assert_eq!((c.image.backbone.backbone, c.image.backbone.weights.as_deref()), (BackboneKind::EfficientnetLite0, None));
        assert_eq!((c.image.finetune_from, c.image.image_pooling, c.image.crop_scale, c.image.backbone_lr_scale), (None, ImagePooling::Avg, 1.0, 0.1));
        assert_eq!((c.objective.loss, c.objective.margin, c.objective.warmup_epochs), (LossKind::Vse, 0.2, 2));
        assert_eq!((c.optimiser.epochs, c.optimiser.batch_size, c.optimiser.lr, c.optimiser.lr_warmup_steps), (12, 128, 2e-4, 200));
    }

    #[test]
    fn flags_set_the_config_and_bad_choices_are_refused() {
        let c = Config::from_fit_flags(&["--loss", "infonce", "--pooling", "mean", "--image-pooling", "gpo", "--finetune-from", "6",
            "--backbone", "densenet121", "--train-views", "original,zoom-c"]).unwrap();
        assert_eq!((c.objective.loss, c.text.pooling, c.image.image_pooling), (LossKind::Infonce, Pooling::Mean, ImagePooling::Gpo));
        assert_eq!((c.image.finetune_from, c.image.backbone.backbone), (Some(6), BackboneKind::Densenet121));
        assert_eq!(c.image.train_views, ["original", "zoom-c"]);
        // the backbone's old spellings still parse
        for name in ["lite0", "EfficientNet-Lite0", "efficientnet_lite0"] {
            assert_eq!(Config::from_fit_flags(&["--backbone", name]).unwrap().image.backbone.backbone, BackboneKind::EfficientnetLite0, "{name}");
        }
        // a typo is an error that lists the choices, not a silent default
        let e = Config::from_fit_flags(&["--loss", "infonse"]).unwrap_err().to_string();
        assert!(e.contains("infonse") && e.contains("vse") && e.contains("infonce"), "{e}");
        assert!(Config::from_fit_flags(&["--pooling", "average"]).is_err());
        // --finetune is --finetune-from 0, and excludes --finetune-from and --train-views
        assert_eq!(Config::from_fit_flags(&["--finetune", "--crop-scale", "0.7"]).unwrap().image.finetune_from, Some(0));
        assert!(Config::from_fit_flags(&["--finetune", "--finetune-from", "6"]).is_err());
        assert!(Config::from_fit_flags(&["--crop-scale", "0.7"]).is_err(), "--crop-scale needs --finetune");
        assert!(Config::from_fit_flags(&["--flips", "--train-views", "original"]).is_err());
    }

    /// Files keep the flat key names of before: a config round-trips through JSON with the same keys, and an
    /// old `state.json` (no fine-tuning fields, kebab-case backbone, absolute weight paths) loads with the
    /// defaults of its time.
    #[test]
    fn old_state_files_load_and_the_file_stays_flat() {
        let state: crate::run::RunState = serde_json::from_str(STATE_SESSION1).unwrap();
        let c = &state.config;
        assert_eq!(c.data.train_captions, [PathBuf::from("/data/flickr8k/captions_train.json")]);
        assert_eq!((c.embed_dim, c.text.hidden_dim, c.text.bidirectional, c.text.pooling), (1024, 1024, true, Pooling::Max));
        assert_eq!(c.image.backbone.backbone, BackboneKind::EfficientnetLite0);
        assert_eq!(c.image.backbone.weights.as_deref(), Some(std::path::Path::new("/home/someone/assets/efficientnet_lite0.safetensors")));
        assert_eq!((c.image.finetune_from, c.image.image_pooling, c.image.crop_scale, c.image.backbone_lr_scale), (None, ImagePooling::Avg, 1.0, 0.1));
        assert!(c.image.train_views.is_empty() && c.image.use_flips);
        assert_eq!((c.objective.loss, c.optimiser.epochs, c.optimiser.seed), (LossKind::Vse, 15, 3));
        assert_eq!((state.epochs_done, state.best_epoch, state.history.len()), (2, Some(2), 2));
        assert_eq!(state.history[1].val.rsum, 212.5);


        let state: crate::run::RunState = serde_json::from_str(STATE_SESSION7).unwrap();
        let c7 = &state.config;
        assert_eq!((c7.image.finetune_from, c7.image.image_pooling, c7.image.backbone_lr_scale), (Some(6), ImagePooling::Gpo, 1.0));
        assert_eq!((c7.image.train_views.len(), c7.objective.loss, c7.text.pooling), (3, LossKind::Infonce, Pooling::Mean));

        for (file, c) in [(STATE_SESSION1, c), (STATE_SESSION7, c7)] {
            let json = serde_json::to_value(c).unwrap();
            let keys: std::collections::BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
            let old: serde_json::Value = serde_json::from_str(file).unwrap();
            for key in old["config"].as_object().unwrap().keys() {
                assert!(keys.contains(key.as_str()), "key {key} kept");
            }
            assert!(json.as_object().unwrap().values().all(|v| !v.is_object()), "no nested objects: {json}");
            assert_eq!(serde_json::from_value::<Config>(json).unwrap(), *c);
        }
    }
}

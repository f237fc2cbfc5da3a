//! A run folder: its `state.json` (config, progress, per-epoch log), its checkpoints (`last` with the Adam
//! state, so `--resume` continues exactly; `best` by val rsum) and vocabulary, the model its config
//! describes, and reading a run back (`load_run`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};
use wasm_model::model_dir::ImagePooling;

use crate::backbone::BackboneKindExt;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{JointModel, TextConfig};
use crate::optim::Adam;
use crate::text::Vocab;

/// One epoch's record (the training curve).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub val: Metrics,
    pub seconds: f64,
}

/// `state.json` beside the checkpoint: where the run is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub config: Config,
    pub epochs_done: usize,
    pub step: usize,
    pub best_epoch: Option<usize>,
    pub best_rsum: f64,
    pub history: Vec<EpochLog>,
}

impl RunState {
    /// A run that has not finished an epoch yet.
    pub fn new(config: Config) -> Self {
        RunState { config, epochs_done: 0, step: 0, best_epoch: None, best_rsum: f64::NEG_INFINITY, history: vec![] }
    }

    /// The record of the best epoch so far.
    pub fn best(&self) -> Option<&EpochLog> {
        self.best_epoch.and_then(|e| self.history.iter().find(|h| h.epoch == e))
    }
}

/// Which checkpoint of a run (`trainer export --which`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Checkpoint {
    /// The epoch with the best val rsum.
    Best,
    /// The last finished epoch.
    Last,
}

impl Checkpoint {
    pub fn file_name(self) -> &'static str {
        match self {
            Checkpoint::Best => BEST_CKPT,
            Checkpoint::Last => LAST_CKPT,
        }
    }
}

pub const STATE_FILE: &str = "state.json";
pub const LAST_CKPT: &str = "last.safetensors";
pub const BEST_CKPT: &str = "best.safetensors";
pub const VOCAB_FILE: &str = "vocab.txt";

/// Writes the model variables (and with `adam` its state) to `path` atomically (temp file, then rename).
pub fn save_checkpoint(vs: &nn::VarStore, adam: Option<&Adam>, path: &Path) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    if let Some(a) = adam {
        tensors.extend(a.state());
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    // Fine-tuned conv weights live channels-last (faster on CPU); safetensors stores them contiguous.
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().map(|(n, t)| (n, t.contiguous())).collect();
    let tmp = path.with_extension("safetensors.tmp");
    Tensor::write_safetensors(&tensors, &tmp).with_context(|| format!("writing checkpoint {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Loads model variables (and Adam state if present and wanted) from a checkpoint.
pub fn load_checkpoint(vs: &mut nn::VarStore, path: &Path, adam: Option<&mut Adam>) -> Result<()> {
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read checkpoint {} (is the run folder complete?)", path.display()))?;
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let t = map.get(&name).with_context(|| format!("checkpoint {} lacks tensor {name}", path.display()))?;
            if t.size() != var.size() {
                bail!("checkpoint {}: {name} has shape {:?}, model expects {:?} (different config?)", path.display(), t.size(), var.size());
            }
            var.copy_(t);
        }
        Ok(())
    })?;
    if let Some(a) = adam {
        a.load_state(&map);
    }
    Ok(())
}

/// Builds the model for `cfg` and a vocabulary of `vocab_len` tokens into a fresh VarStore (with a fine-tuned
/// tail: the backbone weights are read from the config's backbone weights).
pub fn build_model(cfg: &Config, vocab_len: usize, device: Device) -> Result<(nn::VarStore, JointModel)> {
    let image = &cfg.image;
    if !(image.crop_scale > 0.0 && image.crop_scale <= 1.0) {
        bail!("--crop-scale {} is not in (0, 1]: it is the smallest crop side as a fraction of the shorter image side", image.crop_scale);
    }
    if image.image_pooling == ImagePooling::Gpo && image.finetune_from.is_none() {
        bail!("--image-pooling gpo needs --finetune-from K (the pooled-feature cache has no grid to pool)");
    }
    let vs = nn::VarStore::new(device);
    let tc = TextConfig {
        vocab_size: vocab_len as i64,
        word_dim: 50,
        hidden_dim: cfg.text.hidden_dim,
        layers: cfg.text.layers,
        bidirectional: cfg.text.bidirectional,
        pooling: cfg.text.pooling,
    };
    let (kind, weights) = (image.backbone.backbone, image.backbone.weights());
    let tail = image.finetune_from.map(|k| (kind, k, weights.as_path()));
    let model = JointModel::with_image(&vs, &tc, kind.feature_dim(), cfg.embed_dim, image.image_pooling, tail)?;
    if let Some(t) = &model.tail {
        if t.from > t.net.num_stages() {
            bail!("--finetune-from {}: {} has stages 0..{} (the head is {})", t.from, kind.name(), t.net.num_stages() - 1, t.net.num_stages());
        }
    }
    Ok((vs, model))
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    crate::write_atomic(path, &serde_json::to_vec_pretty(value)?)?;
    Ok(())
}

/// Reads a finished (or partial) run: its state, vocabulary and the weights of checkpoint `which`.
pub fn load_run(run: &Path, which: Checkpoint) -> Result<(RunState, Vocab, nn::VarStore, JointModel)> {
    let path = run.join(STATE_FILE);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("{} is not a run folder (no {STATE_FILE}); pass the --out of `trainer fit`", run.display()))?;
    let state: RunState = serde_json::from_slice(&bytes).with_context(|| format!("cannot parse {}", path.display()))?;
    let vocab = crate::text::read_vocab(&run.join(VOCAB_FILE))?;
    let (mut vs, model) = build_model(&state.config, vocab.len(), crate::default_device())?;
    load_checkpoint(&mut vs, &run.join(which.file_name()), None)?;
    Ok((state, vocab, vs, model))
}

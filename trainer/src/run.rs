//! A run folder: its `state.json` (config, progress, per-epoch log, and the names of the checkpoints it stands
//! on), its checkpoints (`last-eN` with the Adam state, so `--resume` continues exactly; `best-eN` by val rsum)
//! and vocabulary, the model its config describes, and reading a run back (`load_run`).
//!
//! An epoch is committed in one step: its checkpoints are written under epoch-numbered names first, then
//! `state.json` naming them replaces the previous one (a rename: atomic), and only then are the files it no
//! longer names removed. A kill at any point leaves a `state.json` whose checkpoints are exactly its epoch's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

    /// The file in `run` that holds checkpoint `which` of this state: the epoch-numbered file of its epoch
    /// (`epochs_done` for `Last`, `best_epoch` for `Best`), or the fixed name of a run written before those
    /// existed when only that one is there. `None` before the first epoch.
    pub fn checkpoint_path(&self, run: &Path, which: Checkpoint) -> Option<PathBuf> {
        let epoch = match which {
            Checkpoint::Last => Some(self.epochs_done).filter(|&e| e > 0),
            Checkpoint::Best => self.best_epoch,
        }?;
        let numbered = run.join(which.epoch_file(epoch));
        let legacy = run.join(which.legacy_file());
        Some(if !numbered.exists() && legacy.exists() { legacy } else { numbered })
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
    /// The epoch-numbered file name this checkpoint of `epoch` (1-based) is written under.
    pub fn epoch_file(self, epoch: usize) -> String {
        match self {
            Checkpoint::Last => format!("last-e{epoch:04}.safetensors"),
            Checkpoint::Best => format!("best-e{epoch:04}.safetensors"),
        }
    }

    /// Its name in runs written before epoch-numbered checkpoints.
    pub fn legacy_file(self) -> &'static str {
        match self {
            Checkpoint::Last => LAST_CKPT,
            Checkpoint::Best => BEST_CKPT,
        }
    }
}

pub const STATE_FILE: &str = "state.json";
/// The last checkpoint of a run written before epoch-numbered checkpoints (still read).
pub const LAST_CKPT: &str = "last.safetensors";
/// The best checkpoint of such a run.
pub const BEST_CKPT: &str = "best.safetensors";
pub const VOCAB_FILE: &str = "vocab.txt";

/// Removes the checkpoints of `run` that `state` no longer names (older epochs, unfinished temp files, the
/// fixed names of older runs once a newer epoch is committed). Call after `state` is committed.
pub fn remove_stale_checkpoints(run: &Path, state: &RunState) -> Result<()> {
    let keep: Vec<PathBuf> = [Checkpoint::Last, Checkpoint::Best].iter().filter_map(|&c| state.checkpoint_path(run, c)).collect();
    let is_checkpoint = |name: &str| {
        let (stem, rest) = name.split_once('.').unwrap_or((name, ""));
        let numbered = ["last-e", "best-e"].iter().any(|p| stem.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
        let legacy = stem == "last" || stem == "best";
        (numbered || legacy) && (rest == "safetensors" || rest == "safetensors.tmp")
    };
    let entries = std::fs::read_dir(run).with_context(|| format!("cannot list run folder {}", run.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list run folder {}", run.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_checkpoint(&name) && !keep.iter().any(|k| k.file_name() == Some(entry.file_name().as_os_str())) {
            std::fs::remove_file(entry.path()).with_context(|| format!("cannot remove old checkpoint {}", entry.path().display()))?;
        }
    }
    Ok(())
}

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
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
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
    crate::bounds::CROP_SCALE.check("--crop-scale", image.crop_scale)?;
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
    let cells = crate::model::grid_cells(crate::backbone::preprocess::Preprocess::for_backbone(kind).size as usize);
    let model = JointModel::with_image(&vs, &tc, kind.feature_dim(), cfg.embed_dim, image.image_pooling, cells, tail)?;
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
    let path = state
        .checkpoint_path(run, which)
        .with_context(|| format!("{} has no finished epoch yet: nothing to load", run.display()))?;
    load_checkpoint(&mut vs, &path, None)?;
    Ok((state, vocab, vs, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checkpoints are found by the state's epochs (numbered files, or the fixed names of an older run), and
    /// only what the state names survives the clean-up.
    #[test]
    fn checkpoints_are_the_states_and_the_rest_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let touch = |name: &str| std::fs::write(run.join(name), b"x").unwrap();
        let state = RunState { epochs_done: 3, best_epoch: Some(2), ..RunState::new(crate::train::tests::tiny_config()) };
        assert_eq!(RunState::new(state.config.clone()).checkpoint_path(run, Checkpoint::Last), None, "no epoch, no checkpoint");
        // a run from before epoch-numbered checkpoints
        touch(LAST_CKPT);
        touch(BEST_CKPT);
        assert_eq!(state.checkpoint_path(run, Checkpoint::Last), Some(run.join(LAST_CKPT)));
        assert_eq!(state.checkpoint_path(run, Checkpoint::Best), Some(run.join(BEST_CKPT)));
        // epoch 3 committed by this version: its file wins, the old last goes, the old best (still epoch 2) stays
        for f in ["last-e0003.safetensors", "last-e0004.safetensors.tmp", "best-e0004.safetensors", "last-e0002.safetensors", "notes.txt", "vocab.txt"] {
            touch(f);
        }
        assert_eq!(state.checkpoint_path(run, Checkpoint::Last), Some(run.join("last-e0003.safetensors")));
        remove_stale_checkpoints(run, &state).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, [BEST_CKPT, "last-e0003.safetensors", "notes.txt", "vocab.txt"]);
    }
}

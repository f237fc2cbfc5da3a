//! What a shipped manifest says about training (`training`), without paths of the training machine: every file
//! the run read is named by its file name and SHA-256, every folder by its name. Reading it back
//! ([`recorded_config`]) finds the backbone weights among this machine's installed assets and checks they are
//! the ones the model was trained with. Manifests written before this (absolute paths) still read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::backbone::assets_dir;
use crate::config::Config;
use crate::run::RunState;

/// A file as a manifest names it: its name and checksum, not where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileId {
    pub file: String,
    /// Absent when the file could not be read at export time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl FileId {
    /// `path`'s file name and SHA-256 (no checksum, with a warning, when the file cannot be read).
    pub fn of(path: &Path) -> FileId {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let sha256 = match std::fs::read(path) {
            Ok(bytes) => Some(wasm_model::model_dir::sha256_hex(&bytes)),
            Err(e) => {
                tracing::warn!("{} is recorded without a checksum: {e}", path.display());
                None
            }
        };
        FileId { file, sha256 }
    }
}

/// A recorded file: `{file, sha256}`, or the path a manifest written before recorded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum RecordedFile {
    Id(FileId),
    Path(PathBuf),
}

impl RecordedFile {
    fn file_name(&self) -> Option<String> {
        match self {
            RecordedFile::Id(id) => Some(id.file.clone()).filter(|f| !f.is_empty()),
            RecordedFile::Path(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
        }
    }
}

/// A folder by its name only.
fn folder_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The manifest's `training` block for a run: progress, seed, stored dtype and the config, with files as
/// [`FileId`]s and folders as names.
pub fn training_record(state: &RunState, f16: bool) -> Result<Value> {
    let cfg = &state.config;
    let train: Vec<FileId> = cfg.data.train_captions.iter().map(|p| FileId::of(p)).collect();
    let val = FileId::of(&cfg.data.val_captions);
    let mut config = serde_json::to_value(cfg)?;
    config["train_captions"] = json!(train);
    config["val_captions"] = json!(val);
    config["images"] = json!(folder_name(&cfg.data.images));
    config["cache_dir"] = json!(folder_name(&cfg.data.cache_dir));
    config["backbone_weights"] = json!(FileId::of(&cfg.image.backbone.weights()));
    config["glove"] = json!(FileId::of(&cfg.text.glove_path()));
    Ok(json!({
        "train_captions": train,
        "val_captions": val,
        "epochs_done": state.epochs_done,
        "best_epoch": state.best_epoch,
        "seed": cfg.optimiser.seed,
        "config": config,
        "weights_dtype": if f16 { "f16" } else { "f32" },
    }))
}

/// The training config a manifest's `training` block records, ready to rebuild the model here: the backbone
/// weights are the installed file of the recorded name (`$IMGPICK_ASSETS`), refused when its SHA-256 differs
/// from the recorded one; GloVe is the installed file; data files and folders keep only their names.
pub fn recorded_config(training: &Value) -> Result<Config> {
    let mut config = training.get("config").cloned().context("the manifest's `training` has no `config`")?;
    let weights: RecordedFile = serde_json::from_value(config["backbone_weights"].take())
        .context("training.config.backbone_weights is neither {file, sha256} nor a path")?;
    let name = weights.file_name().context("training.config.backbone_weights names no file")?;
    let installed = assets_dir().join(&name);
    match &weights {
        RecordedFile::Id(FileId { sha256: Some(want), .. }) => {
            let bytes = std::fs::read(&installed).with_context(|| {
                format!("the model was trained with backbone weights {name}, which are not installed at {} (scripts/setup.sh installs them)", installed.display())
            })?;
            let have = wasm_model::model_dir::sha256_hex(&bytes);
            if have != *want {
                bail!(
                    "{} has SHA-256 {have}, but the model was trained with weights of SHA-256 {want}: install those (scripts/setup.sh) or set IMGPICK_ASSETS to a folder that holds them",
                    installed.display()
                );
            }
        }
        _ => tracing::warn!("the manifest records no SHA-256 of {name}: using {} unchecked", installed.display()),
    }
    config["backbone_weights"] = json!(installed);
    config["glove"] = Value::Null;
    for key in ["train_captions", "val_captions"] {
        let names = |v: &Value| -> Result<Value> {
            let f: RecordedFile = serde_json::from_value(v.clone()).with_context(|| format!("training.config.{key}"))?;
            Ok(json!(f.file_name().unwrap_or_default()))
        };
        config[key] = match &config[key] {
            Value::Array(files) => Value::Array(files.iter().map(names).collect::<Result<_>>()?),
            one => names(one)?,
        };
    }
    serde_json::from_value(config).context("training.config is not a trainer config")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{BackboneKind, BackboneKindExt};

    /// Every string in `v`, recursively.
    fn strings(v: &Value) -> Vec<&str> {
        match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().flat_map(strings).collect(),
            Value::Object(o) => o.values().flat_map(strings).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn the_record_names_files_by_name_and_checksum_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (train, weights) = (tmp.path().join("train.json"), tmp.path().join("my_lite0.safetensors"));
        std::fs::write(&train, b"{}").unwrap();
        std::fs::write(&weights, b"weights").unwrap();
        let mut cfg = Config::default();
        cfg.data.train_captions = vec![train];
        cfg.data.val_captions = tmp.path().join("missing.json");
        cfg.data.images = tmp.path().join("photos");
        cfg.data.cache_dir = tmp.path().join("cache");
        cfg.image.backbone.weights = Some(weights);
        cfg.text.glove = Some(tmp.path().join("glove.safetensors"));
        let record = training_record(&RunState::new(cfg), true).unwrap();
        let root = tmp.path().to_string_lossy().into_owned();
        assert!(strings(&record).iter().all(|s| !s.contains(&root) && !s.starts_with('/')), "machine paths in {record:#}");
        let c = &record["config"];
        assert_eq!(c["backbone_weights"], json!({"file": "my_lite0.safetensors", "sha256": wasm_model::model_dir::sha256_hex(b"weights")}));
        assert_eq!(record["train_captions"][0]["sha256"], json!(wasm_model::model_dir::sha256_hex(b"{}")));
        assert_eq!(c["val_captions"], json!({"file": "missing.json"}), "an unreadable file has no checksum");
        assert_eq!((&c["images"], &c["cache_dir"], &record["weights_dtype"]), (&json!("photos"), &json!("cache"), &json!("f16")));
        assert_eq!(c["epochs"], json!(12), "the rest of the config as it is");
    }

    /// The committed `static/model` manifest holds no path of the machine it was trained on, and its config
    /// rebuilds here with the installed weights it names (what the train-step bench reads).
    #[test]
    fn the_shipped_manifest_is_free_of_machine_paths_and_reads_back() {
        let manifest = crate::load::static_model_dir().join(wasm_model::model_dir::MANIFEST_FILE);
        let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let paths: Vec<&str> = strings(&m["training"]).into_iter().filter(|s| s.contains('/')).collect();
        assert!(paths.is_empty(), "{}: paths in `training`: {paths:?}", manifest.display());
        if !BackboneKind::EfficientnetLite0.installed_weights().is_file() {
            eprintln!("skipped the read-back: Lite0 weights not installed (scripts/setup.sh)");
            return;
        }
        let cfg = recorded_config(&m["training"]).unwrap();
        assert_eq!((cfg.image.finetune_from, cfg.optimiser.batch_size), (Some(6), 128));
    }

    /// A record finds the installed weights and checks them; a manifest written before (absolute paths) reads
    /// too, by the weights' file name.
    #[test]
    fn recorded_configs_find_and_check_the_installed_weights() {
        let lite0 = BackboneKind::EfficientnetLite0.installed_weights();
        if !lite0.is_file() {
            eprintln!("skipped: Lite0 weights not installed (scripts/setup.sh)");
            return;
        }
        let mut cfg = Config::from_fit_flags(&["--finetune-from", "6", "--loss", "infonce", "--weights", "/elsewhere/efficientnet_lite0.safetensors"]).unwrap();
        let mut record = training_record(&RunState::new(cfg.clone()), true).unwrap();
        record["config"]["backbone_weights"] = json!(FileId::of(&lite0));
        let back = recorded_config(&record).unwrap();
        assert_eq!(back.image.backbone.weights.as_deref(), Some(lite0.as_path()));
        assert_eq!((back.image.finetune_from, back.objective.loss, back.text.glove.clone()), (Some(6), cfg.objective.loss, None));
        assert_eq!(back.data.train_captions, [PathBuf::from("captions_train.json"), PathBuf::from("captions_train_extra.json")]);
        assert_eq!((back.optimiser.clone(), back.text.vocab_size), (cfg.optimiser.clone(), cfg.text.vocab_size));

        record["config"]["backbone_weights"]["sha256"] = json!("00ff");
        let e = format!("{:#}", recorded_config(&record).unwrap_err());
        assert!(e.contains("00ff") && e.contains("efficientnet_lite0.safetensors") && e.contains("setup.sh"), "{e}");

        // before: absolute paths of the training machine, kebab-case backbone
        cfg.image.backbone.weights = Some("/work/main/trainer/../assets/efficientnet_lite0.safetensors".into());
        let mut old = json!({"config": serde_json::to_value(&cfg).unwrap()});
        old["config"]["backbone"] = json!("efficientnet-lite0");
        let back = recorded_config(&old).unwrap();
        assert_eq!(back.image.backbone.weights.as_deref(), Some(lite0.as_path()));
        assert_eq!(back.data.val_captions, PathBuf::from("captions_val.json"));
    }
}

//! Reading a model directory back into tch (eval, publish, parity tests): wasm-model validates the files
//! (checksums, shapes, ids), this builds the tch model they describe and fills it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{nn, Tensor};
use wasm_model::model_dir::{self, ModelDir};

use crate::backbone::preprocess::Preprocess;
use crate::backbone::{BackboneKind, BackboneKindExt};
use crate::model::JointModel;
use crate::text::Vocab;

/// A tch model loaded back from an exported model directory (for eval, publish and parity tests).
pub struct LoadedModel {
    pub dir: ModelDir,
    pub vocab: Vocab,
    pub vs: nn::VarStore,
    pub model: JointModel,
    pub backbone: BackboneKind,
}

fn load_safetensors_into(vs: &nn::VarStore, prefix: &str, bytes: &[u8], file: &str) -> Result<()> {
    let st = safetensors::SafeTensors::deserialize(bytes).with_context(|| format!("{file} is not safetensors"))?;
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, view) in st.tensors() {
            let key = format!("{prefix}.{name}");
            let mut var = vars.get(&key).map(|t| t.shallow_clone()).with_context(|| format!("{file}: unexpected tensor {name}"))?;
            let data = wasm_model::tensors::view_to_f32(&view).with_context(|| format!("{file}: tensor {name}"))?;
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if shape != var.size() {
                bail!("{file}: tensor {name} has shape {shape:?}, the manifest implies {:?}", var.size());
            }
            var.copy_(&Tensor::from_slice(&data).view(shape.as_slice()).to_device(var.device()));
        }
        Ok(())
    })
}

/// Loads a model directory (validated by wasm-model: checksums, shapes, ids) into a tch model; a fine-tuned
/// model builds on the installed stock backbone weights.
pub fn load_model_dir(path: &Path, device: tch::Device) -> Result<LoadedModel> {
    load_model_dir_with_backbone_weights(path, None, device)
}

/// [`load_model_dir`] with the stock backbone weights a fine-tuned model builds on given (`None`: the installed
/// ones).
pub fn load_model_dir_with_backbone_weights(path: &Path, backbone_weights: Option<&Path>, device: tch::Device) -> Result<LoadedModel> {
    let dir = ModelDir::load(path).with_context(|| format!("cannot load model directory {}", path.display()))?;
    let m = &dir.manifest;
    let backbone = m.image.backbone;
    // tch preprocesses with the backbone's own constants; the browser reads the manifest's. Refuse a disagreement
    // rather than embed photos differently on the two sides.
    let prep = Preprocess::for_backbone(backbone);
    let close = |a: &[f32; 3], b: &[f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    if m.image.image_size != prep.size as usize || !close(&m.image.mean, &prep.mean) || !close(&m.image.std, &prep.std) {
        bail!(
            "{}: manifest image preprocessing (size {}, mean {:?}, std {:?}) differs from what {} expects (size {}, mean {:?}, std {:?}); re-export the model with `trainer export`",
            path.join("manifest.json").display(), m.image.image_size, m.image.mean, m.image.std, backbone.name(), prep.size, prep.mean, prep.std
        );
    }
    let tc = crate::model::TextConfig {
        vocab_size: m.text.vocab_size as i64,
        word_dim: m.text.word_dim as i64,
        hidden_dim: m.text.hidden_dim as i64,
        layers: m.text.layers as i64,
        bidirectional: m.text.bidirectional,
        pooling: m.text.pooling,
    };
    let vs = nn::VarStore::new(device);
    // A fine-tuned backbone: the stock weights, then the model's trained layers over them.
    let stock = backbone_weights.map(Path::to_path_buf).unwrap_or_else(|| backbone.installed_weights());
    let tail = m.image.finetuned_from.map(|k| (backbone, k, stock.as_path()));
    let cells = crate::model::grid_cells(m.image.image_size);
    let model = JointModel::with_image(&vs, &tc, m.image.feature_dim as i64, m.embed_dim as i64, m.image.pooling, cells, tail)
        .with_context(|| format!("{} was fine-tuned from backbone stage {:?}: it needs the stock backbone weights", path.display(), m.image.finetuned_from))?;
    load_safetensors_into(&vs, "text", &dir.text_encoder, &m.files.text_encoder)?;
    match &dir.image_head {
        Some(bytes) => load_safetensors_into(&vs, "image", bytes, model_dir::IMAGE_HEAD_FILE)?,
        None => tracing::warn!("{} has no image head: image embeddings are unavailable", path.display()),
    }
    let vocab = dir.vocab.clone();
    Ok(LoadedModel { dir, vocab, vs, model, backbone })
}

/// The directory that `static/model` means in this repository.
pub fn static_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../static/model")
}

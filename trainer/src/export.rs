//! `trainer export`: a run folder → the model directory the browser and CLI load (wasm-model's contract).
//!
//! With `f16`, weights are rounded to f16 *before* the validation metrics are measured, so the manifest's
//! `metrics` are those of the exact exported weights. The directory is written beside the target and renamed
//! into place, so a failed export leaves the previous model untouched.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tch::{nn, Kind, Tensor};
use wasm_model::model_dir::{self, ImageConfig, ModelDir, Retrieval};

use crate::backbone::preprocess::Preprocess;
use crate::backbone::BackboneKind;
use crate::eval::Metrics;
use crate::model::{ImagePooling, JointModel, Pooling};
use crate::text::Vocab;
use crate::train::{self, PairData, RunState};

pub struct ExportOptions {
    pub f16: bool,
    /// Measure val metrics (needs the val images or their cached features).
    pub evaluate: bool,
}

fn wasm_backbone(kind: BackboneKind) -> model_dir::Backbone {
    match kind {
        BackboneKind::EfficientnetLite0 => model_dir::Backbone::EfficientnetLite0,
        BackboneKind::Densenet121 => model_dir::Backbone::Densenet121,
    }
}

fn wasm_pooling(p: Pooling) -> model_dir::Pooling {
    match p {
        Pooling::Last => model_dir::Pooling::Last,
        Pooling::Mean => model_dir::Pooling::Mean,
        Pooling::Max => model_dir::Pooling::Max,
    }
}

/// Serialises the variables below `prefix.` (prefix stripped) as safetensors, f16 or f32.
pub fn safetensors_bytes(vs: &nn::VarStore, prefix: &str, f16: bool) -> Result<Vec<u8>> {
    safetensors_bytes_where(vs, prefix, f16, |_| true)
}

/// The image head file: `proj.*`, `gpo.*` and, for a fine-tuned backbone, the layers that were trained
/// (every tensor of a layer with a trained weight, BN running statistics included) as `backbone.<name>`.
pub fn image_head_bytes(vs: &nn::VarStore, f16: bool) -> Result<Vec<u8>> {
    let vars = vs.variables();
    let trained_layers: std::collections::HashSet<String> = vars
        .iter()
        .filter(|(n, t)| n.starts_with("image.backbone.") && t.requires_grad())
        .filter_map(|(n, _)| n.rsplit_once('.').map(|(layer, _)| layer.to_string()))
        .collect();
    safetensors_bytes_where(vs, "image", f16, |name| {
        !name.starts_with("image.backbone.")
            || name.rsplit_once('.').is_some_and(|(layer, _)| trained_layers.contains(layer))
    })
}

fn safetensors_bytes_where(vs: &nn::VarStore, prefix: &str, f16: bool, keep: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        if !keep(&name) {
            continue;
        }
        let Some(short) = name.strip_prefix(&format!("{prefix}.")) else { continue };
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data: Vec<f32> = Vec::<f32>::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Float).flatten(0, -1))?;
        let bytes: Vec<u8> = if f16 {
            data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect()
        } else {
            data.iter().flat_map(|&x| x.to_le_bytes()).collect()
        };
        named.push((short.to_string(), shape, bytes));
    }
    if named.is_empty() {
        bail!("no variables under `{prefix}`");
    }
    let dtype = if f16 { Dtype::F16 } else { Dtype::F32 };
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(dtype, s.clone(), b)?)))
        .collect::<Result<_>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Rounds every variable to f16 and back (what an f16 export stores).
pub fn round_to_f16(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let r = v.to_kind(Kind::Half).to_kind(v.kind());
            v.copy_(&r);
        }
    });
}

/// Builds the model directory in memory.
pub fn build_model_dir(
    state: &RunState,
    vocab: &Vocab,
    vs: &nn::VarStore,
    model: &JointModel,
    metrics: Option<&Metrics>,
    f16: bool,
) -> Result<ModelDir> {
    let cfg = &state.config;
    let tc = &model.text.config;
    let text = model_dir::TextConfig {
        vocab_size: tc.vocab_size as usize,
        word_dim: tc.word_dim as usize,
        hidden_dim: tc.hidden_dim as usize,
        layers: tc.layers as usize,
        bidirectional: tc.bidirectional,
        pooling: wasm_pooling(tc.pooling),
    };
    let prep = Preprocess::for_backbone(cfg.backbone);
    let image = ImageConfig {
        backbone: wasm_backbone(cfg.backbone),
        feature_dim: model.feature_dim as usize,
        image_size: prep.size as usize,
        mean: prep.mean,
        std: prep.std,
        pooling: match model.image.pooling() {
            ImagePooling::Avg => model_dir::ImagePooling::Avg,
            ImagePooling::Gpo => model_dir::ImagePooling::Gpo,
        },
        finetuned_from: model.tail.as_ref().map(|t| t.from),
    };
    let training = serde_json::json!({
        "train_captions": cfg.train_captions,
        "val_captions": cfg.val_captions,
        "epochs_done": state.epochs_done,
        "best_epoch": state.best_epoch,
        "seed": cfg.seed,
        "config": cfg,
        "weights_dtype": if f16 { "f16" } else { "f32" },
    });
    let metrics = metrics.map(|m| serde_json::to_value(m).expect("metrics serialise")).unwrap_or(serde_json::Value::Null);
    let created = humantime_now();
    Ok(ModelDir::build(
        model.embed_dim as usize,
        text,
        image,
        vocab,
        safetensors_bytes(vs, "text", f16)?,
        Some(image_head_bytes(vs, f16)?),
        training,
        metrics,
        created,
    )?)
}

/// RFC 3339 UTC timestamp without extra dependencies.
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // civil-from-days (Howard Hinnant)
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Writes `dir` to `out` atomically (sibling temp folder, then rename).
pub fn write_model_dir(dir: &ModelDir, out: &Path) -> Result<()> {
    write_model_dir_with(dir, out, None)
}

/// [`write_model_dir`], plus the hubness bank the manifest names (`files.hubness_bank`).
pub fn write_model_dir_with(dir: &ModelDir, out: &Path, hubness_bank: Option<&[u8]>) -> Result<()> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = out.file_name().context("--out needs a folder name")?.to_string_lossy().into_owned();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    dir.write(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    if let (Some(name), Some(bytes)) = (&dir.manifest.files.hubness_bank, hubness_bank) {
        std::fs::write(tmp.join(name), bytes).with_context(|| format!("writing {}", tmp.join(name).display()))?;
    }
    if out.exists() {
        std::fs::rename(out, &old).with_context(|| format!("moving the previous {} aside", out.display()))?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// `trainer export --run RUN --out DIR`.
pub fn export_run(run: &Path, which: &str, out: &Path, opts: &ExportOptions) -> Result<(ModelDir, Option<Metrics>)> {
    let (state, vocab, vs, model) = train::load_run(run, which)?;
    if opts.f16 {
        round_to_f16(&vs);
    }
    let metrics = if opts.evaluate {
        let device = crate::default_device();
        let val = PairData::load_val(&state.config, &vocab, device)?;
        let m = train::validate(&model, &val, device);
        tracing::info!("val of the exported weights: {m}");
        Some(m)
    } else {
        None
    };
    let mut dir = build_model_dir(&state, &vocab, &vs, &model, metrics.as_ref(), opts.f16)?;
    let bank = match hubness_bank_bytes(&model, &vocab, &state.config.train_captions, HUBNESS_BANK_SIZE) {
        Ok(bytes) => {
            dir.set_hubness_bank(&bytes, Retrieval::recommended())?;
            Some(bytes)
        }
        Err(e) => {
            tracing::warn!("no hubness bank (the gallery will be ranked by plain cosine): {e:#}");
            None
        }
    };
    write_model_dir_with(&dir, out, bank.as_deref())?;
    if let (Some(plain), Some(_)) = (&metrics, &bank) {
        // The manifest's metrics are the product's scoring (views + hubness); plain cosine kept beside them.
        let cfg = &state.config;
        let cache = &cfg.cache_dir;
        let scored = crate::eval::rank_model_dir(out, &cfg.val_captions, &cfg.images, cache, Some(cfg.backbone_weights.clone()), false)?.metrics();
        tracing::info!("val with the retrieval scoring: {scored}");
        let mut value = serde_json::to_value(scored)?;
        value["cosine_single_view"] = serde_json::to_value(plain)?;
        dir.manifest.metrics = value;
        crate::write_atomic(&out.join(wasm_model::model_dir::MANIFEST_FILE), dir.manifest_json().as_bytes())?;
        return Ok((dir, Some(scored)));
    }
    Ok((dir, metrics))
}

/// Captions in the hubness bank: 2,048 gave t2i R@1 within 0.2 of all 31,650 Flickr8k training captions.
pub const HUBNESS_BANK_SIZE: usize = 2048;

/// `size` training captions spread evenly over the training files, embedded by `model`, as an f16
/// safetensors file (tensor `captions`): what `publish` measures each gallery image's hubness against.
pub fn hubness_bank_bytes(model: &JointModel, vocab: &Vocab, train_captions: &[PathBuf], size: usize) -> Result<Vec<u8>> {
    let ds = crate::data::Dataset::load(train_captions)?.with_captions()?;
    let pairs = ds.pairs();
    if pairs.is_empty() {
        bail!("the training captions hold no captions");
    }
    let step = (pairs.len() as f64 / size as f64).max(1.0);
    let seqs: Vec<Vec<i64>> = (0..size.min(pairs.len())).map(|i| crate::text::encode(vocab, pairs[(i as f64 * step) as usize].0)).collect();
    let rows = crate::model::encode_texts(&model.text, &seqs, 256, crate::default_device());
    let shape: Vec<usize> = rows.size().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = Vec::<f32>::try_from(rows.to_kind(Kind::Float).flatten(0, -1))?;
    let bytes: Vec<u8> = data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, shape, &bytes)?;
    Ok(safetensors::serialize([("captions", view)], None)?)
}

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
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                Dtype::F16 => view.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                other => bail!("{file}: tensor {name} has dtype {other:?}, expected F32 or F16"),
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if shape != var.size() {
                bail!("{file}: tensor {name} has shape {shape:?}, the manifest implies {:?}", var.size());
            }
            var.copy_(&Tensor::from_slice(&data).view(shape.as_slice()).to_device(var.device()));
        }
        Ok(())
    })
}

/// Loads a model directory (validated by wasm-model: checksums, shapes, ids) into a tch model.
pub fn load_model_dir(path: &Path, device: tch::Device) -> Result<LoadedModel> {
    load_model_dir_with(path, None, device)
}

/// [`load_model_dir`] with the stock backbone weights a fine-tuned model builds on (default: the installed ones).
pub fn load_model_dir_with(path: &Path, backbone_weights: Option<&Path>, device: tch::Device) -> Result<LoadedModel> {
    let dir = ModelDir::load(path).with_context(|| format!("cannot load model directory {}", path.display()))?;
    let m = &dir.manifest;
    let backbone = match m.image.backbone {
        model_dir::Backbone::EfficientnetLite0 => BackboneKind::EfficientnetLite0,
        model_dir::Backbone::Densenet121 => BackboneKind::Densenet121,
    };
    // tch preprocesses with the backbone's own constants; the browser reads the manifest's. Refuse a disagreement
    // rather than embed photos differently on the two sides.
    let prep = Preprocess::for_backbone(backbone);
    let close = |a: &[f32; 3], b: &[f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    if m.image.image_size != prep.size as usize || !close(&m.image.mean, &prep.mean) || !close(&m.image.std, &prep.std) {
        bail!(
            "{}: manifest image preprocessing (size {}, mean {:?}, std {:?}) differs from what {} expects (size {}, mean {:?}, std {:?}); re-export the model with `trainer export`",
            path.join("manifest.json").display(), m.image.image_size, m.image.mean, m.image.std, backbone, prep.size, prep.mean, prep.std
        );
    }
    let pooling = match m.text.pooling {
        model_dir::Pooling::Last => Pooling::Last,
        model_dir::Pooling::Mean => Pooling::Mean,
        model_dir::Pooling::Max => Pooling::Max,
    };
    let tc = crate::model::TextConfig {
        vocab_size: m.text.vocab_size as i64,
        word_dim: m.text.word_dim as i64,
        hidden_dim: m.text.hidden_dim as i64,
        layers: m.text.layers as i64,
        bidirectional: m.text.bidirectional,
        pooling,
    };
    let vs = nn::VarStore::new(device);
    let image_pooling = match m.image.pooling {
        model_dir::ImagePooling::Avg => ImagePooling::Avg,
        model_dir::ImagePooling::Gpo => ImagePooling::Gpo,
    };
    // A fine-tuned backbone: the stock weights, then the model's trained layers over them.
    let stock = backbone_weights.map(Path::to_path_buf).unwrap_or_else(|| crate::backbone::assets_dir().join(backbone.default_weights_file()));
    let tail = m.image.finetuned_from.map(|k| (backbone, k, stock.as_path()));
    let model = JointModel::with_image(&vs, &tc, m.image.feature_dim as i64, m.embed_dim as i64, image_pooling, tail)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TextConfig;

    #[test]
    fn timestamp_is_rfc3339() {
        let t = humantime_now();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }

    /// export → load round trip: same vectors from the loaded tch model, f16 within rounding.
    #[test]
    fn export_load_round_trip() {
        tch::manual_seed(5);
        let vocab = crate::text::build_vocab(["a dog runs on grass", "a cat"], &[], 1, 100);
        let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 8, layers: 1, bidirectional: true, pooling: Pooling::Max };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = JointModel::new(&vs, &tc, 16, 6);
        let state = RunState {
            config: crate::train::tests::tiny_config(),
            epochs_done: 1,
            step: 1,
            best_epoch: Some(1),
            best_rsum: 0.0,
            history: vec![],
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        let ids = vec![crate::text::encode(&vocab, "a dog runs"), crate::text::encode(&vocab, "cat on grass")];
        let want = crate::model::encode_texts(&model.text, &ids, 8, tch::Device::Cpu);
        let feats = Tensor::randn([3, 16], (Kind::Float, tch::Device::Cpu));
        let want_img = model.image.forward(&feats);
        for f16 in [false, true] {
            let md = build_model_dir(&state, &vocab, &vs, &model, None, f16).unwrap();
            write_model_dir(&md, &dir).unwrap();
            let back = load_model_dir(&dir, tch::Device::Cpu).unwrap();
            assert_eq!(back.dir.model_id(), md.model_id());
            let got = crate::model::encode_texts(&back.model.text, &ids, 8, tch::Device::Cpu);
            let tol = if f16 { 5e-3 } else { 1e-6 };
            assert!((&got - &want).abs().max().double_value(&[]) < tol, "f16={f16}");
            let got_img = back.model.image.forward(&feats);
            assert!((&got_img - &want_img).abs().max().double_value(&[]) < tol);
        }
        // a manifest whose preprocessing disagrees with the backbone is refused (the browser would follow it)
        let manifest = dir.join("manifest.json");
        let good = std::fs::read_to_string(&manifest).unwrap();
        let mut m: serde_json::Value = serde_json::from_str(&good).unwrap();
        m["image"]["mean"] = serde_json::json!([0.485, 0.456, 0.406]);
        std::fs::write(&manifest, m.to_string()).unwrap();
        let e = format!("{:#}", load_model_dir(&dir, tch::Device::Cpu).err().unwrap());
        assert!(e.contains("preprocessing"), "{e}");
        std::fs::write(&manifest, good).unwrap();
        // a tampered weight file is refused with the file named
        std::fs::write(dir.join("text_encoder.safetensors"), b"garbage").unwrap();
        let e = format!("{:#}", load_model_dir(&dir, tch::Device::Cpu).err().unwrap());
        assert!(e.contains("text_encoder.safetensors"), "{e}");
    }
}

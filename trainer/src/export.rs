//! `trainer export`: a run folder → the model directory the browser and CLI load (wasm-model's contract), and
//! `trainer export-image-encoder` (the backbone file the page embeds the user's photos with).
//!
//! With `f16`, weights are rounded to f16 *before* the validation metrics are measured, so the manifest's
//! `metrics` are those of the exact exported weights. The directory is written beside the target and renamed
//! into place, so a failed export leaves the previous model untouched.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{nn, Kind};
use wasm_model::model_dir::{self, ImageConfig, ModelDir, Retrieval};
use wasm_model::tensors::{self, FloatDtype};

use crate::backbone::preprocess::Preprocess;
use crate::backbone::{BackboneKind, BackboneKindExt};
use crate::metrics::Metrics;
use crate::model::JointModel;
use crate::pairs::{validate, PairData};
use crate::run::{load_run, Checkpoint, RunState};
use crate::text::Vocab;

pub struct ExportOptions {
    pub f16: bool,
    /// Measure val metrics (needs the val images or their cached features).
    pub evaluate: bool,
}

/// Serialises the variables below `prefix.` (prefix stripped) as safetensors, f16 or f32.
pub fn safetensors_bytes(vs: &nn::VarStore, prefix: &str, f16: bool) -> Result<Vec<u8>> {
    safetensors_bytes_of(vs, prefix, f16, |_| true)
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
    safetensors_bytes_of(vs, "image", f16, |name| {
        !name.starts_with("image.backbone.")
            || name.rsplit_once('.').is_some_and(|(layer, _)| trained_layers.contains(layer))
    })
}

/// The variables below `prefix.` whose full names `keep` accepts, as a safetensors file (prefix stripped).
fn safetensors_bytes_of(vs: &nn::VarStore, prefix: &str, f16: bool, keep: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    let mut named: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (name, t) in vs.variables() {
        if !keep(&name) {
            continue;
        }
        let Some(short) = name.strip_prefix(&format!("{prefix}.")) else { continue };
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data: Vec<f32> = Vec::<f32>::try_from(t.to_device(tch::Device::Cpu).to_kind(Kind::Float).flatten(0, -1))?;
        named.push((short.to_string(), shape, data));
    }
    if named.is_empty() {
        bail!("no variables under `{prefix}`");
    }
    Ok(tensors::to_safetensors(&named, FloatDtype::half_if(f16))?)
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
    check_weights_finite(vs)?;
    let backbone = state.config.image.backbone.backbone;
    let tc = &model.text.config;
    let text = model_dir::TextConfig {
        vocab_size: tc.vocab_size as usize,
        word_dim: tc.word_dim as usize,
        hidden_dim: tc.hidden_dim as usize,
        layers: tc.layers as usize,
        bidirectional: tc.bidirectional,
        pooling: tc.pooling,
    };
    let prep = Preprocess::for_backbone(backbone);
    let image = ImageConfig {
        backbone,
        feature_dim: model.feature_dim as usize,
        image_size: prep.size as usize,
        mean: prep.mean,
        std: prep.std,
        pooling: model.image.pooling(),
        finetuned_from: model.tail.as_ref().map(|t| t.from),
    };
    let training = crate::record::training_record(state, f16)?;
    let metrics = metrics.map(|m| serde_json::to_value(m).expect("metrics serialise")).unwrap_or(serde_json::Value::Null);
    let created = now_rfc3339();
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

/// Refuses weights holding a NaN or an infinity (a diverged run): exported, they would score every image alike.
pub fn check_weights_finite(vs: &nn::VarStore) -> Result<()> {
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((name, _)) = vars.iter().find(|(_, t)| !bool::try_from(t.isfinite().all()).unwrap_or(false)) {
        bail!("weight {name} is not finite (NaN or infinity): the run diverged; refusing to export it (train again with a lower --lr)");
    }
    Ok(())
}

/// Now as an RFC 3339 UTC timestamp to the second (`2026-11-29T14:03:07Z`), the manifest's `created`.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339).expect("a UTC time formats as RFC 3339")
}

/// Writes `dir` to `out` atomically (sibling temp folder, then rename); refuses an `out` that holds anything
/// but a model directory.
pub fn write_model_dir(dir: &ModelDir, out: &Path) -> Result<()> {
    write_model_dir_with_hubness_bank(dir, out, None)
}

/// The files a model directory may hold: what an export or `export-image-encoder` writes.
const MODEL_DIR_FILES: [&str; 6] = [
    model_dir::MANIFEST_FILE,
    model_dir::VOCAB_FILE,
    model_dir::TEXT_ENCODER_FILE,
    model_dir::IMAGE_HEAD_FILE,
    model_dir::IMAGE_ENCODER_FILE,
    model_dir::HUBNESS_BANK_FILE,
];

/// Refuses to replace `out` unless it is absent, an empty folder, or a model directory (a `manifest.json` of
/// format `imgpick-model`) holding only files an export writes: the whole folder is replaced, so anything
/// else in it would be lost (`--out static` for `static/model` once deleted the page).
fn check_replaceable(out: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read --out {}", out.display())),
    };
    if !meta.is_dir() {
        bail!("--out {} is not a folder (a file or link is in the way); choose a folder for the model directory", out.display());
    }
    let mut names: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("cannot list --out {}", out.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list --out {}", out.display()))?;
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let shown = |names: &[String]| {
        let mut s = names.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        if names.len() > 8 {
            s.push_str(&format!(" and {} more", names.len() - 8));
        }
        s
    };
    let manifest: Option<serde_json::Value> =
        std::fs::read(out.join(model_dir::MANIFEST_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if manifest.as_ref().and_then(|m| m["format"].as_str()) != Some(model_dir::MODEL_FORMAT) {
        bail!(
            "--out {} is not empty and is not a model directory (it holds {}): refusing to replace it. Pass the \
             model directory itself (e.g. static/model) or a new or empty folder",
            out.display(),
            shown(&names)
        );
    }
    let foreign: Vec<String> = names.into_iter().filter(|n| !MODEL_DIR_FILES.contains(&n.as_str())).collect();
    if !foreign.is_empty() {
        bail!(
            "--out {} is a model directory but also holds {}, which an export would delete: move them out \
             first or choose another --out",
            out.display(),
            shown(&foreign)
        );
    }
    Ok(())
}

/// [`write_model_dir`], plus the hubness bank the manifest names (`files.hubness_bank`). `out` must be new,
/// empty or a model directory ([`check_replaceable`]).
pub fn write_model_dir_with_hubness_bank(dir: &ModelDir, out: &Path, hubness_bank: Option<&[u8]>) -> Result<()> {
    check_replaceable(out)?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
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
pub fn export_run(run: &Path, which: Checkpoint, out: &Path, opts: &ExportOptions) -> Result<(ModelDir, Option<Metrics>)> {
    check_replaceable(out)?; // before the minutes of evaluation
    let (state, vocab, vs, model) = load_run(run, which)?;
    if opts.f16 {
        round_to_f16(&vs);
    }
    let metrics = if opts.evaluate {
        let device = crate::default_device();
        let val = PairData::load_val(&state.config, &vocab, device)?;
        let m = validate(&model, &val, device)?;
        tracing::info!("val of the exported weights: {m}");
        Some(m)
    } else {
        None
    };
    let mut dir = build_model_dir(&state, &vocab, &vs, &model, metrics.as_ref(), opts.f16)?;
    let bank = match hubness_bank_bytes(&model, &vocab, &state.config.data.train_captions, HUBNESS_BANK_SIZE) {
        Ok(bytes) => {
            dir.set_hubness_bank(&bytes, Retrieval::recommended())?;
            Some(bytes)
        }
        Err(e) => {
            tracing::warn!("no hubness bank (the gallery will be ranked by plain cosine): {e:#}");
            None
        }
    };
    write_model_dir_with_hubness_bank(&dir, out, bank.as_deref())?;
    if let (Some(plain), Some(_)) = (&metrics, &bank) {
        // The manifest's metrics are the product's scoring (views + hubness); plain cosine kept beside them.
        let (data, weights) = (&state.config.data, state.config.image.backbone.weights());
        let scored = crate::eval::rank_model_dir(out, &data.val_captions, &data.images, &data.cache_dir, Some(weights), false)?.ranks.metrics();
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
    Ok(tensors::to_safetensors(&[("captions", shape, data)], FloatDtype::F16)?)
}

/// `trainer export-image-encoder`: adds the stock backbone weights the page embeds the user's photos with
/// (`image_encoder.safetensors`, f16 unless `f32`) to the model directory `model`; model_id and the other files
/// stay as they are. `weights`: a lukemelas-layout file of the model's Lite variant (default: the installed one).
/// Returns the file's size.
pub fn add_image_encoder(model: &Path, weights: Option<&Path>, f32: bool) -> Result<usize> {
    let dir = ModelDir::load(model).with_context(|| format!("cannot load model directory {}", model.display()))?;
    let backbone: BackboneKind = dir.manifest.image.backbone;
    if wasm_model::image_encoder::LiteArch::of(backbone).is_none() {
        bail!("{}: the browser image encoder supports the EfficientNet-Lite family only (this model's backbone is {})", model.display(), backbone.name());
    }
    let weights = weights.map(Path::to_path_buf).unwrap_or_else(|| backbone.installed_weights());
    let reference = std::fs::read(&weights)
        .with_context(|| format!("cannot read backbone weights {}: {}", weights.display(), backbone.weights_hint()))?;
    let bytes = wasm_model::image_encoder::image_encoder_safetensors(&reference, !f32)?;
    // Build it once to prove the file and the model's image head work together before writing.
    let head = dir.image_head.as_deref().context("the model has no image_head.safetensors")?;
    wasm_model::ImageEncoder::new(&dir.manifest.image, dir.manifest.embed_dim, &bytes, head)?;
    ModelDir::add_image_encoder(model, &bytes)?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use tch::Tensor;
    use wasm_model::model_dir::Pooling;

    use super::*;
    use crate::load::load_model_dir;
    use crate::model::TextConfig;

    #[test]
    fn timestamp_is_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }

    /// export → load round trip: same vectors from the loaded tch model, f16 within rounding.
    #[test]
    fn export_load_round_trip() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a seed here breaks replays elsewhere
        tch::manual_seed(5);
        let vocab = crate::text::build_vocab(["a dog runs on grass", "a cat"], &[], 1, 100);
        let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 8, layers: 1, bidirectional: true, pooling: Pooling::Max };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = JointModel::new(&vs, &tc, 16, 6);
        let state = RunState { epochs_done: 1, step: 1, best_epoch: Some(1), best_rsum: 0.0, ..RunState::new(crate::train::tests::tiny_config()) };
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
        // weights with a NaN (a diverged run) are refused, naming the tensor, and nothing is exported
        let _ = tch::no_grad(|| vs.variables()["text.proj.bias"].shallow_clone().fill_(f64::NAN));
        let e = format!("{:#}", build_model_dir(&state, &vocab, &vs, &model, None, false).unwrap_err());
        assert!(e.contains("text.proj.bias") && e.contains("not finite") && e.contains("diverged"), "{e}");
        // a tampered weight file is refused with the file named
        std::fs::write(dir.join("text_encoder.safetensors"), b"garbage").unwrap();
        let e = format!("{:#}", load_model_dir(&dir, tch::Device::Cpu).err().unwrap());
        assert!(e.contains("text_encoder.safetensors"), "{e}");
    }

    /// `--out` pointed at a folder that is not a model directory (a copy of `static/`: a typo for
    /// `static/model`) is refused and left exactly as it was, and so is a model directory holding files an
    /// export would not write; an empty folder or a previous model directory is replaced.
    #[test]
    fn export_refuses_to_replace_a_folder_that_is_not_a_model_directory() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a draw here breaks replays elsewhere
        let vocab = crate::text::build_vocab(["a dog", "a cat"], &[], 1, 100);
        let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 4, layers: 1, bidirectional: false, pooling: Pooling::Mean };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = JointModel::new(&vs, &tc, 8, 4);
        let state = RunState::new(crate::train::tests::tiny_config());
        let md = build_model_dir(&state, &vocab, &vs, &model, None, false).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("static");
        for f in ["app.js", "pkg/wasm_model.js", "gallery/gallery.json", "model/manifest.json"] {
            std::fs::create_dir_all(site.join(f).parent().unwrap()).unwrap();
            std::fs::write(site.join(f), f).unwrap();
        }
        let e = format!("{:#}", write_model_dir(&md, &site).unwrap_err());
        assert!(e.contains("not a model directory") && e.contains("app.js") && e.contains(&site.display().to_string()), "{e}");
        for f in ["app.js", "pkg/wasm_model.js", "gallery/gallery.json", "model/manifest.json"] {
            assert_eq!(std::fs::read_to_string(site.join(f)).unwrap(), f, "{f} untouched");
        }
        // an empty folder and a previous export are replaced
        let out = tmp.path().join("model");
        std::fs::create_dir(&out).unwrap();
        write_model_dir(&md, &out).unwrap();
        write_model_dir(&md, &out).unwrap();
        assert!(out.join("manifest.json").is_file());
        // a model directory with someone's notes in it: refused, notes kept
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let e = format!("{:#}", write_model_dir(&md, &out).unwrap_err());
        assert!(e.contains("notes.txt"), "{e}");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
        // a file where the folder should be
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(format!("{:#}", write_model_dir(&md, &file).unwrap_err()).contains("not a folder"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    }
}

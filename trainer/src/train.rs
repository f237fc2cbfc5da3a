//! Training on cached backbone features: typed config, Adam with per-group learning rates, warm-up → cosine
//! LR schedule, global-norm gradient clipping, fixed seeds, atomic per-epoch checkpoints with optimizer state
//! (so `--resume` continues a killed run exactly at the last finished epoch), best epoch kept by val rsum.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::backbone::BackboneKind;
use crate::data::Dataset;
use crate::eval::{evaluate, Metrics};
use crate::features::{self, CacheSpec, View};
use crate::loss::{contrastive, Loss};
use crate::model::{encode_texts, pad_batch, ImagePooling, JointModel, Pooling, TextConfig};
use crate::text::{self, Glove, Vocab};

/// Everything that defines a run; saved with every checkpoint and into the exported manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub train_captions: Vec<PathBuf>,
    pub val_captions: PathBuf,
    pub images: PathBuf,
    pub backbone: BackboneKind,
    pub backbone_weights: PathBuf,
    pub glove: PathBuf,
    pub cache_dir: PathBuf,
    pub use_flips: bool,
    pub min_count: usize,
    pub vocab_size: usize,
    pub embed_dim: i64,
    pub hidden_dim: i64,
    pub layers: i64,
    pub bidirectional: bool,
    pub pooling: Pooling,
    pub word_dropout: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Multiplier of `lr` for the word embeddings (0 freezes GloVe).
    pub embedding_lr_scale: f64,
    pub weight_decay: f64,
    pub lr_warmup_steps: usize,
    pub grad_clip: f64,
    /// `vse` (sum of negatives during `warmup_epochs`, then hardest) or `infonce`.
    pub loss: String,
    pub margin: f64,
    pub tau: f64,
    pub warmup_epochs: usize,
    pub seed: u64,
    /// Fine-tune the backbone from this stage on (on cached stage activations); `None` keeps it frozen and
    /// trains on pooled features.
    #[serde(default)]
    pub finetune_from: Option<usize>,
    /// Multiplier of `lr` for the fine-tuned backbone stages.
    #[serde(default = "default_backbone_lr_scale")]
    pub backbone_lr_scale: f64,
    /// Pooling of the feature grid (`gpo` needs `finetune_from`: the cache then holds grids, not vectors).
    #[serde(default)]
    pub image_pooling: ImagePooling,
    /// End-to-end fine-tuning: random square crops whose side is this fraction (or more) of the shorter image
    /// side, at a random position; 1 = the usual centre crop only.
    #[serde(default = "default_crop_scale")]
    pub crop_scale: f64,
    /// Cached training views (manifest view names, e.g. `zoom-tl`); each pair is shown one at random per
    /// step. Empty: `original`, plus `flipped` with `use_flips`.
    #[serde(default)]
    pub train_views: Vec<String>,
}

fn default_backbone_lr_scale() -> f64 {
    0.1
}

fn default_crop_scale() -> f64 {
    1.0
}

impl Default for Config {
    /// The CLI's defaults (Flickr8k paths as laid out beside the repository).
    fn default() -> Self {
        let f8k = PathBuf::from("../shared/data/flickr8k");
        Config {
            train_captions: vec![f8k.join("captions_train.json"), f8k.join("captions_train_extra.json")],
            val_captions: f8k.join("captions_val.json"),
            images: f8k.join("images"),
            backbone: BackboneKind::EfficientnetLite0,
            backbone_weights: crate::backbone::assets_dir().join(BackboneKind::EfficientnetLite0.default_weights_file()),
            glove: Glove::default_path(),
            cache_dir: PathBuf::from("data-cache/features"),
            use_flips: false,
            min_count: 1,
            vocab_size: 20000,
            embed_dim: 512,
            hidden_dim: 512,
            layers: 1,
            bidirectional: false,
            pooling: Pooling::Last,
            word_dropout: 0.0,
            epochs: 12,
            batch_size: 128,
            lr: 2e-4,
            embedding_lr_scale: 0.1,
            weight_decay: 0.0,
            lr_warmup_steps: 200,
            grad_clip: 2.0,
            loss: "vse".into(),
            margin: 0.2,
            tau: 0.05,
            warmup_epochs: 2,
            seed: 0,
            finetune_from: None,
            backbone_lr_scale: default_backbone_lr_scale(),
            image_pooling: ImagePooling::Avg,
            crop_scale: default_crop_scale(),
            train_views: Vec::new(),
        }
    }
}

impl Config {
    /// The cached views training draws from (see `train_views`).
    pub fn views(&self) -> Result<Vec<View>> {
        if self.train_views.is_empty() {
            return Ok(if self.use_flips { vec![View::ORIGINAL, View::FLIPPED] } else { vec![View::ORIGINAL] });
        }
        self.train_views
            .iter()
            .map(|name| View::parse(name).with_context(|| format!("--train-views: {name:?} is not a view ({})", View::NAMES)))
            .collect()
    }
}

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

pub const STATE_FILE: &str = "state.json";
pub const LAST_CKPT: &str = "last.safetensors";
pub const BEST_CKPT: &str = "best.safetensors";
pub const VOCAB_FILE: &str = "vocab.txt";

/// Image-side training data: per view, pooled features `[N, C]` (frozen backbone) or the stage-`k`
/// activations `[N, C_k, h, w]` (f16, fine-tuning from stage `k`); and caption ids with their image index.
pub struct PairData {
    pub views: Vec<Tensor>,
    /// The image files in dataset order; with `decode` (end-to-end fine-tuning, `finetune_from == Some(0)`)
    /// batches are decoded from them instead of read from `views` (empty then).
    pub files: Vec<PathBuf>,
    pub decode: bool,
    pub preprocess: crate::backbone::preprocess::Preprocess,
    pub captions: Vec<Vec<i64>>,
    pub caption_image: Vec<usize>,
    pub image_ids: Vec<i64>,
}

impl PairData {
    pub fn load(cfg: &Config, captions: &[PathBuf], vocab: &Vocab, views: &[View], device: Device) -> Result<Self> {
        let ds = Dataset::load(captions)?.with_captions()?;
        let files = ds.image_paths(&cfg.images);
        let spec = CacheSpec { backbone: cfg.backbone, weights: cfg.backbone_weights.clone(), split: cfg.finetune_from };
        let mut feats = Vec::new();
        let mut ok = vec![true; files.len()];
        let decode = cfg.finetune_from == Some(0);
        if decode {
            // Nothing to cache before stage 0: batches are decoded as they come. Check headers now so that
            // unreadable files are left out (and reported) up front.
            for (o, f) in ok.iter_mut().zip(&files) {
                if let Err(e) = image::image_dimensions(f) {
                    tracing::warn!("skipping unreadable image {}: {e}", f.display());
                    *o = false;
                }
            }
        }
        for &v in views.iter().filter(|_| !decode) {
            let f = features::extract(&cfg.cache_dir, &spec, v, &files, device)?;
            for (o, fo) in ok.iter_mut().zip(&f.ok) {
                *o &= *fo;
            }
            feats.push(match (cfg.finetune_from, f.act) {
                (Some(_), Some(act)) => act.to_device(device),
                (Some(k), None) => bail!("feature cache has no stage-{k} activations"),
                (None, _) => f.pooled.to_device(device),
            });
        }
        let mut captions = Vec::new();
        let mut caption_image = Vec::new();
        for (c, i) in ds.pairs() {
            if ok[i] {
                captions.push(text::encode(vocab, c));
                caption_image.push(i);
            }
        }
        let skipped = ok.iter().filter(|o| !**o).count();
        if skipped > 0 {
            tracing::warn!("{skipped} unreadable images (and their captions) left out");
        }
        Ok(PairData {
            views: feats,
            files,
            decode,
            preprocess: crate::backbone::preprocess::Preprocess::for_backbone(cfg.backbone),
            captions,
            caption_image,
            image_ids: ds.images.iter().map(|im| im.id as i64).collect(),
        })
    }

    /// Decodes images `idx` (augmented as `aug` says) into `[B, 3, S, S]`, one thread per core.
    pub fn decode_images(&self, idx: &[usize], aug: &[Augment]) -> Result<Tensor> {
        decode_batch(&self.files, &self.preprocess, idx, aug)
    }

    /// Validation set in the VSE protocol (5 captions per image).
    pub fn load_val(cfg: &Config, vocab: &Vocab, device: Device) -> Result<Self> {
        let ds = Dataset::load(std::slice::from_ref(&cfg.val_captions))?.with_captions()?.truncate_captions(5);
        let tmp = std::env::temp_dir().join(format!("imgpick-val-{}.json", std::process::id()));
        // Reuse `load` (cache, broken-image handling) on the truncated set.
        let json = serde_json::json!({
            "images": ds.images.iter().map(|im| serde_json::json!({"id": im.id, "file_name": im.file_name})).collect::<Vec<_>>(),
            "annotations": ds.images.iter().flat_map(|im| im.captions.iter().map(move |c| serde_json::json!({"image_id": im.id, "caption": c}))).collect::<Vec<_>>(),
        });
        std::fs::write(&tmp, serde_json::to_vec(&json)?)?;
        let r = Self::load(cfg, std::slice::from_ref(&tmp), vocab, &[View::ORIGINAL], device);
        let _ = std::fs::remove_file(&tmp);
        r
    }
}

/// How one image of an end-to-end fine-tuning batch is augmented.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Augment {
    pub flip: bool,
    /// Square crop: (side as a fraction of the shorter side, x and y position in 0..1 of the free range).
    pub crop: Option<(f32, f32, f32)>,
}

impl Augment {
    /// The augmentation of the `position`-th pair of `epoch`: a pure function of (seed, epoch, position), so a
    /// resumed run sees the same images and a decoder thread needs no shared random generator.
    pub fn for_pair(cfg: &Config, epoch: usize, position: usize) -> Self {
        let mut s = cfg.seed ^ (epoch as u64).wrapping_mul(0xA24BAED4963EE407) ^ (position as u64).wrapping_mul(0x9FB21C651E98DF25);
        let mut next = || {
            // splitmix64 -> uniform in [0, 1)
            s = s.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
        };
        let flip = cfg.use_flips && next() < 0.5;
        let crop = (cfg.crop_scale < 1.0).then(|| {
            let side = cfg.crop_scale as f32 + (1.0 - cfg.crop_scale as f32) * next();
            (side, next(), next())
        });
        Augment { flip, crop }
    }

    fn apply(&self, img: image::DynamicImage) -> image::DynamicImage {
        let Some((side, px, py)) = self.crop else { return img };
        let (w, h) = (img.width(), img.height());
        let s = ((w.min(h) as f32 * side).round() as u32).clamp(1, w.min(h));
        let x = ((w - s) as f32 * px) as u32;
        let y = ((h - s) as f32 * py) as u32;
        img.crop_imm(x, y, s, s)
    }
}

/// Rows `img_idx` of the cached views, each from one view drawn at random (libtorch's generator, so a
/// seeded run replays). Two views keep the coin flip of runs made before zoomed views existed.
pub fn random_views(views: &[Tensor], img_idx: &Tensor) -> Tensor {
    let device = img_idx.device();
    let mut shape = vec![1i64; views[0].dim()];
    shape[0] = img_idx.size()[0];
    match views.len() {
        1 => views[0].index_select(0, img_idx),
        2 => {
            let pick = Tensor::rand(shape.as_slice(), (Kind::Float, device)).lt(0.5);
            views[0].index_select(0, img_idx).where_self(&pick, &views[1].index_select(0, img_idx))
        }
        n => {
            let pick = Tensor::randint(n as i64, shape.as_slice(), (Kind::Int64, device));
            let mut rows = views[0].index_select(0, img_idx);
            for (v, view) in views.iter().enumerate().skip(1) {
                rows = view.index_select(0, img_idx).where_self(&pick.eq(v as i64), &rows);
            }
            rows
        }
    }
}

/// Decodes images `idx` of `files` (augmented as `aug` says) into `[B, 3, S, S]`, one thread per core.
pub fn decode_batch(files: &[PathBuf], prep: &crate::backbone::preprocess::Preprocess, idx: &[usize], aug: &[Augment]) -> Result<Tensor> {
    assert_eq!(idx.len(), aug.len());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per = idx.len().div_ceil(threads).max(1);
    let tensors: Vec<Tensor> = std::thread::scope(|scope| {
        let jobs: Vec<_> = idx
            .chunks(per)
            .zip(aug.chunks(per))
            .map(|(ids, augs)| {
                scope.spawn(move || -> Result<Vec<Tensor>> {
                    ids.iter()
                        .zip(augs)
                        .map(|(&i, a)| {
                            let img = crate::backbone::preprocess::open_image(&files[i])?;
                            let t = prep.image_to_input(&a.apply(img));
                            Ok(if a.flip { t.flip([2]) } else { t })
                        })
                        .collect()
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().expect("decoder thread")).collect::<Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    Ok(Tensor::stack(&tensors, 0))
}

/// Joint-space vectors of every image of `data`'s first view (no grad, in chunks), on the CPU.
pub fn embed_view(model: &JointModel, data: &PairData) -> Tensor {
    if data.decode {
        let device = model.image_device();
        let parts: Vec<Tensor> = (0..data.files.len())
            .collect::<Vec<_>>()
            .chunks(64)
            .map(|ids| {
                // unreadable images were checked at load; a zero row keeps the indices aligned
                let x = data.decode_images(ids, &vec![Augment::default(); ids.len()]).unwrap_or_else(|e| {
                    tracing::warn!("{e:#}");
                    let s = data.preprocess.size as i64;
                    Tensor::zeros([ids.len() as i64, 3, s, s], (Kind::Float, Device::Cpu))
                });
                tch::no_grad(|| model.embed_images(None, &x.to_device(device))).to_device(Device::Cpu)
            })
            .collect();
        return Tensor::cat(&parts, 0);
    }
    let n = data.views[0].size()[0];
    tch::no_grad(|| {
        let parts: Vec<Tensor> = (0..n)
            .step_by(256)
            .map(|i| model.embed_cached(&data.views[0].narrow(0, i, (n - i).min(256))).to_device(Device::Cpu))
            .collect();
        Tensor::cat(&parts, 0)
    })
}

/// Metrics of `model` on `data` (first view).
pub fn validate(model: &JointModel, data: &PairData, device: Device) -> Metrics {
    let imgs = embed_view(model, data);
    let caps = encode_texts(&model.text, &data.captions, 256, device);
    evaluate(&imgs, &caps, &data.caption_image)
}

/// The learning-rate multiplier of variable `name`: the GloVe embedding and the fine-tuned backbone layers learn
/// slower than the rest.
fn lr_scale(name: &str, embedding_lr_scale: f64, backbone_lr_scale: f64) -> f64 {
    if name == "text.embedding.weight" {
        embedding_lr_scale
    } else if name.starts_with("image.backbone.") {
        backbone_lr_scale
    } else {
        1.0
    }
}

/// Adam with decoupled weight decay, state saved in checkpoints (tch's optimizer state cannot be saved).
/// Public for the train-step bench, which times exactly this update.
pub struct Adam {
    params: Vec<(String, Tensor, f64)>, // name, variable, lr scale
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    pub fn new(vs: &nn::VarStore, embedding_lr_scale: f64, backbone_lr_scale: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params: Vec<(String, Tensor, f64)> = vars
            .into_iter()
            .map(|(n, t)| {
                let scale = lr_scale(&n, embedding_lr_scale, backbone_lr_scale);
                (n, t, scale)
            })
            .collect();
        let m = params.iter().map(|(_, t, _)| t.zeros_like()).collect();
        let v = params.iter().map(|(_, t, _)| t.zeros_like()).collect();
        Adam { params, m, v, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// Gradients of `loss` for every parameter, in `params` order (undefined where the loss does not reach
    /// it). They come straight from the autograd engine instead of accumulating into zeroed `.grad`
    /// tensors: that zeroing pass cost tch ~12 % of a training step against PyTorch, which sets
    /// gradients to None (docs/benchmarks.md).
    pub fn gradients(&self, loss: &Tensor) -> Vec<Tensor> {
        let params: Vec<&Tensor> = self.params.iter().map(|(_, p, _)| p).collect();
        Tensor::run_backward(&[loss], &params, false, false)
    }

    /// Clips gradients to a global L2 norm; returns the norm before clipping.
    pub fn clip(&self, grads: &mut [Tensor], max_norm: f64) -> f64 {
        let squares: Vec<Tensor> = grads.iter().filter(|g| g.defined()).map(|g| g.pow_tensor_scalar(2).sum(Kind::Float)).collect();
        if squares.is_empty() {
            return 0.0;
        }
        // One device-to-host read per step, not one per tensor (each is a sync on a GPU).
        let norm = Tensor::stack(&squares, 0).sum(Kind::Double).double_value(&[]).sqrt();
        if max_norm > 0.0 && norm > max_norm {
            let s = max_norm / (norm + 1e-6);
            // Out of place: the engine may hand the same tensor to two parameters.
            tch::no_grad(|| {
                for g in grads.iter_mut().filter(|g| g.defined()) {
                    *g = &*g * s;
                }
            });
        }
        norm
    }

    pub fn step(&mut self, grads: &[Tensor], lr: f64, weight_decay: f64, t: usize) {
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        tch::no_grad(|| {
            for (i, ((_, p, scale), g)) in self.params.iter().zip(grads).enumerate() {
                if !g.defined() || *scale == 0.0 {
                    continue;
                }
                let lr = lr * scale;
                // In place, as torch.optim.Adam does it: the temporaries of the textbook form cost ~4 ms
                // a step on 2 cores (trainer/benches/train_step.rs).
                let _ = self.m[i].lerp_(g, 1.0 - b1);
                let _ = self.v[i].lerp_(&(g * g), 1.0 - b2);
                let mut denom = self.v[i].sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt()).g_add_scalar_(self.eps);
                // addcdiv_ has no `value` argument: fold -lr / bc1 into the denominator.
                let _ = denom.g_mul_scalar_(-bc1 / lr);
                let mut p = p.shallow_clone();
                if weight_decay > 0.0 && p.dim() > 1 {
                    let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                if lr > 0.0 {
                    let _ = p.addcdiv_(&self.m[i], &denom);
                }
            }
        });
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (n, _, _)) in self.params.iter().enumerate() {
            out.push((format!("adam_m.{n}"), self.m[i].shallow_clone()));
            out.push((format!("adam_v.{n}"), self.v[i].shallow_clone()));
        }
        out
    }
}

fn lr_at(cfg: &Config, step: usize, total: usize) -> f64 {
    if step < cfg.lr_warmup_steps {
        return cfg.lr * (step + 1) as f64 / cfg.lr_warmup_steps as f64;
    }
    // cosine decay to 5% of the peak over the run
    let p = (step - cfg.lr_warmup_steps) as f64 / (total.saturating_sub(cfg.lr_warmup_steps)).max(1) as f64;
    cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
}

fn loss_for_epoch(cfg: &Config, epoch: usize) -> Result<Loss> {
    Ok(match cfg.loss.as_str() {
        "vse" => Loss::Vse { margin: cfg.margin, hardest: epoch >= cfg.warmup_epochs },
        "infonce" => Loss::InfoNce { tau: cfg.tau },
        other => bail!("unknown loss {other:?}: use vse or infonce"),
    })
}

/// Deterministic permutation for (seed, epoch): resuming at an epoch boundary replays the same order.
fn permutation(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut s = seed ^ (epoch as u64).wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        idx.swap(i, (s % (i as u64 + 1)) as usize);
    }
    idx
}

fn save_checkpoint(vs: &nn::VarStore, adam: Option<&Adam>, path: &Path) -> Result<()> {
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
pub(crate) fn load_checkpoint(vs: &mut nn::VarStore, path: &Path, adam: Option<&mut Adam>) -> Result<()> {
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read checkpoint {} (is the run folder complete?)", path.display()))?;
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let t = map.get(&name).with_context(|| format!("checkpoint {} lacks tensor {name}", path.display()))?;
            if t.size() != var.size() {
                bail!("checkpoint {}: {name} has shape {:?}, model expects {:?} (different config?)", path.display(), t.size(), var.size());
            }
            var.copy_(t);
        }
        if let Some(a) = adam {
            for (i, (n, _, _)) in a.params.iter().enumerate() {
                if let (Some(m), Some(v)) = (map.get(&format!("adam_m.{n}")), map.get(&format!("adam_v.{n}"))) {
                    a.m[i].copy_(m);
                    a.v[i].copy_(v);
                }
            }
        }
        Ok(())
    })
}

/// Builds the model for `cfg` and `vocab` into a fresh VarStore (with a fine-tuned tail: the backbone
/// weights are read from `cfg.backbone_weights`).
pub fn build_model(cfg: &Config, vocab_len: usize, device: Device) -> Result<(nn::VarStore, JointModel)> {
    if !(cfg.crop_scale > 0.0 && cfg.crop_scale <= 1.0) {
        bail!("--crop-scale {} is not in (0, 1]: it is the smallest crop side as a fraction of the shorter image side", cfg.crop_scale);
    }
    if cfg.image_pooling == ImagePooling::Gpo && cfg.finetune_from.is_none() {
        bail!("--image-pooling gpo needs --finetune-from K (the pooled-feature cache has no grid to pool)");
    }
    let vs = nn::VarStore::new(device);
    let tc = TextConfig {
        vocab_size: vocab_len as i64,
        word_dim: 50,
        hidden_dim: cfg.hidden_dim,
        layers: cfg.layers,
        bidirectional: cfg.bidirectional,
        pooling: cfg.pooling,
    };
    let tail = cfg.finetune_from.map(|k| (cfg.backbone, k, cfg.backbone_weights.as_path()));
    let model = JointModel::with_image(&vs, &tc, cfg.backbone.feature_dim(), cfg.embed_dim, cfg.image_pooling, tail)?;
    if let Some(t) = &model.tail {
        if t.from > t.net.num_stages() {
            bail!("--finetune-from {}: {} has stages 0..{} (the head is {})", t.from, cfg.backbone, t.net.num_stages() - 1, t.net.num_stages());
        }
    }
    Ok((vs, model))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    crate::write_atomic(path, &serde_json::to_vec_pretty(value)?)?;
    Ok(())
}

/// Trains into `out` (a run folder). With `resume`, continues from `out/state.json` + `last.safetensors`.
/// `stop_after_epoch` ends the run early as if killed right after that epoch's checkpoint (tests, budgets).
pub fn fit(cfg: Config, out: &Path, resume: bool, stop_after_epoch: Option<usize>) -> Result<RunState> {
    cfg.views()?; // a bad view name fails before anything is written
    let device = crate::default_device();
    tracing::info!("device: {device:?}");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create run folder {}", out.display()))?;
    let state_path = out.join(STATE_FILE);
    let mut state = if resume && state_path.is_file() {
        let s: RunState = serde_json::from_slice(&std::fs::read(&state_path)?)
            .with_context(|| format!("cannot parse {}", state_path.display()))?;
        if s.config != cfg {
            tracing::warn!("--resume: using the run's saved config (command-line settings differ and are ignored)");
        }
        tracing::info!("resuming {} after epoch {}", out.display(), s.epochs_done);
        s
    } else {
        if state_path.is_file() {
            bail!("{} already holds a run; pass --resume to continue it or choose another --out", out.display());
        }
        RunState { config: cfg, epochs_done: 0, step: 0, best_epoch: None, best_rsum: f64::NEG_INFINITY, history: vec![] }
    };
    let cfg = state.config.clone();
    tch::manual_seed(cfg.seed as i64);

    // Vocabulary: built once, stored in the run folder (resume must not rebuild it differently).
    let vocab_path = out.join(VOCAB_FILE);
    let glove = Glove::load(&cfg.glove)?;
    let vocab = if vocab_path.is_file() {
        text::read_vocab(&vocab_path)?
    } else {
        let ds = Dataset::load(&cfg.train_captions)?.with_captions()?;
        let v = text::build_vocab(ds.pairs().into_iter().map(|(c, _)| c), &glove.words, cfg.min_count, cfg.vocab_size);
        crate::write_atomic(&vocab_path, v.to_text().as_bytes())?;
        v
    };
    tracing::info!("vocabulary: {} tokens", vocab.len());

    let train = PairData::load(&cfg, &cfg.train_captions, &vocab, &cfg.views()?, device)?;
    let val = PairData::load_val(&cfg, &vocab, device)?;
    tracing::info!("train: {} captions of {} images ({} views); val: {} captions", train.captions.len(), train.image_ids.len(), train.views.len(), val.captions.len());

    let (mut vs, mut model) = build_model(&cfg, vocab.len(), device)?;
    let mut adam = Adam::new(&vs, cfg.embedding_lr_scale, cfg.backbone_lr_scale);
    if state.epochs_done > 0 {
        load_checkpoint(&mut vs, &out.join(LAST_CKPT), Some(&mut adam))?;
    } else {
        let (rows, covered) = glove.embedding_for(&vocab, cfg.seed);
        model.text.init_embedding(&rows);
        tracing::info!("GloVe covers {covered}/{} tokens", vocab.len());
    }
    drop(glove);

    let steps_per_epoch = train.captions.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let image_ids = Tensor::from_slice(&train.image_ids).to_device(device);
    for epoch in state.epochs_done..cfg.epochs {
        let started = Instant::now();
        tch::manual_seed(cfg.seed as i64 + epoch as i64);
        let loss_kind = loss_for_epoch(&cfg, epoch)?;
        let order = permutation(train.captions.len(), cfg.seed, epoch);
        let bar = ProgressBar::new(steps_per_epoch as u64).with_style(
            ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}").unwrap(),
        );
        bar.set_message(format!("{}/{}", epoch + 1, cfg.epochs));
        let mut loss_sum = 0.0;
        // Batches of caption indices; (first position in `order`, indices). Singletons carry no negatives.
        let batches: Vec<(usize, &[usize])> =
            order.chunks(cfg.batch_size).enumerate().map(|(i, c)| (i * cfg.batch_size, c)).filter(|(_, c)| c.len() >= 2).collect();
        std::thread::scope(|scope| -> Result<()> {
            // End-to-end fine-tuning: a thread decodes the next batches while this one trains on the current.
            let decoded = train.decode.then(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Tensor>>(2);
                let (files, prep, batches, caption_image, cfg) = (&train.files, &train.preprocess, &batches, &train.caption_image, &cfg);
                scope.spawn(move || {
                    for (start, batch) in batches {
                        let idx: Vec<usize> = batch.iter().map(|&j| caption_image[j]).collect();
                        let aug: Vec<Augment> = (0..batch.len()).map(|p| Augment::for_pair(cfg, epoch, start + p)).collect();
                        if tx.send(decode_batch(files, prep, &idx, &aug)).is_err() {
                            break; // the trainer stopped (error): nothing left to do
                        }
                    }
                });
                rx
            });
            for &(_, batch) in &batches {
                let seqs: Vec<&[i64]> = batch.iter().map(|&j| train.captions[j].as_slice()).collect();
                let (ids, lens) = pad_batch(&seqs, device);
                let img_idx: Vec<i64> = batch.iter().map(|&j| train.caption_image[j] as i64).collect();
                let img_idx = Tensor::from_slice(&img_idx).to_device(device);
                let img = if let Some(rx) = &decoded {
                    let x = rx.recv().context("the image decoder thread stopped")??;
                    model.embed_images(None, &x.to_device(device))
                } else {
                    model.embed_cached(&random_views(&train.views, &img_idx))
                };
                let txt = model.text.forward(&ids, &lens, cfg.word_dropout);
                let loss = contrastive(&img, &txt, &image_ids.index_select(0, &img_idx), loss_kind);
                let mut grads = adam.gradients(&loss);
                adam.clip(&mut grads, cfg.grad_clip);
                state.step += 1;
                adam.step(&grads, lr_at(&cfg, state.step - 1, total_steps), cfg.weight_decay, state.step);
                loss_sum += loss.double_value(&[]);
                bar.inc(1);
                // Logs (nohup, CI) get no progress bar: a line every 50 steps instead.
                if bar.is_hidden() && bar.position().is_multiple_of(50) {
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(
                        "epoch {}/{} step {}/{steps_per_epoch}: loss {:.3}, {:.2} s/step ({:.0} pairs/s)",
                        epoch + 1,
                        cfg.epochs,
                        bar.position(),
                        loss_sum / bar.position() as f64,
                        secs / bar.position() as f64,
                        bar.position() as f64 * cfg.batch_size as f64 / secs
                    );
                }
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        let metrics = validate(&model, &val, device);
        let seconds = started.elapsed().as_secs_f64();
        let train_loss = loss_sum / steps_per_epoch as f64;
        tracing::info!("epoch {}/{}: loss {train_loss:.3} ({seconds:.0} s) val {metrics}", epoch + 1, cfg.epochs);
        state.history.push(EpochLog { epoch: epoch + 1, train_loss, val: metrics, seconds });
        state.epochs_done = epoch + 1;
        // Checkpoints first, then the state that points at them: a kill between the two only repeats an epoch.
        save_checkpoint(&vs, Some(&adam), &out.join(LAST_CKPT))?;
        if metrics.rsum > state.best_rsum {
            state.best_rsum = metrics.rsum;
            state.best_epoch = Some(epoch + 1);
            save_checkpoint(&vs, None, &out.join(BEST_CKPT))?;
        }
        write_json(&state_path, &state)?;
        if let Err(e) = crate::plot::training_curve(&state.history, &out.join("curve.svg")) {
            tracing::warn!("could not draw the training curve: {e:#}");
        }
        if stop_after_epoch == Some(epoch + 1) {
            tracing::info!("stopping after epoch {} as asked; continue with --resume", epoch + 1);
            break;
        }
    }
    Ok(state)
}

/// Reads a finished (or partial) run: its state, vocabulary and best (or last) weights.
pub fn load_run(run: &Path, which: &str) -> Result<(RunState, Vocab, nn::VarStore, JointModel)> {
    let state: RunState = serde_json::from_slice(
        &std::fs::read(run.join(STATE_FILE)).with_context(|| format!("{} is not a run folder (no {STATE_FILE}); pass the --out of `trainer fit`", run.display()))?,
    )?;
    let vocab = text::read_vocab(&run.join(VOCAB_FILE))?;
    let (mut vs, model) = build_model(&state.config, vocab.len(), crate::default_device())?;
    let ckpt = run.join(if which == "last" { LAST_CKPT } else { BEST_CKPT });
    load_checkpoint(&mut vs, &ckpt, None)?;
    Ok((state, vocab, vs, model))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run over the 15 installed photos (captioned from their file names): small and fast.
    pub(crate) fn tiny_config() -> Config {
        Config {
            train_captions: vec![],
            val_captions: PathBuf::new(),
            images: crate::backbone::assets_dir().join("photos"),
            backbone: BackboneKind::EfficientnetLite0,
            backbone_weights: crate::backbone::assets_dir().join("efficientnet_lite0.safetensors"),
            glove: Glove::default_path(),
            cache_dir: std::env::temp_dir().join("imgpick-test-features"),
            use_flips: false,
            min_count: 1,
            vocab_size: 500,
            embed_dim: 16,
            hidden_dim: 16,
            layers: 1,
            bidirectional: true,
            pooling: Pooling::Mean,
            word_dropout: 0.1,
            epochs: 3,
            batch_size: 8,
            lr: 1e-3,
            embedding_lr_scale: 0.1,
            weight_decay: 0.0,
            lr_warmup_steps: 2,
            grad_clip: 2.0,
            loss: "vse".into(),
            margin: 0.2,
            tau: 0.05,
            warmup_epochs: 1,
            seed: 7,
            finetune_from: None,
            backbone_lr_scale: 0.1,
            image_pooling: ImagePooling::Avg,
            crop_scale: 1.0,
            train_views: Vec::new(),
        }
    }

    fn photo_captions(dir: &Path) -> Option<PathBuf> {
        let photos = crate::backbone::assets_dir().join("photos");
        let mut files: Vec<String> = std::fs::read_dir(&photos)
            .ok()?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let images: Vec<_> = files.iter().enumerate().map(|(i, f)| serde_json::json!({"id": i, "file_name": f})).collect();
        let anns: Vec<_> = files
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                let words = f.split('.').next().unwrap().replace('_', " ");
                [format!("a photo of a {words}"), format!("{words} in a picture")]
                    .into_iter()
                    .map(move |c| serde_json::json!({"image_id": i, "caption": c}))
            })
            .collect();
        let p = dir.join("photos.json");
        std::fs::write(&p, serde_json::to_vec(&serde_json::json!({"images": images, "annotations": anns})).unwrap()).unwrap();
        Some(p)
    }

    /// A temp folder and the tiny config training on the asset photos (`None`, with a message, when the assets
    /// are not installed).
    fn photo_run(name: &str) -> Option<(tempfile::TempDir, Config)> {
        let mut cfg = tiny_config();
        if !cfg.backbone_weights.is_file() || !cfg.glove.is_file() {
            eprintln!("skipping: assets not installed (scripts/setup.sh)");
            return None;
        }
        let root = tempfile::Builder::new().prefix(name).tempdir().unwrap();
        let caps = photo_captions(root.path())?;
        cfg.train_captions = vec![caps.clone()];
        cfg.val_captions = caps;
        cfg.cache_dir = root.path().join("cache");
        Some((root, cfg))
    }

    /// Names of the variables whose values in `run`'s last checkpoint differ from a freshly built model's.
    fn moved_since_init(cfg: &Config, run: &Path) -> impl Fn(&str) -> bool {
        let after: std::collections::HashMap<_, _> = Tensor::read_safetensors(run.join(LAST_CKPT)).unwrap().into_iter().collect();
        let (vs0, _m) = build_model(cfg, 10, Device::Cpu).unwrap();
        let before = vs0.variables();
        move |name: &str| (&after[name] - &before[name]).abs().max().double_value(&[]) > 0.0
    }

    /// Training tests seed libtorch's global RNG: run them one at a time so they replay exactly.
    static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn training_lock() -> std::sync::MutexGuard<'static, ()> {
        TRAINING.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn lr_schedule_warms_up_then_decays() {
        let mut c = tiny_config();
        c.lr_warmup_steps = 10;
        assert!((lr_at(&c, 0, 100) - c.lr / 10.0).abs() < 1e-12);
        assert!((lr_at(&c, 9, 100) - c.lr).abs() < 1e-12);
        assert!(lr_at(&c, 50, 100) < c.lr && lr_at(&c, 99, 100) < lr_at(&c, 50, 100));
        assert!(lr_at(&c, 100, 100) >= 0.05 * c.lr - 1e-12);
    }

    /// Engine gradients equal `backward()`'s, clipping scales a gradient the engine shares between two
    /// parameters once, and a parameter the loss does not reach gets no gradient and does not move.
    #[test]
    fn gradients_clip_and_step_match_backward() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let a = root.var("a", &[3], nn::Init::Const(1.0));
        let b = root.var("b", &[3], nn::Init::Const(2.0));
        let unused = root.var("unused", &[2], nn::Init::Const(5.0));
        let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0]);
        // d/da = d/db = w: AddBackward passes one gradient tensor to both inputs.
        let loss = || ((&a + &b) * &w).sum(Kind::Float);
        let mut adam = Adam::new(&vs, 1.0, 1.0);
        let mut grads = adam.gradients(&loss());
        let names: Vec<&str> = adam.params.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "unused"]);
        assert!(!grads[2].defined(), "a parameter the loss does not reach has no gradient");
        loss().backward();
        for (g, p) in grads.iter().zip([&a, &b]) {
            assert_eq!(Vec::<f32>::try_from(g).unwrap(), Vec::<f32>::try_from(p.grad()).unwrap());
        }
        let norm = adam.clip(&mut grads, 1.0);
        assert!((norm - (2.0f64 * 14.0).sqrt()).abs() < 1e-5, "norm {norm}");
        for g in &grads[..2] {
            let scaled = Vec::<f32>::try_from(g).unwrap();
            let want: Vec<f32> = [1.0f32, -2.0, 3.0].iter().map(|x| x / norm as f32).collect();
            for (s, w) in scaled.iter().zip(&want) {
                assert!((s - w).abs() < 1e-5, "clipped {scaled:?}, want {want:?} (scaled twice?)");
            }
        }
        adam.step(&grads, 0.1, 0.0, 1);
        // The first Adam step moves each weight by lr against the sign of its gradient.
        let moved = Vec::<f32>::try_from(&a).unwrap();
        for (m, want) in moved.iter().zip([0.9f32, 1.1, 0.9]) {
            assert!((m - want).abs() < 1e-4, "a after one step: {moved:?}");
        }
        assert_eq!(Vec::<f32>::try_from(&unused).unwrap(), vec![5.0, 5.0]);
    }

    #[test]
    fn permutation_is_deterministic_and_complete() {
        let a = permutation(100, 3, 1);
        assert_eq!(a, permutation(100, 3, 1));
        assert_ne!(a, permutation(100, 3, 2));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    /// A run stopped after epoch 1 and resumed gives exactly the weights of an uninterrupted run.
    #[test]
    fn resume_after_kill_matches_uninterrupted_run() {
        let _serial = training_lock();
        let Some((tmp, cfg)) = photo_run("imgpick-resume") else { return };
        let root = tmp.path();

        let full = fit(cfg.clone(), &root.join("full"), false, None).unwrap();
        assert_eq!(full.epochs_done, 3);
        let part = fit(cfg.clone(), &root.join("part"), false, Some(1)).unwrap();
        assert_eq!(part.epochs_done, 1);
        // a second start without --resume refuses to overwrite the run
        assert!(fit(cfg.clone(), &root.join("part"), false, None).unwrap_err().to_string().contains("--resume"));
        let resumed = fit(cfg.clone(), &root.join("part"), true, None).unwrap();
        assert_eq!(resumed.epochs_done, 3);
        let a = Tensor::read_safetensors(root.join("full").join(LAST_CKPT)).unwrap();
        let b: std::collections::HashMap<_, _> = Tensor::read_safetensors(root.join("part").join(LAST_CKPT)).unwrap().into_iter().collect();
        for (name, t) in a {
            let d = (&t - &b[&name]).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{name} differs by {d} after resume");
        }
        assert_eq!(full.history.len(), 3);
        assert!((full.history[2].train_loss - resumed.history[2].train_loss).abs() < 1e-4);
        assert!(root.join("full").join("curve.svg").is_file());
        // fitting 15 photos must beat chance clearly (chance rsum ≈ 200: t2i 7/33/67, i2t 7/31/56)
        assert!(full.history[2].val.rsum > 300.0, "{}", full.history[2].val);
    }

    /// Fine-tuning from stage 6 with GPO pooling: only stage 6, the head conv, GPO and the projections move;
    /// earlier stages and BN statistics keep their ImageNet values; a resumed run matches an uninterrupted one.
    #[test]
    fn finetune_trains_only_the_tail_and_resumes() {
        let _serial = training_lock();
        let Some((tmp, mut cfg)) = photo_run("imgpick-finetune") else { return };
        let root = tmp.path();
        cfg.finetune_from = Some(6);
        cfg.image_pooling = ImagePooling::Gpo;
        cfg.backbone_lr_scale = 1.0;
        cfg.epochs = 2;
        cfg.use_flips = true;

        let full = fit(cfg.clone(), &root.join("full"), false, None).unwrap();
        let after: std::collections::HashMap<_, _> = Tensor::read_safetensors(root.join("full").join(LAST_CKPT)).unwrap().into_iter().collect();
        let moved = moved_since_init(&cfg, &root.join("full"));
        assert!(moved("image.backbone._blocks.15._expand_conv.weight"));
        assert!(moved("image.backbone._conv_head.weight"));
        assert!(moved("image.backbone._bn1.bias"));
        assert!(moved("image.gpo.logits"));
        assert!(!moved("image.backbone._blocks.14._expand_conv.weight"), "stage 5 must stay frozen");
        assert!(!moved("image.backbone._conv_stem.weight"));
        assert!(!moved("image.backbone._bn1.running_mean"), "BN statistics stay as loaded");
        assert!(!after.contains_key("adam_m.image.backbone._blocks.14._expand_conv.weight"), "no optimizer state for frozen weights");

        let part = fit(cfg.clone(), &root.join("part"), false, Some(1)).unwrap();
        assert_eq!(part.epochs_done, 1);
        fit(cfg.clone(), &root.join("part"), true, None).unwrap();
        let b: std::collections::HashMap<_, _> = Tensor::read_safetensors(root.join("part").join(LAST_CKPT)).unwrap().into_iter().collect();
        for (name, t) in &after {
            let d = (t - &b[name]).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{name} differs by {d} after resume");
        }
        assert!(full.history[1].val.rsum > 250.0, "{}", full.history[1].val);
    }

    /// Every drawn row is a whole row of one view, and every view gets drawn.
    #[test]
    fn random_views_draw_whole_rows_of_every_view() {
        let _serial = training_lock(); // libtorch's generator is global: seeding it here would break replays
        tch::manual_seed(1);
        let views: Vec<Tensor> = (0..4).map(|v| Tensor::full([10, 3, 2, 2], v as f64, (Kind::Float, Device::Cpu)) + Tensor::arange(10, (Kind::Float, Device::Cpu)).view([10, 1, 1, 1]) * 10.0).collect();
        let idx = Tensor::from_slice(&(0..200).map(|i| i % 10).collect::<Vec<i64>>());
        let rows = random_views(&views, &idx);
        let mut seen = [0usize; 4];
        for r in 0..200 {
            let row = rows.get(r);
            let v = (row.get(0).get(0).get(0).double_value(&[]) - 10.0 * (r % 10) as f64).round() as usize;
            assert!((row - (v as f64 + 10.0 * (r % 10) as f64)).abs().max().double_value(&[]) == 0.0, "row {r} mixes views");
            seen[v] += 1;
        }
        assert!(seen.iter().all(|&n| n > 20), "views drawn {seen:?}");
    }

    /// `--train-views`: zoomed views are cached like the others and trained on; a bad name is refused first.
    #[test]
    fn zoomed_training_views() {
        let _serial = training_lock();
        let Some((tmp, mut cfg)) = photo_run("imgpick-train-views") else { return };
        let root = tmp.path();
        cfg.epochs = 1;
        cfg.train_views = vec!["zoom-x".into()];
        let e = format!("{:#}", fit(cfg.clone(), &root.join("bad"), false, None).unwrap_err());
        assert!(e.contains("zoom-x") && e.contains("--train-views"), "{e}");
        assert!(!root.join("bad").exists(), "nothing written for a refused config");
        cfg.train_views = vec!["original".into(), "flipped".into(), "zoom-c".into()];
        let state = fit(cfg.clone(), &root.join("run"), false, None).unwrap();
        assert_eq!(state.config.train_views, cfg.train_views);
        let cached: Vec<String> = std::fs::read_dir(&cfg.cache_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        for view in ["-orig-", "-flip-", "-zoom-c-"] {
            assert!(cached.iter().any(|c| c.contains(view)), "{view} cached: {cached:?}");
        }
        assert!(state.history[0].train_loss.is_finite() && state.history[0].val.rsum > 0.0);
    }

    /// `--finetune` (from stage 0): batches decoded from the files, the stem learns too, val works.
    #[test]
    fn end_to_end_finetune_trains_the_stem() {
        let _serial = training_lock();
        let Some((tmp, mut cfg)) = photo_run("imgpick-e2e-finetune") else { return };
        let root = tmp.path();
        cfg.finetune_from = Some(0);
        cfg.use_flips = true;
        cfg.epochs = 1;
        let state = fit(cfg.clone(), &root.join("run"), false, None).unwrap();
        assert!(!cfg.cache_dir.exists(), "end-to-end fine-tuning caches nothing");
        let moved = moved_since_init(&cfg, &root.join("run"));
        assert!(moved("image.backbone._conv_stem.weight"));
        assert!(moved("image.backbone._blocks.0._depthwise_conv.weight"));
        assert!(!moved("image.backbone._fc.weight"), "the ImageNet classifier is not part of the model");
        assert!(state.history[0].val.rsum > 0.0);
    }
}

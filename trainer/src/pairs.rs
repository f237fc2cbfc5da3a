//! Training pairs: captions as token ids with their image, and the image side as cached backbone features of
//! each training view (or, fine-tuning end to end, images decoded and augmented per batch); the validation set
//! in the VSE protocol, and the metrics of a model on it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::backbone::preprocess::{open_network_picture, Preprocess};
use crate::config::Config;
use crate::data::Dataset;
use crate::eval::evaluate;
use crate::features::{self, CacheSpec, View};
use crate::metrics::Metrics;
use crate::model::{encode_texts, JointModel};
use crate::text::{self, Vocab};

/// Image-side training data: per view, pooled features `[N, C]` (frozen backbone) or the stage-`k`
/// activations `[N, C_k, h, w]` (f16, fine-tuning from stage `k`); and caption ids with their image index.
pub struct PairData {
    pub views: Vec<Tensor>,
    /// The image files in dataset order; with `decode` (end-to-end fine-tuning, `finetune_from == Some(0)`)
    /// batches are decoded from them instead of read from `views` (empty then).
    pub files: Vec<PathBuf>,
    pub decode: bool,
    pub preprocess: Preprocess,
    pub captions: Vec<Vec<i64>>,
    pub caption_image: Vec<usize>,
    pub image_ids: Vec<i64>,
}

impl PairData {
    pub fn load(cfg: &Config, captions: &[PathBuf], vocab: &Vocab, views: &[View], device: Device) -> Result<Self> {
        let ds = Dataset::load(captions)?.with_captions()?;
        let files = ds.image_paths(&cfg.data.images);
        let finetune_from = cfg.image.finetune_from;
        let spec = CacheSpec { backbone: cfg.image.backbone.backbone, weights: cfg.image.backbone.weights(), split: finetune_from };
        let mut feats = Vec::new();
        let mut ok = vec![true; files.len()];
        let decode = finetune_from == Some(0);
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
            let f = features::extract(&cfg.data.cache_dir, &spec, v, &files, device)?;
            for (o, fo) in ok.iter_mut().zip(&f.ok) {
                *o &= *fo;
            }
            feats.push(match (finetune_from, f.act) {
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
            preprocess: Preprocess::for_backbone(spec.backbone),
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
        let ds = Dataset::load(std::slice::from_ref(&cfg.data.val_captions))?.with_captions()?.truncate_captions(5);
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
    /// 32-bit words of random stream per pair: four draws (flip, crop side, x, y) of one word each.
    const WORDS_PER_PAIR: u128 = 4;

    /// The augmentation of the `position`-th pair of `epoch`: a pure function of (seed, epoch, position), so a
    /// resumed run sees the same images and a decoder thread needs no shared random generator. Each pair owns
    /// [`Self::WORDS_PER_PAIR`] words of the epoch's augmentation stream (ChaCha seeks there directly).
    pub fn for_pair(cfg: &Config, epoch: usize, position: usize) -> Self {
        use rand::Rng;
        let mut rng = crate::random_stream(cfg.optimiser.seed, crate::RandomUse::Augment, epoch as u64);
        rng.set_word_pos(position as u128 * Self::WORDS_PER_PAIR);
        let mut next = || rng.random::<f32>();
        let flip = cfg.image.use_flips && next() < 0.5;
        let crop_scale = cfg.image.crop_scale;
        let crop = (crop_scale < 1.0).then(|| {
            let side = crop_scale as f32 + (1.0 - crop_scale as f32) * next();
            (side, next(), next())
        });
        Augment { flip, crop }
    }

    /// The crop of a [`crate::backbone::preprocess::network_picture`] (transparency handled on the whole picture
    /// first, as the page and publish do).
    fn apply(&self, picture: image::RgbImage) -> image::RgbImage {
        let Some((side, px, py)) = self.crop else { return picture };
        let (w, h) = picture.dimensions();
        let s = ((w.min(h) as f32 * side).round() as u32).clamp(1, w.min(h));
        let x = ((w - s) as f32 * px) as u32;
        let y = ((h - s) as f32 * py) as u32;
        image::imageops::crop_imm(&picture, x, y, s, s).to_image()
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
pub fn decode_batch(files: &[PathBuf], prep: &Preprocess, idx: &[usize], aug: &[Augment]) -> Result<Tensor> {
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
                            let t = prep.picture_to_input(&a.apply(open_network_picture(&files[i], prep.size)?));
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

/// Metrics of `model` on `data` (first view): what picks the best epoch and what `export` records. Vectors that
/// are not finite (a diverged model) are an error, not a perfect score.
pub fn validate(model: &JointModel, data: &PairData, device: Device) -> Result<Metrics> {
    let imgs = embed_view(model, data);
    crate::eval::check_finite(&imgs, "validation image vectors")?;
    let caps = encode_texts(&model.text, &data.captions, 256, device);
    crate::eval::check_finite(&caps, "validation caption vectors")?;
    Ok(evaluate(&imgs, &caps, &data.caption_image))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pair's augmentation depends on (seed, epoch, position) only; flips are fair coins and crops stay in
    /// range.
    #[test]
    fn augmentation_is_a_pure_function_of_the_pair() {
        let cfg = Config::from_fit_flags(&["--finetune", "--flips", "--crop-scale", "0.7", "--seed", "3"]).unwrap();
        let all: Vec<Augment> = (0..2000).map(|p| Augment::for_pair(&cfg, 1, p)).collect();
        assert_eq!(Augment::for_pair(&cfg, 1, 1234), all[1234], "the same pair, the same augmentation");
        assert_ne!(Augment::for_pair(&cfg, 2, 1234), all[1234], "another epoch, another one");
        let flips = all.iter().filter(|a| a.flip).count();
        assert!((900..1100).contains(&flips), "{flips} of 2000 flipped");
        for a in &all {
            let (side, x, y) = a.crop.unwrap();
            assert!((0.7..=1.0).contains(&side) && (0.0..1.0).contains(&x) && (0.0..1.0).contains(&y), "{a:?}");
        }
        let plain = Config::from_fit_flags(&["--finetune"]).unwrap();
        assert_eq!(Augment::for_pair(&plain, 0, 5), Augment::default(), "no --flips, no --crop-scale: the image as it is");
    }

    /// Every drawn row is a whole row of one view, and every view gets drawn.
    #[test]
    fn random_views_draw_whole_rows_of_every_view() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: seeding it here would break replays
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
}

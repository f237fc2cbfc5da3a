//! The VSE evaluation protocol: every caption ranks all images (t2i), every image ranks all captions (i2t,
//! the rank of its best ground-truth caption), and [`rank_model_dir`] (a model directory on a captions file,
//! with what it used and skipped). `trainer eval`'s flags and report (bootstrap intervals, a paired
//! comparison, `--strict`) are in `report`, the metrics per image kind (`--group-by`) in `groups`; the numbers
//! themselves are [`crate::metrics`]'.

mod groups;
mod report;

pub use groups::{field_values, group_reports, split, Group, GroupReport};
pub use report::{eval_report, Comparison, Coverage, EvalArgs, EvalReport, EvalSet};

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::backbone::BackboneKindExt;
use crate::metrics::{ImageRanks, Metrics, Ranks};

/// 0-based rank of the target among `scores`: how many score higher, plus how many tie with it at a lower index
/// (the engine's top-k order: ties go to the lower id). So a collapsed model, whose scores all tie, ranks as
/// chance, not perfectly. A NaN never counts as a hit: a NaN target ranks last (`scores.len()`), a NaN rival
/// beats nothing.
fn rank_of(scores: &[f32], target: usize) -> usize {
    let s = scores[target];
    if s.is_nan() {
        return scores.len();
    }
    scores.iter().enumerate().filter(|&(i, &x)| x > s || (x == s && i < target)).count()
}

/// Refuses vectors holding a NaN or an infinity (a diverged or corrupt model's): they are an error, never a
/// score. `what` names them in the message.
pub fn check_finite(x: &Tensor, what: &str) -> Result<()> {
    let n = x.size().first().copied().unwrap_or(0);
    if n == 0 {
        return Ok(());
    }
    let bad_rows = x.isfinite().logical_not().view([n, -1]).any_dim(1, false).nonzero();
    if bad_rows.size()[0] > 0 {
        bail!(
            "{what}: row {} (and {} more) is not finite (NaN or infinity): the model's weights are broken \
             (a diverged training run?); refusing to score it",
            bad_rows.int64_value(&[0, 0]),
            bad_rows.size()[0] - 1
        );
    }
    Ok(())
}

/// `images`: [N, D], `captions`: [M, D] (both L2-normalised), `caption_image[j]` = index of caption j's image.
pub fn evaluate(images: &Tensor, captions: &Tensor, caption_image: &[usize]) -> Metrics {
    evaluate_scored(images, captions, caption_image, None)
}

/// [`evaluate`] with text-to-image scores `cosine - t2i_penalty[image]` (the hubness correction the engine
/// applies to text queries); image-to-text stays plain cosine.
pub fn evaluate_scored(images: &Tensor, captions: &Tensor, caption_image: &[usize], t2i_penalty: Option<&[f32]>) -> Metrics {
    rank_queries(images, captions, caption_image, t2i_penalty).metrics()
}

/// Ranks every caption's image (t2i) and every image's best caption (i2t); see [`evaluate_scored`].
pub fn rank_queries(images: &Tensor, captions: &Tensor, caption_image: &[usize], t2i_penalty: Option<&[f32]>) -> Ranks {
    let n = images.size()[0] as usize;
    let m = captions.size()[0] as usize;
    assert_eq!(m, caption_image.len(), "one image index per caption");
    let sims = captions.to_kind(Kind::Float).matmul(&images.to_kind(Kind::Float).tr()).contiguous(); // [M, N]
    let sims: Vec<f32> = Vec::<f32>::try_from(sims.flatten(0, 1)).expect("f32 similarities");
    let mut captions_of = vec![Vec::new(); n];
    for (j, &i) in caption_image.iter().enumerate() {
        captions_of[i].push(j);
    }
    let t2i_rank = |j: usize| {
        let row = &sims[j * n..(j + 1) * n];
        match t2i_penalty {
            None => rank_of(row, caption_image[j]),
            Some(p) => rank_of(&row.iter().zip(p).map(|(s, p)| s - p).collect::<Vec<_>>(), caption_image[j]),
        }
    };
    let images = (0..n)
        .filter(|&i| !captions_of[i].is_empty())
        .map(|i| {
            let col: Vec<f32> = (0..m).map(|j| sims[j * n + i]).collect();
            ImageRanks {
                caption_ranks: captions_of[i].iter().map(|&j| t2i_rank(j)).collect(),
                best_caption_rank: captions_of[i].iter().map(|&j| rank_of(&col, j)).min().unwrap(),
            }
        })
        .collect();
    Ranks { images }
}

/// Mean cosine of each image (`[N, D]`) to its `k` nearest rows of `bank` (`[B, D]`): CSLS's hubness.
pub fn hubness(images: &Tensor, bank: &Tensor, k: usize) -> Vec<f32> {
    let k = (k as i64).clamp(1, bank.size()[0].max(1));
    let sims = images.to_kind(Kind::Float).matmul(&bank.to_kind(Kind::Float).tr());
    let r = sims.topk(k, 1, true, true).0.mean_dim(1, false, Kind::Float);
    Vec::<f32>::try_from(r.to_device(tch::Device::Cpu)).expect("f32 hubness")
}

/// `trainer eval`: a model directory on a captions file + image folder (features cached under `cache`), as the
/// per-query ranks behind [`Metrics`] (`.metrics()`), bootstrap intervals and paired comparisons. Scored as the
/// product scores (manifest `retrieval`: averaged image views, hubness correction of text queries) unless
/// `plain` (cosine of single-view vectors).
pub fn rank_model_dir(model: &Path, captions: &Path, images: &Path, cache: &Path, weights: Option<PathBuf>, plain: bool) -> Result<Ranked> {
    rank_ensemble(&[model], captions, images, cache, weights, plain)
}

/// [`rank_model_dir`] for several model directories scored as one ([`Scored::ensemble`]).
pub fn rank_ensemble(models: &[&Path], captions: &Path, images: &Path, cache: &Path, weights: Option<PathBuf>, plain: bool) -> Result<Ranked> {
    let scored = models
        .iter()
        .map(|model| score_model_dir(model, captions, images, cache, weights.clone(), plain))
        .collect::<Result<Vec<_>>>()?;
    let s = Scored::ensemble(scored)?;
    let ranks = rank_queries(&s.images, &s.captions, &s.caption_image, s.t2i_penalty.as_deref());
    // `rank_queries` keeps the rows that have a query, in row order
    let mut queried = vec![false; s.coverage.image_ids.len()];
    s.caption_image.iter().for_each(|&row| queried[row] = true);
    let image_ids = s.coverage.image_ids.iter().zip(&queried).filter(|&(_, &q)| q).map(|(&id, _)| id).collect();
    Ok(Ranked { ranks, coverage: s.coverage, image_ids })
}

/// What [`rank_model_dir`] ranks: the readable images' and their captions' vectors, each caption's image, and
/// the hubness penalty of text queries (manifest `retrieval`, unless `plain`). `trainer calibrate` reads the
/// scores themselves.
pub struct Scored {
    /// [N, D], L2-normalised (the mean of the scoring's views).
    pub images: Tensor,
    /// [M, D], L2-normalised.
    pub captions: Tensor,
    /// Caption j's image: a row of `images`.
    pub caption_image: Vec<usize>,
    /// `hubness_weight × hubness` per image, subtracted from text-to-image cosines.
    pub t2i_penalty: Option<Vec<f32>>,
    pub coverage: Coverage,
}

impl Scored {
    /// Several models' scorings of the same images and captions as one: each pair's score is the mean of the
    /// models' scores (their vectors concatenated and scaled by 1/√K, so still unit length; the mean of their
    /// hubness penalties). One scoring is returned as it is.
    pub fn ensemble(mut parts: Vec<Scored>) -> Result<Scored> {
        if parts.len() <= 1 {
            return parts.pop().ok_or_else(|| anyhow::anyhow!("an ensemble needs at least one model"));
        }
        let first = &parts[0];
        if parts.iter().any(|p| p.caption_image != first.caption_image || p.coverage != first.coverage) {
            bail!("the ensemble's models did not evaluate the same images and captions (an image readable for one model only?)");
        }
        let scale = 1.0 / (parts.len() as f64).sqrt();
        let images = Tensor::cat(&parts.iter().map(|p| &p.images).collect::<Vec<_>>(), 1) * scale;
        let captions = Tensor::cat(&parts.iter().map(|p| &p.captions).collect::<Vec<_>>(), 1) * scale;
        let k = parts.len() as f32;
        let t2i_penalty = match parts.iter().map(|p| p.t2i_penalty.as_ref()).collect::<Option<Vec<_>>>() {
            Some(all) => Some((0..all[0].len()).map(|i| all.iter().map(|p| p[i]).sum::<f32>() / k).collect()),
            None if parts.iter().all(|p| p.t2i_penalty.is_none()) => None,
            None => bail!("some of the ensemble's models correct hubness and some do not; score them all --plain or export them with the same scoring"),
        };
        let Scored { caption_image, coverage, .. } = parts.swap_remove(0);
        Ok(Scored { images, captions, caption_image, t2i_penalty, coverage })
    }
}

/// Embeds a captions file's images and captions with a model directory, as [`rank_model_dir`] scores them.
pub fn score_model_dir(model: &Path, captions: &Path, images: &Path, cache: &Path, weights: Option<PathBuf>, plain: bool) -> Result<Scored> {
    let device = crate::default_device();
    let loaded = crate::load::load_model_dir_with_backbone_weights(model, weights.as_deref(), device)?;
    if loaded.dir.image_head.is_none() {
        bail!("{} has no image head; eval needs image_head.safetensors", model.display());
    }
    let retrieval = if plain { None } else { loaded.dir.manifest.retrieval.clone() };
    let ds = crate::data::Dataset::load(&[captions.to_path_buf()])?.with_captions()?.truncate_captions(5);
    let files = ds.image_paths(images);
    let weights = weights.unwrap_or_else(|| loaded.backbone.installed_weights());
    // A fine-tuned model runs its own stages on the cached input of its first fine-tuned stage.
    let split = loaded.model.tail.as_ref().map(|t| t.from);
    let spec = crate::features::CacheSpec { backbone: loaded.backbone, weights, split };
    let views = crate::features::views_of(retrieval.as_ref())?;
    let mut feats = Vec::with_capacity(views.len());
    for &view in &views {
        feats.push(crate::features::extract(cache, &spec, view, &files, device)?);
        // nothing readable in the first view: stop before the other views
        if feats.len() == 1 && feats[0].ok.iter().all(|&ok| !ok) {
            bail!("none of the {} images of {} could be read from {}", ds.images.len(), captions.display(), images.display());
        }
    }
    let keep: Vec<usize> = (0..ds.images.len()).filter(|&i| feats.iter().all(|f| f.ok[i])).collect();
    if keep.len() < ds.images.len() {
        tracing::warn!("{} unreadable images left out of the evaluation", ds.images.len() - keep.len());
    }
    let readable: Vec<bool> = (0..ds.images.len()).map(|i| feats.iter().all(|f| f.ok[i])).collect();
    let coverage = Coverage::of(&ds, &readable);
    let idx = Tensor::from_slice(&keep.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let embed = |f: &crate::features::Features| {
        let input = match (&loaded.model.tail, &f.act) {
            (Some(_), Some(act)) => act,
            _ => &f.pooled,
        };
        tch::no_grad(|| loaded.model.embed_cached(&input.index_select(0, &idx).to_device(device))).to_device(tch::Device::Cpu)
    };
    let sum = feats.iter().map(embed).reduce(|a, b| a + b).expect("at least the original view");
    let imgs = crate::model::l2_normalize(&sum);
    check_finite(&imgs, &format!("{}: image vectors", model.display()))?;
    let mut seqs = Vec::new();
    let mut owner = Vec::new();
    for (row, &i) in keep.iter().enumerate() {
        // a caption without a word (emoji, punctuation) is no query: counted as skipped in `coverage`
        for c in ds.images[i].captions.iter().filter(|c| has_words(c)) {
            seqs.push(crate::text::encode(&loaded.vocab, c));
            owner.push(row);
        }
    }
    if seqs.is_empty() {
        bail!("no caption of the readable images of {} has a word to search with", captions.display());
    }
    let caps = crate::model::encode_texts(&loaded.model.text, &seqs, 256, device);
    check_finite(&caps, &format!("{}: caption vectors", model.display()))?;
    // the bank is read only when the scoring uses it (not with `plain`)
    let bank = match &retrieval {
        Some(_) => loaded.dir.load_hubness_bank(model)?,
        None => None,
    };
    let penalty = match (&retrieval, bank) {
        (Some(r), Some(bank)) => {
            let bank = Tensor::from_slice(&bank).view([-1, loaded.dir.manifest.embed_dim as i64]);
            Some(hubness(&imgs, &bank, r.hubness_k).into_iter().map(|h| r.hubness_weight * h).collect::<Vec<f32>>())
        }
        _ => None,
    };
    Ok(Scored { images: imgs, captions: caps, caption_image: owner, t2i_penalty: penalty, coverage })
}

/// Whether `caption` holds a word the tokenizer keeps (not only emoji, symbols or punctuation).
pub fn has_words(caption: &str) -> bool {
    !crate::text::tokenize(caption).is_empty()
}

/// [`rank_model_dir`]'s result: every query's rank and what the evaluation used and skipped.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub ranks: Ranks,
    pub coverage: Coverage,
    /// The captions file's id of each image of `ranks.images` (what `--group-by` groups by).
    pub image_ids: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds embeddings with known ranks: image i = e_i; a caption that should rank its image at position r
    /// (0-based) is made to score images 0..r (other than its own) higher.
    #[test]
    fn known_ranks() {
        let n = 20usize;
        let images = Tensor::eye(n as i64, (Kind::Float, tch::Device::Cpu));
        // caption j belongs to image j % n (2 captions per image); the first caption of image i has
        // t2i rank i (0-based): it scores its own image 1.0 and images 0..i at 2.0 (then normalised).
        let mut rows = Vec::new();
        let mut owner = Vec::new();
        for rep in 0..2 {
            for i in 0..n {
                let mut v = vec![0f32; n];
                v[i] = 1.0;
                if rep == 0 {
                    for (k, x) in v.iter_mut().enumerate().take(i) {
                        *x = if k != i { 2.0 } else { 1.0 };
                    }
                }
                // the second caption is perfect (rank 0)
                rows.extend(v);
                owner.push(i);
            }
        }
        let caps = Tensor::from_slice(&rows).view([2 * n as i64, n as i64]);
        let caps = &caps / caps.norm_scalaropt_dim(2, [1], true);
        let m = evaluate(&images, &caps, &owner);
        // t2i ranks: first captions 0..19, second captions all 0 -> 40 ranks, R@1 = (1 + 20)/40
        assert!((m.t2i_r1 - 100.0 * 21.0 / 40.0).abs() < 1e-9, "{m}");
        assert!((m.t2i_r5 - 100.0 * 25.0 / 40.0).abs() < 1e-9);
        assert!((m.t2i_r10 - 100.0 * 30.0 / 40.0).abs() < 1e-9);
        // sorted ranks: 21 zeros, then 1..19 -> median of 0-based (index 19, 20) = (0 + 0)/2 -> medr 1
        assert_eq!(m.t2i_medr, 1.0);
        // i2t: each image's perfect caption (score 1.0) is beaten by the first captions of images > i that put
        // 2.0 / norm on it; norm of first caption of image k is sqrt(4k + 1), so 2/sqrt(4k+1) > 1 iff k < 0.75:
        // never for k ≥ 1 -> every image ranks its perfect caption first... except ties of equal score 1.0
        // from image 0's first caption (= e_0), which is image 0's own and the lower index -> all ranks 0.
        assert_eq!(m.i2t_r1, 100.0);
        assert!((m.rsum - (m.t2i_r1 + m.t2i_r5 + m.t2i_r10 + 300.0)).abs() < 1e-9);
    }

    fn scored(images: Tensor, captions: Tensor, penalty: Option<Vec<f32>>) -> Scored {
        let caption_image = (0..captions.size()[0] as usize).map(|j| j % images.size()[0] as usize).collect();
        Scored { images, captions, caption_image, t2i_penalty: penalty, coverage: Coverage::default() }
    }

    #[test]
    fn an_ensemble_scores_the_mean_of_its_models_scores() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global
        tch::manual_seed(5);
        let unit = |r: i64, d: i64| crate::model::l2_normalize(&Tensor::randn([r, d], (Kind::Float, tch::Device::Cpu)));
        let (ia, ca, ib, cb) = (unit(6, 8), unit(12, 8), unit(6, 4), unit(12, 4));
        let mean = (ca.matmul(&ia.tr()) + cb.matmul(&ib.tr())) / 2.0;
        let a = scored(ia.shallow_clone(), ca.shallow_clone(), Some(vec![0.1; 6]));
        let b = scored(ib.shallow_clone(), cb.shallow_clone(), Some((0..6).map(|i| i as f32 * 0.1).collect()));
        let e = Scored::ensemble(vec![a, b]).unwrap();
        assert_eq!(e.images.size(), [6, 12]);
        let diff = (e.captions.matmul(&e.images.tr()) - mean).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
        // still unit vectors, so a single-model ranking path scores them unchanged
        let norms = e.images.norm_scalaropt_dim(2, [1], false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-6);
        let p = e.t2i_penalty.unwrap();
        assert!((p[0] - 0.05).abs() < 1e-6 && (p[5] - 0.3).abs() < 1e-6, "{p:?}");

        // one model: itself; different queries or a hubness correction in only one model: an error
        let one = Scored::ensemble(vec![scored(ia.shallow_clone(), ca.shallow_clone(), None)]).unwrap();
        assert_eq!(one.images.size(), [6, 8]);
        let mut other = scored(ib.shallow_clone(), cb.shallow_clone(), None);
        other.caption_image.reverse();
        let err = Scored::ensemble(vec![scored(ia.shallow_clone(), ca.shallow_clone(), None), other]).err().unwrap();
        assert!(err.to_string().contains("same images and captions"), "{err}");
        let err = Scored::ensemble(vec![scored(ia, ca, Some(vec![0.0; 6])), scored(ib, cb, None)]).err().unwrap();
        assert!(err.to_string().contains("hubness"), "{err}");
    }

    #[test]
    fn random_embeddings_are_near_chance_and_perfect_ones_are_perfect() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a seed here breaks replays elsewhere
        tch::manual_seed(3);
        let imgs = crate::model::l2_normalize(&Tensor::randn([100, 32], (Kind::Float, tch::Device::Cpu)));
        let owner: Vec<usize> = (0..500).map(|j| j / 5).collect();
        let idx = Tensor::from_slice(&owner.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let perfect = imgs.index_select(0, &idx);
        let m = evaluate(&imgs, &perfect, &owner);
        assert_eq!((m.t2i_r1, m.i2t_r1, m.rsum, m.t2i_medr, m.i2t_medr), (100.0, 100.0, 600.0, 1.0, 1.0));
        let noise = crate::model::l2_normalize(&Tensor::randn([500, 32], (Kind::Float, tch::Device::Cpu)));
        let m = evaluate(&imgs, &noise, &owner);
        assert!(m.t2i_r10 < 25.0 && m.t2i_medr > 20.0, "{m}");
    }

    /// A hub image (close to every caption) steals R@1 from the right images; the penalty gives it back, and
    /// i2t is untouched by it.
    #[test]
    fn hubness_penalty_demotes_a_hub_in_t2i_only() {
        // captions 0, 1 belong to images 0, 1; image 2 is a hub that every caption prefers slightly.
        let images = crate::model::l2_normalize(&Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]).view([3, 2]));
        let caps = crate::model::l2_normalize(&Tensor::from_slice(&[1.0f32, 0.6, 0.6, 1.0]).view([2, 2]));
        let owner = [0, 1];
        let plain = evaluate(&images, &caps, &owner);
        assert_eq!(plain.t2i_r1, 0.0, "the hub wins every caption");
        // the bank: these captions and one that matches the hub exactly
        let bank = Tensor::cat(&[caps.shallow_clone(), images.narrow(0, 2, 1)], 0);
        let penalty: Vec<f32> = hubness(&images, &bank, 1);
        assert!(penalty[2] > penalty[0] && penalty[2] > penalty[1], "the hub has the highest hubness: {penalty:?}");
        let scored = evaluate_scored(&images, &caps, &owner, Some(&penalty));
        assert_eq!(scored.t2i_r1, 100.0);
        assert_eq!((scored.i2t_r1, scored.i2t_r5), (plain.i2t_r1, plain.i2t_r5));
    }

    /// A diverged model (every vector NaN) ranks nothing: NaN scores are never hits, so recall is 0, not 100.
    #[test]
    fn nan_scores_never_count_as_hits() {
        let n = 10;
        let nan = Tensor::full([n, 4], f64::NAN, (Kind::Float, tch::Device::Cpu));
        let owner: Vec<usize> = (0..n as usize).collect();
        let m = evaluate(&nan, &nan, &owner);
        assert_eq!((m.t2i_r1, m.t2i_r10, m.i2t_r1, m.i2t_r10, m.rsum), (0.0, 0.0, 0.0, 0.0, 0.0), "{m}");
        // one NaN image among good ones never outranks the right image
        let good = crate::model::l2_normalize(&Tensor::eye(n, (Kind::Float, tch::Device::Cpu)));
        let mut rows = Vec::<f32>::try_from(good.flatten(0, -1)).unwrap();
        rows[..n as usize].iter_mut().for_each(|x| *x = f32::NAN); // image 0
        let images = Tensor::from_slice(&rows).view([n, n]);
        let m = evaluate(&images, &good, &owner);
        assert!((m.t2i_r1 - 90.0).abs() < 1e-9, "image 0 is a miss, the other nine are hits: {m}");
    }

    /// `rank_model_dir`'s check: embeddings with a NaN or an infinity are an error naming what is wrong.
    #[test]
    fn non_finite_embeddings_are_an_error() {
        let ok = Tensor::ones([3, 4], (Kind::Float, tch::Device::Cpu));
        assert!(check_finite(&ok, "image vectors").is_ok());
        let bad = Tensor::from_slice(&[1.0f32, f32::INFINITY, 0.0, 1.0]).view([2, 2]);
        let e = check_finite(&bad, "image vectors").unwrap_err().to_string();
        assert!(e.contains("image vectors") && e.contains("row 0") && e.contains("not finite"), "{e}");
    }

    /// A collapsed model (every vector the same, as after `--lr 1e30`: finite but saturated) ties every score:
    /// ties are broken by index, as the engine's top-k does, so it scores as chance, not R@1 = 100.
    #[test]
    fn a_collapsed_model_scores_chance_not_perfect() {
        let n = 20;
        let same = Tensor::ones([n, 4], (Kind::Float, tch::Device::Cpu)) / 2.0;
        let owner: Vec<usize> = (0..n as usize).collect();
        let m = evaluate(&same, &same, &owner);
        assert_eq!((m.t2i_r1, m.t2i_r5, m.t2i_r10), (5.0, 25.0, 50.0), "rank = index: {m}");
        assert_eq!((m.i2t_r1, m.rsum), (5.0, 160.0), "{m}");
        assert_eq!(rank_of(&[0.5, 0.5, 0.9, 0.5], 3), 3, "ties with lower ids rank first");
        assert_eq!(rank_of(&[0.5, 0.5, 0.1], 0), 0);
    }
}

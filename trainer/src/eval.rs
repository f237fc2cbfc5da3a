//! The VSE evaluation protocol: every caption ranks all images (t2i), every image ranks all captions (i2t,
//! the rank of its best ground-truth caption). Recalls are percentages; median ranks are 1-based
//! (`floor(median(0-based ranks)) + 1`, as in the VSE++ code).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    pub t2i_r1: f64,
    pub t2i_r5: f64,
    pub t2i_r10: f64,
    pub i2t_r1: f64,
    pub i2t_r5: f64,
    pub i2t_r10: f64,
    pub t2i_medr: f64,
    pub i2t_medr: f64,
    pub rsum: f64,
}

impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "t2i R@1/5/10 {:.1}/{:.1}/{:.1} medr {} | i2t R@1/5/10 {:.1}/{:.1}/{:.1} medr {} | rsum {:.1}",
            self.t2i_r1, self.t2i_r5, self.t2i_r10, self.t2i_medr, self.i2t_r1, self.i2t_r5, self.i2t_r10,
            self.i2t_medr, self.rsum
        )
    }
}

/// 0-based rank of the target among `scores` (how many score strictly higher; ties favour the target).
fn rank_of(scores: &[f32], target: usize) -> usize {
    let s = scores[target];
    scores.iter().filter(|&&x| x > s).count()
}

fn summarise(ranks: &[usize]) -> (f64, f64, f64, f64) {
    let n = ranks.len().max(1) as f64;
    let r = |k: usize| 100.0 * ranks.iter().filter(|&&x| x < k).count() as f64 / n;
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    let median = if sorted.is_empty() {
        0.0
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2] as f64
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) as f64 / 2.0
    };
    (r(1), r(5), r(10), median.floor() + 1.0)
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

/// The ranks behind one image's queries: its captions' t2i ranks and its own i2t rank (0-based).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRanks {
    pub caption_ranks: Vec<usize>,
    pub best_caption_rank: usize,
}

/// Every query's rank, grouped by image (images without captions are left out). [`Metrics`] summarise them;
/// [`Ranks::bootstrap`] says how much they would move on another evaluation set of the same size.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranks {
    pub images: Vec<ImageRanks>,
}

/// A percentile bootstrap interval for every metric: `lo` and `hi` hold the 2.5th and 97.5th percentiles of
/// each field over `resamples` resampled evaluation sets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub level: f64,
    pub resamples: usize,
    pub lo: Metrics,
    pub hi: Metrics,
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

impl Metrics {
    const FIELDS: usize = 9;

    fn to_array(self) -> [f64; Self::FIELDS] {
        [self.t2i_r1, self.t2i_r5, self.t2i_r10, self.i2t_r1, self.i2t_r5, self.i2t_r10, self.t2i_medr, self.i2t_medr, self.rsum]
    }

    fn from_array(a: [f64; Self::FIELDS]) -> Self {
        let [t2i_r1, t2i_r5, t2i_r10, i2t_r1, i2t_r5, i2t_r10, t2i_medr, i2t_medr, rsum] = a;
        Metrics { t2i_r1, t2i_r5, t2i_r10, i2t_r1, i2t_r5, i2t_r10, t2i_medr, i2t_medr, rsum }
    }

    /// Field by field `self - other`.
    pub fn minus(&self, other: &Metrics) -> Metrics {
        let (a, b) = (self.to_array(), other.to_array());
        Metrics::from_array(std::array::from_fn(|k| a[k] - b[k]))
    }
}

impl Ranks {
    pub fn metrics(&self) -> Metrics {
        self.metrics_of(0..self.images.len())
    }

    /// Metrics of the images at `picks` (repeats count again: a bootstrap resample).
    fn metrics_of(&self, picks: impl Iterator<Item = usize> + Clone) -> Metrics {
        let t2i: Vec<usize> = picks.clone().flat_map(|i| self.images[i].caption_ranks.iter().copied()).collect();
        let i2t: Vec<usize> = picks.map(|i| self.images[i].best_caption_rank).collect();
        let (t1, t5, t10, tmed) = summarise(&t2i);
        let (i1, i5, i10, imed) = summarise(&i2t);
        Metrics {
            t2i_r1: t1,
            t2i_r5: t5,
            t2i_r10: t10,
            i2t_r1: i1,
            i2t_r5: i5,
            i2t_r10: i10,
            t2i_medr: tmed,
            i2t_medr: imed,
            rsum: t1 + t5 + t10 + i1 + i5 + i10,
        }
    }

    /// 95 % interval of every metric: the evaluation images are resampled with replacement `resamples` times
    /// (each with all its captions, so the 5 queries of an image stay together). Deterministic for a `seed`.
    pub fn bootstrap(&self, resamples: usize, seed: u64) -> Interval {
        bootstrap(self.images.len(), resamples, seed, |picks| self.metrics_of(picks.iter().copied()))
    }

    /// 95 % interval of `self - other` on the same queries (a paired bootstrap: both models are scored on the
    /// same resampled images), the way to tell whether one model really beats another on this set.
    pub fn paired_bootstrap(&self, other: &Ranks, resamples: usize, seed: u64) -> anyhow::Result<Interval> {
        let same_queries = self.images.len() == other.images.len()
            && self.images.iter().zip(&other.images).all(|(a, b)| a.caption_ranks.len() == b.caption_ranks.len());
        if !same_queries {
            anyhow::bail!(
                "the two models were not evaluated on the same queries ({} vs {} images): compare them on one captions file and image folder",
                self.images.len(),
                other.images.len()
            );
        }
        Ok(bootstrap(self.images.len(), resamples, seed, |picks| {
            self.metrics_of(picks.iter().copied()).minus(&other.metrics_of(picks.iter().copied()))
        }))
    }
}

fn bootstrap(n: usize, resamples: usize, seed: u64, metrics: impl Fn(&[usize]) -> Metrics) -> Interval {
    use rand::{Rng, SeedableRng};
    assert!(n > 0 && resamples > 0, "bootstrap needs images and at least one resample");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut picks = vec![0usize; n];
    let mut columns: Vec<Vec<f64>> = (0..Metrics::FIELDS).map(|_| Vec::with_capacity(resamples)).collect();
    for _ in 0..resamples {
        picks.iter_mut().for_each(|p| *p = rng.random_range(0..n));
        for (column, value) in columns.iter_mut().zip(metrics(&picks).to_array()) {
            column.push(value);
        }
    }
    columns.iter_mut().for_each(|c| c.sort_by(f64::total_cmp));
    let quantile = |q: f64| {
        let at = ((q * (resamples - 1) as f64).round() as usize).min(resamples - 1);
        Metrics::from_array(std::array::from_fn(|k| columns[k][at]))
    };
    Interval { level: 0.95, resamples, lo: quantile(0.025), hi: quantile(0.975) }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (lo, hi) = (self.lo, self.hi);
        write!(
            f,
            "{:.0} % interval ({} resamples): t2i R@1 {:.1}–{:.1}, R@5 {:.1}–{:.1}, R@10 {:.1}–{:.1} | i2t R@1 {:.1}–{:.1}, \
             R@5 {:.1}–{:.1}, R@10 {:.1}–{:.1} | rsum {:.1}–{:.1}",
            100.0 * self.level,
            self.resamples,
            lo.t2i_r1, hi.t2i_r1, lo.t2i_r5, hi.t2i_r5, lo.t2i_r10, hi.t2i_r10,
            lo.i2t_r1, hi.i2t_r1, lo.i2t_r5, hi.i2t_r5, lo.i2t_r10, hi.i2t_r10,
            lo.rsum, hi.rsum
        )
    }
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
pub fn rank_model_dir(
    model: &std::path::Path,
    captions: &std::path::Path,
    images: &std::path::Path,
    cache: &std::path::Path,
    weights: Option<std::path::PathBuf>,
    plain: bool,
) -> anyhow::Result<Ranks> {
    let device = crate::default_device();
    let loaded = crate::export::load_model_dir_with(model, weights.as_deref(), device)?;
    if loaded.dir.image_head.is_none() {
        anyhow::bail!("{} has no image head; eval needs image_head.safetensors", model.display());
    }
    let retrieval = if plain { None } else { loaded.dir.manifest.retrieval.clone() };
    let ds = crate::data::Dataset::load(&[captions.to_path_buf()])?.with_captions()?.truncate_captions(5);
    let files = ds.image_paths(images);
    let weights = weights.unwrap_or_else(|| crate::backbone::assets_dir().join(loaded.backbone.default_weights_file()));
    // A fine-tuned model runs its own stages on the cached input of its first fine-tuned stage.
    let split = loaded.model.tail.as_ref().map(|t| t.from);
    let spec = crate::features::CacheSpec { backbone: loaded.backbone, weights, split };
    let views = crate::features::views_of(retrieval.as_ref())?;
    let mut feats = Vec::with_capacity(views.len());
    for &view in &views {
        feats.push(crate::features::extract(cache, &spec, view, &files, device)?);
        // nothing readable in the first view: stop before the other views
        if feats.len() == 1 && feats[0].ok.iter().all(|&ok| !ok) {
            anyhow::bail!("none of the {} images of {} could be read from {}", ds.images.len(), captions.display(), images.display());
        }
    }
    let keep: Vec<usize> = (0..ds.images.len()).filter(|&i| feats.iter().all(|f| f.ok[i])).collect();
    if keep.len() < ds.images.len() {
        tracing::warn!("{} unreadable images left out of the evaluation", ds.images.len() - keep.len());
    }
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
    let mut seqs = Vec::new();
    let mut owner = Vec::new();
    for (row, &i) in keep.iter().enumerate() {
        for c in &ds.images[i].captions {
            seqs.push(crate::text::encode(&loaded.vocab, c));
            owner.push(row);
        }
    }
    let caps = crate::model::encode_texts(&loaded.model.text, &seqs, 256, device);
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
    Ok(rank_queries(&imgs, &caps, &owner, penalty.as_deref()))
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
        // from image 0's first caption (= e_0): tie favours the target -> all ranks 0.
        assert_eq!(m.i2t_r1, 100.0);
        assert!((m.rsum - (m.t2i_r1 + m.t2i_r5 + m.t2i_r10 + 300.0)).abs() < 1e-9);
    }

    #[test]
    fn random_embeddings_are_near_chance_and_perfect_ones_are_perfect() {
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

    /// Ranks of `n` images with 5 captions each, spread over 0..40 by a fixed pattern.
    fn spread_ranks(n: usize) -> Ranks {
        let rank = |i: usize, k: usize| (i * 7 + k * 13) % 41 / (1 + (i + k) % 3);
        Ranks {
            images: (0..n)
                .map(|i| ImageRanks { caption_ranks: (0..5).map(|k| rank(i, k)).collect(), best_caption_rank: rank(i, 5) })
                .collect(),
        }
    }

    #[test]
    fn bootstrap_interval_holds_the_estimate_and_narrows_with_more_queries() {
        let ranks = spread_ranks(200);
        let (m, ci) = (ranks.metrics(), ranks.bootstrap(500, 1));
        for ((lo, x), hi) in ci.lo.to_array().into_iter().zip(m.to_array()).zip(ci.hi.to_array()) {
            assert!(lo <= x && x <= hi, "{lo} <= {x} <= {hi}");
        }
        assert!(ci.hi.t2i_r1 - ci.lo.t2i_r1 > 1.0, "200 images leave real uncertainty: {ci}");
        assert_eq!(ci, ranks.bootstrap(500, 1), "deterministic for a seed");
        // four times the queries, half the width (1/sqrt(n))
        let big = Ranks { images: ranks.images.iter().cycle().take(800).cloned().collect() };
        let (w, w4) = (ci.hi.i2t_r10 - ci.lo.i2t_r10, big.bootstrap(500, 1).hi.i2t_r10 - big.bootstrap(500, 1).lo.i2t_r10);
        assert!((0.35..0.65).contains(&(w4 / w)), "width {w} -> {w4}");
        let perfect = Ranks { images: (0..50).map(|_| ImageRanks { caption_ranks: vec![0; 5], best_caption_rank: 0 }).collect() };
        let ci = perfect.bootstrap(100, 0);
        assert_eq!((ci.lo.rsum, ci.hi.rsum, ci.lo.t2i_medr, ci.hi.i2t_medr), (600.0, 600.0, 1.0, 1.0));
    }

    #[test]
    fn paired_bootstrap_sees_a_real_difference_and_refuses_other_queries() {
        let a = spread_ranks(300);
        let same = a.paired_bootstrap(&a, 200, 0).unwrap();
        assert_eq!((same.lo, same.hi), (Metrics::default(), Metrics::default()));
        // b is a everywhere except 30 % of the images, whose i2t hit moves from rank 0 to rank 3
        let mut b = a.clone();
        for (i, im) in b.images.iter_mut().enumerate() {
            if i % 10 < 3 {
                im.best_caption_rank += 3;
            }
        }
        let d = a.paired_bootstrap(&b, 500, 0).unwrap();
        let point = a.metrics().minus(&b.metrics());
        assert!(point.i2t_r1 > 0.0 && d.lo.i2t_r1 > 0.0, "a is better on i2t R@1 and the interval says so: {d}");
        assert_eq!((d.lo.t2i_r1, d.hi.t2i_r1), (0.0, 0.0), "t2i is unchanged");
        let e = a.paired_bootstrap(&spread_ranks(299), 10, 0).unwrap_err().to_string();
        assert!(e.contains("same queries") && e.contains("300 vs 299"), "{e}");
    }

    #[test]
    fn summarise_median_is_vse_style() {
        assert_eq!(summarise(&[0, 1, 2, 3]).3, 2.0); // median 1.5 -> floor 1 -> +1
        assert_eq!(summarise(&[4]).3, 5.0);
        assert_eq!(summarise(&[0, 9]).0, 50.0);
    }
}

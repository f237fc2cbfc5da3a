//! The VSE metrics and how sure they are: recall@K, median ranks and rsum of per-query ranks ([`Ranks`]), and
//! bootstrap intervals over resampled evaluation images. Recalls are percentages; median ranks are 1-based
//! (`floor(median(0-based ranks)) + 1`, as in the VSE++ code). A leaf: plain numbers in, numbers out.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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

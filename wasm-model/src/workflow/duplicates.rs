//! Near-duplicates: pictures so alike that showing both wastes a place (the same shot twice, a burst, a crop).
//! The threshold is calibrated on each gallery from the distribution of its pictures' nearest-neighbour
//! cosines: a pair is a near-duplicate when it is an outlier of that distribution,
//!
//! `threshold = clamp(median + 2.5 × 1.4826 × MAD, 0.70, 0.95)`
//!
//! (MAD: the median absolute deviation, ×1.4826 a robust standard deviation). Measured
//! (`examples/workflow_calibrate.rs`): the default gallery's nearest-neighbour median is 0.60 (MAD 0.087), so
//! 0.92; Flickr8k val's 0.49 (MAD 0.056), so the floor, 0.70. The floor keeps unrelated pictures apart in a
//! gallery of a few photos (the 99.9th percentile of random pairs is 0.64 and 0.52); the ceiling still joins re-encoded or
//! resized copies in a gallery made of them. Collapsing then walks a ranking best first: a result joins the
//! group of the first better-ranked one it is a near-duplicate of, else starts its own.

use crate::rank::dot_f32;

pub const DUPLICATE_Z: f32 = 2.5;
pub const MIN_DUPLICATE_COSINE: f32 = 0.70;
pub const MAX_DUPLICATE_COSINE: f32 = 0.95;
/// Pictures whose nearest neighbour a calibration measures (evenly spread over the gallery).
pub const CALIBRATION_SAMPLES: usize = 128;
/// Rows a calibration compares them with: a larger gallery is compared against an evenly spread subset (its
/// nearest neighbours then read a little low, which only lowers the threshold towards the floor).
pub const CALIBRATION_REFERENCE: usize = 4096;

/// A gallery's near-duplicate threshold and what it came from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DuplicateCalibration {
    pub threshold: f32,
    pub median: f32,
    pub mad: f32,
    /// Nearest-neighbour cosines it was computed from.
    pub samples: usize,
}

fn median(sorted: &[f32]) -> f32 {
    let n = sorted.len();
    if n == 0 {
        return f32::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The threshold for nearest-neighbour cosines `nn` (NaN values ignored). Fewer than 2: the ceiling (only
/// near-identical pictures are duplicates when nothing is known about the gallery).
pub fn calibrate(nn: &[f32]) -> DuplicateCalibration {
    let mut v: Vec<f32> = nn.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return DuplicateCalibration { threshold: MAX_DUPLICATE_COSINE, median: f32::NAN, mad: f32::NAN, samples: v.len() };
    }
    v.sort_by(f32::total_cmp);
    let m = median(&v);
    let mut dev: Vec<f32> = v.iter().map(|x| (x - m).abs()).collect();
    dev.sort_by(f32::total_cmp);
    let mad = median(&dev);
    let threshold = (m + DUPLICATE_Z * 1.4826 * mad).clamp(MIN_DUPLICATE_COSINE, MAX_DUPLICATE_COSINE);
    DuplicateCalibration { threshold, median: m, mad, samples: v.len() }
}

/// `count` indices spread evenly over `0..n` (all of them when `count ≥ n`), ascending.
pub fn spread(n: usize, count: usize) -> Vec<usize> {
    if count >= n {
        return (0..n).collect();
    }
    (0..count).map(|i| i * n / count).collect()
}

/// Groups of `vectors` (unit length, in rank order): each group lists indices, its first (best-ranked) member
/// first; groups are in the order of their first members. A vector joins the first earlier group whose first
/// member it has a cosine ≥ `threshold` with.
pub fn collapse(vectors: &[Vec<f32>], threshold: f32) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        match groups.iter_mut().find(|g| dot_f32(&vectors[g[0]], v) >= threshold) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// Pairs `(i, j)`, `i < j`, of `vectors` at or above `threshold`: how many near-duplicates a list shows (what
/// the benchmark counts before and after collapsing).
pub fn duplicate_pairs(vectors: &[Vec<f32>], threshold: f32) -> usize {
    (0..vectors.len()).map(|j| (0..j).filter(|&i| dot_f32(&vectors[i], &vectors[j]) >= threshold).count()).sum()
}

/// Results of a list that are a near-duplicate of a better-ranked one (each counted once).
pub fn duplicates_in(vectors: &[Vec<f32>], threshold: f32) -> usize {
    (1..vectors.len()).filter(|&j| (0..j).any(|i| dot_f32(&vectors[i], &vectors[j]) >= threshold)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_is_a_robust_outlier_bound_clamped() {
        // median 0.5, MAD 0.05 → 0.5 + 2.5 × 1.4826 × 0.05 = 0.6853 → the floor
        let c = calibrate(&[0.4, 0.45, 0.5, 0.55, 0.6, f32::NAN]);
        assert_eq!((c.median, c.samples), (0.5, 5));
        assert!((c.mad - 0.05).abs() < 1e-6);
        assert_eq!(c.threshold, MIN_DUPLICATE_COSINE);
        // median 0.6, MAD 0.08 → 0.8965
        let c = calibrate(&[0.44, 0.52, 0.6, 0.68, 0.76]);
        assert!((c.threshold - (0.6 + 2.5 * 1.4826 * 0.08)).abs() < 1e-5, "{c:?}");
        // a gallery of copies: the ceiling
        assert_eq!(calibrate(&[0.99, 0.995, 0.999]).threshold, MAX_DUPLICATE_COSINE);
        // one outlier does not move it (the mean and standard deviation would)
        let mut many = vec![0.5; 50];
        many.push(0.99);
        assert_eq!(calibrate(&many).threshold, MIN_DUPLICATE_COSINE);
        assert_eq!(calibrate(&[0.3]).threshold, MAX_DUPLICATE_COSINE);
    }

    #[test]
    fn spread_is_even_and_complete_when_small() {
        assert_eq!(spread(5, 10), [0, 1, 2, 3, 4]);
        assert_eq!(spread(10, 4), [0, 2, 5, 7]);
        assert!(spread(0, 3).is_empty());
    }

    #[test]
    fn collapse_groups_under_the_best_ranked_member() {
        let e = |i: usize| {
            let mut v = vec![0.0; 3];
            v[i] = 1.0;
            v
        };
        let near0 = vec![0.96, 0.28, 0.0]; // cos 0.96 with e(0)
        let vs = vec![e(0), e(1), near0.clone(), e(2), near0];
        assert_eq!(collapse(&vs, 0.9), vec![vec![0, 2, 4], vec![1], vec![3]]);
        assert_eq!(collapse(&vs, 0.97), vec![vec![0], vec![1], vec![2, 4], vec![3]]);
        assert_eq!(duplicate_pairs(&vs, 0.9), 3);
        assert_eq!(duplicates_in(&vs, 0.9), 2);
        assert!(collapse(&[], 0.9).is_empty());
    }
}

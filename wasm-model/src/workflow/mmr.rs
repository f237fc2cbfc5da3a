//! "More varied": maximal marginal relevance (Carbonell & Goldstein, 1998) over a query's candidates. Each next
//! result is the candidate with the best
//!
//! `λ · relevance − (1 − λ) · max(0, cosine to the results already chosen)`,  λ = 0.6
//!
//! where relevance is the candidate's score rescaled to 0..1 over the candidates (text-to-image scores span
//! ~0.1–0.4 while picture-to-picture cosines span ~0.3–1, so raw scores would let the variety term swamp the
//! query). The first result is always the best-scored one. λ is measured on the default gallery and Flickr8k
//! val (docs/benchmarks.md "Writer's workflow: near-duplicates"): on Flickr8k val it halves the near-duplicates
//! of the top 20 (0.21 → 0.10 per query) while keeping 17.6 of the plain 20 (collapse removes them all).

use crate::rank::dot_f32;

pub const MMR_LAMBDA: f32 = 0.6;

/// The order MMR picks `k` of the candidates in (indices into `scores` / `vectors`, which are in rank order).
/// Ties go to the better-ranked candidate, so the result is deterministic.
pub fn mmr(scores: &[f32], vectors: &[Vec<f32>], k: usize, lambda: f32) -> Vec<usize> {
    let n = scores.len().min(vectors.len());
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let finite = scores[..n].iter().copied().filter(|s| s.is_finite());
    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let span = hi - lo;
    let relevance = |i: usize| if span > 0.0 && scores[i].is_finite() { (scores[i] - lo) / span } else if scores[i].is_finite() { 1.0 } else { -1.0 };
    // the highest cosine of each candidate to the chosen ones, updated as each is chosen
    let mut closest = vec![0.0f32; n]; // max(0, cosine): being unlike earns no bonus
    let mut taken = vec![false; n];
    let mut order = Vec::with_capacity(k);
    for step in 0..k {
        let mut best: Option<(usize, f32)> = None;
        for i in (0..n).filter(|&i| !taken[i]) {
            let value = if step == 0 { relevance(i) } else { lambda * relevance(i) - (1.0 - lambda) * closest[i] };
            if best.is_none_or(|(_, b)| value > b) {
                best = Some((i, value));
            }
        }
        let (pick, _) = best.expect("k ≤ n leaves a candidate");
        taken[pick] = true;
        order.push(pick);
        for i in (0..n).filter(|&i| !taken[i]) {
            closest[i] = closest[i].max(dot_f32(&vectors[i], &vectors[pick]));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_best_then_trades_relevance_for_variety() {
        let a = vec![1.0, 0.0];
        let a2 = vec![0.995, 0.0998]; // almost a
        let b = vec![0.0, 1.0];
        let far = vec![-1.0, 0.0]; // unlike all, and least relevant
        let scores = [0.40, 0.39, 0.38, 0.10];
        let vectors = vec![a, a2, b, far];
        // plain relevance (λ = 1): rank order
        assert_eq!(mmr(&scores, &vectors, 4, 1.0), [0, 1, 2, 3]);
        // with variety, the different picture comes before the near-copy of the first
        assert_eq!(mmr(&scores, &vectors, 4, MMR_LAMBDA), [0, 2, 1, 3]);
        assert_eq!(mmr(&scores, &vectors, 2, MMR_LAMBDA), [0, 2]);
        assert_eq!(mmr(&scores, &vectors, 10, MMR_LAMBDA).len(), 4);
        assert!(mmr(&[], &[], 3, 0.5).is_empty());
    }

    #[test]
    fn equal_scores_and_ties_are_deterministic() {
        let vectors = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        assert_eq!(mmr(&[0.3, 0.3, 0.3], &vectors, 3, 0.5), [0, 2, 1]);
        assert_eq!(mmr(&[0.3, f32::NAN, 0.2], &vectors, 3, 1.0), [0, 2, 1], "NaN is least relevant");
    }
}

//! Refine with 👍 / 👎: relevance feedback in the joint embedding space (Rocchio, 1971), the same kind of
//! vector arithmetic as the prompt syntax (`beach -people`), with pictures instead of words:
//!
//! `q' = normalise(α·q + β·mean(liked) − γ·mean(disliked))`, α = 1, β = 0.75, γ = 0.15
//!
//! (the SMART weights of Salton & Buckley, 1990: a liked picture pulls the query most of the way towards it,
//! a disliked one pushes it gently away, since what is wrong with a picture is less clear than what is right).
//! Every vector is unit length, so the weights mean the same for text and image vectors. The marked pictures
//! keep their place in the answer's order only by their new score; disliked ones are left out of the answer
//! (the writer has judged them).

use crate::rank::dot_f32;

pub const ROCCHIO_ALPHA: f32 = 1.0;
pub const ROCCHIO_BETA: f32 = 0.75;
pub const ROCCHIO_GAMMA: f32 = 0.15;
/// Marks of each kind a query takes (each is one more row to read; a share link carries them all).
pub const MAX_MARKS: usize = 50;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeedbackError {
    #[error("the marked pictures cancel the query out (liked and disliked the same pictures?); clear some marks")]
    CancelsOut,
    #[error("a marked picture's vector has {found} values, the query {expected}")]
    Dim { found: usize, expected: usize },
}

/// The query moved towards the mean of `liked` and away from the mean of `disliked` (all unit vectors of the
/// query's length), normalised. No marks: the query itself.
pub fn rocchio(query: &[f32], liked: &[Vec<f32>], disliked: &[Vec<f32>]) -> Result<Vec<f32>, FeedbackError> {
    let mut q: Vec<f32> = query.iter().map(|x| ROCCHIO_ALPHA * x).collect();
    for (rows, weight) in [(liked, ROCCHIO_BETA), (disliked, -ROCCHIO_GAMMA)] {
        if rows.is_empty() {
            continue;
        }
        let share = weight / rows.len() as f32;
        for r in rows {
            if r.len() != q.len() {
                return Err(FeedbackError::Dim { found: r.len(), expected: q.len() });
            }
            q.iter_mut().zip(r).for_each(|(a, b)| *a += share * b);
        }
    }
    let norm = dot_f32(&q, &q).sqrt();
    if !norm.is_finite() || norm < 1e-6 {
        return Err(FeedbackError::CancelsOut);
    }
    Ok(q.into_iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = dot_f32(v, v).sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn moves_towards_liked_and_away_from_disliked() {
        let q = unit(&[1.0, 0.0, 0.0]);
        let (liked, disliked) = (unit(&[0.0, 1.0, 0.0]), unit(&[0.0, 0.0, 1.0]));
        assert_eq!(rocchio(&q, &[], &[]).unwrap(), q);
        let moved = rocchio(&q, std::slice::from_ref(&liked), std::slice::from_ref(&disliked)).unwrap();
        // exactly α·q + β·l − γ·d, normalised
        let expect = unit(&[ROCCHIO_ALPHA, ROCCHIO_BETA, -ROCCHIO_GAMMA]);
        moved.iter().zip(&expect).for_each(|(a, b)| assert!((a - b).abs() < 1e-6, "{moved:?} vs {expect:?}"));
        assert!(dot_f32(&moved, &liked) > dot_f32(&q, &liked));
        assert!(dot_f32(&moved, &disliked) < dot_f32(&q, &disliked));
        // two liked pictures count as their mean: the same as one liked picture at their mean direction
        let two = rocchio(&q, &[liked.clone(), liked.clone()], &[]).unwrap();
        assert_eq!(two, rocchio(&q, std::slice::from_ref(&liked), &[]).unwrap());
    }

    #[test]
    fn refuses_what_cannot_be_ranked() {
        let q = unit(&[1.0, 0.0]);
        assert_eq!(rocchio(&q, &[vec![1.0]], &[]), Err(FeedbackError::Dim { found: 1, expected: 2 }));
        // a query that only dislikes itself hard enough cannot happen with γ < α; a zero query can
        assert_eq!(rocchio(&[0.0, 0.0], &[], &[]), Err(FeedbackError::CancelsOut));
        let back = rocchio(&[0.0, 0.0], std::slice::from_ref(&q), &[]).unwrap();
        assert!((back[0] - 1.0).abs() < 1e-6, "liked pictures alone still make a query");
    }
}

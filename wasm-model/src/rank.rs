//! Scoring kernels and top-k selection. The loops use independent accumulators over fixed-size chunks so
//! LLVM vectorises them natively (SSE/AVX) and, built with `+simd128`, in wasm.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Dot product of two equal-length f32 slices (extra elements of the longer one are ignored).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Exact integer dot product of an int8 row with an i16-quantised query.
///
/// Products fit i32 (127 × 32767 < 2^22); blocks of 256 keep the i32 partial sums from overflowing.
#[inline(always)]
pub fn dot_i8_i16(a: &[i8], q: &[i16]) -> i64 {
    let n = a.len().min(q.len());
    let mut total = 0i64;
    for (ba, bq) in a[..n].chunks(256).zip(q[..n].chunks(256)) {
        const L: usize = 32;
        // Adjacent pairs summed into one i32 lane: the shape of x86 `pmaddwd` / wasm `i32x4.dot_i16x8_s`.
        let mut acc = [0i32; L / 2];
        let (ca, cq) = (ba.chunks_exact(L), bq.chunks_exact(L));
        let (ra, rq) = (ca.remainder(), cq.remainder());
        for (x, y) in ca.zip(cq) {
            for i in 0..L / 2 {
                acc[i] += x[2 * i] as i32 * y[2 * i] as i32 + x[2 * i + 1] as i32 * y[2 * i + 1] as i32;
            }
        }
        let tail: i32 = ra.iter().zip(rq).map(|(&x, &y)| x as i32 * y as i32).sum();
        total += acc.iter().map(|&v| v as i64).sum::<i64>() + tail as i64;
    }
    total
}

/// Dot product of an int8 row with an f32 query (each i8 widened to f32).
#[inline(always)]
pub fn dot_i8_f32(a: &[i8], q: &[f32]) -> f32 {
    const L: usize = 16;
    let n = a.len().min(q.len());
    let (a, q) = (&a[..n], &q[..n]);
    let mut acc = [0f32; L];
    let (ca, cq) = (a.chunks_exact(L), q.chunks_exact(L));
    let (ra, rq) = (ca.remainder(), cq.remainder());
    for (x, y) in ca.zip(cq) {
        for i in 0..L {
            acc[i] += x[i] as f32 * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rq).map(|(&x, y)| x as f32 * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Scores of int8 rows (`values`, row-major N × `dim`, per-row `scales`) against an f32 query:
/// `scale_i · Σ x_ij q_j`. On x86-64 with AVX2 (checked at run time) the same loop is compiled for AVX2
/// (no FMA), so the operations and their order, and hence the scores, are the same as the portable and
/// wasm builds. (Measured faster than an i16-quantised-query integer kernel, `dot_i8_i16`: see the bench.)
pub fn scores_i8(values: &[i8], scales: &[f32], dim: usize, q: &[f32], out: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        unsafe { scores_i8_avx2(values, scales, dim, q, out) };
        return;
    }
    scores_i8_generic(values, scales, dim, q, out)
}

#[inline(always)]
fn scores_i8_generic(values: &[i8], scales: &[f32], dim: usize, q: &[f32], out: &mut Vec<f32>) {
    // Four rows at a time share each load of the query (the kernel was bound by those loads: 6 GB/s natively);
    // each row's sum runs exactly as `dot_i8_f32`'s (same lanes, same order), so scores do not change a bit.
    const R: usize = 4;
    let mut blocks = values.chunks_exact(dim * R);
    let mut rows_done = 0;
    for block in blocks.by_ref() {
        let sums = dot4_i8_f32(block, dim, q);
        out.extend(sums.iter().zip(&scales[rows_done..rows_done + R]).map(|(d, s)| d * s));
        rows_done += R;
    }
    out.extend(blocks.remainder().chunks_exact(dim).zip(&scales[rows_done..]).map(|(row, s)| dot_i8_f32(row, q) * s));
}

/// `dot_i8_f32` of four consecutive rows (`block` = 4 × `dim`) with one pass over the query.
#[inline(always)]
fn dot4_i8_f32(block: &[i8], dim: usize, q: &[f32]) -> [f32; 4] {
    const L: usize = 16;
    let n = dim.min(q.len());
    let (r0, r1, r2, r3) = (&block[..n], &block[dim..dim + n], &block[2 * dim..2 * dim + n], &block[3 * dim..3 * dim + n]);
    let q = &q[..n];
    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; L], [0f32; L], [0f32; L], [0f32; L]);
    let chunks = q.chunks_exact(L).zip(r0.chunks_exact(L)).zip(r1.chunks_exact(L)).zip(r2.chunks_exact(L)).zip(r3.chunks_exact(L));
    for ((((y, x0), x1), x2), x3) in chunks {
        for i in 0..L {
            a0[i] += x0[i] as f32 * y[i];
            a1[i] += x1[i] as f32 * y[i];
            a2[i] += x2[i] as f32 * y[i];
            a3[i] += x3[i] as f32 * y[i];
        }
    }
    let full = n / L * L;
    let tail = |row: &[i8]| -> f32 { row[full..].iter().zip(&q[full..]).map(|(&x, y)| x as f32 * y).sum() };
    [
        a0.iter().sum::<f32>() + tail(r0),
        a1.iter().sum::<f32>() + tail(r1),
        a2.iter().sum::<f32>() + tail(r2),
        a3.iter().sum::<f32>() + tail(r3),
    ]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scores_i8_avx2(values: &[i8], scales: &[f32], dim: usize, q: &[f32], out: &mut Vec<f32>) {
    scores_i8_generic(values, scales, dim, q, out)
}

/// A gallery row and its score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scored {
    pub id: u32,
    pub score: f32,
}

/// Heap order: the greatest element is the worst kept candidate (lowest score, then highest id).
#[derive(Debug, Clone, PartialEq)]
struct Worst(Scored);
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.score.total_cmp(&self.0.score).then(self.0.id.cmp(&other.0.id))
    }
}

/// Whether `a` ranks before `b`: higher score first, ties to the lower id.
fn better(a: Scored, b: Scored) -> bool {
    a.score > b.score || (a.score == b.score && a.id < b.id)
}

/// The `k` best of `scores` (index = id), best first, by a bounded heap: O(N log k), not a full sort.
/// NaN scores rank last; `exclude` (e.g. the query image itself) is skipped.
pub fn top_k(scores: &[f32], k: usize, exclude: Option<u32>) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k.min(scores.len()) + 1);
    for (id, &s) in scores.iter().enumerate() {
        let id = id as u32;
        if Some(id) == exclude {
            continue;
        }
        let cand = Scored { id, score: if s.is_nan() { f32::NEG_INFINITY } else { s } };
        if heap.len() < k {
            heap.push(Worst(cand));
        } else if better(cand, heap.peek().expect("heap holds k > 0 items").0) {
            heap.pop();
            heap.push(Worst(cand));
        }
    }
    // Ascending in `Worst` order = best first.
    heap.into_sorted_vec().into_iter().map(|w| w.0).collect()
}

/// A running top-k in `top_k`'s order (higher score first, ties to the lower id), fed one candidate at a
/// time: a partitioned gallery's lists arrive one by one, and the result does not depend on their order.
/// Unlike `top_k`, a NaN score is never kept.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self { k, heap: BinaryHeap::with_capacity(k.min(4096) + 1) }
    }

    #[inline]
    pub fn offer(&mut self, id: u32, score: f32) {
        if score.is_nan() || self.k == 0 {
            return;
        }
        let cand = Scored { id, score };
        if self.heap.len() < self.k {
            self.heap.push(Worst(cand));
        } else if better(cand, self.heap.peek().expect("heap holds k > 0 items").0) {
            self.heap.pop();
            self.heap.push(Worst(cand));
        }
    }

    /// The candidates kept so far, best first.
    pub fn sorted(&self) -> Vec<Scored> {
        self.heap.clone().into_sorted_vec().into_iter().map(|w| w.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kernels_match_naive_sums() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot_f32(&a, &b) - naive).abs() < 1e-5);
        let x: Vec<i8> = (0..1000).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let q: Vec<i16> = (0..1000).map(|i| ((i * 7919) % 65535 - 32767) as i16).collect();
        let naive: i64 = x.iter().zip(&q).map(|(&a, &b)| a as i64 * b as i64).sum();
        assert_eq!(dot_i8_i16(&x, &q), naive);
        // Worst case magnitude does not overflow.
        assert_eq!(dot_i8_i16(&[-128; 4096], &[-32768; 4096]), 128 * 32768 * 4096);
    }

    #[test]
    fn dispatched_int8_scores_equal_the_portable_kernel() {
        // Rows in blocks of four and the rest, dimensions with and without a tail: the blocked, AVX2-dispatched
        // kernel must equal the one-row kernel to the bit.
        for (dim, rows) in [(40, 7), (512, 9), (3, 5), (512, 4), (17, 1)] {
            let values: Vec<i8> = (0..dim * rows).map(|i| ((i * 53) % 255) as i16 as i8).collect();
            let scales: Vec<f32> = (0..rows).map(|i| 0.001 * (i + 1) as f32).collect();
            let q: Vec<f32> = (0..dim).map(|i| (i as f32 - 20.0) * 0.01).collect();
            let mut got = Vec::new();
            scores_i8(&values, &scales, dim, &q, &mut got);
            let want: Vec<f32> = (0..rows).map(|r| dot_i8_f32(&values[r * dim..(r + 1) * dim], &q) * scales[r]).collect();
            assert_eq!(got, want, "dim {dim}, {rows} rows: blocking and AVX2 dispatch must not change a bit");
        }
        let (dim, values, q) = (40, (0..40).map(|i| ((i * 53) % 255) as i16 as i8).collect::<Vec<i8>>(), (0..40).map(|i| (i as f32 - 20.0) * 0.01).collect::<Vec<f32>>());
        let naive: f32 = values[..dim].iter().zip(&q).map(|(&x, y)| x as f32 * y).sum();
        assert!((dot_i8_f32(&values[..dim], &q) - naive).abs() < 1e-4);
    }

    #[test]
    fn top_k_orders_by_score_then_lower_id() {
        let s = [0.5, 0.9, 0.5, f32::NAN, 0.9, -1.0];
        let ids = |v: Vec<Scored>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(top_k(&s, 3, None)), [1, 4, 0]);
        assert_eq!(ids(top_k(&s, 10, None)), [1, 4, 0, 2, 5, 3]);
        assert_eq!(ids(top_k(&s, 2, Some(1))), [4, 0]);
        assert!(top_k(&s, 0, None).is_empty());
        assert!(top_k(&[], 5, None).is_empty());
    }

    proptest! {
        #[test]
        fn running_top_k_equals_top_k_in_any_order(scores in prop::collection::vec(-3i32..3, 0..200), k in 0usize..50, split in 0usize..200) {
            let scores: Vec<f32> = scores.into_iter().map(|s| s as f32 / 2.0).collect();
            let mut running = TopK::new(k);
            let split = split.min(scores.len());
            // Two "lists" offered back to front: the order must not matter.
            for (i, &s) in scores.iter().enumerate().skip(split) {
                running.offer(i as u32, s);
            }
            for (i, &s) in scores.iter().enumerate().take(split) {
                running.offer(i as u32, s);
            }
            running.offer(9999, f32::NAN);
            prop_assert_eq!(running.sorted(), top_k(&scores, k, None));
        }

        #[test]
        fn top_k_equals_full_sort(scores in prop::collection::vec(-3i32..3, 0..200), k in 0usize..50) {
            let scores: Vec<f32> = scores.into_iter().map(|s| s as f32 / 2.0).collect();
            let mut all: Vec<Scored> = scores.iter().enumerate().map(|(i, &s)| Scored { id: i as u32, score: s }).collect();
            all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            all.truncate(k);
            prop_assert_eq!(top_k(&scores, k, None), all);
        }
    }
}

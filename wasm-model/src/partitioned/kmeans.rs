//! Spherical k-means, the partitioned gallery's coarse quantiser: centroids are unit vectors and rows go to the
//! centroid of highest inner product, which is how queries rank lists. Written here rather than taken from a
//! crate: linfa-clustering's KMeans is Euclidean with per-pair distance loops, and the `kmeans` crate needs
//! nightly `std::simd`; the expensive step, rows × centroids, is one candle matmul (the gemm crate, threaded),
//! which makes a 1 M-row assignment take seconds rather than minutes. Deterministic: a ChaCha8 seed drives the
//! k-means++ seeding, ties go to the lower list, empty lists are re-seeded by a fixed rule.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::rank::dot_f32;

/// k-means settings (the defaults are what `partition` uses).
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansParams {
    pub lists: usize,
    /// Lloyd iterations (stops earlier when no row changes list).
    pub iterations: usize,
    pub seed: u64,
}

/// Rows per matmul in `assign` (bounds the score matrix at 4096 × lists f32).
const CHUNK: usize = 4096;

/// For each row of `rows` (row-major, `dim` wide): the list whose centroid has the highest inner product
/// with it (ties to the lower list; a NaN score never wins), and that inner product.
pub fn assign(rows: &[f32], dim: usize, centroids: &[f32]) -> candle_core::Result<Vec<(u32, f32)>> {
    let lists = centroids.len() / dim;
    let c = Tensor::from_slice(centroids, (lists, dim), &Device::Cpu)?.t()?.contiguous()?;
    let mut out = Vec::with_capacity(rows.len() / dim);
    for chunk in rows.chunks(CHUNK * dim) {
        let n = chunk.len() / dim;
        let scores: Vec<f32> = Tensor::from_slice(chunk, (n, dim), &Device::Cpu)?.matmul(&c)?.flatten_all()?.to_vec1()?;
        out.extend(scores.chunks_exact(lists).map(|s| {
            let mut best = (0u32, f32::NEG_INFINITY);
            for (l, &v) in s.iter().enumerate() {
                if v > best.1 {
                    best = (l as u32, v);
                }
            }
            best
        }));
    }
    Ok(out)
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Trains `params.lists` unit centroids on `rows` (unit vectors, row-major; at least `lists` rows).
pub fn train_centroids(rows: &[f32], dim: usize, params: &KMeansParams) -> candle_core::Result<Vec<f32>> {
    let n = rows.len() / dim;
    let lists = params.lists.clamp(1, n.max(1));
    let mut centroids = plus_plus(rows, dim, lists, params.seed);
    let mut previous: Vec<u32> = Vec::new();
    for _ in 0..params.iterations {
        let assigned = assign(rows, dim, &centroids)?;
        let labels: Vec<u32> = assigned.iter().map(|a| a.0).collect();
        if labels == previous {
            break;
        }
        let mut sums = vec![0f32; lists * dim];
        let mut counts = vec![0usize; lists];
        for (i, &l) in labels.iter().enumerate() {
            counts[l as usize] += 1;
            let s = &mut sums[l as usize * dim..(l as usize + 1) * dim];
            s.iter_mut().zip(&rows[i * dim..(i + 1) * dim]).for_each(|(a, b)| *a += b);
        }
        reseed_empty(&mut sums, &mut counts, &assigned, rows, dim);
        for (l, c) in sums.chunks_exact_mut(dim).enumerate() {
            if counts[l] > 0 {
                normalise(c);
                centroids[l * dim..(l + 1) * dim].copy_from_slice(c);
            }
        }
        previous = labels;
    }
    Ok(centroids)
}

/// k-means++ seeding (each next centroid drawn with weight `1 − max cosine` to those chosen), on a seeded
/// subsample of at most `INIT_PER_LIST` rows per list: random seeding measured worse (two centroids in one
/// cluster stay there; the test below), and k-means++ over every row reads the sample once per list.
fn plus_plus(rows: &[f32], dim: usize, lists: usize, seed: u64) -> Vec<f32> {
    const INIT_PER_LIST: usize = 16;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rows.len() / dim;
    let mut pool = rand::seq::index::sample(&mut rng, n, (lists * INIT_PER_LIST).clamp(lists, n)).into_vec();
    pool.sort_unstable();
    let row = |i: usize| &rows[pool[i] * dim..(pool[i] + 1) * dim];
    let mut centroids = Vec::with_capacity(lists * dim);
    let mut closest = vec![f32::NEG_INFINITY; pool.len()];
    let mut next = rng.random_range(0..pool.len());
    for _ in 0..lists {
        let c = row(next).to_vec();
        closest.iter_mut().enumerate().for_each(|(i, best)| *best = best.max(dot_f32(row(i), &c)));
        centroids.extend(c);
        let weights: Vec<f64> = closest.iter().map(|&b| (1.0 - b as f64).max(0.0)).collect();
        let total: f64 = weights.iter().sum();
        next = if total > 0.0 {
            let mut u = rng.random::<f64>() * total;
            weights.iter().position(|&w| { u -= w; u < 0.0 && w > 0.0 }).unwrap_or_else(|| weights.iter().rposition(|&w| w > 0.0).expect("total > 0"))
        } else {
            0 // every row is a centroid already: duplicates are re-seeded by `reseed_empty`
        };
    }
    centroids
}

/// An empty list takes the row of the largest list that fits that list worst (lowest score; ties to the lower
/// row), so every list ends up with rows; lists are handled in order, each from the largest list at that time.
fn reseed_empty(sums: &mut [f32], counts: &mut [usize], assigned: &[(u32, f32)], rows: &[f32], dim: usize) {
    let mut taken = vec![false; assigned.len()];
    for empty in 0..counts.len() {
        if counts[empty] > 0 {
            continue;
        }
        let largest = (0..counts.len()).max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a))).expect("lists ≥ 1");
        if counts[largest] < 2 {
            return; // fewer rows than lists: nothing to move
        }
        let worst = (0..assigned.len())
            .filter(|&i| assigned[i].0 as usize == largest && !taken[i])
            .min_by(|&a, &b| assigned[a].1.total_cmp(&assigned[b].1).then(a.cmp(&b)))
            .expect("the largest list has rows");
        taken[worst] = true;
        let row = &rows[worst * dim..(worst + 1) * dim];
        sums[largest * dim..(largest + 1) * dim].iter_mut().zip(row).for_each(|(a, b)| *a -= b);
        sums[empty * dim..(empty + 1) * dim].copy_from_slice(row);
        counts[largest] -= 1;
        counts[empty] = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    /// Four tight clusters around the axes of a 6-d space.
    fn clustered(n_per: usize) -> Vec<f32> {
        let mut rng = Rng::new(3);
        let mut rows = Vec::new();
        for c in 0..4 {
            for _ in 0..n_per {
                let mut r: Vec<f32> = (0..6).map(|d| if d == c { 1.0 } else { 0.0 } + 0.05 * rng.uniform()).collect();
                normalise(&mut r);
                rows.extend(r);
            }
        }
        rows
    }

    #[test]
    fn finds_separated_clusters_deterministically() {
        let rows = clustered(25);
        let params = KMeansParams { lists: 4, iterations: 20, seed: 7 };
        let c = train_centroids(&rows, 6, &params).unwrap();
        assert_eq!(c, train_centroids(&rows, 6, &params).unwrap(), "same seed, same centroids");
        let labels: Vec<u32> = assign(&rows, 6, &c).unwrap().into_iter().map(|a| a.0).collect();
        for cluster in labels.chunks(25) {
            assert!(cluster.iter().all(|&l| l == cluster[0]), "one list per cluster: {cluster:?}");
        }
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
    }

    #[test]
    fn ties_go_to_the_lower_list_and_no_list_stays_empty() {
        let centroids = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        assert_eq!(assign(&[1.0, 0.0], 2, &centroids).unwrap(), [(0, 1.0)]);
        // 8 lists over 10 rows of only 2 distinct directions: re-seeding still gives every list a row.
        let rows: Vec<f32> = (0..10).flat_map(|i| if i % 2 == 0 { [1.0, 0.0] } else { [0.6, 0.8] }).collect();
        let c = train_centroids(&rows, 2, &KMeansParams { lists: 8, iterations: 1, seed: 1 }).unwrap();
        assert_eq!(c.len(), 16);
        assert!(c.iter().all(|x| x.is_finite()));
    }
}

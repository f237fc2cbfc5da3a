//! The layers of EfficientNet-Lite on one image's `[C, H, W]` activations: TF-"SAME" padding, 1×1 convolutions (+ folded
//! batch norm, ReLU6) as candle matmuls, the depthwise k×k convolution as a row-wise loop, the mobile
//! inverted bottleneck, and the stem's im2col.

use candle_core::{Device, Tensor};

/// (before, after) padding of one spatial dimension for TF "SAME".
pub fn tf_same_pad(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// Activations of one image: `[C, H, W]` planes.
pub(crate) struct Act {
    pub data: Vec<f32>,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// 1×1 conv (+ folded BN) as a matmul: `[cout, cin] × [cin, H·W]`.
pub(crate) struct Pointwise {
    weight: Tensor,
    bias_values: Vec<f32>,
    relu6: bool,
}

impl Pointwise {
    pub fn new(w: Vec<f32>, b: Vec<f32>, cout: usize, cin: usize, relu6: bool) -> candle_core::Result<Self> {
        if b.len() != cout {
            candle_core::bail!("bias has {} values for {cout} outputs", b.len());
        }
        Ok(Pointwise { weight: Tensor::from_vec(w, (cout, cin), &Device::Cpu)?, bias_values: b, relu6 })
    }

    pub fn forward(&self, x: &Act) -> candle_core::Result<Act> {
        let input = Tensor::from_slice(&x.data, (x.c, x.h * x.w), &Device::Cpu)?;
        let mut data = self.weight.matmul(&input)?.flatten_all()?.to_vec1::<f32>()?;
        // Bias and ReLU6 in one pass over the output (candle would allocate a tensor for each).
        let plane = x.h * x.w;
        for (row, &b) in data.chunks_exact_mut(plane).zip(&self.bias_values) {
            if self.relu6 {
                row.iter_mut().for_each(|v| *v = (*v + b).clamp(0.0, 6.0));
            } else {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
        let c = self.weight.dim(0)?;
        Ok(Act { data, c, h: x.h, w: x.w })
    }
}

/// k×k conv with `groups` = channels (+ folded BN, ReLU6), TF-"SAME" padded.
pub(crate) struct Depthwise {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub k: usize,
    pub stride: usize,
}

impl Depthwise {
    /// Row-wise: each kernel tap adds `w · (input row, shifted)` to a whole output row, so the inner loop is a
    /// contiguous multiply-add the compiler vectorises (SIMD128 in wasm). Stride 2 first splits each input row
    /// into its even and odd columns, which makes its taps contiguous too. Taps over the zero padding are
    /// skipped by clipping each row's output range. The sum order per output (ky, then kx) is the same as
    /// the plain loop's.
    pub fn forward(&self, x: &Act) -> Act {
        let (k, s) = (self.k, self.stride);
        let (top, _) = tf_same_pad(x.h, k, s);
        let (left, _) = tf_same_pad(x.w, k, s);
        let (oh, ow) = (x.h.div_ceil(s), x.w.div_ceil(s));
        let mut out = vec![0f32; x.c * oh * ow];
        // Stride 2: even columns then odd columns of one input row.
        let half = x.w.div_ceil(2);
        let mut split = vec![0f32; 2 * half];
        // For each kx: (source slice offset into the (split) row, first and end output column).
        let taps: Vec<(usize, usize, usize)> = (0..k)
            .map(|kx| {
                // Input column of output column ox: ix = ox·s + kx − left; valid when 0 ≤ ix < W.
                let shift = kx as isize - left as isize;
                let lo = if shift >= 0 { 0 } else { ((-shift) as usize).div_ceil(s) };
                let hi = ((x.w as isize - 1 - shift).div_euclid(s as isize) + 1).clamp(0, ow as isize) as usize;
                if hi <= lo {
                    return (0, 0, 0); // this tap only ever sees padding (tiny inputs)
                }
                let src = if s == 1 {
                    (lo as isize + shift) as usize
                } else {
                    // ix = 2·ox + shift: parity of shift picks the even or the odd half.
                    let first = 2 * lo as isize + shift;
                    (first as usize % 2) * half + first as usize / 2
                };
                (src, lo, hi)
            })
            .collect();
        for c in 0..x.c {
            let plane = &x.data[c * x.h * x.w..(c + 1) * x.h * x.w];
            let kern = &self.weight[c * k * k..(c + 1) * k * k];
            let dst = &mut out[c * oh * ow..(c + 1) * oh * ow];
            for oy in 0..oh {
                let drow = &mut dst[oy * ow..(oy + 1) * ow];
                let y0 = (oy * s) as isize - top as isize;
                let ky_lo = (-y0).max(0) as usize;
                let ky_hi = ((x.h as isize - y0).min(k as isize)).max(0) as usize;
                for ky in ky_lo..ky_hi {
                    let row = &plane[((y0 + ky as isize) as usize) * x.w..][..x.w];
                    let src: &[f32] = if s == 1 {
                        row
                    } else {
                        for (i, v) in row.iter().enumerate() {
                            split[(i % 2) * half + i / 2] = *v;
                        }
                        &split
                    };
                    for (kx, &(from, lo, hi)) in taps.iter().enumerate() {
                        let w = kern[ky * k + kx];
                        for (d, v) in drow[lo..hi].iter_mut().zip(&src[from..from + (hi - lo)]) {
                            *d += w * v;
                        }
                    }
                }
                let b = self.bias[c];
                drow.iter_mut().for_each(|d| *d = (*d + b).clamp(0.0, 6.0));
            }
        }
        Act { data: out, c: x.c, h: oh, w: ow }
    }
}

/// Mobile inverted bottleneck: 1×1 expand → depthwise → 1×1 project (+ identity skip).
pub(crate) struct MbConv {
    pub expand: Option<Pointwise>,
    pub depthwise: Depthwise,
    pub project: Pointwise,
    pub skip: bool,
}


/// im2col of the stem's 3×3 stride-2 TF-"SAME" conv: `[27, Ho·Wo]` with row `(c·3 + ky)·3 + kx`
/// (the order of the `[32, 3, 3, 3]` weight), zero outside the image.
pub(crate) fn stem_patches(input: &[f32], size: usize) -> Act {
    let (k, s) = (3, 2);
    let (top, _) = tf_same_pad(size, k, s);
    let out = size.div_ceil(s);
    let mut cols = vec![0f32; 27 * out * out];
    for c in 0..3 {
        let plane = &input[c * size * size..(c + 1) * size * size];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((c * k + ky) * k + kx) * out * out..][..out * out];
                for oy in 0..out {
                    let y = (oy * s + ky) as isize - top as isize;
                    if y < 0 || y as usize >= size {
                        continue;
                    }
                    for ox in 0..out {
                        let x = (ox * s + kx) as isize - top as isize;
                        if x >= 0 && (x as usize) < size {
                            row[oy * out + ox] = plane[y as usize * size + x as usize];
                        }
                    }
                }
            }
        }
    }
    Act { data: cols, c: 27, h: 1, w: out * out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_same_padding_matches_tensorflow() {
        assert_eq!(tf_same_pad(224, 3, 2), (0, 1));
        assert_eq!(tf_same_pad(112, 5, 2), (1, 2));
        assert_eq!(tf_same_pad(225, 3, 2), (1, 1));
        assert_eq!(tf_same_pad(14, 5, 1), (2, 2));
        assert_eq!(tf_same_pad(7, 1, 1), (0, 0));
    }

    /// The row-wise depthwise conv equals the plain per-output loop (odd and even sizes, both strides).
    #[test]
    fn depthwise_matches_the_plain_loop() {
        fn plain(d: &Depthwise, x: &Act) -> Vec<f32> {
            let (k, s) = (d.k, d.stride);
            let (top, _) = tf_same_pad(x.h, k, s);
            let (left, _) = tf_same_pad(x.w, k, s);
            let (oh, ow) = (x.h.div_ceil(s), x.w.div_ceil(s));
            let mut out = vec![0f32; x.c * oh * ow];
            for c in 0..x.c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0f32;
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = ((oy * s + ky) as isize - top as isize, (ox * s + kx) as isize - left as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < x.h && (ix as usize) < x.w {
                                    acc += d.weight[c * k * k + ky * k + kx] * x.data[(c * x.h + iy as usize) * x.w + ix as usize];
                                }
                            }
                        }
                        out[(c * oh + oy) * ow + ox] = (acc + d.bias[c]).clamp(0.0, 6.0);
                    }
                }
            }
            out
        }
        let mut seed = 7u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        for (h, w) in [(7, 7), (14, 14), (9, 12), (12, 9), (1, 5), (5, 1), (2, 2)] {
            for k in [3, 5] {
                for stride in [1, 2] {
                    let c = 3;
                    let x = Act { data: (0..c * h * w).map(|_| rnd() * 3.0).collect(), c, h, w };
                    let d = Depthwise { weight: (0..c * k * k).map(|_| rnd()).collect(), bias: (0..c).map(|_| rnd()).collect(), k, stride };
                    assert_eq!(d.forward(&x).data, plain(&d, &x), "{h}×{w}, k {k}, stride {stride}");
                }
            }
        }
    }
}

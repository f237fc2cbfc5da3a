//! The joint embedding: text encoder (embedding → LSTM → pooling → proj → L2) and image head (proj → L2).
//!
//! Tensor names follow the model-directory contract in `wasm-model/README.md` (PyTorch `nn.LSTM` naming, gate
//! order i, f, g, o), so export is a rename-free dump of the `text.` and `image.` sub-trees of the VarStore.
//! Each LSTM direction runs as its own one-layer fused `lstm` call: with right-padded batches the backward
//! direction is fed each caption reversed *within its own length*, so padding never leaks into a valid output.

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use crate::text::{PAD_ID, UNK_ID};

/// How the text encoder pools LSTM outputs and the image head the feature grid: the model-directory
/// contract's enums, so the trainer and the browser cannot disagree on them.
pub use wasm_model::model_dir::{ImagePooling, Pooling};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub vocab_size: i64,
    pub word_dim: i64,
    pub hidden_dim: i64,
    pub layers: i64,
    pub bidirectional: bool,
    pub pooling: Pooling,
}

struct Direction {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

pub struct TextEncoder {
    pub config: TextConfig,
    pub embedding: Tensor,
    /// layers × directions
    lstm: Vec<Vec<Direction>>,
    proj: nn::Linear,
}

impl TextEncoder {
    /// Creates the variables under `path` (`embedding.weight`, `lstm.*`, `proj.*`).
    pub fn new(path: &nn::Path, config: &TextConfig, embed_dim: i64) -> Self {
        let c = config;
        let embedding = path.sub("embedding").var("weight", &[c.vocab_size, c.word_dim], nn::Init::Randn { mean: 0., stdev: 0.3 });
        let dirs = if c.bidirectional { 2 } else { 1 };
        let h = c.hidden_dim;
        // PyTorch's LSTM init: U(-1/sqrt(H), 1/sqrt(H)) for every tensor.
        let bound = 1.0 / (h as f64).sqrt();
        let init = nn::Init::Uniform { lo: -bound, up: bound };
        let lp = path.sub("lstm");
        let lstm = (0..c.layers)
            .map(|k| {
                let input = if k == 0 { c.word_dim } else { h * dirs };
                (0..dirs)
                    .map(|d| {
                        let s = if d == 1 { "_reverse" } else { "" };
                        Direction {
                            w_ih: lp.var(&format!("weight_ih_l{k}{s}"), &[4 * h, input], init),
                            w_hh: lp.var(&format!("weight_hh_l{k}{s}"), &[4 * h, h], init),
                            b_ih: lp.var(&format!("bias_ih_l{k}{s}"), &[4 * h], init),
                            b_hh: lp.var(&format!("bias_hh_l{k}{s}"), &[4 * h], init),
                        }
                    })
                    .collect()
            })
            .collect();
        let proj = nn::linear(path.sub("proj"), h * dirs, embed_dim, Default::default());
        TextEncoder { config: config.clone(), embedding, lstm, proj }
    }

    /// Copies GloVe-initialised rows into the embedding.
    pub fn init_embedding(&mut self, rows: &[f32]) {
        let t = Tensor::from_slice(rows).reshape([self.config.vocab_size, self.config.word_dim]).to_device(self.embedding.device());
        tch::no_grad(|| self.embedding.copy_(&t));
    }

    /// `ids`: [B, T] int64, right-padded with `<pad>`; `lens`: [B] int64 (≥ 1). Returns L2-normalised [B, D].
    /// `word_dropout` (training only) replaces tokens by `<unk>` with that probability.
    pub fn forward(&self, ids: &Tensor, lens: &Tensor, word_dropout: f64) -> Tensor {
        let (b, t) = ids.size2().unwrap();
        let device = ids.device();
        let steps = Tensor::arange(t, (Kind::Int64, device)).unsqueeze(0); // [1, T]
        let lens_col = lens.unsqueeze(1); // [B, 1]
        let mask = steps.lt_tensor(&lens_col); // [B, T] valid positions
        let mut ids = ids.shallow_clone();
        if word_dropout > 0.0 {
            let drop = Tensor::rand([b, t], (Kind::Float, device)).lt(word_dropout).logical_and(&mask);
            ids = ids.where_self(&drop.logical_not(), &Tensor::from(UNK_ID).to_device(device));
        }
        // Index that reverses each row within its length and leaves padding in place (an involution).
        let rev = (&lens_col - 1 - &steps).where_self(&mask, &steps); // [B, T]
        let mut x = Tensor::embedding(&self.embedding, &ids, PAD_ID, false, false); // [B, T, E]
        for layer in &self.lstm {
            let outs: Vec<Tensor> = layer
                .iter()
                .enumerate()
                .map(|(d, w)| {
                    let input = if d == 1 { gather_time(&x, &rev) } else { x.shallow_clone() };
                    let out = run_direction(&input, w, self.config.hidden_dim);
                    if d == 1 {
                        gather_time(&out, &rev)
                    } else {
                        out
                    }
                })
                .collect();
            x = Tensor::cat(&outs, 2);
        }
        let h = self.config.hidden_dim;
        let pooled = match self.config.pooling {
            Pooling::Last => {
                // forward: output at len-1; backward: its state after reading the first token = output at 0.
                let last = (lens - 1).view([b, 1, 1]).expand([b, 1, h], false);
                let fwd = x.narrow(2, 0, h).gather(1, &last, false).squeeze_dim(1);
                if self.config.bidirectional {
                    let bwd = x.narrow(2, h, h).select(1, 0);
                    Tensor::cat(&[fwd, bwd], 1)
                } else {
                    fwd
                }
            }
            Pooling::Mean => {
                let m = mask.unsqueeze(2).to_kind(x.kind());
                (&x * &m).sum_dim_intlist(1, false, x.kind()) / lens.unsqueeze(1).to_kind(x.kind())
            }
            Pooling::Max => {
                let m = mask.unsqueeze(2);
                x.masked_fill(&m.logical_not(), f64::NEG_INFINITY).amax(1, false)
            }
        };
        l2_normalize(&pooled.apply(&self.proj))
    }
}

fn gather_time(x: &Tensor, index: &Tensor) -> Tensor {
    let (b, t, c) = x.size3().unwrap();
    x.gather(1, &index.unsqueeze(2).expand([b, t, c], false), false)
}

fn run_direction(x: &Tensor, w: &Direction, hidden: i64) -> Tensor {
    let b = x.size()[0];
    let zeros = Tensor::zeros([1, b, hidden], (x.kind(), x.device()));
    let params = [&w.w_ih, &w.w_hh, &w.b_ih, &w.b_hh];
    // train = true: cuDNN refuses the backward pass of an LSTM run in inference mode (no dropout here, so
    // the flag changes nothing else).
    let (out, _, _) = x.lstm(&[&zeros, &zeros], &params, true, 1, 0.0, true, false, true);
    out
}

pub fn l2_normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

/// Cells of the feature grid at Lite0's and DenseNet-121's 224 px input (7 × 7); GPO learns one weight each.
pub const GRID_CELLS: i64 = 49;

/// Cells of a backbone's feature grid for a square input of `image_size` px: both families downsample 32×, and
/// TF-"SAME" padding rounds up (Lite1's 240 px → 8 × 8 = 64, Lite2's 260 px → 9 × 9 = 81). The candle encoder
/// reads `gpo.logits` with the same count.
pub fn grid_cells(image_size: usize) -> i64 {
    (image_size.div_ceil(32) as i64).pow(2)
}

/// The image head: optional learned pooling of the feature grid, then a linear projection into the joint
/// space, L2-normalised.
pub struct ImageHead {
    proj: nn::Linear,
    gpo_logits: Option<Tensor>,
}

impl ImageHead {
    pub fn new(path: &nn::Path, feature_dim: i64, embed_dim: i64) -> Self {
        Self::with_pooling(path, feature_dim, embed_dim, ImagePooling::Avg, GRID_CELLS)
    }

    /// With `Gpo` (VSE∞'s generalised pooling on a fixed grid of `grid_cells` cells, [`grid_cells`]),
    /// `gpo.logits` start at zero: the softmax weights are then uniform, i.e. average pooling, and training starts
    /// from there.
    pub fn with_pooling(path: &nn::Path, feature_dim: i64, embed_dim: i64, pooling: ImagePooling, grid_cells: i64) -> Self {
        let gpo_logits = (pooling == ImagePooling::Gpo).then(|| path.sub("gpo").var("logits", &[grid_cells], nn::Init::Const(0.)));
        ImageHead { proj: nn::linear(path.sub("proj"), feature_dim, embed_dim, Default::default()), gpo_logits }
    }

    pub fn pooling(&self) -> ImagePooling {
        if self.gpo_logits.is_some() {
            ImagePooling::Gpo
        } else {
            ImagePooling::Avg
        }
    }

    /// `[B, C, h, w]` grid → `[B, C]`.
    pub fn pool(&self, grid: &Tensor) -> Tensor {
        match &self.gpo_logits {
            None => crate::backbone::global_avg_pool(grid),
            Some(logits) => {
                let cells = grid.size()[2] * grid.size()[3];
                let trained = logits.size()[0];
                assert_eq!(cells, trained, "GPO was trained on a {trained}-cell grid; this image gives {cells}");
                let sorted = sort_rows_descending(&grid.flatten(2, 3));
                let w = logits.softmax(0, grid.kind());
                (sorted * w).sum_dim_intlist([2i64].as_slice(), false, grid.kind())
            }
        }
    }

    /// Pooled features `[B, C]` → joint-space vectors.
    pub fn forward(&self, features: &Tensor) -> Tensor {
        l2_normalize(&features.apply(&self.proj))
    }
}

/// Each row of `[B, C, n]` sorted high → low, differentiable: on CPU a `gather` by [`descending_order`],
/// elsewhere libtorch's `sort`.
fn sort_rows_descending(values: &Tensor) -> Tensor {
    if values.device() == tch::Device::Cpu {
        values.gather(2, &descending_order(values), false)
    } else {
        values.sort(2, true).0
    }
}

/// For `[B, C, n]` CPU values, the indices that sort each row high → low (ties by index): `[B, C, n]` int64.
///
/// The rows are sorted here, in Rust: libtorch's CPU `sort` of 163,840 rows of 49 cells (batch 128 × 1280
/// channels) took 65–110 ms forward, the costliest op of a fine-tuning step; this takes 15–30 ms (and the
/// gather that uses it is cheaper to differentiate than `sort`).
pub fn descending_order(values: &Tensor) -> Tensor {
    let (b, c, n) = values.size3().expect("descending_order takes [B, C, n]");
    assert_eq!(values.device(), tch::Device::Cpu, "descending_order sorts CPU tensors");
    // [B, n, C] in memory: a no-op for channels-last f32 grids, one copy otherwise.
    let cells_major = values.detach().to_kind(Kind::Float).permute([0, 2, 1]).contiguous();
    let order = Tensor::empty([b, c, n], (Kind::Int64, tch::Device::Cpu));
    let (b, c, n) = (b as usize, c as usize, n as usize);
    if b * c * n == 0 {
        return order;
    }
    // SAFETY: both tensors are contiguous CPU tensors of the stated kind and size, alive for this scope, and
    // `order` is a fresh buffer no one else sees.
    let src = unsafe { std::slice::from_raw_parts(cells_major.data_ptr() as *const f32, b * c * n) };
    let dst = unsafe { std::slice::from_raw_parts_mut(order.data_ptr() as *mut i64, b * c * n) };
    let threads = (tch::get_num_threads().max(1) as usize).min(b);
    let images_per_thread = b.div_ceil(threads);
    std::thread::scope(|scope| {
        for (src, dst) in src.chunks(images_per_thread * n * c).zip(dst.chunks_mut(images_per_thread * n * c)) {
            scope.spawn(move || {
                let mut keys = vec![0u64; n];
                for (image, out) in src.chunks(n * c).zip(dst.chunks_mut(c * n)) {
                    for (channel, out) in out.chunks_mut(n).enumerate() {
                        for (cell, key) in keys.iter_mut().enumerate() {
                            // Descending float order as ascending integers, the cell index breaking ties.
                            let bits = image[cell * c + channel].to_bits();
                            let ascending = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
                            *key = ((!ascending as u64) << 32) | cell as u64;
                        }
                        keys.sort_unstable();
                        for (o, key) in out.iter_mut().zip(&keys) {
                            *o = (key & 0xffff_ffff) as i64;
                        }
                    }
                }
            });
        }
    });
    order
}

/// The backbone's last stages, fine-tuned: `net` holds the whole backbone (variables `image.backbone.*`, stages
/// before `from` frozen) and runs `stages_from(activations, from)` on cached stage-`from` activations.
pub struct BackboneTail {
    pub net: Box<dyn crate::backbone::Backbone>,
    pub from: usize,
}

/// Both encoders in one VarStore: variables `text.*` and `image.*`.
pub struct JointModel {
    pub text: TextEncoder,
    pub image: ImageHead,
    pub tail: Option<BackboneTail>,
    pub embed_dim: i64,
    pub feature_dim: i64,
}

impl JointModel {
    pub fn new(vs: &nn::VarStore, text: &TextConfig, feature_dim: i64, embed_dim: i64) -> Self {
        let root = vs.root();
        JointModel {
            text: TextEncoder::new(&root.sub("text"), text, embed_dim),
            image: ImageHead::new(&root.sub("image"), feature_dim, embed_dim),
            tail: None,
            embed_dim,
            feature_dim,
        }
    }

    /// A model whose image side pools with `pooling` and, with `tail`, fine-tunes the backbone from stage
    /// `tail.1` (the backbone `tail.0` is built from `tail.2`'s weights under `image.backbone`).
    pub fn with_image(
        vs: &nn::VarStore,
        text: &TextConfig,
        feature_dim: i64,
        embed_dim: i64,
        pooling: ImagePooling,
        grid_cells: i64,
        tail: Option<(crate::backbone::BackboneKind, usize, &std::path::Path)>,
    ) -> Result<Self, crate::backbone::BackboneError> {
        let root = vs.root();
        let image_path = root.sub("image");
        let tail = match tail {
            None => None,
            Some((kind, from, weights)) => {
                let net = crate::backbone::load(kind, weights, &image_path.sub("backbone"))?;
                // Only stages `from..` learn; the rest (and BN running statistics) stay as loaded.
                let trained: std::collections::HashSet<usize> =
                    net.params_from(from).iter().map(|t| t.data_ptr() as usize).collect();
                for (name, var) in vs.variables() {
                    if name.starts_with("image.backbone.") && !trained.contains(&(var.data_ptr() as usize)) {
                        let _ = var.set_requires_grad(false);
                    }
                }
                Some(BackboneTail { net, from })
            }
        };
        Ok(JointModel {
            text: TextEncoder::new(&root.sub("text"), text, embed_dim),
            image: ImageHead::with_pooling(&image_path, feature_dim, embed_dim, pooling, grid_cells),
            tail,
            embed_dim,
            feature_dim,
        })
    }

    /// Joint-space image vectors from what the training cache holds: pooled features `[B, C]` without a
    /// tail, stage-`from` activations `[B, C_k, h, w]` with one. Batch norm stays in eval mode (running
    /// statistics are not re-estimated on small batches, and the browser folds them into the convs).
    pub fn embed_cached(&self, input: &Tensor) -> Tensor {
        match &self.tail {
            None => self.image.forward(input),
            Some(t) => self.image.forward(&self.image.pool(&t.net.stages_from(input, t.from, false))),
        }
    }

    /// The device of the model's weights.
    pub fn image_device(&self) -> tch::Device {
        self.text.embedding.device()
    }

    /// Joint-space image vectors from normalised images, with the tail's weights when there is one
    /// (otherwise `backbone` is the stock network).
    pub fn embed_images(&self, backbone: Option<&dyn crate::backbone::Backbone>, images: &Tensor) -> Tensor {
        let net = match (&self.tail, backbone) {
            (Some(t), _) => t.net.as_ref(),
            (None, Some(b)) => b,
            (None, None) => panic!("embed_images needs a backbone when the model has no fine-tuned tail"),
        };
        self.image.forward(&self.image.pool(&net.features(images, false)))
    }
}

/// Pads token-id lists into ([B, T] ids, [B] lengths) on `device`.
pub fn pad_batch(seqs: &[&[i64]], device: tch::Device) -> (Tensor, Tensor) {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let mut flat = vec![PAD_ID; seqs.len() * t];
    let mut lens = Vec::with_capacity(seqs.len());
    for (i, s) in seqs.iter().enumerate() {
        let s: &[i64] = if s.is_empty() { &[UNK_ID] } else { s };
        flat[i * t..i * t + s.len()].copy_from_slice(s);
        lens.push(s.len() as i64);
    }
    (
        Tensor::from_slice(&flat).view([seqs.len() as i64, t as i64]).to_device(device),
        Tensor::from_slice(&lens).to_device(device),
    )
}

/// Encodes many token lists in batches (no grad, eval mode); returns [N, D] on CPU.
pub fn encode_texts(enc: &TextEncoder, seqs: &[Vec<i64>], batch: usize, device: tch::Device) -> Tensor {
    tch::no_grad(|| {
        let parts: Vec<Tensor> = seqs
            .chunks(batch.max(1))
            .map(|chunk| {
                let refs: Vec<&[i64]> = chunk.iter().map(|s| s.as_slice()).collect();
                let (ids, lens) = pad_batch(&refs, device);
                enc.forward(&ids, &lens, 0.0).to_device(tch::Device::Cpu)
            })
            .collect();
        if parts.is_empty() {
            Tensor::zeros([0, enc.proj.ws.size()[0]], (Kind::Float, tch::Device::Cpu))
        } else {
            Tensor::cat(&parts, 0)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bi: bool, pooling: Pooling, layers: i64) -> TextConfig {
        TextConfig { vocab_size: 20, word_dim: 6, hidden_dim: 5, layers, bidirectional: bi, pooling }
    }

    /// Padding must not change any caption's vector: batch encoding == one-by-one encoding.
    #[test]
    fn padding_does_not_leak() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a seed here breaks replays elsewhere
        tch::manual_seed(0);
        for (bi, pooling, layers) in
            [(false, Pooling::Last, 1), (true, Pooling::Last, 2), (true, Pooling::Mean, 1), (true, Pooling::Max, 2)]
        {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let enc = TextEncoder::new(&vs.root(), &cfg(bi, pooling, layers), 4);
            let seqs: Vec<Vec<i64>> = vec![vec![3, 4, 5, 6, 7], vec![8], vec![9, 10, 2], vec![]];
            let batch = encode_texts(&enc, &seqs, 8, tch::Device::Cpu);
            for (i, s) in seqs.iter().enumerate() {
                let one = encode_texts(&enc, std::slice::from_ref(s), 1, tch::Device::Cpu);
                let diff = (batch.get(i as i64) - one.get(0)).abs().max().double_value(&[]);
                assert!(diff < 1e-6, "{bi} {pooling:?} {layers}: row {i} differs by {diff}");
            }
            let norms = batch.norm_scalaropt_dim(2, [1], false);
            assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
        }
    }

    /// The Rust-side order sorts like libtorch's `sort` (same values, a permutation of the cells, ties by
    /// index) on both grid layouts, with ties, negatives, zeros and a uniform row; GPO gradients match the
    /// `sort` path.
    #[test]
    fn descending_order_matches_torch_sort() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a seed here breaks replays elsewhere
        tch::manual_seed(3);
        let opts = (Kind::Float, tch::Device::Cpu);
        // Rounded to quarters so rows have ties; channel 0 of image 1 is all equal.
        let grid = (Tensor::randn([3, 5, 7, 7], opts) * 4.0).round() / 4.0;
        let _ = grid.get(1).get(0).fill_(1.5);
        for layout in [grid.contiguous(), crate::backbone::to_channels_last(&grid)] {
            let flat = layout.flatten(2, 3);
            let order = descending_order(&flat);
            assert_eq!(order.size(), [3, 5, 49]);
            let (want, _) = flat.sort(2, true);
            assert_eq!(flat.gather(2, &order, false), want);
            let cells = Tensor::arange(49, (Kind::Int64, tch::Device::Cpu)).expand([3, 5, 49], false);
            assert_eq!(order.sort(2, false).0, cells, "each row is a permutation");
            assert_eq!(order.get(1).get(0), cells.get(1).get(0), "ties keep cell order");
        }
        // Gradients through GPO pooling: same as through `sort` (tie-free input).
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let head = ImageHead::with_pooling(&vs.root(), 5, 4, ImagePooling::Gpo, GRID_CELLS);
        tch::no_grad(|| head.gpo_logits.as_ref().unwrap().shallow_clone().copy_(&Tensor::randn([49], opts)));
        let x = Tensor::randn([3, 5, 7, 7], opts).set_requires_grad(true);
        let ours = head.pool(&x);
        let w = head.gpo_logits.as_ref().unwrap().softmax(0, Kind::Float);
        let reference = (x.flatten(2, 3).sort(2, true).0 * &w).sum_dim_intlist([2i64].as_slice(), false, Kind::Float);
        assert!((&ours - &reference).abs().max().double_value(&[]) < 1e-6);
        let g = Tensor::randn([3, 5], opts);
        let params = [&x, head.gpo_logits.as_ref().unwrap()];
        let a = Tensor::run_backward(&[(&ours * &g).sum(Kind::Float)], &params, false, false);
        let b = Tensor::run_backward(&[(&reference * &g).sum(Kind::Float)], &params, false, false);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs().max().double_value(&[]) < 1e-6);
        }
    }

    /// Variable names are the model-directory contract's.
    #[test]
    fn variable_names_follow_the_contract() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a draw here breaks replays elsewhere
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _m = JointModel::new(&vs, &cfg(true, Pooling::Mean, 1), 7, 4);
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "image.proj.bias", "image.proj.weight", "text.embedding.weight", "text.lstm.bias_hh_l0",
                "text.lstm.bias_hh_l0_reverse", "text.lstm.bias_ih_l0", "text.lstm.bias_ih_l0_reverse",
                "text.lstm.weight_hh_l0", "text.lstm.weight_hh_l0_reverse", "text.lstm.weight_ih_l0",
                "text.lstm.weight_ih_l0_reverse", "text.proj.bias", "text.proj.weight"
            ]
        );
        assert_eq!(vs.variables()["text.lstm.weight_ih_l0"].size(), vec![20, 6]);
    }

    /// The "last" pooling of a one-direction LSTM equals tch's own nn::lstm final state on the same weights.
    #[test]
    fn matches_reference_lstm() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a seed here breaks replays elsewhere
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let c = TextConfig { vocab_size: 10, word_dim: 3, hidden_dim: 4, layers: 1, bidirectional: true, pooling: Pooling::Last };
        let enc = TextEncoder::new(&vs.root(), &c, 8);
        let ids = Tensor::from_slice(&[2i64, 3, 4]).view([1, 3]);
        let x = Tensor::embedding(&enc.embedding, &ids, PAD_ID, false, false);
        let vars = vs.variables();
        let p: Vec<Tensor> = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse",
            "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse"]
            .iter()
            .map(|n| vars[&format!("lstm.{n}")].shallow_clone())
            .collect();
        let z = Tensor::zeros([2, 1, 4], (Kind::Float, tch::Device::Cpu));
        let pr: Vec<&Tensor> = p.iter().collect();
        let (_, h, _) = x.lstm(&[&z, &z], &pr, true, 1, 0.0, false, true, true);
        let want = l2_normalize(&Tensor::cat(&[h.get(0), h.get(1)], 1).apply(&enc.proj));
        let got = enc.forward(&ids, &Tensor::from_slice(&[3i64]), 0.0);
        assert!((got - want).abs().max().double_value(&[]) < 1e-6);
    }
}

//! The text encoder in candle (README "Text encoder tensors"): embedding → LSTM layers (uni/bi) → pooling
//! (last/mean/max) → projection → L2 normalisation. Weights may be f16 or f32; they are converted to f32.
//!
//! The embedding and the projection are candle-nn's `Embedding` and `Linear`. Two things are not, measured
//! (docs/benchmarks.md, "candle-nn or hand-written"; `nn_bench` runs the comparison): the LSTM recurrence
//! (candle-nn's `LSTM` runs ~17 tensor ops per time step: 1.5–1.9× slower per prompt in wasm, 1.3–1.4×
//! natively), and loading (`VarBuilder` is up to 1.4× slower, and converting dtypes chosen at run time puts
//! candle's whole conversion table, +187 kB, into the wasm package; the weights go through `tensors` instead).

use candle_core::{Device, Module, Tensor};
use candle_nn::{Embedding, Linear};
use safetensors::SafeTensors;

use crate::model_dir::{ModelDir, ModelError, Pooling, TextConfig};
use crate::rank::dot_f32;
use crate::tensors::view_to_f32;
use crate::tokenizer::tokenize;
use crate::vocab::{Vocab, UNK_ID};

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("text encoder: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("token id {id} is outside the vocabulary (size {size})")]
    TokenId { id: u32, size: usize },
}

/// One direction of one LSTM layer, laid out for the hand-written recurrence.
struct LstmDirection {
    /// W_ih transposed, [in, 4H], so the input projection of all time steps is one matmul.
    w_ih_t: Tensor,
    /// b_ih + b_hh, [4H].
    bias: Tensor,
    /// W_hh row-major [4H, H]: row r is the weights of gate unit r.
    w_hh: Vec<f32>,
}

impl LstmDirection {
    /// `lstm.weight_ih_l{layer}{suffix}` … `lstm.bias_hh_l{layer}{suffix}` (PyTorch's names).
    fn load(w: &TextWeights, layer: usize, suffix: &str, input: usize, hidden: usize) -> Result<Self, EncodeError> {
        let w_ih = w.get(&format!("lstm.weight_ih_l{layer}{suffix}"), &[4 * hidden, input])?;
        let w_hh = w.get(&format!("lstm.weight_hh_l{layer}{suffix}"), &[4 * hidden, hidden])?;
        let b_ih = w.get(&format!("lstm.bias_ih_l{layer}{suffix}"), &[4 * hidden])?;
        let b_hh = w.get(&format!("lstm.bias_hh_l{layer}{suffix}"), &[4 * hidden])?;
        Ok(Self { w_ih_t: w_ih.t()?.contiguous()?, bias: (b_ih + b_hh)?, w_hh: w_hh.flatten_all()?.to_vec1()? })
    }
}

/// `text_encoder.safetensors`, read tensor by tensor as f32 (stored f16 or f32).
pub(crate) struct TextWeights<'a> {
    file: &'a str,
    tensors: SafeTensors<'a>,
}

impl<'a> TextWeights<'a> {
    pub fn parse(model: &'a ModelDir) -> Result<Self, ModelError> {
        let file = model.manifest.files.text_encoder.as_str();
        let tensors = SafeTensors::deserialize(&model.text_encoder)
            .map_err(|e| ModelError::Safetensors { file: file.into(), reason: e.to_string() })?;
        Ok(Self { file, tensors })
    }

    /// Tensor `name`, which must have `shape`, as an f32 tensor.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, EncodeError> {
        let err = |problem: String| ModelError::Tensor { file: self.file.into(), name: name.into(), problem };
        let view = self.tensors.tensor(name).map_err(|_| err("is missing".into()))?;
        if view.shape() != shape {
            return Err(err(format!("has shape {:?}, expected {shape:?}", view.shape())).into());
        }
        let values = view_to_f32(&view).map_err(|e| err(e.to_string()))?;
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }
}

pub struct TextEncoder {
    cfg: TextConfig,
    embed_dim: usize,
    vocab: Vocab,
    embedding: Embedding,
    layers: Vec<Vec<LstmDirection>>,
    proj: Linear,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder").field("cfg", &self.cfg).field("embed_dim", &self.embed_dim).finish()
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The suffixes of the LSTM's directions in PyTorch's tensor names.
const DIRECTION_SUFFIXES: [&str; 2] = ["", "_reverse"];

/// Input width of LSTM layer `k`: the word vectors, then the previous layer's outputs (all directions).
pub(crate) fn layer_input(cfg: &TextConfig, k: usize) -> usize {
    if k == 0 {
        cfg.word_dim
    } else {
        cfg.hidden_dim * cfg.directions()
    }
}

impl TextEncoder {
    /// Builds the encoder from a validated model directory.
    pub fn new(model: &ModelDir) -> Result<Self, EncodeError> {
        let cfg = model.manifest.text.clone();
        let embed_dim = model.manifest.embed_dim;
        let w = TextWeights::parse(model)?;
        let width = cfg.hidden_dim * cfg.directions();
        let layers = (0..cfg.layers)
            .map(|k| {
                DIRECTION_SUFFIXES[..cfg.directions()]
                    .iter()
                    .map(|suffix| LstmDirection::load(&w, k, suffix, layer_input(&cfg, k), cfg.hidden_dim))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            embedding: Embedding::new(w.get("embedding.weight", &[cfg.vocab_size, cfg.word_dim])?, cfg.word_dim),
            proj: Linear::new(transposed_contiguous(w.get("proj.weight", &[embed_dim, width])?)?, Some(w.get("proj.bias", &[embed_dim])?)),
            layers,
            embed_dim,
            vocab: model.vocab.clone(),
            cfg,
        })
    }

    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Token ids of a prompt, as the encoder sees them (empty → `[<unk>]`).
    pub fn token_ids(&self, prompt: &str) -> Vec<u32> {
        self.vocab.encode(&tokenize(prompt))
    }

    /// The L2-normalised text vector of `prompt`.
    pub fn encode(&self, prompt: &str) -> Result<Vec<f32>, EncodeError> {
        self.encode_ids(&self.token_ids(prompt))
    }

    pub fn encode_batch<S: AsRef<str>>(&self, prompts: &[S]) -> Result<Vec<Vec<f32>>, EncodeError> {
        prompts.iter().map(|p| self.encode(p.as_ref())).collect()
    }

    /// Encodes token ids (an empty list encodes as `[<unk>]`).
    pub fn encode_ids(&self, ids: &[u32]) -> Result<Vec<f32>, EncodeError> {
        let unk = [UNK_ID];
        let ids = if ids.is_empty() { &unk[..] } else { ids };
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab.len()) {
            return Err(EncodeError::TokenId { id, size: self.vocab.len() });
        }
        let steps = ids.len();
        let h = self.cfg.hidden_dim;
        let dirs = self.cfg.directions();
        let ids_t = Tensor::from_slice(ids, steps, &Device::Cpu)?;
        let mut xs = self.embedding.forward(&ids_t)?; // [T, word_dim]
        let mut outputs = Vec::new();
        for layer in &self.layers {
            outputs = vec![0f32; steps * h * dirs];
            for (d, dir) in layer.iter().enumerate() {
                // Input projections of every time step at once: [T, 4H].
                let xw = xs.matmul(&dir.w_ih_t)?.broadcast_add(&dir.bias)?.flatten_all()?.to_vec1::<f32>()?;
                run_direction(&xw, &dir.w_hh, h, steps, d == 1, &mut outputs, h * dirs, d * h);
            }
            xs = Tensor::from_slice(&outputs, (steps, h * dirs), &Device::Cpu)?;
        }
        let pooled = pool(self.cfg.pooling, &outputs, steps, h, dirs);
        let pooled = Tensor::from_slice(&pooled, (1, h * dirs), &Device::Cpu)?;
        Ok(l2_normalize(self.proj.forward(&pooled)?.flatten_all()?.to_vec1::<f32>()?))
    }
}

/// `w` [D, W] as a transposed view of a contiguous [W, D] copy. `Linear` multiplies by `weight.t()`, which is
/// then contiguous: with the stored layout candle's matmul reads a strided right-hand side, 1.7× slower in wasm
/// (`nn_bench`), and sums in another order (the vectors moved by up to 1e-5).
fn transposed_contiguous(w: Tensor) -> candle_core::Result<Tensor> {
    w.t()?.contiguous()?.t()
}

/// Pools the top layer's outputs `[T, H·dirs]` (row-major) over time (README: `last` is the forward
/// direction's final state and the backward direction's state after reading the first token).
pub(crate) fn pool(pooling: Pooling, outputs: &[f32], steps: usize, h: usize, dirs: usize) -> Vec<f32> {
    let width = h * dirs;
    match pooling {
        Pooling::Last => {
            let mut v = outputs[(steps - 1) * width..(steps - 1) * width + h].to_vec();
            if dirs == 2 {
                v.extend_from_slice(&outputs[h..2 * h]);
            }
            v
        }
        Pooling::Mean => (0..width)
            .map(|j| (0..steps).map(|t| outputs[t * width + j]).sum::<f32>() / steps as f32)
            .collect(),
        Pooling::Max => (0..width)
            .map(|j| (0..steps).map(|t| outputs[t * width + j]).fold(f32::NEG_INFINITY, f32::max))
            .collect(),
    }
}

/// L2-normalises like PyTorch's `F.normalize` (eps 1e-12, so a zero vector stays zero).
pub fn l2_normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot_f32(&v, &v).sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Runs one LSTM direction over `steps` time steps (gates in PyTorch order i, f, g, o), writing each
/// step's hidden state into `out[t * stride + offset ..][..h]`.
#[allow(clippy::too_many_arguments)]
fn run_direction(xw: &[f32], w_hh: &[f32], h: usize, steps: usize, reverse: bool, out: &mut [f32], stride: usize, offset: usize) {
    let mut hs = vec![0f32; h];
    let mut cs = vec![0f32; h];
    let mut gates = vec![0f32; 4 * h];
    for step in 0..steps {
        let t = if reverse { steps - 1 - step } else { step };
        for (r, g) in gates.iter_mut().enumerate() {
            *g = xw[t * 4 * h + r] + dot_f32(&w_hh[r * h..(r + 1) * h], &hs);
        }
        for j in 0..h {
            let i = sigmoid(gates[j]);
            let f = sigmoid(gates[h + j]);
            let g = gates[2 * h + j].tanh();
            let o = sigmoid(gates[3 * h + j]);
            cs[j] = f * cs[j] + i * g;
            hs[j] = o * cs[j].tanh();
        }
        out[t * stride + offset..t * stride + offset + h].copy_from_slice(&hs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_model, small_config};

    /// An independent LSTM in f64, written the way PyTorch documents it (separate biases, full gate vectors).
    fn reference_encode(model: &ModelDir, ids: &[u32]) -> Vec<f64> {
        let w = crate::tensors::read_all_f32(&model.text_encoder).unwrap();
        let get = |n: &str| w[n].1.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let cfg = &model.manifest.text;
        let (h, dirs) = (cfg.hidden_dim, cfg.directions());
        let emb = get("embedding.weight");
        let mut xs: Vec<Vec<f64>> =
            ids.iter().map(|&i| emb[i as usize * cfg.word_dim..(i as usize + 1) * cfg.word_dim].to_vec()).collect();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        for k in 0..cfg.layers {
            let mut outs = vec![vec![0f64; h * dirs]; xs.len()];
            for d in 0..dirs {
                let sfx = if d == 1 { "_reverse" } else { "" };
                let (wih, whh) = (get(&format!("lstm.weight_ih_l{k}{sfx}")), get(&format!("lstm.weight_hh_l{k}{sfx}")));
                let (bih, bhh) = (get(&format!("lstm.bias_ih_l{k}{sfx}")), get(&format!("lstm.bias_hh_l{k}{sfx}")));
                let n_in = xs[0].len();
                let (mut hv, mut cv) = (vec![0f64; h], vec![0f64; h]);
                let order: Vec<usize> = if d == 1 { (0..xs.len()).rev().collect() } else { (0..xs.len()).collect() };
                for t in order {
                    let pre = |gate: usize, j: usize| {
                        let r = gate * h + j;
                        let a: f64 = (0..n_in).map(|c| wih[r * n_in + c] * xs[t][c]).sum();
                        let b: f64 = (0..h).map(|c| whh[r * h + c] * hv[c]).sum();
                        a + bih[r] + b + bhh[r]
                    };
                    let new: Vec<(f64, f64)> = (0..h)
                        .map(|j| {
                            let (i, f, g, o) = (sig(pre(0, j)), sig(pre(1, j)), pre(2, j).tanh(), sig(pre(3, j)));
                            let c = f * cv[j] + i * g;
                            (o * c.tanh(), c)
                        })
                        .collect();
                    for j in 0..h {
                        (hv[j], cv[j]) = new[j];
                        outs[t][d * h + j] = new[j].0;
                    }
                }
            }
            xs = outs;
        }
        let width = h * dirs;
        let pooled: Vec<f64> = match cfg.pooling {
            Pooling::Last => {
                let mut v = xs[xs.len() - 1][..h].to_vec();
                if dirs == 2 {
                    v.extend_from_slice(&xs[0][h..]);
                }
                v
            }
            Pooling::Mean => (0..width).map(|j| xs.iter().map(|x| x[j]).sum::<f64>() / xs.len() as f64).collect(),
            Pooling::Max => (0..width).map(|j| xs.iter().map(|x| x[j]).fold(f64::MIN, f64::max)).collect(),
        };
        let (pw, pb) = (get("proj.weight"), get("proj.bias"));
        let d = model.manifest.embed_dim;
        let out: Vec<f64> = (0..d).map(|r| (0..width).map(|c| pw[r * width + c] * pooled[c]).sum::<f64>() + pb[r]).collect();
        let n = out.iter().map(|x| x * x).sum::<f64>().sqrt();
        out.iter().map(|x| x / n).collect()
    }

    #[test]
    fn matches_independent_f64_lstm_for_every_architecture() {
        for (layers, bidirectional) in [(1, false), (2, false), (1, true), (2, true)] {
            for pooling in [Pooling::Last, Pooling::Mean, Pooling::Max] {
                let mut cfg = small_config();
                cfg.layers = layers;
                cfg.bidirectional = bidirectional;
                cfg.pooling = pooling;
                let model = random_model(cfg.clone(), 6, 11, false);
                let enc = TextEncoder::new(&model).unwrap();
                for ids in [vec![2u32], vec![5, 3, 9, 2, 7], vec![1, 1, 4, 8, 8, 8, 3, 2, 6]] {
                    let got = enc.encode_ids(&ids).unwrap();
                    let want = reference_encode(&model, &ids);
                    let max = got.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
                    assert!(max < 2e-6, "{cfg:?} ids {ids:?}: max diff {max}");
                }
            }
        }
    }

    #[test]
    fn one_step_matches_hand_computation() {
        // in = H = 1, one token with embedding 1: pre-activations equal the gate weights.
        use crate::testutil::{model_from_tensors, image_config};
        let cfg = TextConfig { vocab_size: 3, word_dim: 1, hidden_dim: 1, layers: 1, bidirectional: false, pooling: Pooling::Last };
        let tensors = vec![
            ("embedding.weight", vec![3, 1], vec![0.0, 0.0, 1.0]),
            ("lstm.weight_ih_l0", vec![4, 1], vec![0.5, -0.5, 1.0, 2.0]),
            ("lstm.weight_hh_l0", vec![4, 1], vec![0.3, 0.3, 0.3, 0.3]),
            ("lstm.bias_ih_l0", vec![4], vec![0.0; 4]),
            ("lstm.bias_hh_l0", vec![4], vec![0.0; 4]),
            ("proj.weight", vec![2, 1], vec![1.0, 0.0]),
            ("proj.bias", vec![2], vec![0.0, 0.5]),
        ];
        let model = model_from_tensors(cfg, 2, image_config(), &tensors);
        let v = TextEncoder::new(&model).unwrap().encode_ids(&[2]).unwrap();
        // i = σ(0.5) = 0.6224593, g = tanh(1) = 0.7615942, o = σ(2) = 0.8807971, c = i·g = 0.4740614,
        // h = o·tanh(c) = 0.8807971 × 0.4414750 = 0.3888499; out = [h, 0.5] / ‖·‖.
        let h = 0.3888499f32;
        let n = (h * h + 0.25).sqrt();
        assert!((v[0] - h / n).abs() < 1e-6 && (v[1] - 0.5 / n).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn f16_weights_load_and_agree_with_f32() {
        let cfg = small_config();
        let a = TextEncoder::new(&random_model(cfg.clone(), 6, 5, false)).unwrap().encode("w3 w4 w5").unwrap();
        let b = TextEncoder::new(&random_model(cfg, 6, 5, true)).unwrap().encode("w3 w4 w5").unwrap();
        let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(max < 5e-3, "f16 vs f32 {max}");
    }

    #[test]
    fn hostile_prompts_encode_to_unit_vectors() {
        let enc = TextEncoder::new(&random_model(small_config(), 6, 1, false)).unwrap();
        let long = "w2 ".repeat(4000);
        for p in ["", "   \t", &long, "🐶🏖️ w2", "مرحبا w3", "<img src=x onerror=alert(1)>", "\0\u{202E}"] {
            let v = enc.encode(p).unwrap();
            let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "{p:?}: norm {n}");
        }
        // Empty and all-unknown prompts both mean `<unk>`.
        assert_eq!(enc.encode("").unwrap(), enc.encode_ids(&[UNK_ID]).unwrap());
        assert!(matches!(enc.encode_ids(&[999]), Err(EncodeError::TokenId { id: 999, .. })));
        assert_eq!(enc.encode_batch(&["w2", "w3"]).unwrap()[1], enc.encode("w3").unwrap());
    }
}

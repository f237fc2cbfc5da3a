//! candle-nn or hand-written? (feature `nn-bench`, not in the shipped package.) Times each layer the crate
//! could take from candle-nn against the code it runs, on the same weights and inputs, and checks that both
//! give the same numbers. One driver for both builds: `examples/bench_nn.rs` (native) and `bench_candle_nn`
//! in the wasm API (`examples/bench_nn_wasm.sh`, Node). Results: docs/benchmarks.md "candle-nn or hand-written".

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::rnn::{Direction, LSTMConfig, RNN};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, Linear, VarBuilder, LSTM};

use crate::image_encoder::layers::{Act, Depthwise, Pointwise};
use crate::image_encoder::weights::Weights;
use crate::model_dir::{ModelDir, TextConfig, IMAGE_ENCODER_FILE};
use crate::text_encoder::{l2_normalize, layer_input, pool, TextEncoder, TextWeights};

/// One compared component: median milliseconds of the hand-written code and of candle-nn, and the largest
/// absolute difference between their outputs.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub hand_ms: f64,
    pub candle_nn_ms: f64,
    pub max_diff: f32,
}

/// The text encoder with candle-nn's `LSTM` (one `step` of ~17 tensor ops per token) in place of the
/// hand-written recurrence; embedding, pooling and projection as in [`TextEncoder`].
pub struct NnLstmTextEncoder {
    cfg: TextConfig,
    embedding: Embedding,
    layers: Vec<Vec<LSTM>>,
    proj: Linear,
}

impl NnLstmTextEncoder {
    pub fn new(model: &ModelDir) -> candle_core::Result<Self> {
        let cfg = model.manifest.text.clone();
        let vb = VarBuilder::from_slice_safetensors(&model.text_encoder, DType::F32, &Device::Cpu)?;
        let mut layers = Vec::new();
        for k in 0..cfg.layers {
            let dirs = [Direction::Forward, Direction::Backward][..cfg.directions()].iter();
            let config = |direction| LSTMConfig { layer_idx: k, direction, ..Default::default() };
            layers.push(dirs.map(|&d| candle_nn::lstm(layer_input(&cfg, k), cfg.hidden_dim, config(d), vb.pp("lstm"))).collect::<Result<_, _>>()?);
        }
        Ok(Self {
            embedding: candle_nn::embedding(cfg.vocab_size, cfg.word_dim, vb.pp("embedding"))?,
            proj: candle_nn::linear(cfg.hidden_dim * cfg.directions(), model.manifest.embed_dim, vb.pp("proj"))?,
            layers,
            cfg,
        })
    }

    pub fn encode_ids(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let steps = ids.len();
        let (h, dirs) = (self.cfg.hidden_dim, self.cfg.directions());
        let reversed = Tensor::from_vec((0..steps as u32).rev().collect::<Vec<_>>(), steps, &Device::Cpu)?;
        let mut xs = self.embedding.forward(&Tensor::from_slice(ids, steps, &Device::Cpu)?)?; // [T, in]
        for layer in &self.layers {
            let mut outs = Vec::with_capacity(dirs);
            for (d, lstm) in layer.iter().enumerate() {
                // The backward direction reads the sequence reversed; its outputs are put back in time order.
                let input = if d == 1 { xs.index_select(&reversed, 0)? } else { xs.clone() };
                let states = lstm.seq(&input.unsqueeze(0)?)?;
                let hs = lstm.states_to_tensor(&states)?.squeeze(0)?; // [T, H]
                outs.push(if d == 1 { hs.index_select(&reversed, 0)? } else { hs });
            }
            xs = Tensor::cat(&outs, D::Minus1)?;
        }
        let outputs = xs.flatten_all()?.to_vec1::<f32>()?;
        let pooled = Tensor::from_vec(pool(self.cfg.pooling, &outputs, steps, h, dirs), (1, h * dirs), &Device::Cpu)?;
        Ok(l2_normalize(self.proj.forward(&pooled)?.flatten_all()?.to_vec1()?))
    }
}

/// Median timings of `hand` and `nn` over `runs` rounds, in the clock's unit. The two alternate (which goes
/// first alternates too), so both see the same load: on this shared machine, timing one and then the other
/// gave ratios that flipped between runs.
fn medians(clock: &dyn Fn() -> f64, runs: usize, mut hand: impl FnMut(), mut nn: impl FnMut()) -> (f64, f64) {
    hand();
    nn();
    let time = |f: &mut dyn FnMut()| {
        let t0 = clock();
        f();
        clock() - t0
    };
    let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for round in 0..runs {
        if round % 2 == 0 {
            a.push(time(&mut hand));
            b.push(time(&mut nn));
        } else {
            b.push(time(&mut nn));
            a.push(time(&mut hand));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(a), median(b))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "the two implementations disagree on the output size");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::testutil::Rng::new(seed);
    (0..n).map(|_| rng.uniform()).collect()
}

/// The comparisons on `model`'s text encoder (`prompts` as token ids), and on Lite0-sized layers; with
/// `image_encoder` (the bytes of `image_encoder.safetensors`), also its weight loading. `clock` returns
/// milliseconds (`Instant` natively, `performance.now()` in wasm).
pub fn run(clock: &dyn Fn() -> f64, model: &ModelDir, prompts: &[&str], image_encoder: Option<&[u8]>) -> candle_core::Result<Vec<Row>> {
    let err = |e: crate::text_encoder::EncodeError| candle_core::Error::Msg(e.to_string());
    let mut rows = Vec::new();
    let cpu = Device::Cpu;

    // Loading every text tensor as f32: safetensors + `tensors::view_to_f32` (what `TextEncoder` does) vs
    // candle-nn's `VarBuilder::get`.
    let shapes = crate::model_dir::text_tensor_shapes(&model.manifest.text, model.manifest.embed_dim);
    let by_hand = || -> candle_core::Result<Vec<Tensor>> {
        let w = TextWeights::parse(model).map_err(|e| err(e.into()))?;
        shapes.iter().map(|(name, shape)| w.get(name, shape).map_err(err)).collect()
    };
    let by_var_builder = || -> candle_core::Result<Vec<Tensor>> {
        let vb = VarBuilder::from_slice_safetensors(&model.text_encoder, DType::F32, &cpu)?;
        shapes.iter().map(|(name, shape)| vb.get(shape.as_slice(), name)).collect()
    };
    let mut diff = 0f32;
    for (a, b) in by_hand()?.iter().zip(by_var_builder()?) {
        diff = diff.max(max_diff(&a.flatten_all()?.to_vec1()?, &b.flatten_all()?.to_vec1()?));
    }
    let (hand_ms, candle_nn_ms) = medians(clock, 21, || drop(by_hand()), || drop(by_var_builder()));
    rows.push(Row { what: format!("text: load {} tensors as f32 ({} bytes)", shapes.len(), model.text_encoder.len()), hand_ms, candle_nn_ms, max_diff: diff });

    // The projection: a pre-transposed weight vs candle-nn's `Linear` (a transposed view of [D, W]).
    let (w, d) = (model.manifest.text.hidden_dim * model.manifest.text.directions(), model.manifest.embed_dim);
    let weight = Tensor::from_vec(values(d * w, 1), (d, w), &cpu)?;
    let bias = Tensor::from_vec(values(d, 2), d, &cpu)?;
    let (weight_t, linear) = (weight.t()?.contiguous()?, Linear::new(weight, Some(bias.clone())));
    let x = Tensor::from_vec(values(w, 3), (1, w), &cpu)?;
    let hand = || x.matmul(&weight_t).and_then(|y| y.broadcast_add(&bias));
    let (hand_ms, candle_nn_ms) = medians(clock, 201, || drop(hand()), || drop(linear.forward(&x)));
    let diff = max_diff(&hand()?.flatten_all()?.to_vec1()?, &linear.forward(&x)?.flatten_all()?.to_vec1()?);
    rows.push(Row { what: format!("text: projection [1, {w}] → [1, {d}]"), hand_ms, candle_nn_ms, max_diff: diff });

    // The whole encoder per prompt: the hand-written LSTM recurrence vs candle-nn's `LSTM`.
    let text = TextEncoder::new(model).map_err(err)?;
    let nn = NnLstmTextEncoder::new(model)?;
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| text.token_ids(p)).collect();
    let words = ids.iter().map(Vec::len).sum::<usize>() as f64 / ids.len() as f64;
    let mut diff = 0f32;
    for p in &ids {
        diff = diff.max(max_diff(&text.encode_ids(p).map_err(err)?, &nn.encode_ids(p)?));
    }
    let c = &model.manifest.text;
    let (hand_ms, candle_nn_ms) = medians(
        clock,
        41,
        || ids.iter().for_each(|p| drop(text.encode_ids(p))),
        || ids.iter().for_each(|p| drop(nn.encode_ids(p))),
    );
    rows.push(Row {
        what: format!(
            "text: encode a prompt ({} × {}LSTM-{}, {words:.1} words on average, {} prompts)",
            c.layers,
            if c.bidirectional { "bi-" } else { "" },
            c.hidden_dim,
            ids.len()
        ),
        hand_ms: hand_ms / ids.len() as f64,
        candle_nn_ms: candle_nn_ms / ids.len() as f64,
        max_diff: diff,
    });

    // Image side: a depthwise 3×3 and 5×5 conv (stride 1, where TF "SAME" equals symmetric padding) and a
    // 1×1 conv at Lite0's sizes, + folded BN and ReLU6: hand-written vs candle-nn's `Conv2d`.
    for (c, side, k) in [(144, 56, 3), (480, 14, 5)] {
        let input = Act { data: values(c * side * side, 4), c, h: side, w: side };
        let dw = Depthwise { weight: values(c * k * k, 5), bias: values(c, 6), k, stride: 1 };
        let config = Conv2dConfig { padding: k / 2, groups: c, ..Default::default() };
        let conv = Conv2d::new(Tensor::from_slice(&dw.weight, (c, 1, k, k), &cpu)?, Some(Tensor::from_slice(&dw.bias, c, &cpu)?), config);
        let x = Tensor::from_slice(&input.data, (1, c, side, side), &cpu)?;
        let nn_out = || conv.forward(&x).and_then(|y| y.clamp(0f32, 6f32));
        let (hand_ms, candle_nn_ms) = medians(clock, 11, || drop(dw.forward(&input)), || drop(nn_out()));
        let diff = max_diff(&dw.forward(&input).data, &nn_out()?.flatten_all()?.to_vec1()?);
        rows.push(Row { what: format!("image: depthwise {k}×{k} conv, {c} × {side}×{side}"), hand_ms, candle_nn_ms, max_diff: diff });
    }
    let (cin, cout, side) = (24, 144, 56);
    let input = Act { data: values(cin * side * side, 7), c: cin, h: side, w: side };
    let (pw, pb) = (values(cout * cin, 8), values(cout, 9));
    let pointwise = Pointwise::new(pw.clone(), pb.clone(), cout, cin, true)?;
    let conv = Conv2d::new(Tensor::from_vec(pw, (cout, cin, 1, 1), &cpu)?, Some(Tensor::from_vec(pb, cout, &cpu)?), Conv2dConfig::default());
    let x = Tensor::from_slice(&input.data, (1, cin, side, side), &cpu)?;
    let nn_out = || conv.forward(&x).and_then(|y| y.clamp(0f32, 6f32));
    let (hand_ms, candle_nn_ms) = medians(clock, 21, || drop(pointwise.forward(&input)), || drop(nn_out()));
    let diff = max_diff(&pointwise.forward(&input)?.data, &nn_out()?.flatten_all()?.to_vec1()?);
    rows.push(Row { what: format!("image: 1×1 conv {cin} → {cout}, {side}×{side}"), hand_ms, candle_nn_ms, max_diff: diff });

    // Reading every backbone tensor as f32: safetensors + `tensors::view_to_f32` vs `VarBuilder::get`.
    if let Some(bytes) = image_encoder {
        let ie = |e: crate::image_encoder::ImageEncoderError| candle_core::Error::Msg(e.to_string());
        let weights = Weights::parse(IMAGE_ENCODER_FILE, bytes).map_err(ie)?;
        let shapes: Vec<(String, Vec<usize>)> = weights.tensors.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect();
        let hand = || shapes.iter().map(|(n, s)| weights.get(n, s).map_err(ie)).collect::<candle_core::Result<Vec<_>>>();
        let nn = || -> candle_core::Result<Vec<Vec<f32>>> {
            let vb = VarBuilder::from_slice_safetensors(bytes, DType::F32, &cpu)?;
            shapes.iter().map(|(n, s)| vb.get(s.as_slice(), n)?.flatten_all()?.to_vec1()).collect()
        };
        let diff = hand()?.iter().zip(nn()?).map(|(a, b)| max_diff(a, &b)).fold(0.0, f32::max);
        let (hand_ms, candle_nn_ms) = medians(clock, 9, || drop(hand()), || drop(nn()));
        rows.push(Row { what: format!("image: load {} backbone tensors as f32 ({} bytes)", shapes.len(), bytes.len()), hand_ms, candle_nn_ms, max_diff: diff });
    }
    Ok(rows)
}

/// The rows as a markdown table (candle-nn / hand: above 1 means the hand-written code is faster).
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from("| what | hand-written ms | candle-nn ms | candle-nn / hand | max abs diff |\n|---|---|---|---|---|\n");
    for r in rows {
        out += &format!("| {} | {:.3} | {:.3} | {:.2} | {:.1e} |\n", r.what, r.hand_ms, r.candle_nn_ms, r.candle_nn_ms / r.hand_ms, r.max_diff);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_dir::Pooling;
    use crate::testutil::{random_model, small_config};

    /// candle-nn's LSTM computes the hand-written encoder's vectors, for every architecture.
    #[test]
    fn candle_nn_lstm_matches_the_hand_written_encoder() {
        for (layers, bidirectional, pooling) in [(1, false, Pooling::Last), (2, true, Pooling::Mean), (1, true, Pooling::Last), (2, false, Pooling::Max)] {
            let model = random_model(TextConfig { layers, bidirectional, pooling, ..small_config() }, 6, 3, false);
            let (hand, nn) = (TextEncoder::new(&model).unwrap(), NnLstmTextEncoder::new(&model).unwrap());
            for ids in [vec![2u32], vec![5, 3, 9, 2, 7]] {
                let d = max_diff(&hand.encode_ids(&ids).unwrap(), &nn.encode_ids(&ids).unwrap());
                assert!(d < 1e-6, "{layers} layers, bi {bidirectional}, {pooling:?}: {d}");
            }
        }
    }

    #[test]
    fn every_row_agrees_within_float_rounding() {
        let model = random_model(small_config(), 6, 3, false);
        let clock = || 0.0;
        let rows = run(&clock, &model, &["w2 w3", "w4"], None).unwrap();
        assert_eq!(rows.len(), 6);
        for r in &rows {
            assert!(r.max_diff < 1e-4, "{}: {}", r.what, r.max_diff);
        }
        assert!(markdown(&rows).lines().count() == 8);
    }
}

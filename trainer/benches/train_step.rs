//! One training step of the shipped configuration (read from `static/model/manifest.json` → `training.config`;
//! the Lite0 weights are the installed ones, checked against the manifest's SHA-256):
//! GloVe-50 embedding (vocab 16000) → bi-LSTM 256 → mean pooling → 512-d, image head on 1280-d cached
//! features (or, for a model fine-tuned from stage K, the backbone tail + pooling on cached stage-K activations), symmetric InfoNCE (τ 0.05), backward, global-norm clipping and the trainer's Adam step, on the
//! trainer's own `model`, `loss`, `run::build_model` and `optim::Adam` code. `scripts/bench/train-step.sh` runs this and the
//! PyTorch twin (`scripts/bench/train_step_torch.py`) and prints steps/s and the ratio.
//!
//! The batch is synthetic but realistic: caption lengths follow the Flickr8k train histogram (capped at
//! `IMGPICK_BENCH_MAX_LEN`, default 16), token ids and image ids come from a fixed-seed splitmix64 that the
//! Python script reproduces exactly, so both sides time the same batch. Knobs: IMGPICK_BENCH_BATCH
//! (default: the shipped batch size), IMGPICK_BENCH_THREADS (default 2), IMGPICK_BENCH_MAX_LEN (default 16),
//! IMGPICK_BENCH_PHASES=1 (also print forward / backward / optimizer medians).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tch::{Device, Kind, Tensor};
use trainer::config::Config;
use trainer::loss::contrastive;
use trainer::model::pad_batch;
use trainer::optim::Adam;
use trainer::run::build_model;

/// Flickr8k captions_train.json: how many of the 30000 captions have 1, 2, …, 15, ≥16 words.
/// Shared with scripts/bench/train_step_torch.py (keep in sync).
const LEN_HIST: [u64; 16] = [0, 15, 125, 340, 854, 1948, 2501, 2917, 3318, 3310, 3134, 2772, 2332, 1864, 1338, 3232];
const SEED: u64 = 0x1d9_2026;
/// Images in the Flickr8k train split: the range of image ids in a batch.
const TRAIN_IMAGES: u64 = 6000;

/// splitmix64, not a `rand` generator: scripts/bench/train_step_torch.py reimplements it to time the very same
/// batch, and a Python twin of a `rand` algorithm would be far longer.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The benchmark batch: per caption (length from the histogram, capped at `max_len`; token ids in
/// 2..vocab, i.e. no <pad>/<unk>) and its image id.
fn synthetic_batch(batch: usize, vocab: u64, max_len: usize) -> (Vec<Vec<i64>>, Vec<i64>) {
    let total: u64 = LEN_HIST.iter().sum();
    let mut rng = SplitMix64(SEED);
    let mut caps = Vec::with_capacity(batch);
    let mut images = Vec::with_capacity(batch);
    for _ in 0..batch {
        let mut u = rng.next() % total;
        let mut len = 0;
        while u >= LEN_HIST[len] {
            u -= LEN_HIST[len];
            len += 1;
        }
        let len = (len + 1).min(max_len);
        caps.push((0..len).map(|_| 2 + (rng.next() % (vocab - 2)) as i64).collect());
        images.push((rng.next() % TRAIN_IMAGES) as i64);
    }
    (caps, images)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The shipped run's config (with the installed backbone weights, checked) and vocabulary size.
fn shipped_config() -> anyhow::Result<(Config, i64)> {
    use anyhow::Context;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../static/model/manifest.json");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let m: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
    let cfg = trainer::record::recorded_config(&m["training"]).with_context(|| format!("{}: training", path.display()))?;
    let vocab = m["text"]["vocab_size"].as_i64().with_context(|| format!("{}: no text.vocab_size", path.display()))?;
    Ok((cfg, vocab))
}

fn train_step(c: &mut Criterion) {
    let (cfg, vocab) = match shipped_config() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("SKIP: cannot read the shipped config ({e:#})");
            return;
        }
    };
    // the loss after the warm-up epochs (VSE++: hardest negative)
    let loss_kind = cfg.objective.at_epoch(cfg.objective.warmup_epochs);
    let (opt, word_dropout) = (&cfg.optimiser, cfg.text.word_dropout);
    let batch = env_or("IMGPICK_BENCH_BATCH", opt.batch_size);
    let threads = env_or("IMGPICK_BENCH_THREADS", 2);
    let max_len = env_or("IMGPICK_BENCH_MAX_LEN", 16);
    trainer::keep_freed_memory(); // as the trainer CLI does
    tch::set_num_threads(threads as i32);
    let (caps, images) = synthetic_batch(batch, vocab as u64, max_len);
    // Same line as the Python twin prints: equal lines = equal batches.
    let mean_len = caps.iter().map(|c| c.len()).sum::<usize>() as f64 / batch as f64;
    eprintln!("batch: {batch} captions, mean length {mean_len:.2}, first ids {:?}, image ids {:?}", &caps[0][..3.min(caps[0].len())], &images[..3.min(batch)]);
    let seqs: Vec<&[i64]> = caps.iter().map(|s| s.as_slice()).collect();
    let image_ids = Tensor::from_slice(&images);

    let mut group = c.benchmark_group(format!("train_step_b{batch}_t{threads}"));
    group.throughput(Throughput::Elements(batch as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    {
        let name = "tch";
        tch::manual_seed(0);
        let (vs, model) = build_model(&cfg, vocab as usize, Device::Cpu).expect("the shipped config builds (Lite0 weights: scripts/setup.sh)");
        // the trainer's own optimizer: per-group lr scales, one-sync global-norm clipping, in-place Adam
        let mut adam = Adam::new(&vs, cfg.text.embedding_lr_scale, cfg.image.backbone_lr_scale);
        let mut t = 0;
        // What the cache holds, one row per caption: pooled features (non-negative, post-ReLU6 average), or
        // with a fine-tuned tail the stage-K activations (f16 in the cache, as `fit` reads them).
        let feats = match &model.tail {
            None => Tensor::rand([batch as i64, model.feature_dim], (Kind::Float, Device::Cpu)) * 2.0,
            Some(t) => {
                let mut shape = tch::no_grad(|| t.net.stem_to(&Tensor::zeros([1, 3, 224, 224], (Kind::Float, Device::Cpu)), t.from, false)).size();
                shape[0] = batch as i64;
                Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)).to_kind(Kind::Half)
            }
        };
        if std::env::var_os("IMGPICK_BENCH_PHASES").is_some() {
            // Where the time goes (median ms of 20 steps after 5), to compare phase by phase with PyTorch.
            let mut ph = [vec![], vec![], vec![]];
            for i in 0..25 {
                let t0 = std::time::Instant::now();
                let (ids, lens) = pad_batch(&seqs, Device::Cpu);
                let img = model.embed_cached(&feats);
                let txt = model.text.forward(&ids, &lens, word_dropout);
                let loss = contrastive(&img, &txt, &image_ids, loss_kind);
                let t1 = std::time::Instant::now();
                let mut grads = adam.gradients(&loss);
                let t2 = std::time::Instant::now();
                adam.clip(&mut grads, opt.grad_clip);
                t += 1;
                adam.step(&grads, opt.lr, opt.weight_decay, t);
                let _ = loss.double_value(&[]);
                let t3 = std::time::Instant::now();
                if i >= 5 {
                    for (v, d) in ph.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                        v.push(d.as_secs_f64() * 1e3);
                    }
                }
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let [f, b, o] = &mut ph;
            eprintln!("{name} phases (median ms): forward {:.1}, backward {:.1}, clip+adam {:.1}", med(f), med(b), med(o));
        }
        let mut step = || {
            // as in train::fit: pad, forward both encoders, loss, backward, clip, Adam, read the loss
            let (ids, lens) = pad_batch(&seqs, Device::Cpu);
            let img = model.embed_cached(&feats);
            let txt = model.text.forward(&ids, &lens, word_dropout);
            let loss = contrastive(&img, &txt, &image_ids, loss_kind);
            let mut grads = adam.gradients(&loss);
            adam.clip(&mut grads, opt.grad_clip);
            t += 1;
            adam.step(&grads, opt.lr, opt.weight_decay, t);
            loss.double_value(&[])
        };
        let first = step();
        assert!(first.is_finite(), "{name}: first step gave loss {first}");
        group.bench_function(name, |b| b.iter(&mut step));
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);

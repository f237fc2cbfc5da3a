//! Deterministic random models for tests, benchmarks and the fixture generator (not part of the contract).

use crate::image_encoder::LiteArch;
use crate::model_dir::{text_tensor_shapes, Backbone, ImageConfig, ImagePooling, ModelDir, Pooling, TextConfig};
use crate::tensors::{to_safetensors, FloatDtype};
use crate::vocab::{Vocab, PAD, UNK};

/// A tiny deterministic generator (SplitMix64), so fixtures do not depend on `rand`'s versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

pub fn small_config() -> TextConfig {
    TextConfig { vocab_size: 12, word_dim: 5, hidden_dim: 4, layers: 1, bidirectional: false, pooling: Pooling::Mean }
}

/// Shaped like the shipped model (GloVe-50 inputs, 1-layer biLSTM with H = 256, max pooling); D = 256.
pub fn shipped_like_config() -> TextConfig {
    TextConfig { vocab_size: 8000, word_dim: 50, hidden_dim: 256, layers: 1, bidirectional: true, pooling: Pooling::Max }
}

pub fn image_config() -> ImageConfig {
    ImageConfig {
        backbone: Backbone::EfficientnetLite0,
        feature_dim: 1280,
        image_size: 224,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        pooling: Default::default(),
        finetuned_from: None,
    }
}

/// `<pad>`, `<unk>`, then `w2`, `w3`, … up to `size` tokens.
pub fn numbered_vocab(size: usize) -> Vocab {
    let mut t = vec![PAD.to_string(), UNK.to_string()];
    t.extend((2..size).map(|i| format!("w{i}")));
    Vocab::from_tokens(t).expect("numbered vocab is valid")
}

/// Serialises `(name, shape, values)` as a safetensors file in f32 or f16.
pub fn safetensors_bytes(tensors: &[(&str, Vec<usize>, Vec<f32>)], f16: bool) -> Vec<u8> {
    to_safetensors(tensors, FloatDtype::half_if(f16)).expect("test tensors match their shapes")
}

/// A model directory from explicit tensors (vocabulary `numbered_vocab(cfg.vocab_size)`).
pub fn model_from_tensors(
    cfg: TextConfig,
    embed_dim: usize,
    image: ImageConfig,
    tensors: &[(&str, Vec<usize>, Vec<f32>)],
) -> ModelDir {
    let vocab = numbered_vocab(cfg.vocab_size);
    ModelDir::build(
        embed_dim,
        cfg,
        image,
        &vocab,
        safetensors_bytes(tensors, false),
        None,
        serde_json::json!({"generator": "testutil"}),
        serde_json::json!({}),
        "2026-01-01T00:00:00Z".into(),
    )
    .expect("test model is valid")
}

/// Random weights for `cfg` (scaled like PyTorch's default init), with a `numbered_vocab`.
pub fn random_model(cfg: TextConfig, embed_dim: usize, seed: u64, f16: bool) -> ModelDir {
    random_model_with_vocab(cfg, embed_dim, seed, f16, None)
}

pub fn random_model_with_vocab(cfg: TextConfig, embed_dim: usize, seed: u64, f16: bool, vocab: Option<Vocab>) -> ModelDir {
    let mut rng = Rng::new(seed);
    let vocab = vocab.unwrap_or_else(|| numbered_vocab(cfg.vocab_size));
    assert_eq!(vocab.len(), cfg.vocab_size);
    let shapes = text_tensor_shapes(&cfg, embed_dim);
    let scale = 1.0 / (cfg.hidden_dim as f32).sqrt();
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = shapes
        .iter()
        .map(|(n, s)| {
            let k = if n == "embedding.weight" { 1.0 } else { scale };
            (n.as_str(), s.clone(), (0..s.iter().product::<usize>()).map(|_| rng.uniform() * k).collect())
        })
        .collect();
    ModelDir::build(
        embed_dim,
        cfg,
        image_config(),
        &vocab,
        safetensors_bytes(&tensors, f16),
        None,
        serde_json::json!({"generator": "testutil", "seed": seed}),
        serde_json::json!({}),
        "2026-01-01T00:00:00Z".into(),
    )
    .expect("random model is valid")
}

/// `n` random L2-normalised rows of dimension `dim`, row-major.
pub fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut rows: Vec<f32> = (0..n * dim).map(|_| rng.uniform()).collect();
    for r in rows.chunks_mut(dim) {
        let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        r.iter_mut().for_each(|x| *x /= norm);
    }
    rows
}

/// A deterministic random image head (`proj.weight` [D, 1280], `proj.bias` [D]) for the image-encoder
/// fixture: the backbone is the real Lite0, the head need not be trained to check arithmetic.
pub fn random_image_head(embed_dim: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let w: Vec<f32> = (0..embed_dim * 1280).map(|_| rng.uniform() * 0.05).collect();
    let b: Vec<f32> = (0..embed_dim).map(|_| rng.uniform() * 0.1).collect();
    safetensors_bytes(&[("proj.weight", vec![embed_dim, 1280], w), ("proj.bias", vec![embed_dim], b)], false)
}

/// A random text side with a given image head and image config (the image-encoder tests).
pub fn random_model_with_head(cfg: TextConfig, embed_dim: usize, seed: u64, image_head: Vec<u8>, image: ImageConfig) -> ModelDir {
    let text = random_model(cfg.clone(), embed_dim, seed, false);
    ModelDir::build(
        embed_dim,
        cfg,
        image,
        &text.vocab,
        text.text_encoder,
        Some(image_head),
        serde_json::json!({"generator": "testutil", "seed": seed}),
        serde_json::json!({}),
        "2026-01-01T00:00:00Z".into(),
    )
    .expect("random model with head is valid")
}

/// Random weights of a Lite variant in its reference layout ([`LiteArch::tensor_shapes`]), scaled so activations
/// stay in range through all its blocks: conv weights ±√(3 / fan-in), BN scale 0.5–1.5, shift and mean ±0.2,
/// variance 0.5–2. Lets tests run Lite1/Lite2 without their ImageNet weights (and in wasm, which reads no files).
pub fn random_lite_state_dict(backbone: Backbone, seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    let arch = LiteArch::of(backbone).expect("a Lite variant");
    arch.tensor_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let (lo, hi) = if name.ends_with("running_var") {
                (0.5, 2.0)
            } else if name.ends_with("running_mean") || name.ends_with(".bias") {
                (-0.2, 0.2)
            } else if shape.len() == 1 {
                (0.5, 1.5)
            } else {
                let a = (3.0 / shape[1..].iter().product::<usize>() as f32).sqrt();
                (-a, a)
            };
            let values = (0..shape.iter().product()).map(|_| lo + (rng.uniform() + 1.0) / 2.0 * (hi - lo)).collect();
            (name, shape, values)
        })
        .collect()
}

/// [`random_lite_state_dict`] as an f32 safetensors file: what `trainer export-image-encoder` reads
/// (`image_encoder_safetensors` turns it into `image_encoder.safetensors`).
pub fn random_lite_weights(backbone: Backbone, seed: u64) -> Vec<u8> {
    to_safetensors(&random_lite_state_dict(backbone, seed), FloatDtype::F32).expect("shapes from LiteArch")
}

/// A Lite model's image config as `trainer export` writes it: the variant's input size, TF normalisation
/// `(pixel − 127) / 128`, GPO over its grid, the backbone fine-tuned from `finetuned_from` on.
pub fn lite_gpo_image_config(backbone: Backbone, finetuned_from: usize) -> ImageConfig {
    ImageConfig {
        backbone,
        feature_dim: 1280,
        image_size: LiteArch::of(backbone).expect("a Lite variant").image_size,
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
        pooling: ImagePooling::Gpo,
        finetuned_from: Some(finetuned_from),
    }
}

/// The image head of a [`lite_gpo_image_config`] model (`image_head.safetensors`, f32): `proj.*` into
/// `embed_dim`, GPO logits far from uniform (one per cell of the grid), and the fine-tuned layers — the blocks of
/// stages `finetuned_from..` and the head conv, from a random state dict of its own — as `backbone.<name>`.
pub fn random_fine_tuned_gpo_head(backbone: Backbone, finetuned_from: usize, embed_dim: usize, seed: u64) -> Vec<u8> {
    let arch = LiteArch::of(backbone).expect("a Lite variant");
    let tail: Vec<usize> = arch.blocks().iter().filter(|b| b.stage >= finetuned_from).map(|b| b.index).collect();
    let trained = |name: &str| {
        name.starts_with("_conv_head.")
            || name.starts_with("_bn1.")
            || tail.iter().any(|i| name.starts_with(&format!("_blocks.{i}.")))
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = random_lite_state_dict(backbone, seed.wrapping_add(1))
        .into_iter()
        .filter(|(name, _, _)| trained(name))
        .map(|(name, shape, values)| (format!("backbone.{name}"), shape, values))
        .collect();
    let mut rng = Rng::new(seed);
    let cells = arch.image_size.div_ceil(32).pow(2);
    tensors.push(("gpo.logits".into(), vec![cells], (0..cells).map(|_| rng.uniform() * 2.0).collect()));
    tensors.push(("proj.weight".into(), vec![embed_dim, 1280], (0..embed_dim * 1280).map(|_| rng.uniform() * 0.05).collect()));
    tensors.push(("proj.bias".into(), vec![embed_dim], (0..embed_dim).map(|_| rng.uniform() * 0.1).collect()));
    to_safetensors(&tensors, FloatDtype::F32).expect("shapes from LiteArch")
}

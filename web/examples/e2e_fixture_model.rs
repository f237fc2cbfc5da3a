//! A random-weight model directory *with an image head* (EfficientNet-Lite0 features → D), for running the
//! browser tests before a trained model exists: `trainer publish` embeds real photos with it and the page
//! must rank exactly like the native code. Rankings are meaningless; the plumbing is real.
//!
//! `cargo run -p web --example e2e_fixture_model -- OUT_DIR`

use wasm_model::model_dir::{ModelDir, Pooling, TextConfig};
use wasm_model::testutil::{image_config, safetensors_bytes, Rng};
use wasm_model::Vocab;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: e2e_fixture_model OUT_DIR")?;
    let words = "<pad> <unk> a an the cat dog fish rocket coffee cup guitar snow sun tent black gold puppy \
                 astronaut motorcycle galaxy sky water swimming launching into in on of sitting music camera";
    let vocab = Vocab::from_text(&words.split(' ').collect::<Vec<_>>().join("\n"))?;
    let (dim, cfg) = (16, TextConfig {
        vocab_size: vocab.len(), word_dim: 8, hidden_dim: 12, layers: 1, bidirectional: true, pooling: Pooling::Mean,
    });
    let mut rng = Rng::new(5);
    let mut tensor = |name: &'static str, shape: Vec<usize>, scale: f32| {
        let n = shape.iter().product();
        (name, shape, (0..n).map(|_| rng.uniform() * scale).collect::<Vec<f32>>())
    };
    let h4 = 4 * cfg.hidden_dim;
    let text = vec![
        tensor("embedding.weight", vec![cfg.vocab_size, cfg.word_dim], 1.0),
        tensor("lstm.weight_ih_l0", vec![h4, cfg.word_dim], 0.3),
        tensor("lstm.weight_hh_l0", vec![h4, cfg.hidden_dim], 0.3),
        tensor("lstm.bias_ih_l0", vec![h4], 0.3),
        tensor("lstm.bias_hh_l0", vec![h4], 0.3),
        tensor("lstm.weight_ih_l0_reverse", vec![h4, cfg.word_dim], 0.3),
        tensor("lstm.weight_hh_l0_reverse", vec![h4, cfg.hidden_dim], 0.3),
        tensor("lstm.bias_ih_l0_reverse", vec![h4], 0.3),
        tensor("lstm.bias_hh_l0_reverse", vec![h4], 0.3),
        tensor("proj.weight", vec![dim, 2 * cfg.hidden_dim], 0.3),
        tensor("proj.bias", vec![dim], 0.1),
    ];
    let head = vec![tensor("proj.weight", vec![dim, 1280], 0.05), tensor("proj.bias", vec![dim], 0.01)];
    // Lite0's own normalisation, `(pixel − 127) / 128`, as `trainer export` writes it: `trainer publish`
    // always uses it for Lite0, while the browser's image encoder reads the manifest, so the two must agree.
    let mut image = image_config();
    image.mean = [127.0 / 255.0; 3];
    image.std = [128.0 / 255.0; 3];
    let model = ModelDir::build(
        dim,
        cfg,
        image,
        &vocab,
        safetensors_bytes(&text, false),
        Some(safetensors_bytes(&head, false)),
        serde_json::json!({ "generator": "web/examples/e2e_fixture_model.rs (random weights)" }),
        serde_json::json!({}),
        "2026-01-01T00:00:00Z".into(),
    )?;
    model.write(&out)?;
    println!("random test model {} written to {out}", model.model_id());
    Ok(())
}

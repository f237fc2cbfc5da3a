//! candle-nn or hand-written, natively: the table of `wasm_model::nn_bench` on `static/model` (or a random
//! shipped-like model when it is absent). Same rows as the wasm build (`examples/bench_nn_wasm.sh`).
//!
//! `cargo run --release -p wasm-model --features nn-bench --example bench_nn [model_dir]`

use std::time::Instant;

use wasm_model::nn_bench::{markdown, run};
use wasm_model::testutil::{random_model, shipped_like_config};
use wasm_model::ModelDir;

/// The prompts of `scripts/bench/wasm.mjs` (2–10 words).
pub const PROMPTS: [&str; 8] = [
    "a dog running on the beach",
    "two children playing in the snow",
    "red car",
    "a man riding a bike down the street",
    "beach people dog",
    "cat kitten",
    "white dog jumping in grass",
    "a woman sitting on a bench with a black cat",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../static/model").into());
    let (model, image_encoder, name) = match ModelDir::load(&dir) {
        Ok(m) => {
            let ie = m.load_image_encoder(&dir)?;
            let name = format!("{dir} (model {})", m.model_id());
            (m, ie, name)
        }
        Err(e) => {
            eprintln!("bench_nn: {e}; using a random shipped-like model instead");
            (random_model(shipped_like_config(), 256, 1, true), None, "random shipped-like model".into())
        }
    };
    let start = Instant::now();
    let clock = || start.elapsed().as_secs_f64() * 1e3;
    let rows = run(&clock, &model, &PROMPTS, image_encoder.as_deref())?;
    println!("native ({}), {name}\n", std::env::consts::ARCH);
    print!("{}", markdown(&rows));
    Ok(())
}

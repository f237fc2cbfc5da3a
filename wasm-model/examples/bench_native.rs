//! The native twin of scripts/bench/wasm.mjs (same prompts, same call counts), for the wasm/native ratio:
//!   cargo run --release -p wasm-model --example bench_native [model_dir] [gallery_dir]
//! (defaults: static/model + static/gallery).

use std::path::PathBuf;
use std::time::Instant;

use wasm_model::Engine;

const PROMPTS: &[&str] = &[
    "a dog running on the beach", "two children playing in the snow", "red car",
    "a man riding a bike down the street", "beach -people +dog", "2:cat + kitten", "white dog jumping in grass",
    "a woman sitting on a bench with a black cat",
];

fn stats(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[xs.len() * 9 / 10], xs[xs.len() - 1])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let model_dir = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("static/model"));
    let gallery_dir = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("static/gallery"));
    let t = Instant::now();
    let engine = Engine::open(&model_dir, &gallery_dir)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    type Call<'a> = Box<dyn Fn(&str) + 'a>;
    let calls: Vec<(&str, Call)> = vec![
        ("search(prompt, 10)", Box::new(|p| drop(engine.search(p, 10).unwrap()))),
        ("query_vector(prompt)", Box::new(|p| drop(engine.query_vector(p).unwrap()))),
        ("similar(0, 10)", Box::new(|_| drop(engine.similar(0, 10).unwrap()))),
    ];
    println!(
        "\nnative Engine: model {} ({}), {} images, construction {load_ms:.1} ms\n",
        engine.model_id(),
        model_dir.display(),
        engine.gallery_len()
    );
    println!("| call | median ms | p90 ms | max ms |\n|---|---|---|---|");
    for (name, f) in calls {
        (0..20).for_each(|i| f(PROMPTS[i % PROMPTS.len()]));
        let times = (0..200)
            .map(|i| {
                let t = Instant::now();
                f(PROMPTS[i % PROMPTS.len()]);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let (m, p, x) = stats(times);
        println!("| {name} | {m:.3} | {p:.3} | {x:.3} |");
    }
    Ok(())
}

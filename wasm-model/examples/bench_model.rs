//! Writes the benchmark's shipped-like random model and an 8000 × 256 gallery (same seeds as
//! benches/search.rs) to `target/bench-model/`, so scripts/bench/wasm.mjs measures wasm on the very model
//! the native criterion bench uses:
//!   cargo run --release -p wasm-model --example bench_model && node scripts/bench/wasm.mjs target/bench-model target/bench-model

use std::path::Path;

use wasm_model::gallery::{write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem};
use wasm_model::testutil::{random_model, random_rows, shipped_like_config};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, d) = (8000, 256);
    let dtype = match std::env::args().nth(1).as_deref() {
        Some("int8") => GalleryDtype::Int8,
        _ => GalleryDtype::F32,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-model");
    let model = random_model(shipped_like_config(), d, 1, true);
    model.write(&dir)?;
    let id = model.model_id().to_owned();
    std::fs::write(dir.join("gallery.bin"), write_gallery_bin(&id, d, &random_rows(n, d, 2), dtype)?)?;
    let items = (0..n)
        .map(|i| GalleryItem { id: i, file: format!("{i}.jpg"), thumb: String::new(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: None, ..Default::default() })
        .collect();
    std::fs::write(dir.join("gallery.json"), GalleryIndex::new(&id, items).to_json())?;
    println!("wrote {} ({dtype:?} gallery)", dir.display());
    Ok(())
}

//! A synthetic gallery for a real model, for `scripts/bench/web-load.sh` when no gallery has been published:
//! `N` random unit vectors (int8, like `trainer publish`), their index and 1-pixel-sized thumbnails. Search cost is
//! the text encoding plus one dot product per row, so random rows time the server like real ones.
//!
//! `cargo run --release -p web --example bench_gallery -- static/model OUT_DIR [N]`

use wasm_model::{testutil, write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem, ModelDir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench_gallery MODEL_DIR OUT_DIR [N]";
    let (model_dir, out) = (args.next().ok_or(usage)?, args.next().ok_or(usage)?);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let model = ModelDir::load(&model_dir)?;
    let dim = model.manifest.embed_dim;
    let out = std::path::Path::new(&out);
    std::fs::create_dir_all(out.join("thumbs"))?;
    let rows = testutil::random_rows(n, dim, 1);
    std::fs::write(out.join("gallery.bin"), write_gallery_bin(model.model_id(), dim, &rows, GalleryDtype::Int8)?)?;
    let items = (0..n)
        .map(|i| {
            std::fs::write(out.join(format!("thumbs/{i}.jpg")), [0xffu8, 0xd8, 0xff, 0xd9])?;
            Ok(GalleryItem {
                id: i,
                file: format!("bench/{i}.jpg"),
                thumb: format!("thumbs/{i}.jpg"),
                caption: format!("synthetic benchmark item {i}"),
                source: "web/examples/bench_gallery.rs".into(),
                licence: "CC0-1.0".into(),
                url: None,
                hubness: None,
                ..Default::default()
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    std::fs::write(out.join("gallery.json"), GalleryIndex::new(model.model_id(), items).to_json())?;
    println!("{n} random rows for model {} written to {}", model.model_id(), out.display());
    Ok(())
}

//! Shared by the `web` integration tests: a real (random-weight) model and galleries on disk, published the way
//! `trainer publish` does it (thumbnails first, then `gallery.bin`, then `gallery.json`, each renamed into place).
#![allow(dead_code)] // each test binary uses a different part of it

use std::path::Path;

use wasm_model::{testutil, write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem, ModelDir};

pub const DIM: usize = 8;

/// A small random model written to `static_dir/model`, plus the page's `index.html`.
pub fn write_model(static_dir: &Path) -> ModelDir {
    let model = testutil::random_model(testutil::small_config(), DIM, 7, false);
    model.write(static_dir.join("model")).unwrap();
    std::fs::write(static_dir.join("index.html"), "<!doctype html><title>imgpick</title>").unwrap();
    model
}

/// The `gallery.bin` and `gallery.json` bytes of an `n`-image gallery whose thumbnails are `thumbs/{tag}-{i}.jpg`.
pub fn gallery_files(model: &ModelDir, tag: &str, n: usize, seed: u64) -> (Vec<u8>, String) {
    let rows = testutil::random_rows(n, DIM, seed);
    let bin = write_gallery_bin(model.model_id(), DIM, &rows, GalleryDtype::F32).unwrap();
    let items = (0..n)
        .map(|i| GalleryItem {
            id: i,
            file: format!("{tag}/img{i}.jpg"),
            thumb: format!("thumbs/{tag}-{i}.jpg"),
            caption: format!("{tag} caption {i}"),
            source: "unit test".into(),
            licence: "CC0-1.0".into(),
            url: None,
            hubness: None,
            ..Default::default()
        })
        .collect();
    (bin, GalleryIndex::new(model.model_id(), items).to_json())
}

/// Publishes a gallery into `static_dir/gallery` like `trainer publish`: thumbnails, then the two index files,
/// each written beside its target and renamed into place (`gallery.json` last).
pub fn publish(static_dir: &Path, model: &ModelDir, tag: &str, n: usize, seed: u64) {
    let gallery = static_dir.join("gallery");
    std::fs::create_dir_all(gallery.join("thumbs")).unwrap();
    for i in 0..n {
        std::fs::write(gallery.join(format!("thumbs/{tag}-{i}.jpg")), [0xff, 0xd8, 0xff, i as u8]).unwrap();
    }
    let (bin, json) = gallery_files(model, tag, n, seed);
    write_atomic(&gallery.join("gallery.bin"), &bin);
    write_atomic(&gallery.join("gallery.json"), json.as_bytes());
}

pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The thumbnail URLs `/api/search` answers for a one-word query (`w3` is in the test model's vocabulary).
pub fn thumbs_of(v: &serde_json::Value) -> Vec<String> {
    v["results"].as_array().unwrap_or(&Vec::new()).iter().map(|h| h["thumb"].as_str().unwrap().to_string()).collect()
}

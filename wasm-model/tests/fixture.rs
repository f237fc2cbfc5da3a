//! Native regression test against the stored reference vectors (no libtorch needed).
#![cfg(not(target_arch = "wasm32"))]
mod common;

#[test]
fn native_matches_stored_reference() {
    let worst = common::check_reference(&common::engine(common::GALLERY_BIN));
    println!("max |diff| vs stored reference: {worst:e}");
}

#[test]
fn int8_gallery_ranks_like_f32() {
    common::check_int8_overlap(&common::engine(common::GALLERY_BIN), &common::engine(common::GALLERY_INT8_BIN));
}

#[test]
fn hostile_files_and_prompts() {
    common::check_hostile_files();
    common::check_hostile_prompts(&common::engine(common::GALLERY_INT8_BIN));
}

#[test]
fn fixture_directory_loads_from_disk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    let engine = wasm_model::Engine::open(&dir, &dir).unwrap();
    assert_eq!(engine.gallery_len(), 40);
}

#[test]
fn shipped_model_matches_tch_reference() {
    let worst = common::shipped::check_tch_parity();
    println!("static/model: max |candle − tch| = {worst:e}");
}

//! The real Engine compiled to wasm32, checked against the stored native reference. Runs in Node by
//! default and in headless Chromium with WASM_BINDGEN_USE_BROWSER=1 (scripts/test-wasm.sh does both).
#![cfg(target_arch = "wasm32")]
mod common;

use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

#[wasm_bindgen_test]
fn wasm_matches_stored_native_reference() {
    let worst = common::check_reference(&common::engine(common::GALLERY_BIN));
    assert!(worst <= common::MAX_ABS_DIFF);
}

#[wasm_bindgen_test]
fn int8_gallery_ranks_like_f32() {
    common::check_int8_overlap(&common::engine(common::GALLERY_BIN), &common::engine(common::GALLERY_INT8_BIN));
}

#[wasm_bindgen_test]
fn hostile_files_and_prompts() {
    common::check_hostile_files();
    common::check_hostile_prompts(&common::engine(common::GALLERY_INT8_BIN));
}

#[wasm_bindgen_test]
fn js_api_returns_objects_and_throws_errors() {
    use wasm_model::wasm::Engine;
    let e = Engine::new(common::MANIFEST, common::VOCAB, common::TEXT_ENCODER, common::GALLERY_BIN, common::GALLERY_JSON, None)
        .unwrap();
    assert_eq!(e.gallery_len(), 40);
    let hits: js_sys::Array = e.search("a dog on the beach", 5).unwrap().dyn_into().unwrap();
    assert_eq!(hits.length(), 5);
    let first = hits.get(0);
    let file = js_sys::Reflect::get(&first, &"file".into()).unwrap().as_string().unwrap();
    assert!(file.starts_with("images/"), "{file}");
    let score = js_sys::Reflect::get(&first, &"score".into()).unwrap().as_f64().unwrap();
    assert!(score > -1.0 && score <= 1.0);
    let explained = e.explain("dog beach", 2).unwrap();
    let words: js_sys::Array = js_sys::Reflect::get(&explained, &"words".into()).unwrap().dyn_into().unwrap();
    assert_eq!(words.length(), 2);
    assert!(e.search("", 5).is_err());
    assert!(e.similar(99, 5).is_err());
    assert!(Engine::new(common::MANIFEST, common::VOCAB, &[1, 2, 3], common::GALLERY_BIN, common::GALLERY_JSON, None).is_err());
}

#[wasm_bindgen_test]
fn shipped_model_in_wasm_matches_tch_reference() {
    let worst = common::shipped::check_tch_parity();
    assert!(worst <= common::shipped::MAX_ABS_DIFF);
}

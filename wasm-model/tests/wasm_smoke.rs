//! Runs under wasm-bindgen-test-runner: in Node by default, in headless Chromium with WASM_BINDGEN_USE_BROWSER=1.
#![cfg(target_arch = "wasm32")]
use wasm_bindgen_test::*;

#[wasm_bindgen_test]
fn cosine_in_wasm() {
    let c = wasm_model::cosine(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap();
    assert!((c - 1.0).abs() < 1e-6, "{c}");
    let c = wasm_model::cosine(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
    assert!(c.abs() < 1e-6, "{c}");
}

//! The image encoder compiled to wasm32: the stored native vector for a real photo (max |diff| ≤ 1e-4),
//! bad files as errors, and the JS API adding photos to an Engine's searchable set.
#![cfg(target_arch = "wasm32")]
mod image_common;

use image_common::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

const REFERENCE: &str = include_str!("fixtures/image_reference.json");
const LITE1_REFERENCE: &str = include_str!("fixtures/image_reference_lite1.json");

#[wasm_bindgen_test]
fn wasm_photo_vector_matches_native() {
    let r: Reference = serde_json::from_str(REFERENCE).unwrap();
    let v = encoder().embed(PHOTO).unwrap();
    let d = max_diff(&v, &r.vector);
    assert!(d <= 1e-4, "wasm vs native max |diff| {d}");
}

#[wasm_bindgen_test]
fn wasm_bad_files_are_errors() {
    let e = encoder();
    assert!(e.embed(&[]).is_err());
    assert!(e.embed(b"not an image").is_err());
    assert!(e.embed(&PHOTO[..PHOTO.len() / 2]).is_err());
}

#[wasm_bindgen_test]
fn js_api_adds_photos_and_reports_per_file_errors() {
    use wasm_model::testutil::{random_model_with_head, small_config};
    // A model whose image head is the fixture's, plus the backbone as its image encoder.
    let mut model = random_model_with_head(small_config(), EMBED_DIM, 3, wasm_model::testutil::random_image_head(EMBED_DIM, HEAD_SEED), config());
    let backbone = wasm_model::image_encoder::image_encoder_safetensors(BACKBONE, false).unwrap();
    model.set_image_encoder(&backbone);
    let id = model.model_id().to_owned();
    let bin = wasm_model::write_gallery_bin(&id, EMBED_DIM, &wasm_model::testutil::random_rows(5, EMBED_DIM, 1), wasm_model::GalleryDtype::F32).unwrap();
    let items = (0..5)
        .map(|i| wasm_model::GalleryItem { id: i, file: format!("g{i}.jpg"), thumb: String::new(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: None, ..Default::default() })
        .collect();
    let json = wasm_model::GalleryIndex::new(&id, items).to_json();
    let head = model.image_head.clone().unwrap();
    // Built as the page builds it: without the image head (downloaded only when photos are added).
    let mut e = wasm_model::wasm::Engine::new(&model.manifest_json(), &model.vocab_txt, &model.text_encoder, &bin, &json, None).unwrap();
    assert!(!e.has_image_head());
    let shown: js_sys::Array = e.search("w2 w3", 3).unwrap().dyn_into().unwrap();
    assert_eq!(shown.length(), 3, "text search works without the head");
    assert!(e.load_image_encoder(&backbone, None).is_err(), "no head yet: embedding cannot start");
    let mut bad_head = head.clone();
    *bad_head.last_mut().unwrap() ^= 1;
    assert!(e.load_image_encoder(&backbone, Some(bad_head)).is_err(), "a corrupt head is refused");
    assert!(e.load_image_encoder(&backbone[..backbone.len() - 1], Some(head.clone())).is_err(), "a corrupt encoder file is refused");
    assert!(!e.has_image_head() && !e.has_image_encoder());
    e.load_image_encoder(&backbone, Some(head.clone())).unwrap();
    assert!(e.has_image_head() && e.has_image_encoder());
    // The head given to the constructor (the old way) still works.
    let mut with_head = wasm_model::wasm::Engine::new(&model.manifest_json(), &model.vocab_txt, &model.text_encoder, &bin, &json, Some(head)).unwrap();
    with_head.load_image_encoder(&backbone, None).unwrap();
    assert_eq!(with_head.embed_image(PHOTO).unwrap(), e.embed_image(PHOTO).unwrap());
    let v = e.embed_image(PHOTO).unwrap();
    let r: Reference = serde_json::from_str(REFERENCE).unwrap();
    assert!(max_diff(&v, &r.vector) <= 1e-4);

    let file = |name: &str, bytes: &[u8]| {
        let o = js_sys::Object::new();
        js_sys::Reflect::set(&o, &"name".into(), &name.into()).unwrap();
        js_sys::Reflect::set(&o, &"bytes".into(), &js_sys::Uint8Array::from(bytes).into()).unwrap();
        o
    };
    let files = js_sys::Array::of3(&file("fish.jpg", PHOTO), &file("empty.jpg", &[]), &file("notes.txt", b"hello"));
    let report = e.add_images(files, None).unwrap();
    let added: js_sys::Array = js_sys::Reflect::get(&report, &"added".into()).unwrap().dyn_into().unwrap();
    let errors: js_sys::Array = js_sys::Reflect::get(&report, &"errors".into()).unwrap().dyn_into().unwrap();
    assert_eq!((added.length(), errors.length()), (1, 2));
    assert_eq!(e.added_len(), 1);
    let mine: js_sys::Array = e.search_in("w2", 10, "mine").unwrap().dyn_into().unwrap();
    assert_eq!(mine.length(), 1);
    let f = js_sys::Reflect::get(&mine.get(0), &"file".into()).unwrap().as_string().unwrap();
    assert_eq!(f, "fish.jpg");
    e.clear_added();
    assert_eq!(e.added_len(), 0);
}

/// The embedding workers' class: `ImageEmbedder` (manifest + both files, checksums checked) gives the stored
/// native vector, with and without a thumbnail, and refuses a tampered encoder file.
#[wasm_bindgen_test]
fn js_image_embedder_matches_native_and_checks_files() {
    use wasm_model::testutil::{random_image_head, random_model_with_head, small_config};
    use wasm_model::wasm::ImageEmbedder;
    let mut model = random_model_with_head(small_config(), EMBED_DIM, 3, random_image_head(EMBED_DIM, HEAD_SEED), config());
    let backbone = wasm_model::image_encoder::image_encoder_safetensors(BACKBONE, false).unwrap();
    model.set_image_encoder(&backbone);
    let (manifest, head) = (model.manifest_json(), model.image_head.clone().unwrap());
    let r: Reference = serde_json::from_str(REFERENCE).unwrap();
    let e = ImageEmbedder::new(&manifest, &backbone, &head).unwrap_or_else(|_| panic!("ImageEmbedder::new"));
    let v = e.embed(PHOTO).unwrap_or_else(|_| panic!("embed"));
    assert!(max_diff(&v, &r.vector) <= 1e-4);
    let out = e.embed_with_thumbnail(PHOTO, 64).unwrap_or_else(|_| panic!("embed_with_thumbnail"));
    let get = |k: &str| js_sys::Reflect::get(&out, &k.into()).unwrap();
    assert_eq!(js_sys::Float32Array::from(get("vector")).to_vec(), v);
    let (w, h) = (get("width").as_f64().unwrap() as u32, get("height").as_f64().unwrap() as u32);
    assert_eq!(w.max(h), 64);
    assert_eq!(get("rgba").dyn_into::<js_sys::Uint8ClampedArray>().unwrap().length(), 4 * w * h);
    assert!(e.embed(&[]).is_err());
    assert!(ImageEmbedder::new(&manifest, &backbone[1..], &head).is_err(), "a tampered encoder file is refused");
    // The browser-decode path: the header first (same refusals), then the decoded pixels give the same vector.
    let info = wasm_model::wasm::probe_image(PHOTO).unwrap_or_else(|_| panic!("probe_image"));
    let field = |k: &str| js_sys::Reflect::get(&info, &k.into()).unwrap();
    assert_eq!(field("format").as_string().as_deref(), Some("jpeg"));
    assert_eq!(field("orientation").as_f64(), Some(1.0));
    let rgba = wasm_model::image_encoder::decode_image(PHOTO).unwrap().to_rgba8();
    assert_eq!((field("width").as_f64(), field("height").as_f64()), (Some(rgba.width() as f64), Some(rgba.height() as f64)));
    let (w, h) = rgba.dimensions();
    assert_eq!(e.embed_rgba(rgba.into_raw(), w, h).unwrap_or_else(|_| panic!("embed_rgba")), v);
    assert!(e.embed_rgba(vec![0; 12], w, h).is_err(), "a buffer of the wrong size");
    assert!(wasm_model::wasm::probe_image(&PHOTO[..PHOTO.len() / 3]).is_err(), "a truncated JPEG");
}

/// A Lite1 model (fine-tuned stage 6, GPO over the 8 × 8 grid of its 240 px input) through the embedding workers'
/// class: the stored native vector from the file's bytes and from pixels the browser decoded; the same manifest
/// read at Lite0's 224 px is refused (its GPO weights are for 64 cells, not 49).
#[wasm_bindgen_test]
fn js_image_embedder_runs_a_lite1_model_at_240_px() {
    use wasm_model::wasm::ImageEmbedder;
    let (model, encoder) = lite1_model();
    let (manifest, head) = (model.manifest_json(), model.image_head.clone().unwrap());
    let e = ImageEmbedder::new(&manifest, &encoder, &head).unwrap_or_else(|_| panic!("ImageEmbedder::new (Lite1)"));
    let v = e.embed(PHOTO).unwrap_or_else(|_| panic!("embed"));
    let r: Reference = serde_json::from_str(LITE1_REFERENCE).unwrap();
    let d = max_diff(&v, &r.vector);
    assert!(d <= 1e-4, "wasm vs native (Lite1) max |diff| {d}");
    let rgba = wasm_model::image_encoder::decode_image(PHOTO).unwrap().to_rgba8();
    let (w, h) = rgba.dimensions();
    assert_eq!(e.embed_rgba(rgba.into_raw(), w, h).unwrap_or_else(|_| panic!("embed_rgba")), v);
    let mut at_224: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(at_224["image"]["image_size"], 240);
    at_224["image"]["image_size"] = 224.into();
    assert!(ImageEmbedder::new(&at_224.to_string(), &encoder, &head).is_err(), "224 px on a Lite1 GPO model");
}

/// The page's storage of added photos: `quantize` gives the int8 row the engine keeps, and `add_quantized`
/// brings rows back in bulk (a reload's restore) scoring exactly as before.
#[wasm_bindgen_test]
fn js_quantized_rows_restore_the_same_scores() {
    use wasm_model::testutil::{random_model, random_rows, small_config};
    let model = random_model(small_config(), 6, 9, false);
    let id = model.model_id().to_owned();
    let bin = wasm_model::write_gallery_bin(&id, 6, &random_rows(5, 6, 1), wasm_model::GalleryDtype::Int8).unwrap();
    let items = (0..5)
        .map(|i| wasm_model::GalleryItem { id: i, file: format!("g{i}.jpg"), thumb: String::new(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: None, ..Default::default() })
        .collect();
    let json = wasm_model::GalleryIndex::new(&id, items).to_json();
    let engine = || wasm_model::wasm::Engine::new(&model.manifest_json(), &model.vocab_txt, &model.text_encoder, &bin, &json, None).unwrap();
    let (mut first, mut restored) = (engine(), engine());
    let (mut codes, mut scales) = (Vec::new(), Vec::new());
    for row in random_rows(8, 6, 2).chunks_exact(6) {
        let q = first.quantize(row).unwrap_or_else(|_| panic!("quantize"));
        let get = |k: &str| js_sys::Reflect::get(&q, &k.into()).unwrap();
        let (c, s) = (js_sys::Int8Array::from(get("codes")).to_vec(), get("scale").as_f64().unwrap() as f32);
        first.add_quantized(&c, &[s]).unwrap_or_else(|_| panic!("add_quantized"));
        codes.extend(c);
        scales.push(s);
    }
    assert_eq!(restored.add_quantized(&codes, &scales).unwrap_or_else(|_| panic!("bulk")), 5);
    assert_eq!(restored.added_len(), 8);
    let shown = |e: &wasm_model::wasm::Engine| js_sys::JSON::stringify(&e.search_in("w2 w4", 8, "mine").unwrap()).unwrap().as_string().unwrap();
    assert_eq!(shown(&restored), shown(&first));
    assert!(restored.add_quantized(&codes[..5], &scales[..1]).is_err(), "lengths that do not match");
    assert!(first.quantize(&[1.0; 4]).is_err(), "a vector of another length");
}

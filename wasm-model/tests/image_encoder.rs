//! Native image encoder vs the stored reference vector (`IMGPICK_UPDATE_FIXTURES=1` rewrites it), plus
//! bad inputs through the encoder. The wasm build must reproduce the same vector (tests/wasm_image.rs).
#![cfg(not(target_arch = "wasm32"))]
mod image_common;

use image_common::*;
use wasm_model::image_encoder::ImageError;
use wasm_model::ImageEncoderError;

#[test]
fn photo_vector_matches_the_stored_reference() {
    let v = encoder().embed(PHOTO).unwrap();
    assert_eq!(v.len(), EMBED_DIM);
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    if std::env::var_os("IMGPICK_UPDATE_FIXTURES").is_some() {
        let r = Reference { photo: PHOTO_NAME.into(), vector: v };
        std::fs::write(REFERENCE_PATH, serde_json::to_string_pretty(&r).unwrap() + "\n").unwrap();
        return;
    }
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(REFERENCE_PATH).unwrap()).unwrap();
    assert_eq!(r.photo, PHOTO_NAME);
    let d = max_diff(&v, &r.vector);
    assert!(d < 1e-5, "max |diff| {d} vs {REFERENCE_PATH}");
}

#[test]
fn bad_files_are_errors_not_panics() {
    let e = encoder();
    let err = |bytes: &[u8]| match e.embed(bytes) {
        Err(ImageEncoderError::Image(i)) => i,
        other => panic!("expected an image error, got {other:?}"),
    };
    assert_eq!(err(&[]), ImageError::Empty);
    assert!(matches!(err(b"GIF89a not really"), ImageError::UnknownFormat(_)));
    assert!(matches!(err(b"%PDF-1.4 hello"), ImageError::UnknownFormat(_)));
    // A truncated JPEG: the header parses, the scan data is cut.
    let cut = err(&PHOTO[..PHOTO.len() / 3]);
    assert!(matches!(cut, ImageError::Decode { .. }), "{cut:?}");
    assert!(cut.to_string().contains("JPEG"), "{cut}");
}

#[test]
fn engine_adds_photos_from_bytes() {
    use wasm_model::testutil::{random_image_head, random_model_with_head, random_rows, small_config};
    use wasm_model::{engine::Scope, write_gallery_bin, Engine, GalleryDtype, GalleryIndex, GalleryItem};
    let mut model = random_model_with_head(small_config(), EMBED_DIM, 3, random_image_head(EMBED_DIM, HEAD_SEED), config());
    let backbone = wasm_model::image_encoder::image_encoder_safetensors(BACKBONE, false).unwrap();
    model.set_image_encoder(&backbone);
    let id = model.model_id().to_owned();
    let bin = write_gallery_bin(&id, EMBED_DIM, &random_rows(5, EMBED_DIM, 1), GalleryDtype::F32).unwrap();
    let items = (0..5)
        .map(|i| GalleryItem { id: i, file: format!("g{i}.jpg"), thumb: String::new(), caption: String::new(), source: String::new(), licence: String::new(), url: None })
        .collect();
    let mut e = Engine::new(model, &bin, &GalleryIndex::new(&id, items).to_json()).unwrap();
    let bad = e.load_image_encoder(&backbone[..backbone.len() - 1]).unwrap_err().to_string();
    assert!(bad.contains("image_encoder.safetensors"), "{bad}");
    e.load_image_encoder(&backbone).unwrap();
    assert!(e.add_image("empty.jpg", "", &[]).is_err());
    let id = e.add_image("fish.jpg", "blob:x", PHOTO).unwrap();
    assert_eq!(id, 5);
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(REFERENCE_PATH).unwrap()).unwrap();
    assert!(max_diff(&e.added()[0].vector, &r.vector) < 1e-5);
    let mine = e.search_in("w2", 10, Scope::Added).unwrap();
    assert_eq!(mine.iter().map(|h| h.file.as_str()).collect::<Vec<_>>(), ["fish.jpg"]);
}

/// What the page's embedding workers run (`ImageEmbedder` in wasm): the image side alone, built from the
/// manifest and the two weight files, each checked against the manifest's checksums.
#[test]
fn standalone_encoder_checks_both_files_and_matches_the_engine() {
    use wasm_model::engine::standalone_image_encoder;
    use wasm_model::testutil::{random_image_head, random_model_with_head, small_config};
    let mut model = random_model_with_head(small_config(), EMBED_DIM, 3, random_image_head(EMBED_DIM, HEAD_SEED), config());
    let backbone = wasm_model::image_encoder::image_encoder_safetensors(BACKBONE, false).unwrap();
    let head = model.image_head.clone().unwrap();
    let no_encoder = standalone_image_encoder(&model.manifest_json(), &backbone, &head).unwrap_err().to_string();
    assert!(no_encoder.contains("files.image_encoder"), "{no_encoder}");
    model.set_image_encoder(&backbone);
    let manifest = model.manifest_json();
    let enc = standalone_image_encoder(&manifest, &backbone, &head).unwrap();
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(REFERENCE_PATH).unwrap()).unwrap();
    assert!(max_diff(&enc.embed(PHOTO).unwrap(), &r.vector) < 1e-5);
    let mut bad_head = head.clone();
    *bad_head.last_mut().unwrap() ^= 1;
    let e = standalone_image_encoder(&manifest, &backbone, &bad_head).unwrap_err().to_string();
    assert!(e.contains("image_head.safetensors") && e.contains("SHA-256"), "{e}");
    let e = standalone_image_encoder(&manifest, &backbone[1..], &head).unwrap_err().to_string();
    assert!(e.contains("image_encoder.safetensors") && e.contains("SHA-256"), "{e}");
    assert!(standalone_image_encoder("{not json", &backbone, &head).is_err());
}

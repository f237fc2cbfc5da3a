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

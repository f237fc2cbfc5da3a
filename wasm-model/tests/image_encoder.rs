//! Native image encoder vs the stored reference vector (`IMGPICK_UPDATE_FIXTURES=1` rewrites it), plus
//! bad inputs through the encoder. The wasm build must reproduce the same vector (tests/wasm_image.rs).
#![cfg(not(target_arch = "wasm32"))]
mod image_common;

use image_common::*;
use wasm_model::image_encoder::ImageError;
use wasm_model::ImageEncoderError;

/// `v` equals the photo's vector stored at `path` (within 1e-5); with `IMGPICK_UPDATE_FIXTURES=1` it rewrites it.
fn matches_stored_reference(v: Vec<f32>, path: &str) {
    if std::env::var_os("IMGPICK_UPDATE_FIXTURES").is_some() {
        let r = Reference { photo: PHOTO_NAME.into(), vector: v };
        std::fs::write(path, serde_json::to_string_pretty(&r).unwrap() + "\n").unwrap();
        return;
    }
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(r.photo, PHOTO_NAME);
    let d = max_diff(&v, &r.vector);
    assert!(d < 1e-5, "max |diff| {d} vs {path}");
}

#[test]
fn photo_vector_matches_the_stored_reference() {
    let v = encoder().embed(PHOTO).unwrap();
    assert_eq!(v.len(), EMBED_DIM);
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    matches_stored_reference(v, REFERENCE_PATH);
}

/// A Lite1 model built the way the page's embedding workers build it (manifest + both files): it reads the photo
/// at 240 px, its random backbone keeps the features alive, and its vector is the stored reference
/// (`IMGPICK_UPDATE_FIXTURES=1` rewrites it) that the wasm build must reproduce (tests/wasm_image.rs).
#[test]
fn lite1_model_vector_matches_the_stored_reference() {
    use wasm_model::engine::standalone_image_encoder;
    let (model, encoder) = lite1_model();
    let head = model.image_head.clone().unwrap();
    let enc = standalone_image_encoder(&model.manifest_json(), &encoder, &head).unwrap();
    assert_eq!(enc.config().image_size, 240);
    let input = wasm_model::image_encoder::preprocess(PHOTO, enc.config()).unwrap();
    assert_eq!(input.len(), 3 * 240 * 240);
    let pooled = enc.pooled_features(&input).unwrap();
    let scale = pooled.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "features vanished ({scale}): the random weights would test nothing");
    let v = enc.embed(PHOTO).unwrap();
    assert_eq!(v, enc.embed_input(&input).unwrap());
    matches_stored_reference(v, LITE1_REFERENCE_PATH);
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
        .map(|i| GalleryItem { id: i, file: format!("g{i}.jpg"), thumb: String::new(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: None, ..Default::default() })
        .collect();
    // As the page does it: the engine starts without the image head, which comes with the image encoder.
    let head = model.image_head.clone().unwrap();
    let json = GalleryIndex::new(&id, items).to_json();
    let mut e = Engine::from_bytes_with_head(&model.manifest_json(), &model.vocab_txt, &model.text_encoder, None, &bin, &json).unwrap();
    let bad = e.load_image_encoder_with_head(&backbone[..backbone.len() - 1], Some(&head)).unwrap_err().to_string();
    assert!(bad.contains("image_encoder.safetensors"), "{bad}");
    let no_head = e.load_image_encoder(&backbone).unwrap_err().to_string();
    assert!(no_head.contains("image_head.safetensors is not loaded"), "{no_head}");
    e.load_image_encoder_with_head(&backbone, Some(&head)).unwrap();
    assert!(e.add_image("empty.jpg", "", &[]).is_err());
    let id = e.add_image("fish.jpg", "blob:x", PHOTO).unwrap();
    assert_eq!(id, 5);
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(REFERENCE_PATH).unwrap()).unwrap();
    assert!(max_diff(&e.embed_image(PHOTO).unwrap(), &r.vector) < 1e-5);
    assert!(max_diff(&e.added().row(0).unwrap(), &r.vector) < 1e-2, "kept as int8");
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

/// The embedding workers' call: one decode gives exactly `embed`'s vector and a small thumbnail.
#[test]
fn embed_with_thumbnail_gives_the_same_vector_and_a_small_thumbnail() {
    let e = encoder();
    let (v, thumb) = e.embed_with_thumbnail(PHOTO, 320).unwrap();
    assert_eq!(v, e.embed(PHOTO).unwrap(), "the vector does not depend on the thumbnail");
    let img = wasm_model::image_encoder::decode_image(PHOTO).unwrap();
    let (w, h) = (img.width(), img.height());
    assert_eq!(thumb.width().max(thumb.height()), 320.min(w.max(h)));
    let (aspect, thumb_aspect) = (w as f64 / h as f64, thumb.width() as f64 / thumb.height() as f64);
    assert!((aspect - thumb_aspect).abs() < 0.02, "{w}×{h} → {}×{}", thumb.width(), thumb.height());
    // Small images are not enlarged; transparency becomes white.
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(40, 30, image::Rgba([0, 0, 0, 0])))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (v, t) = e.embed_with_thumbnail(&png, 320).unwrap();
    assert_eq!(t.dimensions(), (40, 30));
    assert!(t.pixels().all(|p| p.0 == [255, 255, 255, 255]));
    assert_eq!(v, e.embed(&png).unwrap(), "the network sees the cut-out on grey all the same");
    assert!(e.embed_with_thumbnail(&[], 320).is_err());
}

/// A phone photo stored sideways with an EXIF orientation: the thumbnail is turned upright, the vector is
/// computed from the stored pixels (as `trainer publish` does) and so equals the photo's without EXIF.
#[test]
fn thumbnail_follows_the_exif_orientation() {
    // APP1 "Exif": big-endian TIFF header, one IFD entry Orientation (0x0112, SHORT) = 6 (rotate 90° clockwise).
    let tiff: &[u8] = &[b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(tiff);
    let mut rotated = PHOTO[..2].to_vec(); // SOI, then the EXIF segment, then the rest of the file
    rotated.extend_from_slice(&app1);
    rotated.extend_from_slice(&PHOTO[2..]);
    let e = encoder();
    let (v, upright) = e.embed_with_thumbnail(&rotated, 320).unwrap();
    let (v0, plain) = e.embed_with_thumbnail(PHOTO, 320).unwrap();
    assert_eq!(v, v0);
    assert_eq!((upright.width(), upright.height()), (plain.height(), plain.width()), "turned by 90°");
}

/// The page's faster path for JPEGs: the browser decodes, the encoder gets its RGBA pixels (stored
/// orientation, as `probe_image` describes them). The same pixels give exactly `embed`'s vector.
#[test]
fn pixels_decoded_elsewhere_give_the_same_vector() {
    use image::metadata::Orientation;
    use wasm_model::image_encoder::{decode_image, probe_image};
    let e = encoder();
    let rgba = decode_image(PHOTO).unwrap().to_rgba8();
    let size = rgba.dimensions();
    let info = probe_image(PHOTO).unwrap();
    assert_eq!((info.format, (info.width, info.height), info.orientation), (image::ImageFormat::Jpeg, size, Orientation::NoTransforms));
    assert_eq!(e.embed_rgba(rgba.as_raw().clone(), size).unwrap(), e.embed(PHOTO).unwrap());
    // Transparency: onto grey and padded to a square, as the crate's own PNG decode path does.
    let see_through = image::RgbaImage::from_fn(50, 40, |x, y| image::Rgba([(x * 5) as u8, (y * 6) as u8, 90, (x * y % 256) as u8]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(see_through.clone()).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    assert_eq!(e.embed_rgba(see_through.into_raw(), (50, 40)).unwrap(), e.embed(&png).unwrap());
    // A buffer of the wrong size, no pixels, too many pixels: named errors.
    let err = |r: Result<Vec<f32>, ImageEncoderError>| match r {
        Err(ImageEncoderError::Image(i)) => i,
        other => panic!("expected an image error, got {other:?}"),
    };
    let short = err(e.embed_rgba(rgba.as_raw()[4..].to_vec(), size));
    assert!(matches!(short, ImageError::PixelBuffer { .. }) && short.to_string().contains("RGBA"), "{short}");
    assert_eq!(err(e.embed_rgba(vec![], (0, 5))), ImageError::ZeroSize);
    assert_eq!(err(e.embed_rgba(vec![], (10_000, 5_000))), ImageError::TooLarge { width: 10_000, height: 5_000 });
}

/// `probe_image` refuses exactly what decoding refuses, with the same errors, and reads the EXIF orientation.
#[test]
fn probe_refuses_what_decoding_refuses() {
    use image::metadata::Orientation;
    use wasm_model::image_encoder::{decode_image, probe_image};
    for bad in [&[][..], b"not an image", &PHOTO[..PHOTO.len() / 3]] {
        assert_eq!(probe_image(bad).unwrap_err(), decode_image(bad).unwrap_err());
    }
    let tiff: &[u8] = &[b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
    let mut rotated = PHOTO[..2].to_vec();
    rotated.extend_from_slice(&[0xFF, 0xE1]);
    rotated.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    rotated.extend_from_slice(b"Exif\0\0");
    rotated.extend_from_slice(tiff);
    rotated.extend_from_slice(&PHOTO[2..]);
    let info = probe_image(&rotated).unwrap();
    assert_eq!(info.orientation, Orientation::Rotate90);
    let img = decode_image(PHOTO).unwrap();
    assert_eq!((info.width, info.height), (img.width(), img.height()), "the stored size, not the turned one");
}

/// A cut-out (PNG with transparency) embeds exactly as its copy redrawn opaque on grey 128 and padded to a
/// centred square (what docs/runs.md measured as "H"), not as the white, centre-cropped picture of before.
#[test]
fn a_cut_out_embeds_as_its_grey_padded_copy() {
    use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};
    use wasm_model::image_encoder::{flatten_onto_white, normalize, resize_center_crop};
    let png = |img: DynamicImage| {
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    };
    // 300×120: a striped thing, transparent around a disc
    let cut_out = RgbaImage::from_fn(300, 120, |x, y| {
        let inside = (x as i32 - 150).pow(2) / 4 + (y as i32 - 60).pow(2) < 55 * 55;
        Rgba([(x % 50 * 5) as u8, (y * 2) as u8, 160, if inside { 255 } else { 0 }])
    });
    let redrawn = RgbImage::from_fn(300, 300, |x, y| match y.checked_sub(90).filter(|&y| y < 120) {
        Some(y) => {
            let p = cut_out.get_pixel(x, y).0;
            if p[3] == 255 { Rgb([p[0], p[1], p[2]]) } else { Rgb([128; 3]) }
        }
        None => Rgb([128; 3]),
    });
    let e = encoder();
    let v = e.embed(&png(DynamicImage::ImageRgba8(cut_out.clone()))).unwrap();
    assert_eq!(v, e.embed(&png(DynamicImage::ImageRgb8(redrawn))).unwrap());
    let cfg = config();
    let white_crop = e.embed_input(&normalize(&resize_center_crop(&flatten_onto_white(&DynamicImage::ImageRgba8(cut_out)), 224), cfg.mean, cfg.std)).unwrap();
    assert!(max_diff(&v, &white_crop) > 1e-3, "not the white centre crop of before");
}

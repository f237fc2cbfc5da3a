//! Image preprocessing: broken files are errors naming the file, transparency becomes white,
//! any aspect ratio becomes a centred square, and each backbone gets its own normalisation.

use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};
use trainer::backbone::preprocess::{self, Preprocess};
use trainer::backbone::{BackboneError, BackboneKind};

/// A scratch file ending in `name` holding `bytes`, deleted when dropped (also when the test fails).
fn temp_file(name: &str, bytes: &[u8]) -> tempfile::TempPath {
    let path = tempfile::Builder::new().prefix("imgpick-").suffix(name).tempfile().unwrap().into_temp_path();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn broken_and_missing_images_are_errors_naming_the_file() {
    let prep = Preprocess::for_backbone(BackboneKind::EfficientnetLite0);
    let truncated = temp_file(
        "truncated.jpg",
        &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F'],
    );
    let not_image = temp_file("notes.png", b"just text");
    for path in [
        truncated.to_path_buf(),
        not_image.to_path_buf(),
        std::path::PathBuf::from("/nonexistent/imgpick/photo.jpg"),
    ] {
        match prep.load(&path) {
            Err(e @ BackboneError::Image { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(path.file_name().unwrap().to_str().unwrap()),
                    "{msg}"
                );
            }
            other => panic!(
                "{}: expected an image error, got {:?}",
                path.display(),
                other.map(|t| t.size())
            ),
        }
    }
    // A batch fails on its broken member, naming it.
    let good = temp_file(
        "good.png",
        &png_bytes(&DynamicImage::ImageRgb8(RgbImage::new(4, 4))),
    );
    let bad = temp_file("bad.png", b"\x89PNG\r\n\x1a\nnope");
    let msg = prep.load_batch(&[good.to_path_buf(), bad.to_path_buf()]).unwrap_err().to_string();
    assert!(msg.contains("bad.png"), "{msg}");
}

fn png_bytes(img: &DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn transparency_is_flattened_onto_white() {
    let mut img = RgbaImage::from_pixel(2, 1, Rgba([0, 0, 0, 0]));
    img.put_pixel(1, 0, Rgba([200, 0, 0, 128]));
    let rgb = preprocess::flatten_onto_white(&DynamicImage::ImageRgba8(img));
    assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 255, 255]));
    assert_eq!(rgb.get_pixel(1, 0), &Rgb([227, 127, 127]));
}

#[test]
fn any_aspect_ratio_becomes_a_centred_square() {
    // 60×30: left third red, middle third green, right third blue → the centre crop is mostly green.
    let img = RgbImage::from_fn(60, 30, |x, _| match x / 20 {
        0 => Rgb([255, 0, 0]),
        1 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    });
    let out = preprocess::resize_center_crop(&img, 16);
    assert_eq!(out.dimensions(), (16, 16));
    assert_eq!(out.get_pixel(8, 8), &Rgb([0, 255, 0]));
    let tall = preprocess::resize_center_crop(&RgbImage::new(7, 300), 224);
    assert_eq!(tall.dimensions(), (224, 224));
}

#[test]
fn normalisation_follows_the_backbone() {
    let white = DynamicImage::ImageRgb8(RgbImage::from_pixel(224, 224, Rgb([255, 255, 255])));
    let lite = Preprocess::for_backbone(BackboneKind::EfficientnetLite0).image_to_input(&white);
    assert_eq!(lite.size(), [3, 224, 224]);
    assert!(
        (lite.double_value(&[0, 10, 10]) - 1.0).abs() < 1e-5,
        "TF Lite: (255 - 127) / 128 = 1"
    );
    let dense = Preprocess::for_backbone(BackboneKind::Densenet121).image_to_input(&white);
    let expected = (1.0 - 0.485) / 0.229;
    assert!(
        (dense.double_value(&[0, 10, 10]) - expected).abs() < 1e-4,
        "torchvision ImageNet mean/std"
    );
}

//! Pixels → network input, as `trainer::backbone::preprocess` computes it (same `image` crate, same filter):
//! [`network_picture`] (the one rule for transparency: a cut-out composited onto grey and padded to a square,
//! opaque pixels untouched), shorter side to the input size (antialiased bilinear), centre crop, normalise.

use image::{imageops::FilterType, DynamicImage, Rgb, RgbImage};

use super::decode::decode_for_input;
use super::ImageError;
use crate::model_dir::ImageConfig;

/// The grey under and around an image with transparency, as the network sees it. Measured on the demo gallery's
/// 334 cut-outs (shipped model, 7 views + hubness; docs/runs.md "What helps cut-outs and clip-art"): grey and
/// padded +23.7 rsum [9.6, 37.1] over white and centre-cropped, white padded +13.8, grey cropped +1.5 — 128 is
/// ≈ 0 after Lite's `(x − 127) / 128`, like the zero padding at an image's border, where white is the
/// brightest input there is.
pub const TRANSPARENT_BACKGROUND: u8 = 128;

/// Names [`network_picture`]'s rule for transparency (part of `decode_rule`, which `trainer publish`'s embedding
/// cache records, and of the trainer's feature-cache key for image sets that can hold transparency).
pub const TRANSPARENCY_RULE: &str = "transparency on grey 128, padded to a centred square";

/// Whether `img` has an alpha channel with a pixel that is not fully opaque (alpha < 255 in 8-bit RGBA, what
/// a canvas gives the page). A fully opaque RGBA image counts as opaque.
pub fn has_transparency(img: &DynamicImage) -> bool {
    match img {
        _ if !img.color().has_alpha() => false,
        DynamicImage::ImageRgba8(rgba) => rgba.pixels().any(|p| p.0[3] < 255),
        DynamicImage::ImageLumaA8(la) => la.pixels().any(|p| p.0[1] < 255),
        other => other.to_rgba8().pixels().any(|p| p.0[3] < 255),
    }
}

/// The picture the network's input and every view (`model_dir::ImageView`) are cut from — the one rule the
/// page, `trainer publish`, `eval`, `features` and `fit` share: an image with transparency
/// ([`has_transparency`]) composited onto [`TRANSPARENT_BACKGROUND`] and centred on a square of it (its longer
/// side, no margin: a 10 % margin measured worse), so the centre crop that follows keeps the whole cut-out;
/// any other image's RGB pixels unchanged, without a copy (a 12-MP photo is 36 MB).
pub fn network_picture(img: DynamicImage) -> RgbImage {
    if has_transparency(&img) {
        pad_to_square(&flatten_onto(&img, TRANSPARENT_BACKGROUND), TRANSPARENT_BACKGROUND)
    } else {
        img.into_rgb8()
    }
}

/// RGB with any transparency composited onto white (what thumbnails show; same rounding as [`flatten_onto`]).
pub fn flatten_onto_white(img: &DynamicImage) -> RgbImage {
    flatten_onto(img, 255)
}

/// RGB with any transparency composited onto the grey level `background` (straight alpha, rounded to nearest).
pub fn flatten_onto(img: &DynamicImage, background: u8) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let bg = background as u32;
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = a as u32;
        let blend = |c: u8| ((c as u32 * a + bg * (255 - a) + 127) / 255) as u8;
        Rgb([blend(r), blend(g), blend(b)])
    })
}

/// `img` centred on a square of grey `background` whose side is its longer side (the odd pixel of the margin
/// right / below); a square image is returned as it is.
pub fn pad_to_square(img: &RgbImage, background: u8) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == h {
        return img.clone();
    }
    let side = w.max(h);
    let mut out = RgbImage::from_pixel(side, side, Rgb([background; 3]));
    image::imageops::replace(&mut out, img, ((side - w) / 2) as i64, ((side - h) / 2) as i64);
    out
}

/// Shorter side to `size` (antialiased bilinear), then a centre `size`×`size` crop.
pub fn resize_center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == size && h == size {
        return img.clone();
    }
    let scale = size as f64 / w.min(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(size),
        ((h as f64 * scale).round() as u32).max(size),
    );
    let (x0, y0) = ((nw - size) / 2, (nh - size) / 2);
    if w == 0 || h == 0 {
        let resized = image::imageops::resize(img, nw, nh, FilterType::Triangle);
        return image::imageops::crop_imm(&resized, x0, y0, size, size).to_image();
    }
    resize_triangle_crop(img, (nw, nh), (x0, y0), (size, size))
}

/// `image::imageops::resize(img, nw, nh, FilterType::Triangle)` followed by the crop of `cw`×`ch` pixels at
/// `(x0, y0)`, bit for bit (tested against it), but computing only the cropped pixels, on plain slices: the
/// same weights (computed the same way in f32), a vertical pass into f32 then a horizontal pass rounded to u8,
/// each output summing its taps in the same order. About 3–4× faster than the generic code on a phone photo.
pub(super) fn resize_triangle_crop(img: &RgbImage, (nw, nh): (u32, u32), (x0, y0): (u32, u32), (cw, ch): (u32, u32)) -> RgbImage {
    let (w, h) = img.dimensions();
    if (nw, nh) == (w, h) {
        return image::imageops::crop_imm(img, x0, y0, cw, ch).to_image(); // `resize` copies in this case
    }
    // For each output index in `range`: the first input index and the normalised weights (image's sample.rs).
    fn taps(input_len: u32, output_len: u32, range: std::ops::Range<u32>) -> Vec<(usize, Vec<f32>)> {
        let triangle = |x: f32| if x.abs() < 1.0 { 1.0 - x.abs() } else { 0.0 };
        let ratio = input_len as f32 / output_len as f32;
        let sratio = if ratio < 1.0 { 1.0 } else { ratio };
        let support = 1.0 * sratio;
        range
            .map(|o| {
                let centre = (o as f32 + 0.5) * ratio;
                let left = ((centre - support).floor() as i64).clamp(0, input_len as i64 - 1);
                let right = ((centre + support).ceil() as i64).clamp(left + 1, input_len as i64);
                let centre = centre - 0.5;
                let mut ws: Vec<f32> = (left..right).map(|i| triangle((i as f32 - centre) / sratio)).collect();
                let sum = ws.iter().fold(0.0f32, |s, w| s + w);
                ws.iter_mut().for_each(|w| *w /= sum);
                (left as usize, ws)
            })
            .collect()
    }
    let rows = taps(h, nh, y0..y0 + ch);
    let cols = taps(w, nw, x0..x0 + cw);
    // Input columns the horizontal pass reads.
    let lo = cols.iter().map(|(l, _)| *l).min().unwrap_or(0);
    let hi = cols.iter().map(|(l, ws)| l + ws.len()).max().unwrap_or(lo);
    let span = 3 * (hi - lo);
    let src = img.as_raw();
    let stride = 3 * w as usize;
    // Vertical pass: ch rows × the needed columns, f32.
    let mut tmp = vec![0f32; ch as usize * span];
    for (r, (top, ws)) in rows.iter().enumerate() {
        let acc = &mut tmp[r * span..(r + 1) * span];
        for (k, &wt) in ws.iter().enumerate() {
            let row = &src[(top + k) * stride + 3 * lo..][..span];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v as f32 * wt;
            }
        }
    }
    // Horizontal pass, rounded and clamped like image's `FloatNearest(clamp(t, 0, 255))`.
    let mut out = vec![0u8; 3 * (cw * ch) as usize];
    for r in 0..ch as usize {
        let line = &tmp[r * span..(r + 1) * span];
        for (c, (left, ws)) in cols.iter().enumerate() {
            let mut t = [0f32; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let p = &line[3 * (left + k - lo)..][..3];
                t[0] += p[0] * wt;
                t[1] += p[1] * wt;
                t[2] += p[2] * wt;
            }
            let o = &mut out[3 * (r * cw as usize + c)..][..3];
            for (d, v) in o.iter_mut().zip(t) {
                *d = v.clamp(0.0, 255.0).round() as u8;
            }
        }
    }
    RgbImage::from_raw(cw, ch, out).expect("cw × ch × 3 bytes")
}

/// `[3, H, W]` planes of `(pixel / 255 - mean) / std`.
pub fn normalize(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let plane = (img.width() * img.height()) as usize;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            data[c * plane + i] = (px.0[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    data
}

/// Encoded bytes → network input `[3, size, size]` (row-major planes); a large JPEG is decoded scaled down
/// ([`decode_for_input`]), as `trainer publish` decodes it, and transparency follows [`network_picture`].
pub fn preprocess(bytes: &[u8], cfg: &ImageConfig) -> Result<Vec<f32>, ImageError> {
    Ok(input_from_rgb(&network_picture(decode_for_input(bytes, cfg.image_size as u32)?.image), cfg))
}

/// A [`network_picture`] → network input: resize + centre crop, normalise.
pub(super) fn input_from_rgb(rgb: &RgbImage, cfg: &ImageConfig) -> Vec<f32> {
    normalize(&resize_center_crop(rgb, cfg.image_size as u32), cfg.mean, cfg.std)
}

#[cfg(test)]
mod tests {
    use super::*;

    use image::{Rgba, RgbaImage};

    const GREY: [u8; 3] = [TRANSPARENT_BACKGROUND; 3];

    #[test]
    fn transparent_pixels_become_white_in_thumbnails() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(2, 2, Rgba([0, 0, 0, 0])));
        assert!(flatten_onto_white(&img).pixels().all(|p| p.0 == [255, 255, 255]));
    }

    /// A wide cut-out: composited onto grey (straight alpha, rounded) and centred on a grey square.
    #[test]
    fn a_wide_cut_out_is_composited_onto_grey_and_padded_to_a_centred_square() {
        let mut img = RgbaImage::from_pixel(6, 2, Rgba([10, 20, 30, 255]));
        img.put_pixel(0, 0, Rgba([255, 0, 0, 255])); // opaque
        img.put_pixel(1, 0, Rgba([255, 0, 0, 0])); // fully transparent
        img.put_pixel(2, 1, Rgba([0, 0, 255, 128])); // half
        let img = DynamicImage::ImageRgba8(img);
        assert!(has_transparency(&img));
        let p = network_picture(img);
        assert_eq!(p.dimensions(), (6, 6));
        // rows 0–1 and 4–5 are the padding, the picture in rows 2–3
        for x in 0..6 {
            for y in [0, 1, 4, 5] {
                assert_eq!(p.get_pixel(x, y).0, GREY, "padding at {x},{y}");
            }
        }
        assert_eq!(p.get_pixel(0, 2).0, [255, 0, 0]);
        assert_eq!(p.get_pixel(1, 2).0, GREY, "transparent → grey");
        // (0·128 + 128·127 + 127) / 255 = 64.2 → 64; (255·128 + 128·127 + 127) / 255 = 192.2 → 192
        assert_eq!(p.get_pixel(2, 3).0, [64, 64, 192]);
        assert_eq!(p.get_pixel(5, 3).0, [10, 20, 30]);
    }

    /// A tall cut-out: centred across, the odd pixel of the margin on the right.
    #[test]
    fn a_tall_cut_out_is_centred_across() {
        let mut img = RgbaImage::from_pixel(3, 8, Rgba([200, 100, 50, 255]));
        img.put_pixel(1, 4, Rgba([0, 0, 0, 0]));
        let p = network_picture(DynamicImage::ImageRgba8(img));
        assert_eq!(p.dimensions(), (8, 8));
        for y in 0..8 {
            let row: Vec<[u8; 3]> = (0..8).map(|x| p.get_pixel(x, y).0).collect();
            let thing = [200, 100, 50];
            let middle = if y == 4 { GREY } else { thing };
            assert_eq!(row, [GREY, GREY, thing, middle, thing, GREY, GREY, GREY], "row {y}");
        }
    }

    /// Opaque images — RGB, and RGBA or grey + alpha whose every pixel is opaque — are not touched: the same
    /// pixels as before the rule (`flatten_onto_white`), not padded.
    #[test]
    fn opaque_images_keep_their_pixels() {
        let rgb = RgbImage::from_fn(5, 3, |x, y| Rgb([x as u8 * 40, y as u8 * 70, 9]));
        assert_eq!(network_picture(DynamicImage::ImageRgb8(rgb.clone())), rgb);
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(5, 3, |x, y| Rgba([x as u8 * 40, y as u8 * 70, 9, 255])));
        assert!(!has_transparency(&rgba), "an alpha channel without a transparent pixel");
        assert_eq!(network_picture(rgba.clone()), rgb);
        assert_eq!(flatten_onto_white(&rgba), rgb);
        let la = DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(4, 2, image::LumaA([77, 255])));
        assert!(!has_transparency(&la));
        assert_eq!(network_picture(la).dimensions(), (4, 2));
        let la = DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(4, 2, image::LumaA([77, 254])));
        assert!(has_transparency(&la));
        assert_eq!(network_picture(la).dimensions(), (4, 4));
        // 16-bit alpha counts as 8-bit RGBA does: 65535 is opaque, 0 transparent
        let rgba16 = |a: u16| DynamicImage::ImageRgba16(image::ImageBuffer::from_pixel(3, 1, Rgba([1000u16, 2000, 3000, a])));
        assert!(!has_transparency(&rgba16(u16::MAX)));
        assert!(has_transparency(&rgba16(0)));
    }

    /// Through [`preprocess`], from PNG bytes: an opaque image gives the input it gave before the rule; a wide
    /// cut-out is shown whole (its left and right ends, which the centre crop cut off, are in the input) with
    /// grey above and below it.
    #[test]
    fn preprocess_shows_a_cut_out_whole_on_grey_and_leaves_opaque_images_as_before() {
        let cfg = ImageConfig {
            backbone: crate::model_dir::Backbone::EfficientnetLite0,
            feature_dim: 1280,
            image_size: 32,
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
            pooling: Default::default(),
            finetuned_from: None,
        };
        let png = |img: DynamicImage| {
            let mut out = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
            out
        };
        let opaque = DynamicImage::ImageRgb8(RgbImage::from_fn(90, 30, |x, y| Rgb([x as u8, y as u8 * 3, 77])));
        let before = normalize(&resize_center_crop(&flatten_onto_white(&opaque), 32), cfg.mean, cfg.std);
        assert_eq!(preprocess(&png(opaque), &cfg).unwrap(), before);
        // 90×30: green at both ends, red between, one transparent pixel in the middle
        let mut cut_out = RgbaImage::from_fn(90, 30, |x, _| if !(10..80).contains(&x) { Rgba([0, 255, 0, 255]) } else { Rgba([255, 0, 0, 255]) });
        cut_out.put_pixel(45, 15, Rgba([0, 0, 0, 0]));
        let input = preprocess(&png(DynamicImage::ImageRgba8(cut_out)), &cfg).unwrap();
        let px = |x: usize, y: usize| [0, 1, 2].map(|c| ((input[c * 32 * 32 + y * 32 + x] * cfg.std[c] + cfg.mean[c]) * 255.0).round() as u8);
        assert_eq!(px(0, 0), GREY, "padding above");
        assert_eq!(px(31, 31), GREY, "padding below");
        assert_eq!(px(0, 16), [0, 255, 0], "the left end is kept");
        assert_eq!(px(31, 16), [0, 255, 0], "the right end is kept");
        assert_eq!(px(8, 16), [255, 0, 0]);
        assert!(super::super::decode_rule().contains(TRANSPARENCY_RULE), "a cache of the earlier rule is not reused");
    }

    /// The fast resize + crop equals `image::imageops::resize(Triangle)` + `crop_imm` exactly.
    #[test]
    fn fast_resize_crop_equals_the_image_crate() {
        let mut seed = 11u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed >> 8
        };
        let reference = |img: &RgbImage, nw, nh, x0, y0, cw, ch| {
            let resized = image::imageops::resize(img, nw, nh, FilterType::Triangle);
            image::imageops::crop_imm(&resized, x0, y0, cw, ch).to_image()
        };
        for (w, h) in [(300, 200), (200, 300), (224, 300), (225, 224), (97, 61), (1000, 3), (3, 1000), (1, 1), (640, 480), (1201, 899)] {
            let img = RgbImage::from_fn(w, h, |_, _| image::Rgb([next() as u8, next() as u8, next() as u8]));
            // The encoder's own use (shorter side to 224, centre crop) …
            let scale = 224.0 / w.min(h) as f64;
            let (nw, nh) = (((w as f64 * scale).round() as u32).max(224), ((h as f64 * scale).round() as u32).max(224));
            let (x0, y0) = ((nw - 224) / 2, (nh - 224) / 2);
            assert_eq!(resize_center_crop(&img, 224), reference(&img, nw, nh, x0, y0, 224, 224), "{w}×{h}");
            // … and arbitrary sizes and crops, up and down.
            for _ in 0..4 {
                let (nw, nh) = (1 + next() % 300, 1 + next() % 300);
                let (cw, ch) = (1 + next() % nw, 1 + next() % nh);
                let (x0, y0) = (next() % (nw - cw + 1), next() % (nh - ch + 1));
                assert_eq!(
                    resize_triangle_crop(&img, (nw, nh), (x0, y0), (cw, ch)),
                    reference(&img, nw, nh, x0, y0, cw, ch),
                    "{w}×{h} → {nw}×{nh}, crop {cw}×{ch} at {x0},{y0}"
                );
            }
        }
    }

    #[test]
    fn resize_crop_gives_a_square() {
        let img = RgbImage::new(300, 200);
        assert_eq!(resize_center_crop(&img, 224).dimensions(), (224, 224));
    }
}

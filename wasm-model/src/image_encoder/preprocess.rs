//! Pixels → network input, as `trainer::backbone::preprocess` computes it (same `image` crate, same filter):
//! alpha onto white, shorter side to the input size (antialiased bilinear), centre crop, normalise.

use image::{imageops::FilterType, DynamicImage, RgbImage};

use super::decode::decode_for_input;
use super::ImageError;
use crate::model_dir::ImageConfig;

/// RGB with any transparency composited onto white (same rounding as the trainer).
pub fn flatten_onto_white(img: &DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let a = a as u32;
        let blend = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
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
/// ([`decode_for_input`]), as `trainer publish` decodes it.
pub fn preprocess(bytes: &[u8], cfg: &ImageConfig) -> Result<Vec<f32>, ImageError> {
    Ok(input_from_rgb(&into_rgb(decode_for_input(bytes, cfg.image_size as u32)?.image), cfg))
}

/// Same pixels as `flatten_onto_white`, without copying an opaque image (36 MB for a 12-MP photo).
pub(super) fn into_rgb(img: DynamicImage) -> RgbImage {
    if img.color().has_alpha() {
        flatten_onto_white(&img)
    } else {
        img.into_rgb8()
    }
}

/// RGB pixels → network input: resize + centre crop, normalise.
pub(super) fn input_from_rgb(rgb: &RgbImage, cfg: &ImageConfig) -> Vec<f32> {
    normalize(&resize_center_crop(rgb, cfg.image_size as u32), cfg.mean, cfg.std)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_pixels_become_white() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0])));
        assert!(flatten_onto_white(&img).pixels().all(|p| p.0 == [255, 255, 255]));
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

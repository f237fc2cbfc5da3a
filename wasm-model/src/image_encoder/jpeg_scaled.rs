//! Large JPEGs decoded at 1/2, 1/4 or 1/8 of their size inside the IDCT (`jpeg-decoder`'s `Decoder::scale`,
//! which also decodes progressive JPEGs): the network sees 224–260 px, so a 12-MP photo's full decode and the
//! resize of its 36 MB of pixels are mostly wasted. The Huffman decoding stays; the IDCT, the chroma upsampling,
//! the colour conversion and the resize after it shrink 4–64× (numbers: docs/benchmarks.md "My photos at
//! scale"). `image`'s JPEG decoder (zune-jpeg) cannot scale.
//!
//! The scale keeps the shorter side at least [`DECODED_SIDE_PER_INPUT`] × the network's input, so the resize
//! that follows still averages several decoded pixels per input pixel. Smaller images are not scaled and keep
//! `image`'s decode, bit for bit (Flickr8k, the asset photos, every trained cache and stored reference).

use image::{DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::{CodingProcess, PixelFormat};

/// A JPEG is decoded at 1/d only while its shorter side stays at least this many times the network's input
/// (Lite0: ≥ 896 px; a 12-MP photo at 1/2). Page and publish decode alike whatever it is; against the full-size
/// decode the model was trained on, on 58 distinct 2–16 MP JPEGs of the demo gallery's wallpaper packages
/// (shipped model), 4× kept the min cosine at 0.9988 (1 below 0.999), where 2× lost up to 0.9948 on smooth
/// abstract wallpapers (6 below 0.999) for 10–20 % less time per 12-MP JPEG in wasm (docs/benchmarks.md).
/// Changing it changes [`decode_rule`], which restarts `trainer publish`'s embedding caches.
pub const DECODED_SIDE_PER_INPUT: u32 = 4;

/// Names the decode [`super::decode_for_input`] applies and what the network is shown of its pixels
/// ([`super::TRANSPARENCY_RULE`]): `trainer publish` keeps it in its embedding cache, so cached vectors of
/// another decode are not mixed with new ones.
pub fn decode_rule() -> String {
    format!("jpeg-dct-scaled, shorter side >= {DECODED_SIDE_PER_INPUT}x input; {}", super::TRANSPARENCY_RULE)
}

/// 1, 2, 4 or 8: the largest divisor of a `width`×`height` JPEG's size that keeps its shorter side, decoded at
/// 1/d (rounded up, as the decoder does), at least [`DECODED_SIDE_PER_INPUT`] × `input_size`.
pub fn jpeg_downscale((width, height): (u32, u32), input_size: u32) -> u32 {
    let min_side = DECODED_SIDE_PER_INPUT * input_size.max(1);
    [8, 4, 2].into_iter().find(|&d| width.min(height).div_ceil(d) >= min_side).unwrap_or(1)
}

/// The pixels of `bytes` (a JPEG whose header passed `decode`'s checks) at 1/`downscale` of its size, as
/// stored (EXIF orientation not applied). `Ok(None)`: a JPEG this decoder does not scale (lossless, CMYK,
/// 16-bit), which the caller decodes at full size. `Err`: why the file cannot be decoded.
pub fn decode_scaled(bytes: &[u8], downscale: u32) -> Result<Option<DynamicImage>, String> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(|e| e.to_string())?;
    let info = decoder.info().ok_or("no frame header")?;
    if info.coding_process == CodingProcess::Lossless || !matches!(info.pixel_format, PixelFormat::RGB24 | PixelFormat::L8) {
        return Ok(None);
    }
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let wanted = (width.div_ceil(downscale), height.div_ceil(downscale));
    // `scale` picks the smallest IDCT size whose output reaches the requested size: exactly 8/downscale here.
    let (w, h) = decoder.scale(wanted.0 as u16, wanted.1 as u16).map_err(|e| e.to_string())?;
    let (w, h) = (u32::from(w), u32::from(h));
    if (w, h) != wanted {
        return Err(format!("the decoder scaled {width}×{height} to {w}×{h}, not {}×{}", wanted.0, wanted.1));
    }
    let pixels = decoder.decode().map_err(|e| e.to_string())?;
    let short = |what: &str| format!("the decoder returned too few bytes for {w}×{h} {what}");
    Ok(Some(match info.pixel_format {
        PixelFormat::RGB24 => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(|| short("RGB"))?),
        _ => DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels).ok_or_else(|| short("grey"))?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_keeps_four_times_the_input_on_the_shorter_side() {
        // 12 MP (4000×3000) at Lite0's 224: 3000/2 = 1500 ≥ 896 > 3000/4 = 750.
        assert_eq!(jpeg_downscale((4000, 3000), 224), 2);
        assert_eq!(jpeg_downscale((3000, 4000), 224), 2, "portrait: the same");
        assert_eq!(jpeg_downscale((4000, 3000), 260), 2, "Lite2: 1500 ≥ 1040");
        assert_eq!(jpeg_downscale((5120, 2880), 224), 2);
        assert_eq!(jpeg_downscale((8000, 8000), 224), 8);
        assert_eq!(jpeg_downscale((6000, 4000), 224), 4);
        assert_eq!(jpeg_downscale((1622, 2880), 224), 1);
        // The edge: 1792 → 896 is enough for 1/2, 1791 (rounded up to 896) too, 1790 → 895 is not.
        assert_eq!(jpeg_downscale((2400, 1792), 224), 2);
        assert_eq!(jpeg_downscale((2400, 1791), 224), 2);
        assert_eq!(jpeg_downscale((2400, 1790), 224), 1);
        // Flickr8k (500×375), the asset photos (≤ 1000×872), Lite2 on a 2000-px side: never scaled.
        for (size, input) in [((500, 375), 224), ((1000, 872), 224), ((640, 901), 224), ((2400, 2000), 260)] {
            assert_eq!(jpeg_downscale(size, input), 1, "{size:?} at {input}");
        }
        assert_eq!(jpeg_downscale((1, 1), 0), 1, "degenerate input sizes do not divide by zero");
        assert!(decode_rule().contains(&format!("{DECODED_SIDE_PER_INPUT}x")));
    }
}

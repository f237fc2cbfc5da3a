//! Encoded bytes (JPEG/PNG/WebP) → pixels. Every refusal that can be made from the header (format, zero or
//! too many pixels) or the byte stream (a JPEG without its end marker) comes before any pixel is decoded.

use std::io::Cursor;

use image::{metadata::Orientation, DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::jpeg_scaled::{decode_scaled, jpeg_downscale};
use super::{ImageError, MAX_PIXELS};

/// What a file's header says, once every check [`decode_image`] makes before decoding has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    /// The stored size (before any EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// The EXIF orientation (`NoTransforms` without one).
    pub orientation: Orientation,
}

/// The checks and the header of [`decode_image`], without decoding a pixel: the page's embedding workers call it
/// before the browser decodes a JPEG, so a bad file is refused with the same message whichever decoder runs.
pub fn probe_image(bytes: &[u8]) -> Result<ImageInfo, ImageError> {
    let (format, name, (width, height)) = checked_format(bytes)?;
    let decode_err = |e: image::ImageError| ImageError::Decode { format: name.clone(), reason: e.to_string() };
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format).into_decoder().map_err(decode_err)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok(ImageInfo { format, width, height, orientation })
}

/// Decodes JPEG/PNG/WebP bytes. The size limit is checked on the header before any pixel is decoded.
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let (format, name, _) = checked_format(bytes)?;
    let decode_err = |e: image::ImageError| ImageError::Decode { format: name.clone(), reason: e.to_string() };
    ImageReader::with_format(Cursor::new(bytes), format).decode().map_err(decode_err)
}

/// A photo decoded for the network by [`decode_for_input`].
#[derive(Debug, Clone)]
pub struct DecodedPhoto {
    /// The stored pixels (EXIF orientation not applied: the vector is computed from them, as the trainer does),
    /// at 1/`downscale` of the stored size.
    pub image: DynamicImage,
    /// The EXIF orientation (`NoTransforms` without one): what thumbnails and the shown size follow.
    pub orientation: Orientation,
    /// The stored size from the header (before any EXIF orientation).
    pub stored_size: (u32, u32),
    /// 1 (decoded as [`decode_image`] decodes), or 2, 4 or 8 for a large JPEG ([`jpeg_downscale`]).
    pub downscale: u32,
}

/// What the page and `trainer publish` embed, one definition for both: [`decode_image`]'s pixels and the EXIF
/// orientation, except that a JPEG large enough for it is decoded at 1/2, 1/4 or 1/8 of its size in the IDCT,
/// its shorter side still at least `DECODED_SIDE_PER_INPUT` (4) × `input_size`, the network's input side
/// (`jpeg_scaled`).
pub fn decode_for_input(bytes: &[u8], input_size: u32) -> Result<DecodedPhoto, ImageError> {
    let (format, name, stored_size) = checked_format(bytes)?;
    let decode_err = |reason: String| ImageError::Decode { format: name.clone(), reason };
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format).into_decoder().map_err(|e| decode_err(e.to_string()))?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let downscale = if format == ImageFormat::Jpeg { jpeg_downscale(stored_size, input_size) } else { 1 };
    if downscale > 1 {
        if let Some(image) = decode_scaled(bytes, downscale).map_err(decode_err)? {
            return Ok(DecodedPhoto { image, orientation, stored_size, downscale });
        }
    }
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_err(e.to_string()))?;
    Ok(DecodedPhoto { image, orientation, stored_size, downscale: 1 })
}

/// Every check `decode_image` makes before decoding: returns the format, its display name and the stored size.
fn checked_format(bytes: &[u8]) -> Result<(ImageFormat, String, (u32, u32)), ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|e| ImageError::UnknownFormat(e.to_string()))?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) {
        return Err(ImageError::UnknownFormat(format!("{format:?} is not supported")));
    }
    let name = format!("{format:?}").to_uppercase();
    let decode_err = |e: image::ImageError| ImageError::Decode { format: name.clone(), reason: e.to_string() };
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(decode_err)?;
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize);
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    // The JPEG decoder pads a truncated scan with grey instead of failing; refuse such files here.
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(ImageError::Decode {
            format: name,
            reason: "the file ends before the image data does (no end-of-image marker)".into(),
        });
    }
    Ok((format, name, (width, height)))
}

/// Walks the JPEG's marker segments (skipping APPn/EXIF payloads by their lengths, scanning entropy-coded
/// data for the next marker) and says whether the main image's end-of-image marker is reached. Data after
/// it (e.g. a motion photo's video) is allowed.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < b.len() {
        if b[i] != 0xFF {
            return false;
        }
        let marker = b[i + 1];
        match marker {
            0xD9 => return true,
            0xFF => i += 1, // fill byte
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                if i + 3 >= b.len() {
                    return false;
                }
                let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker other than a stuffed 0xFF00 or a restart.
                    while i + 1 < b.len() && !(b[i] == 0xFF && b[i + 1] != 0 && !(0xD0..=0xD7).contains(&b[i + 1])) {
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// A `w`×`h` PNG of a gradient.
    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn bad_bytes_are_named_errors() {
        assert_eq!(decode_image(&[]).unwrap_err(), ImageError::Empty);
        assert!(matches!(decode_image(b"hello, not an image").unwrap_err(), ImageError::UnknownFormat(_)));
        let p = png(40, 30);
        let e = decode_image(&p[..p.len() / 2]).unwrap_err();
        assert!(matches!(e, ImageError::Decode { .. }), "{e:?}");
        assert!(e.to_string().contains("PNG"), "{e}");
        assert_eq!(decode_image(&p).unwrap().width(), 40);
    }

    #[test]
    fn huge_image_is_refused_from_its_header() {
        // A valid PNG header claiming 10000×5000 (50 MP) followed by no pixel data: refused as too large
        // (a decoder that tried to allocate or decode first would fail differently).
        let mut bytes = png(1, 1);
        // IHDR: type + data at bytes 12..29 (width 16..20, height 20..24), its CRC-32 at 29..33.
        bytes[16..20].copy_from_slice(&10000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&5000u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode_image(&bytes).unwrap_err();
        assert_eq!(e, ImageError::TooLarge { width: 10000, height: 5000 });
        assert!(e.to_string().contains("50.0 megapixels"), "{e}");
    }
}

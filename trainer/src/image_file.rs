//! Reading an image file without trusting it: only regular files are opened for reading (a FIFO named `.jpg`
//! would block forever, `/dev/zero` never ends), files over [`MAX_IMAGE_FILE_BYTES`] are refused before a byte
//! is read, and the pixel count is checked from the header before decoding, with the browser's limit
//! (`wasm_model::image_encoder::MAX_PIXELS`: one definition). JPEG, PNG and WebP go through wasm-model's
//! decoder itself, so the trainer refuses exactly what the page refuses (a JPEG without its end-of-image
//! marker, which the decoder would pad with grey); GIF and BMP, which only the trainer reads, get the same
//! header check and `image`'s allocation limit.

use std::io::{Cursor, Read};
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use wasm_model::image_encoder::{decode_for_input, decode_image, jpeg_downscale, probe_image, MAX_PIXELS};

/// Larger files are refused unread: a 40-megapixel photo is far smaller, and a 2 GB file named `.jpg` took
/// 2.3 GB of memory before its decode failed.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;

/// The bytes of the regular file `path`; the error says why not (never blocks on a FIFO or device).
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let (file, len) = open_regular(path)?;
    if len > MAX_IMAGE_FILE_BYTES {
        return Err(format!("{:.1} MB, larger than the {} MB an image file may have: not read", len as f64 / 1e6, MAX_IMAGE_FILE_BYTES >> 20));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: a file that grows while it is read stops at the limit too
    file.take(MAX_IMAGE_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(format!("grew past the {} MB an image file may have while it was read", MAX_IMAGE_FILE_BYTES >> 20));
    }
    Ok(bytes)
}

/// Whether the image at `path` can hold transparent pixels, from its header alone (a decoder whose pixels have
/// an alpha channel: RGBA or grey + alpha PNG/WebP, a PNG with a transparent colour, GIF), so what wasm-model's
/// rule for transparency (`network_picture`) may change. JPEGs never can; an unreadable file is `false` (it
/// has no pixels under any rule).
pub fn may_have_transparency(path: &Path) -> bool {
    let Ok((file, _)) = open_regular(path) else { return false };
    // a small buffer: a JPEG is told from its first bytes, a PNG's or WebP's colour type is in its first chunks
    let Ok(reader) = ImageReader::new(std::io::BufReader::with_capacity(1024, file)).with_guessed_format() else { return false };
    if matches!(reader.format(), Some(ImageFormat::Jpeg) | None) {
        return false;
    }
    reader.into_decoder().map(|d| d.color_type().has_alpha()).unwrap_or(false)
}

/// Whether [`open_for_network`] decodes the image at `path` smaller than [`open`] does for a network input side
/// of `input_size` (a JPEG whose shorter side is at least 8× it: wasm-model's `jpeg_downscale` above 1), from
/// its header alone. Reads the file's first 4 KiB, then 64 KiB, and only then the whole file, until the frame
/// header is found (an EXIF thumbnail or ICC profile can push it back). An unreadable file is `false`.
pub fn is_scaled_for_network(path: &Path, input_size: u32) -> bool {
    let jpeg_size = |bytes: &[u8]| ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg).into_dimensions().ok();
    let mut size = None;
    for prefix in [4 << 10, 64 << 10] {
        let Ok((file, len)) = open_regular(path) else { return false };
        let mut head = Vec::new();
        if file.take(prefix).read_to_end(&mut head).is_err() || !matches!(image::guess_format(&head), Ok(ImageFormat::Jpeg)) {
            return false;
        }
        size = jpeg_size(&head);
        if size.is_some() || len <= prefix {
            break;
        }
    }
    if size.is_none() {
        size = read(path).ok().and_then(|bytes| jpeg_size(&bytes));
    }
    size.is_some_and(|size| jpeg_downscale(size, input_size) > 1)
}

/// `path` opened for reading if it is a regular file, and its length.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64), String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading blocks until a writer comes; non-blocking, it returns at once and the
        // type check below refuses it. (Regular files ignore the flag.)
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| format!("cannot open: {e}"))?;
    // the type of what was opened, not of the name (which may have changed since the folder was listed)
    let meta = file.metadata().map_err(|e| format!("cannot read its metadata: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file (a FIFO, device or socket): not read".into());
    }
    Ok((file, meta.len()))
}

/// Decodes JPEG, PNG, WebP (wasm-model's decoder and checks), GIF or BMP (the same pixel limit from the header).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let format = image::guess_format(bytes).map_err(|e| format!("not an image (JPEG, PNG, WebP, GIF or BMP): {e}"))?;
    match format {
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP => decode_image(bytes).map_err(|e| e.to_string()),
        ImageFormat::Gif | ImageFormat::Bmp => {
            let reader = || ImageReader::with_format(Cursor::new(bytes), format);
            let name = format!("{format:?}").to_uppercase();
            let (w, h) = reader().into_dimensions().map_err(|e| format!("cannot decode the {name} image: {e}"))?;
            if w == 0 || h == 0 {
                return Err("image has zero width or height".into());
            }
            let pixels = w as u64 * h as u64;
            if pixels > MAX_PIXELS {
                return Err(format!(
                    "image is {w}×{h} ({:.1} megapixels), more than the {} megapixels accepted: downscale it first",
                    pixels as f64 / 1e6,
                    MAX_PIXELS / 1_000_000
                ));
            }
            let mut limits = image::Limits::default();
            limits.max_alloc = Some(MAX_PIXELS * 8); // RGBA, and the decoder's own buffer
            let mut reader = reader();
            reader.limits(limits);
            reader.decode().map_err(|e| format!("cannot decode the {name} image (truncated or corrupt file?): {e}"))
        }
        other => Err(format!("{other:?} images are not read (JPEG, PNG, WebP, GIF or BMP)")),
    }
}

/// [`read`] then [`decode`].
pub fn open(path: &Path) -> Result<DynamicImage, String> {
    decode(&read(path)?)
}

/// A decoded image (its stored pixels: what the network embeds, as the page does) and its EXIF orientation
/// (what a viewer applies, so what thumbnails and the published size follow).
pub struct Opened {
    pub image: DynamicImage,
    pub orientation: Orientation,
}

impl Opened {
    /// Width and height as the picture is shown.
    pub fn shown_size(&self) -> (u32, u32) {
        turned(self.image.width(), self.image.height(), self.orientation)
    }

    /// The pixels turned upright (a thumbnail's).
    pub fn upright(&self) -> DynamicImage {
        let mut image = self.image.clone();
        image.apply_orientation(self.orientation);
        image
    }
}

/// `(w, h)` of a picture stored that way, as shown after `orientation` (a quarter turn swaps them).
fn turned(w: u32, h: u32, orientation: Orientation) -> (u32, u32) {
    use Orientation::{Rotate270, Rotate270FlipH, Rotate90, Rotate90FlipH};
    if matches!(orientation, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH) {
        (h, w)
    } else {
        (w, h)
    }
}

/// The EXIF orientation of JPEG, PNG and WebP bytes (others carry none here).
fn orientation_of(bytes: &[u8]) -> Orientation {
    probe_image(bytes).map(|info| info.orientation).unwrap_or(Orientation::NoTransforms)
}

/// [`read`] then [`decode`], with the orientation.
pub fn open_oriented(path: &Path) -> Result<Opened, String> {
    let bytes = read(path)?;
    let image = decode(&bytes)?;
    Ok(Opened { image, orientation: orientation_of(&bytes) })
}

/// What `publish` embeds: [`open_oriented`], except that a large JPEG is decoded at 1/2, 1/4 or 1/8 of its size
/// (wasm-model's `decode_for_input`, the page's decode: its shorter side stays at least 4× `input_size`, the
/// network's input side), so `image` may be smaller than the stored picture. Also returns the size as shown,
/// from the header.
pub fn open_for_network(path: &Path, input_size: u32) -> Result<(Opened, (u32, u32)), String> {
    let bytes = read(path)?;
    match image::guess_format(&bytes) {
        Ok(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) => {
            let d = decode_for_input(&bytes, input_size).map_err(|e| e.to_string())?;
            let shown = turned(d.stored_size.0, d.stored_size.1, d.orientation);
            Ok((Opened { image: d.image, orientation: d.orientation }, shown))
        }
        _ => {
            let image = decode(&bytes)?;
            let opened = Opened { image, orientation: orientation_of(&bytes) };
            let shown = opened.shown_size();
            Ok((opened, shown))
        }
    }
}

/// The size of the picture in `bytes` as shown and its orientation, from its header alone (no decoding): for
/// galleries whose cached records predate the stored size.
pub fn probe(bytes: &[u8]) -> Result<((u32, u32), Orientation), String> {
    let format = image::guess_format(bytes).map_err(|e| format!("not an image: {e}"))?;
    match format {
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP => {
            let info = probe_image(bytes).map_err(|e| e.to_string())?;
            Ok((turned(info.width, info.height, info.orientation), info.orientation))
        }
        _ => {
            let size = ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().map_err(|e| format!("cannot read the image's size: {e}"))?;
            Ok((size, Orientation::NoTransforms))
        }
    }
}

/// `jpeg` with an APP1 Exif segment whose only tag is Orientation = `orientation`.
#[cfg(test)]
pub(crate) fn with_exif_orientation(jpeg: &[u8], orientation: u8) -> Vec<u8> {
    // big-endian TIFF header, one IFD entry: tag 0x0112 (Orientation), type SHORT, count 1, value
    let tiff: &[u8] = &[b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0, 0, 0, 0, 0];
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    /// The trainer refuses what the page refuses: a truncated JPEG (the decoder alone pads it with grey), a
    /// header claiming more than 40 megapixels; GIF and BMP, which only the trainer reads, are bounded too.
    #[test]
    fn refuses_what_the_page_refuses_and_bounds_the_rest() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90])));
        let jpeg = encoded(&img, ImageFormat::Jpeg);
        assert_eq!(decode(&jpeg).unwrap().width(), 64);
        assert!(image::load_from_memory(&jpeg[..jpeg.len() - 40]).is_ok(), "the decoder alone accepts the truncated file");
        let e = decode(&jpeg[..jpeg.len() - 40]).unwrap_err();
        assert!(e.contains("end-of-image"), "{e}");
        for format in [ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::Png] {
            assert_eq!(decode(&encoded(&img, format)).unwrap().height(), 48, "{format:?}");
        }
        // a BMP header claiming 12000 × 12000: refused from the header
        let mut bmp = encoded(&img, ImageFormat::Bmp);
        bmp[18..22].copy_from_slice(&12000i32.to_le_bytes());
        bmp[22..26].copy_from_slice(&12000i32.to_le_bytes());
        let e = decode(&bmp).unwrap_err();
        assert!(e.contains("144.0 megapixels"), "{e}");
        assert!(decode(b"hello").unwrap_err().contains("not an image"));
    }

    /// A JPEG stored sideways with EXIF orientation 6 (a portrait phone photo): the stored pixels are decoded
    /// as they are (what the network embeds), the size and the upright pixels are as shown; a header read
    /// alone gives the same size.
    #[test]
    fn sizes_and_thumbnails_follow_the_exif_orientation() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90])));
        let jpeg = encoded(&img, ImageFormat::Jpeg);
        let rotated = with_exif_orientation(&jpeg, 6);
        let tmp = tempfile::tempdir().unwrap();
        let (plain, turned) = (tmp.path().join("plain.jpg"), tmp.path().join("turned.jpg"));
        std::fs::write(&plain, &jpeg).unwrap();
        std::fs::write(&turned, &rotated).unwrap();
        let p = open_oriented(&plain).unwrap();
        let t = open_oriented(&turned).unwrap();
        assert_eq!((p.shown_size(), t.shown_size()), ((64, 48), (48, 64)));
        assert_eq!(t.image.to_rgb8(), p.image.to_rgb8(), "the stored pixels, unturned");
        let up = t.upright();
        assert_eq!((up.width(), up.height()), (48, 64));
        assert_eq!((probe(&jpeg).unwrap(), probe(&rotated).unwrap()), (((64, 48), Orientation::NoTransforms), ((48, 64), Orientation::Rotate90)));
        assert_eq!(probe(&encoded(&img, ImageFormat::Gif)).unwrap().0, (64, 48));
        assert!(probe(b"hello").unwrap_err().contains("not an image"));
    }

    /// What publish embeds: a JPEG large enough for it decoded at 1/2 (here a 256×192 one for a 16-px input:
    /// 96 ≥ 4 × 16 > 48), unturned, with the size as shown from the header; small ones and GIFs whole, as before.
    #[test]
    fn open_for_network_scales_large_jpegs_and_keeps_the_shown_size() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(256, 192, |x, y| image::Rgb([x as u8, y as u8, 90])));
        let tmp = tempfile::tempdir().unwrap();
        let (turned, gif) = (tmp.path().join("turned.jpg"), tmp.path().join("plain.gif"));
        std::fs::write(&turned, with_exif_orientation(&encoded(&img, ImageFormat::Jpeg), 6)).unwrap();
        std::fs::write(&gif, encoded(&img, ImageFormat::Gif)).unwrap();
        let (opened, shown) = open_for_network(&turned, 16).unwrap();
        assert_eq!(((opened.image.width(), opened.image.height()), shown), ((128, 96), (192, 256)));
        assert_eq!(opened.orientation, Orientation::Rotate90);
        assert_eq!((opened.upright().width(), opened.upright().height()), (96, 128));
        let whole = open_oriented(&turned).unwrap();
        assert_eq!(whole.shown_size(), shown);
        let (small, _) = open_for_network(&turned, 32).unwrap();
        assert_eq!(small.image.to_rgb8(), whole.image.to_rgb8(), "too small to scale for 32 px (192 / 2 < 4 × 32): the old decode");
        let (g, g_shown) = open_for_network(&gif, 16).unwrap();
        assert_eq!(((g.image.width(), g.image.height()), g_shown), ((256, 192), (256, 192)));
    }

    /// Which files can hold transparency, from their headers: RGBA and grey + alpha PNG/WebP and GIF can, JPEG
    /// and RGB PNG cannot (even when opaque: the header decides), nor anything unreadable (never blocking).
    #[test]
    fn transparency_is_told_from_the_header() {
        let tmp = tempfile::tempdir().unwrap();
        let rgb = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(8, 6, image::Rgb([1, 2, 3])));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(8, 6, image::Rgba([1, 2, 3, 255])));
        let grey_alpha = DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(8, 6, image::LumaA([9, 0])));
        let cases = [
            ("rgb.jpg", encoded(&rgb, ImageFormat::Jpeg), false),
            ("rgb.png", encoded(&rgb, ImageFormat::Png), false),
            ("opaque-rgba.png", encoded(&rgba, ImageFormat::Png), true),
            ("grey-alpha.png", encoded(&grey_alpha, ImageFormat::Png), true),
            ("rgba.webp", encoded(&rgba, ImageFormat::WebP), true),
            ("rgb.webp", encoded(&rgb, ImageFormat::WebP), false),
            ("any.gif", encoded(&rgb, ImageFormat::Gif), true),
            ("not-an-image.png", b"hello".to_vec(), false),
        ];
        for (name, bytes, alpha) in cases {
            let path = tmp.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(may_have_transparency(&path), alpha, "{name}");
        }
        let fifo = tmp.path().join("fifo.png");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(!may_have_transparency(&fifo));
        assert!(!may_have_transparency(&tmp.path().join("none.png")));
    }

    /// Which files `open_for_network` decodes smaller, from their headers: a 256×192 JPEG for a 16-px input (96 ≥
    /// 4 × 16) but not for 32 px, also when its frame header lies past the first 4 KiB or 64 KiB (APP segments
    /// before it, as an EXIF thumbnail or ICC profile puts them); never a PNG or GIF of that size, nor anything
    /// unreadable.
    #[test]
    fn scaled_jpegs_are_told_from_the_header() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(256, 192, |x, y| image::Rgb([x as u8, y as u8, 90])));
        let jpeg = encoded(&img, ImageFormat::Jpeg);
        // `jpeg` with `count` APP2 segments of 60000 bytes after its SOI marker
        let padded = |count: usize| {
            let mut out = jpeg[..2].to_vec();
            for _ in 0..count {
                out.extend_from_slice(&[0xFF, 0xE2]);
                out.extend_from_slice(&60002u16.to_be_bytes());
                out.extend(std::iter::repeat_n(0u8, 60000));
            }
            out.extend_from_slice(&jpeg[2..]);
            out
        };
        let tmp = tempfile::tempdir().unwrap();
        let cases = [("plain.jpg", jpeg.clone()), ("past-4k.jpg", padded(1)), ("past-64k.jpg", padded(2))];
        for (name, bytes) in cases {
            let path = tmp.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(open_for_network(&path, 16).unwrap().0.image.width(), 128, "{name}: decoded at 1/2");
            assert!(is_scaled_for_network(&path, 16), "{name}");
            assert!(!is_scaled_for_network(&path, 32), "{name}: 192 / 2 < 4 × 32");
        }
        for (name, bytes) in [("large.png", encoded(&img, ImageFormat::Png)), ("large.gif", encoded(&img, ImageFormat::Gif)), ("not.jpg", b"hello".to_vec())] {
            let path = tmp.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert!(!is_scaled_for_network(&path, 16), "{name}");
        }
        assert!(!is_scaled_for_network(&tmp.path().join("none.jpg"), 16));
    }

    /// Only regular files are read, and no file over the size limit (checked before reading).
    #[test]
    fn reads_only_regular_files_of_bounded_size() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo.jpg");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(read(&fifo).unwrap_err().contains("not a regular file"), "a FIFO is not opened for a blocking read");
        assert!(read(Path::new("/dev/zero")).unwrap_err().contains("not a regular file"));
        let big = tmp.path().join("big.jpg");
        std::fs::File::create(&big).unwrap().set_len(MAX_IMAGE_FILE_BYTES + 1).unwrap();
        assert!(read(&big).unwrap_err().contains("larger than"));
        assert!(read(&tmp.path().join("none.jpg")).unwrap_err().contains("cannot open"));
    }
}

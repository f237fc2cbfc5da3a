//! A measurement aid for #21's "what helps cut-outs": copies a gallery (COCO captions + image folder) with
//! every image that has transparent pixels (cut-outs, clip-art) redrawn as an opaque PNG — on another background
//! and/or padded to a square instead of centre-cropped by the network's preprocessing — and every other image
//! linked unchanged. `trainer eval --group-by kind` on the copy then says what the change does per kind,
//! against the same opaque photos. (Since 7f82faa the product itself draws an image with transparency on grey
//! 128, padded to a centred square: `wasm_model::image_encoder::network_picture`, the rule `grey pad` measured.
//! The copies are opaque, so the product shows them to the network as drawn here, centre-cropping the shorter
//! side as for any photo: `crop` is how cut-outs were shown before that commit.)
//!   cargo run --release -p trainer --example cutout_variants -- CAPTIONS IMAGES OUT_DIR BACKGROUND GEOMETRY
//! BACKGROUND: `white`, `grey` (128) or `R,G,B`; GEOMETRY: `crop` (the image's own size: the network sees its
//! centred square) or `pad` (the whole image centred on a square of the background) or `pad:F` (the same, the
//! image's longer side filling the fraction F of the square's, e.g. `pad:0.8` leaves a 10 % margin each side).
//! Writes OUT_DIR/captions.json and OUT_DIR/images/…
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use image::{DynamicImage, Rgb, RgbImage};

fn background(arg: &str) -> Result<[u8; 3]> {
    Ok(match arg {
        "white" => [255; 3],
        "grey" => [128; 3],
        rgb => {
            let parts: Vec<u8> = rgb.split(',').map(str::parse).collect::<Result<_, _>>().with_context(|| format!("background {rgb:?}"))?;
            let [r, g, b] = parts[..] else { bail!("background {rgb:?}: white, grey or R,G,B") };
            [r, g, b]
        }
    })
}

/// Whether any pixel is not fully opaque.
fn has_transparency(img: &DynamicImage) -> bool {
    img.color().has_alpha() && img.to_rgba8().pixels().any(|p| p.0[3] < 255)
}

/// `img` composited onto `bg` (straight alpha, rounded as `flatten_onto_white` does); with `pad: Some(f)`
/// centred on a square canvas whose side is the image's longer side / `f`.
fn redraw(img: &DynamicImage, bg: [u8; 3], pad: Option<f32>) -> RgbImage {
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let (cw, ch) = match pad {
        Some(fill) => {
            let side = (w.max(h) as f32 / fill).ceil() as u32;
            (side, side)
        }
        None => (w, h),
    };
    let (ox, oy) = ((cw - w) / 2, (ch - h) / 2);
    let mut out = RgbImage::from_pixel(cw, ch, Rgb(bg));
    for (x, y, p) in rgba.enumerate_pixels() {
        let a = p.0[3] as u32;
        let px = std::array::from_fn(|c| ((p.0[c] as u32 * a + bg[c] as u32 * (255 - a) + 127) / 255) as u8);
        out.put_pixel(x + ox, y + oy, Rgb(px));
    }
    out
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [captions, images, out, bg, geometry] = &args[..] else {
        bail!("usage: cutout_variants CAPTIONS IMAGES OUT_DIR white|grey|R,G,B crop|pad|pad:F");
    };
    let pad = match geometry.as_str() {
        "crop" => None,
        "pad" => Some(1.0),
        g => match g.strip_prefix("pad:").and_then(|f| f.parse::<f32>().ok()) {
            Some(f) if f > 0.0 && f <= 1.0 => Some(f),
            _ => bail!("geometry {g:?}: crop, pad or pad:F with F in (0, 1]"),
        },
    };
    let bg = background(bg)?;
    let (images, out) = (PathBuf::from(images), PathBuf::from(out));
    let mut coco: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(captions)?)?;
    let (mut redrawn, mut linked) = (0, 0);
    for im in coco["images"].as_array_mut().context("no \"images\" list")? {
        let name = im["file_name"].as_str().context("file_name")?.to_owned();
        let src = images.join(&name);
        let img = image::open(&src).with_context(|| format!("cannot read {}", src.display()))?;
        let transparent = has_transparency(&img);
        let dst_name = if transparent && !name.ends_with(".png") { format!("{name}.png") } else { name.clone() };
        let dst = out.join("images").join(&dst_name);
        std::fs::create_dir_all(dst.parent().unwrap())?;
        if dst.symlink_metadata().is_ok() {
            std::fs::remove_file(&dst)?;
        }
        if transparent {
            redrawn += 1;
            redraw(&img, bg, pad).save(&dst)?;
        } else {
            linked += 1;
            std::os::unix::fs::symlink(std::fs::canonicalize(&src)?, &dst)?;
        }
        im["file_name"] = dst_name.into();
    }
    std::fs::write(out.join("captions.json"), serde_json::to_string(&coco)?)?;
    println!("{redrawn} images with transparency redrawn, {linked} linked unchanged, into {}", out.display());
    Ok(())
}

//! The image side in candle: encoded bytes → preprocessing → EfficientNet-Lite0 → image head → L2-normalised
//! vector, the same vector `trainer publish` computes with tch (see README "Image encoder").
//!
//! - Preprocessing mirrors `trainer::backbone::preprocess` step for step (same `image` crate, same filter):
//!   alpha flattened onto white, shorter side resized to 224 (antialiased bilinear), centre crop,
//!   `(pixel / 255 - mean) / std` with the manifest's mean/std (Lite0: `(pixel - 127) / 128`).
//! - The backbone is stored in the lukemelas EfficientNet-PyTorch layout (`image_encoder.safetensors`, the
//!   reference state dict without `_fc`); batch norm (eps 1e-3) is folded into the conv weights at load.
//! - TF "SAME" padding (odd pixel bottom/right), ReLU6, no squeeze-excitation, global average pool.
//! - 1×1 convolutions are matmuls (candle's gemm); the depthwise k×k convolutions are a direct loop here,
//!   because candle runs a grouped conv as one conv per group (hundreds of tiny convs per layer).

use std::io::Cursor;

use candle_core::{Device, Tensor};
use image::{imageops::FilterType, metadata::Orientation, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage, RgbaImage};
use safetensors::{Dtype, SafeTensors};

use crate::model_dir::{Backbone, ImageConfig, ImagePooling};

/// File name of the backbone weights in a model directory (optional; see README).
pub const IMAGE_ENCODER_FILE: &str = "image_encoder.safetensors";
/// Images with more pixels are refused from their header, before decoding: a 40 MP RGBA decode alone
/// takes 160 MB of wasm memory. (A 50-megapixel photo is refused with a message, not half-indexed.)
pub const MAX_PIXELS: u64 = 40_000_000;
/// Side of the square network input.
pub const INPUT_SIZE: u32 = 224;
const BN_EPS: f32 = 1e-3;
const HEAD_CHANNELS: usize = 1280;

/// Why one image could not be embedded (the caller skips it and goes on with the others).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ImageError {
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("not an image this encoder reads (JPEG, PNG or WebP): {0}")]
    UnknownFormat(String),
    #[error("image is {width}×{height} ({:.1} megapixels), more than the {} megapixels accepted: downscale it first", (*width as f64 * *height as f64) / 1e6, MAX_PIXELS / 1_000_000)]
    TooLarge { width: u32, height: u32 },
    #[error("image has zero width or height")]
    ZeroSize,
    #[error("cannot decode the {format} image (truncated or corrupt file?): {reason}")]
    Decode { format: String, reason: String },
}

/// Errors building the encoder from weight files, or embedding.
#[derive(Debug, thiserror::Error)]
pub enum ImageEncoderError {
    #[error("{file}: not a readable safetensors file: {reason}")]
    Safetensors { file: String, reason: String },
    #[error("{file}: tensor `{name}` {problem} (is it the EfficientNet-Lite0 state dict of this model? re-run `trainer export-image-encoder`)")]
    Tensor { file: String, name: String, problem: String },
    #[error("the model's backbone is {0:?}: only efficientnet_lite0 runs in the browser")]
    UnsupportedBackbone(Backbone),
    #[error("the model has no image head (image_head.safetensors): it cannot embed images")]
    NoImageHead,
    #[error("manifest `image.{field}` is {found}, the image encoder needs {expected}")]
    Config { field: &'static str, found: String, expected: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("image encoder: {0}")]
    Candle(#[from] candle_core::Error),
}

// ---------------------------------------------------------------------------------------------
// Preprocessing (mirrors trainer::backbone::preprocess)

/// Decodes JPEG/PNG/WebP bytes. The size limit is checked on the header before any pixel is decoded.
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let (format, name) = checked_format(bytes)?;
    let decode_err = |e: image::ImageError| ImageError::Decode { format: name.clone(), reason: e.to_string() };
    ImageReader::with_format(Cursor::new(bytes), format).decode().map_err(decode_err)
}

/// Like [`decode_image`] (the same pixels), plus the EXIF orientation, which only thumbnails use: the vector is
/// computed from the stored pixels, as the trainer does.
pub fn decode_image_oriented(bytes: &[u8]) -> Result<(DynamicImage, Orientation), ImageError> {
    let (format, name) = checked_format(bytes)?;
    let decode_err = |e: image::ImageError| ImageError::Decode { format: name.clone(), reason: e.to_string() };
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format).into_decoder().map_err(decode_err)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok((DynamicImage::from_decoder(decoder).map_err(decode_err)?, orientation))
}

/// Every check `decode_image` makes before decoding: returns the format and its display name.
fn checked_format(bytes: &[u8]) -> Result<(ImageFormat, String), ImageError> {
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
    Ok((format, name))
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
fn resize_triangle_crop(img: &RgbImage, (nw, nh): (u32, u32), (x0, y0): (u32, u32), (cw, ch): (u32, u32)) -> RgbImage {
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

/// Encoded bytes → network input `[3, size, size]` (row-major planes).
pub fn preprocess(bytes: &[u8], cfg: &ImageConfig) -> Result<Vec<f32>, ImageError> {
    Ok(input_from_rgb(&into_rgb(decode_image(bytes)?), cfg))
}

/// Same pixels as `flatten_onto_white`, without copying an opaque image (36 MB for a 12-MP photo).
fn into_rgb(img: DynamicImage) -> RgbImage {
    if img.color().has_alpha() {
        flatten_onto_white(&img)
    } else {
        img.into_rgb8()
    }
}

/// RGB pixels → network input: resize + centre crop, normalise.
fn input_from_rgb(rgb: &RgbImage, cfg: &ImageConfig) -> Vec<f32> {
    normalize(&resize_center_crop(rgb, cfg.image_size as u32), cfg.mean, cfg.std)
}

// ---------------------------------------------------------------------------------------------
// Weights

struct Weights<'a> {
    file: &'a str,
    tensors: SafeTensors<'a>,
    /// Fine-tuned replacements (the image head): its `backbone.<name>` wins over `<name>`.
    overrides: Option<&'a Weights<'a>>,
}

/// Prefix of the fine-tuned backbone tensors inside `image_head.safetensors`.
const OVERRIDE_PREFIX: &str = "backbone.";

impl<'a> Weights<'a> {
    fn parse(file: &'a str, bytes: &'a [u8]) -> Result<Self, ImageEncoderError> {
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| ImageEncoderError::Safetensors { file: file.into(), reason: e.to_string() })?;
        Ok(Weights { file, tensors, overrides: None })
    }

    /// Tensor `name` as f32 (stored f32 or f16), checked against `shape`; a fine-tuned `backbone.<name>` in
    /// the overrides replaces the stock tensor.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ImageEncoderError> {
        if let Some(o) = self.overrides {
            let key = format!("{OVERRIDE_PREFIX}{name}");
            if let Ok(view) = o.tensors.tensor(&key) {
                return Self::read(o.file, &key, view, shape);
            }
        }
        let view = self.tensors.tensor(name).map_err(|_| ImageEncoderError::Tensor {
            file: self.file.into(),
            name: name.into(),
            problem: "is missing".into(),
        })?;
        Self::read(self.file, name, view, shape)
    }

    fn read(file: &str, name: &str, view: safetensors::tensor::TensorView<'_>, shape: &[usize]) -> Result<Vec<f32>, ImageEncoderError> {
        let err = |problem: String| ImageEncoderError::Tensor { file: file.into(), name: name.into(), problem };
        if view.shape() != shape {
            return Err(err(format!("has shape {:?}, expected {shape:?}", view.shape())));
        }
        let data = view.data();
        Ok(match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => return Err(err(format!("has dtype {other:?}, expected F32 or F16"))),
        })
    }

    /// A bias-free conv `key.weight` [cout, cin_per_group, k, k] followed by batch norm `bn`, folded into
    /// one conv with bias: `w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`.
    fn conv_bn(&self, key: &str, bn: &str, shape: [usize; 4]) -> Result<(Vec<f32>, Vec<f32>), ImageEncoderError> {
        let mut w = self.get(&format!("{key}.weight"), &shape)?;
        let c = shape[0];
        let gamma = self.get(&format!("{bn}.weight"), &[c])?;
        let beta = self.get(&format!("{bn}.bias"), &[c])?;
        let mean = self.get(&format!("{bn}.running_mean"), &[c])?;
        let var = self.get(&format!("{bn}.running_var"), &[c])?;
        let per_out = w.len() / c;
        let mut bias = vec![0f32; c];
        for o in 0..c {
            let scale = gamma[o] / (var[o] + BN_EPS).sqrt();
            w[o * per_out..(o + 1) * per_out].iter_mut().for_each(|x| *x *= scale);
            bias[o] = beta[o] - mean[o] * scale;
        }
        Ok((w, bias))
    }
}

/// The reference Lite0 state dict (lukemelas layout, as `scripts/setup.sh` installs it) → the
/// `image_encoder.safetensors` bytes: the same tensors without the ImageNet classifier (`_fc.*`) and the
/// `num_batches_tracked` counters, as f32 or f16.
pub fn image_encoder_safetensors(reference: &[u8], f16: bool) -> Result<Vec<u8>, ImageEncoderError> {
    let w = Weights::parse("backbone weights", reference)?;
    let mut names: Vec<String> = w
        .tensors
        .names()
        .into_iter()
        .filter(|n| !n.starts_with("_fc.") && !n.ends_with("num_batches_tracked"))
        .map(str::to_string)
        .collect();
    names.sort();
    let mut stored = Vec::with_capacity(names.len());
    for name in &names {
        let shape = w.tensors.tensor(name).map(|v| v.shape().to_vec()).unwrap_or_default();
        let data = w.get(name, &shape)?;
        let bytes: Vec<u8> = if f16 {
            data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect()
        } else {
            data.iter().flat_map(|&x| x.to_le_bytes()).collect()
        };
        stored.push((name.clone(), shape, bytes));
    }
    let dtype = if f16 { Dtype::F16 } else { Dtype::F32 };
    let views = stored
        .iter()
        .map(|(n, s, b)| safetensors::tensor::TensorView::new(dtype, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ImageEncoderError::Safetensors { file: IMAGE_ENCODER_FILE.into(), reason: e.to_string() })?;
    safetensors::serialize(views, None)
        .map_err(|e| ImageEncoderError::Safetensors { file: IMAGE_ENCODER_FILE.into(), reason: e.to_string() })
}

// ---------------------------------------------------------------------------------------------
// Network

/// (before, after) padding of one spatial dimension for TF "SAME".
pub fn tf_same_pad(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// Activations of one image: `[C, H, W]` planes.
struct Act {
    data: Vec<f32>,
    c: usize,
    h: usize,
    w: usize,
}

/// 1×1 conv (+ folded BN) as a matmul: `[cout, cin] × [cin, H·W]`.
struct Pointwise {
    weight: Tensor,
    bias_values: Vec<f32>,
    relu6: bool,
}

impl Pointwise {
    fn new(w: Vec<f32>, b: Vec<f32>, cout: usize, cin: usize, relu6: bool) -> candle_core::Result<Self> {
        if b.len() != cout {
            candle_core::bail!("bias has {} values for {cout} outputs", b.len());
        }
        Ok(Pointwise { weight: Tensor::from_vec(w, (cout, cin), &Device::Cpu)?, bias_values: b, relu6 })
    }

    fn forward(&self, x: &Act) -> candle_core::Result<Act> {
        let input = Tensor::from_slice(&x.data, (x.c, x.h * x.w), &Device::Cpu)?;
        let mut data = self.weight.matmul(&input)?.flatten_all()?.to_vec1::<f32>()?;
        // Bias and ReLU6 in one pass over the output (candle would allocate a tensor for each).
        let plane = x.h * x.w;
        for (row, &b) in data.chunks_exact_mut(plane).zip(&self.bias_values) {
            if self.relu6 {
                row.iter_mut().for_each(|v| *v = (*v + b).clamp(0.0, 6.0));
            } else {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
        let c = self.weight.dim(0)?;
        Ok(Act { data, c, h: x.h, w: x.w })
    }
}

/// k×k conv with `groups` = channels (+ folded BN, ReLU6), TF-"SAME" padded.
struct Depthwise {
    weight: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    stride: usize,
}

impl Depthwise {
    /// Row-wise: each kernel tap adds `w · (input row, shifted)` to a whole output row, so the inner loop is a
    /// contiguous multiply-add the compiler vectorises (SIMD128 in wasm). Stride 2 first splits each input row
    /// into its even and odd columns, which makes its taps contiguous too. Taps over the zero padding are
    /// skipped by clipping each row's output range. The sum order per output (ky, then kx) is the same as
    /// the plain loop's.
    fn forward(&self, x: &Act) -> Act {
        let (k, s) = (self.k, self.stride);
        let (top, _) = tf_same_pad(x.h, k, s);
        let (left, _) = tf_same_pad(x.w, k, s);
        let (oh, ow) = (x.h.div_ceil(s), x.w.div_ceil(s));
        let mut out = vec![0f32; x.c * oh * ow];
        // Stride 2: even columns then odd columns of one input row.
        let half = x.w.div_ceil(2);
        let mut split = vec![0f32; 2 * half];
        // For each kx: (source slice offset into the (split) row, first and end output column).
        let taps: Vec<(usize, usize, usize)> = (0..k)
            .map(|kx| {
                // Input column of output column ox: ix = ox·s + kx − left; valid when 0 ≤ ix < W.
                let shift = kx as isize - left as isize;
                let lo = if shift >= 0 { 0 } else { ((-shift) as usize).div_ceil(s) };
                let hi = ((x.w as isize - 1 - shift).div_euclid(s as isize) + 1).clamp(0, ow as isize) as usize;
                if hi <= lo {
                    return (0, 0, 0); // this tap only ever sees padding (tiny inputs)
                }
                let src = if s == 1 {
                    (lo as isize + shift) as usize
                } else {
                    // ix = 2·ox + shift: parity of shift picks the even or the odd half.
                    let first = 2 * lo as isize + shift;
                    (first as usize % 2) * half + first as usize / 2
                };
                (src, lo, hi)
            })
            .collect();
        for c in 0..x.c {
            let plane = &x.data[c * x.h * x.w..(c + 1) * x.h * x.w];
            let kern = &self.weight[c * k * k..(c + 1) * k * k];
            let dst = &mut out[c * oh * ow..(c + 1) * oh * ow];
            for oy in 0..oh {
                let drow = &mut dst[oy * ow..(oy + 1) * ow];
                let y0 = (oy * s) as isize - top as isize;
                let ky_lo = (-y0).max(0) as usize;
                let ky_hi = ((x.h as isize - y0).min(k as isize)).max(0) as usize;
                for ky in ky_lo..ky_hi {
                    let row = &plane[((y0 + ky as isize) as usize) * x.w..][..x.w];
                    let src: &[f32] = if s == 1 {
                        row
                    } else {
                        for (i, v) in row.iter().enumerate() {
                            split[(i % 2) * half + i / 2] = *v;
                        }
                        &split
                    };
                    for (kx, &(from, lo, hi)) in taps.iter().enumerate() {
                        let w = kern[ky * k + kx];
                        for (d, v) in drow[lo..hi].iter_mut().zip(&src[from..from + (hi - lo)]) {
                            *d += w * v;
                        }
                    }
                }
                let b = self.bias[c];
                drow.iter_mut().for_each(|d| *d = (*d + b).clamp(0.0, 6.0));
            }
        }
        Act { data: out, c: x.c, h: oh, w: ow }
    }
}

/// Mobile inverted bottleneck: 1×1 expand → depthwise → 1×1 project (+ identity skip).
struct MbConv {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    skip: bool,
}

/// `(repeats, kernel, stride, expand, in, out)` of Lite0's 7 stages (= EfficientNet-B0's block list).
const LITE0_STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// EfficientNet-Lite0 features + the image head: bytes → L2-normalised joint-space vector.
pub struct ImageEncoder {
    config: ImageConfig,
    /// Stem 3×3 stride-2 conv (+ BN) as a matmul over 27-row im2col patches.
    stem: Pointwise,
    blocks: Vec<MbConv>,
    head: Pointwise,
    /// Image head `proj`: [D, 1280] and [D, 1].
    proj: Pointwise,
    /// GPO weights per sorted grid cell (`softmax(gpo.logits)`), when the manifest's pooling is `gpo`.
    gpo: Option<Vec<f32>>,
    embed_dim: usize,
}

impl ImageEncoder {
    /// Builds the encoder from `image_encoder.safetensors` and `image_head.safetensors` (f32 or f16).
    pub fn new(
        config: &ImageConfig,
        embed_dim: usize,
        backbone: &[u8],
        image_head: &[u8],
    ) -> Result<Self, ImageEncoderError> {
        if config.backbone != Backbone::EfficientnetLite0 {
            return Err(ImageEncoderError::UnsupportedBackbone(config.backbone));
        }
        if config.feature_dim != HEAD_CHANNELS {
            return Err(ImageEncoderError::Config {
                field: "feature_dim",
                found: config.feature_dim.to_string(),
                expected: HEAD_CHANNELS.to_string(),
            });
        }
        if config.image_size == 0 || config.image_size > 1024 {
            return Err(ImageEncoderError::Config {
                field: "image_size",
                found: config.image_size.to_string(),
                expected: "1..=1024 (224 for Lite0)".into(),
            });
        }
        let h = Weights::parse(crate::model_dir::IMAGE_HEAD_FILE, image_head)?;
        let fine_tuned = h.tensors.names().iter().any(|n| n.starts_with(OVERRIDE_PREFIX));
        if fine_tuned != config.finetuned_from.is_some() {
            return Err(ImageEncoderError::Config {
                field: "finetuned_from",
                found: format!("{:?}", config.finetuned_from),
                expected: if fine_tuned {
                    "a stage index: image_head.safetensors holds fine-tuned backbone tensors".into()
                } else {
                    "none: image_head.safetensors holds no fine-tuned backbone tensors".into()
                },
            });
        }
        let w = Weights { overrides: Some(&h), ..Weights::parse(IMAGE_ENCODER_FILE, backbone)? };
        let (sw, sb) = w.conv_bn("_conv_stem", "_bn0", [32, 3, 3, 3])?;
        let stem = Pointwise::new(sw, sb, 32, 27, true)?;
        let mut blocks = Vec::new();
        let mut index = 0;
        for (repeats, k, stride, expand, cin0, cout) in LITE0_STAGES {
            for r in 0..repeats {
                let (cin, stride) = if r == 0 { (cin0, stride) } else { (cout, 1) };
                let key = |part: &str| format!("_blocks.{index}.{part}");
                let mid = cin * expand;
                let expand_conv = if expand != 1 {
                    let (ew, eb) = w.conv_bn(&key("_expand_conv"), &key("_bn0"), [mid, cin, 1, 1])?;
                    Some(Pointwise::new(ew, eb, mid, cin, true)?)
                } else {
                    None
                };
                let (dw, db) = w.conv_bn(&key("_depthwise_conv"), &key("_bn1"), [mid, 1, k, k])?;
                let (pw, pb) = w.conv_bn(&key("_project_conv"), &key("_bn2"), [cout, mid, 1, 1])?;
                blocks.push(MbConv {
                    expand: expand_conv,
                    depthwise: Depthwise { weight: dw, bias: db, k, stride },
                    project: Pointwise::new(pw, pb, cout, mid, false)?,
                    skip: stride == 1 && cin == cout,
                });
                index += 1;
            }
        }
        let (hw, hb) = w.conv_bn("_conv_head", "_bn1", [HEAD_CHANNELS, 320, 1, 1])?;
        let head = Pointwise::new(hw, hb, HEAD_CHANNELS, 320, true)?;
        let pw = h.get("proj.weight", &[embed_dim, HEAD_CHANNELS])?;
        let pb = h.get("proj.bias", &[embed_dim])?;
        let proj = Pointwise::new(pw, pb, embed_dim, HEAD_CHANNELS, false)?;
        let gpo = match config.pooling {
            ImagePooling::Avg => None,
            ImagePooling::Gpo => {
                let cells = (config.image_size.div_ceil(32)).pow(2);
                let logits = h.get("gpo.logits", &[cells])?;
                let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                let sum: f32 = e.iter().sum();
                Some(e.into_iter().map(|x| x / sum).collect())
            }
        };
        Ok(ImageEncoder { config: config.clone(), stem, blocks, head, proj, gpo, embed_dim })
    }

    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// Encoded image (JPEG/PNG/WebP) → L2-normalised vector.
    pub fn embed(&self, bytes: &[u8]) -> Result<Vec<f32>, ImageEncoderError> {
        let input = preprocess(bytes, &self.config)?;
        self.embed_input(&input)
    }

    /// One decode for both the vector (exactly [`ImageEncoder::embed`]'s) and a thumbnail: longest side at
    /// most `max_side` (never enlarged; the same antialiased resize as the network input), transparency on white,
    /// EXIF orientation applied; RGBA for a canvas. What the page's embedding workers show.
    pub fn embed_with_thumbnail(&self, bytes: &[u8], max_side: u32) -> Result<(Vec<f32>, RgbaImage), ImageEncoderError> {
        let (img, orientation) = decode_image_oriented(bytes)?;
        let rgb = into_rgb(img);
        let (w, h) = rgb.dimensions();
        let max_side = max_side.max(1);
        let small = if w.max(h) > max_side {
            let s = max_side as f64 / w.max(h) as f64;
            let (tw, th) = (((w as f64 * s).round() as u32).clamp(1, max_side), ((h as f64 * s).round() as u32).clamp(1, max_side));
            resize_triangle_crop(&rgb, (tw, th), (0, 0), (tw, th))
        } else {
            rgb.clone()
        };
        let mut thumb = DynamicImage::ImageRgb8(small);
        thumb.apply_orientation(orientation);
        let vector = self.embed_input(&input_from_rgb(&rgb, &self.config))?;
        Ok((vector, thumb.to_rgba8()))
    }

    /// Preprocessed input `[3, size, size]` → L2-normalised vector.
    pub fn embed_input(&self, input: &[f32]) -> Result<Vec<f32>, ImageEncoderError> {
        let pooled = self.pooled_features(input)?;
        let x = Act { data: pooled, c: HEAD_CHANNELS, h: 1, w: 1 };
        let v = self.proj.forward(&x)?.data;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        Ok(v.into_iter().map(|x| x / norm).collect())
    }

    /// Preprocessed input `[3, size, size]` → global-average-pooled backbone features (1280).
    pub fn pooled_features(&self, input: &[f32]) -> Result<Vec<f32>, ImageEncoderError> {
        let size = self.config.image_size;
        if input.len() != 3 * size * size {
            return Err(ImageEncoderError::Config {
                field: "image_size",
                found: format!("an input of {} values", input.len()),
                expected: format!("3×{size}×{size}"),
            });
        }
        let mut x = self.stem.forward(&stem_patches(input, size))?;
        // The stem's output is [32, H/2·W/2] in a 1-row layout; restore the spatial shape.
        let side = size.div_ceil(2);
        x.h = side;
        x.w = side;
        for block in &self.blocks {
            let mut h = match &block.expand {
                Some(e) => e.forward(&x)?,
                None => Act { data: x.data.clone(), c: x.c, h: x.h, w: x.w },
            };
            h = block.depthwise.forward(&h);
            let mut out = block.project.forward(&h)?;
            if block.skip {
                out.data.iter_mut().zip(&x.data).for_each(|(o, i)| *o += i);
            }
            x = out;
        }
        let x = self.head.forward(&x)?;
        let hw = x.h * x.w;
        Ok(match &self.gpo {
            None => x.data.chunks_exact(hw).map(|plane| plane.iter().sum::<f32>() / hw as f32).collect(),
            Some(weights) => x
                .data
                .chunks_exact(hw)
                .map(|plane| {
                    let mut sorted = plane.to_vec();
                    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
                    sorted.iter().zip(weights).map(|(v, w)| v * w).sum::<f32>()
                })
                .collect(),
        })
    }
}

/// im2col of the stem's 3×3 stride-2 TF-"SAME" conv: `[27, Ho·Wo]` with row `(c·3 + ky)·3 + kx`
/// (the order of the `[32, 3, 3, 3]` weight), zero outside the image.
fn stem_patches(input: &[f32], size: usize) -> Act {
    let (k, s) = (3, 2);
    let (top, _) = tf_same_pad(size, k, s);
    let out = size.div_ceil(s);
    let mut cols = vec![0f32; 27 * out * out];
    for c in 0..3 {
        let plane = &input[c * size * size..(c + 1) * size * size];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((c * k + ky) * k + kx) * out * out..][..out * out];
                for oy in 0..out {
                    let y = (oy * s + ky) as isize - top as isize;
                    if y < 0 || y as usize >= size {
                        continue;
                    }
                    for ox in 0..out {
                        let x = (ox * s + kx) as isize - top as isize;
                        if x >= 0 && (x as usize) < size {
                            row[oy * out + ox] = plane[y as usize * size + x as usize];
                        }
                    }
                }
            }
        }
    }
    Act { data: cols, c: 27, h: 1, w: out * out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_same_padding_matches_tensorflow() {
        assert_eq!(tf_same_pad(224, 3, 2), (0, 1));
        assert_eq!(tf_same_pad(112, 5, 2), (1, 2));
        assert_eq!(tf_same_pad(225, 3, 2), (1, 1));
        assert_eq!(tf_same_pad(14, 5, 1), (2, 2));
        assert_eq!(tf_same_pad(7, 1, 1), (0, 0));
    }

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

    #[test]
    fn transparent_pixels_become_white() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0])));
        assert!(flatten_onto_white(&img).pixels().all(|p| p.0 == [255, 255, 255]));
    }

    /// The row-wise depthwise conv equals the plain per-output loop (odd and even sizes, both strides).
    #[test]
    fn depthwise_matches_the_plain_loop() {
        fn plain(d: &Depthwise, x: &Act) -> Vec<f32> {
            let (k, s) = (d.k, d.stride);
            let (top, _) = tf_same_pad(x.h, k, s);
            let (left, _) = tf_same_pad(x.w, k, s);
            let (oh, ow) = (x.h.div_ceil(s), x.w.div_ceil(s));
            let mut out = vec![0f32; x.c * oh * ow];
            for c in 0..x.c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0f32;
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = ((oy * s + ky) as isize - top as isize, (ox * s + kx) as isize - left as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < x.h && (ix as usize) < x.w {
                                    acc += d.weight[c * k * k + ky * k + kx] * x.data[(c * x.h + iy as usize) * x.w + ix as usize];
                                }
                            }
                        }
                        out[(c * oh + oy) * ow + ox] = (acc + d.bias[c]).clamp(0.0, 6.0);
                    }
                }
            }
            out
        }
        let mut seed = 7u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        for (h, w) in [(7, 7), (14, 14), (9, 12), (12, 9), (1, 5), (5, 1), (2, 2)] {
            for k in [3, 5] {
                for stride in [1, 2] {
                    let c = 3;
                    let x = Act { data: (0..c * h * w).map(|_| rnd() * 3.0).collect(), c, h, w };
                    let d = Depthwise { weight: (0..c * k * k).map(|_| rnd()).collect(), bias: (0..c).map(|_| rnd()).collect(), k, stride };
                    assert_eq!(d.forward(&x).data, plain(&d, &x), "{h}×{w}, k {k}, stride {stride}");
                }
            }
        }
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

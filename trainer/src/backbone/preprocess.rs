//! Image → network input: decode as the page and `trainer publish` decode ([`open_network_picture`]: a large
//! JPEG DCT-scaled), wasm-model's `network_picture` (an image with transparency onto grey 128 and
//! padded to a square; opaque images untouched), resize the shorter side, centre-crop, normalise. The normalisation depends on the backbone ([`Preprocess::for_backbone`]):
//! - DenseNet-121 (torchvision): ImageNet mean/std.
//! - EfficientNet-Lite0/1/2 (weights converted from TF): `(pixel - 127) / 128`. Measured on the 8 labelled
//!   photos in assets/photos: Lite0's mean log-probability of the right class -0.32 with it, -0.60 with
//!   ImageNet mean/std (espresso 0.94 vs 0.84); tests/backbone_lite0.rs checks it (Lite1/2: tests/backbone_lite12.rs).
//!
//! Input side: 224 px, except Lite1 (240) and Lite2 (260), the sizes their ImageNet weights were trained at.

use std::path::Path;

use image::{DynamicImage, RgbImage};
use tch::{Kind, Tensor};

use wasm_model::image_encoder::LiteArch;

use super::{BackboneError, BackboneKind};

/// Side of the square network input Lite0 and DenseNet-121 were trained at (Lite1/2: [`LiteArch::image_size`]).
pub const INPUT_SIZE: u32 = 224;
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// TF EfficientNet-Lite: `(255 x - 127) / 128` written as mean/std on `[0, 1]` pixels.
pub const TF_LITE_MEAN: [f32; 3] = [127.0 / 255.0; 3];
pub const TF_LITE_STD: [f32; 3] = [128.0 / 255.0; 3];

/// How a backbone wants its input: square side and per-channel mean/std on `[0, 1]` pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preprocess {
    pub size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    pub fn for_backbone(kind: BackboneKind) -> Self {
        match LiteArch::of(kind) {
            Some(arch) => Preprocess {
                size: arch.image_size as u32,
                mean: TF_LITE_MEAN,
                std: TF_LITE_STD,
            },
            None => Preprocess {
                size: INPUT_SIZE,
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
        }
    }

    /// Decoded image → network input `[3, size, size]` (its [`network_picture`], resized and centre-cropped).
    pub fn image_to_input(&self, img: &DynamicImage) -> Tensor {
        self.picture_to_input(&network_picture(img.clone()))
    }

    /// A [`network_picture`] (or a view cut out of one) → network input `[3, size, size]`.
    pub fn picture_to_input(&self, picture: &RgbImage) -> Tensor {
        normalize(&resize_center_crop(picture, self.size), self.mean, self.std)
    }

    /// File → network input `[3, size, size]` ([`open_network_picture`]); an unreadable file is an error naming it.
    pub fn load(&self, path: &Path) -> Result<Tensor, BackboneError> {
        Ok(self.picture_to_input(&open_network_picture(path, self.size)?))
    }

    /// Files → `[B, 3, size, size]`. Fails on the first unreadable file (callers that skip broken
    /// images load one by one with [`Preprocess::load`] and count the errors).
    pub fn load_batch<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Tensor, BackboneError> {
        let images = paths
            .iter()
            .map(|p| self.load(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if images.is_empty() {
            let size = self.size as i64;
            return Ok(Tensor::zeros(
                [0, 3, size, size],
                (Kind::Float, tch::Device::Cpu),
            ));
        }
        Ok(Tensor::stack(&images, 0))
    }
}

/// The picture the network is shown of the file at `path` for an input side of `input_size`, prepared as the
/// page and `trainer publish` prepare it: decoded by [`crate::image_file::open_for_network`] (a JPEG whose
/// shorter side is at least 8× the input decoded at 1/2, 1/4 or 1/8 in the IDCT; the stored pixels, EXIF
/// orientation not applied), then its [`network_picture`]. Features, eval and fit's decoded batches start here;
/// publish makes the same two calls (it keeps the opened image for thumbnails), so what eval measures is what
/// publish ships. Errors name the file.
pub fn open_network_picture(path: &Path, input_size: u32) -> Result<RgbImage, BackboneError> {
    let (opened, _) = crate::image_file::open_for_network(path, input_size)
        .map_err(|message| BackboneError::Image { path: path.to_path_buf(), message })?;
    Ok(network_picture(opened.image))
}

// One definition of the pixel pipeline, shared with the browser's image encoder (wasm-model): a copy here
// could drift and break tch <-> candle parity.
pub use wasm_model::image_encoder::{flatten_onto_white, network_picture, resize_center_crop};

/// `[3, H, W]` f32 tensor: `(pixel / 255 - mean) / std` per channel.
pub fn normalize(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Tensor {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            data[c * plane + i] = (px.0[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    Tensor::from_slice(&data).reshape([3, h as i64, w as i64])
}

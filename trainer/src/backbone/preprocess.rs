//! Image → network input: decode, wasm-model's `network_picture` (an image with transparency onto grey 128 and
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

    /// File → network input `[3, size, size]`; an unreadable file is an error naming it.
    pub fn load(&self, path: &Path) -> Result<Tensor, BackboneError> {
        Ok(self.image_to_input(&open_image(path)?))
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

/// Decodes `path` (format sniffed from content, not the extension) through [`crate::image_file`]: regular files
/// of bounded size only, the browser's pixel limit and JPEG checks. Errors name the file.
pub fn open_image(path: &Path) -> Result<DynamicImage, BackboneError> {
    crate::image_file::open(path).map_err(|message| BackboneError::Image { path: path.to_path_buf(), message })
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

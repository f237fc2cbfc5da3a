//! The image side in candle: encoded bytes → preprocessing → EfficientNet-Lite (0, 1 or 2) → image head →
//! L2-normalised vector, the same vector `trainer publish` computes with tch (see README "Image encoder").
//!
//! - `decode`: bytes → pixels, with every refusal (size from the header, truncated JPEGs) before decoding;
//!   `jpeg_scaled`: a large JPEG decoded at 1/2–1/8 of its size in the IDCT for the network (page and publish).
//! - `preprocess`: mirrors `trainer::backbone::preprocess` step for step (same `image` crate, same filter):
//!   an image with transparency composited onto grey 128 and padded to a centred square (`network_picture`, the
//!   one rule of page, publish, eval and fit; opaque images untouched), shorter side resized to `image.image_size` (Lite0/1/2: 224/240/260; antialiased
//!   bilinear), centre crop, `(pixel / 255 - mean) / std` with the manifest's mean/std (Lite: `(pixel - 127) / 128`).
//! - `weights`: the backbone is stored in the lukemelas EfficientNet-PyTorch layout (`image_encoder.safetensors`,
//!   the reference state dict without `_fc`); batch norm (eps 1e-3) is folded into the conv weights at load.
//!   Read through `tensors`: candle-nn's `VarBuilder` was no faster and adds 187 kB to the wasm package.
//! - `layers`: TF "SAME" padding (odd pixel bottom/right), ReLU6, no squeeze-excitation. 1×1 convolutions are
//!   matmuls (candle's gemm; candle-nn's `Conv2d` measured 1.3–2× slower); the depthwise k×k convolutions are a
//!   row-wise loop, because candle runs a grouped conv as one conv per group (candle-nn's `Conv2d`: 8–70× slower).
//!   Numbers: docs/benchmarks.md, "candle-nn or hand-written".
//! - `lite`: the Lite family's block lists ([`LiteArch`], also what the trainer's tch port builds from).
//! - `encoder`: [`ImageEncoder`] (blocks from the weight files, forward, pooling, image head).
//!
//! This file: the limits and the two error types.

mod decode;
mod encoder;
mod jpeg_scaled;
pub(crate) mod layers;
pub mod lite;
mod preprocess;
pub(crate) mod weights;

pub use crate::model_dir::IMAGE_ENCODER_FILE;
pub use decode::{decode_for_input, decode_image, probe_image, DecodedPhoto, ImageInfo};
pub use encoder::ImageEncoder;
pub use jpeg_scaled::{decode_rule, decode_scaled, jpeg_downscale, DECODED_SIDE_PER_INPUT};
pub use layers::tf_same_pad;
pub use lite::{LiteArch, LiteBlock, LiteStage};
pub use preprocess::{
    flatten_onto, flatten_onto_white, has_transparency, network_picture, normalize, pad_to_square, preprocess, resize_center_crop,
    TRANSPARENCY_RULE, TRANSPARENT_BACKGROUND,
};
pub use weights::image_encoder_safetensors;

use crate::model_dir::Backbone;

/// Images with more pixels are refused from their header, before decoding: a 40 MP RGBA decode alone
/// takes 160 MB of wasm memory. (A 50-megapixel photo is refused with a message, not half-indexed.)
pub const MAX_PIXELS: u64 = 40_000_000;

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
    #[error("decoded pixels: {found} bytes given, but {width}×{height} RGBA is {expected} bytes")]
    PixelBuffer { width: u32, height: u32, found: usize, expected: usize },
}

/// Errors building the encoder from weight files, or embedding.
#[derive(Debug, thiserror::Error)]
pub enum ImageEncoderError {
    #[error("{file}: not a readable safetensors file: {reason}")]
    Safetensors { file: String, reason: String },
    #[error("{file}: tensor `{name}` {problem} (is it the state dict of this model's EfficientNet-Lite variant? re-run `trainer export-image-encoder`)")]
    Tensor { file: String, name: String, problem: String },
    #[error("the model's backbone is {0:?}: only the EfficientNet-Lite family (efficientnet_lite0, _lite1, _lite2) runs in the browser")]
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

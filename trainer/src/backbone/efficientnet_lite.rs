//! EfficientNet-Lite0 in the lukemelas EfficientNet-PyTorch key layout.
//!
//! Lite differs from EfficientNet-B0 by: no squeeze-excitation, ReLU6 instead of swish, and a stem
//! (32 ch) and head (1280 ch) that are not scaled. Weights come from TF, so convolutions use TF
//! "SAME" padding and batch norm uses eps 1e-3 (momentum 0.01 in PyTorch's convention).
//! Drop-connect is not implemented (it only acts in training; fine-tuning here is partial).

use std::path::Path;

use tch::{nn, Tensor};

use super::layers::{linear, BatchNorm, Conv, Padding, Registry};
use super::{prepare_input, set_params_layout, Backbone, BackboneError, BackboneKind};

const BN_EPS: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;
const STEM_CHANNELS: i64 = 32;
const HEAD_CHANNELS: i64 = 1280;

/// One stage of identical MBConv blocks (the first may change stride and width).
#[derive(Clone, Copy, Debug)]
pub struct StageSpec {
    pub repeats: usize,
    pub kernel: i64,
    pub stride: i64,
    pub expand: i64,
    pub in_channels: i64,
    pub out_channels: i64,
}

const fn stage(
    repeats: usize,
    kernel: i64,
    stride: i64,
    expand: i64,
    cin: i64,
    cout: i64,
) -> StageSpec {
    StageSpec {
        repeats,
        kernel,
        stride,
        expand,
        in_channels: cin,
        out_channels: cout,
    }
}

/// Lite0 = EfficientNet-B0's block list at width and depth 1.0 (16 blocks in 7 stages).
pub const LITE0_STAGES: [StageSpec; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

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
    fn new(reg: &mut Registry, index: usize, spec: &StageSpec, cin: i64, stride: i64) -> MbConv {
        let key = |part: &str| format!("_blocks.{index}.{part}");
        let mid = cin * spec.expand;
        let expand = (spec.expand != 1).then(|| {
            let conv = reg.conv(&key("_expand_conv"), cin, mid, 1, 1, 1, Padding::TfSame);
            (conv, reg.batch_norm(&key("_bn0"), mid, BN_EPS, BN_MOMENTUM))
        });
        let depthwise = reg.conv(
            &key("_depthwise_conv"),
            mid,
            mid,
            spec.kernel,
            stride,
            mid,
            Padding::TfSame,
        );
        let bn1 = reg.batch_norm(&key("_bn1"), mid, BN_EPS, BN_MOMENTUM);
        let project = reg.conv(
            &key("_project_conv"),
            mid,
            spec.out_channels,
            1,
            1,
            1,
            Padding::TfSame,
        );
        let bn2 = reg.batch_norm(&key("_bn2"), spec.out_channels, BN_EPS, BN_MOMENTUM);
        MbConv {
            expand,
            depthwise,
            bn1,
            project,
            bn2,
            skip: stride == 1 && cin == spec.out_channels,
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

/// EfficientNet-Lite with ImageNet classifier. Stages are [`LITE0_STAGES`]; `num_stages() == 7`.
pub struct EfficientNetLite {
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
        let mut reg = Registry::new(vs);
        let mut params = Vec::new();
        let stem = reg.conv("_conv_stem", 3, STEM_CHANNELS, 3, 2, 1, Padding::TfSame);
        let bn0 = reg.batch_norm("_bn0", STEM_CHANNELS, BN_EPS, BN_MOMENTUM);
        params.push(reg.take_params());
        let mut stages = Vec::new();
        let mut index = 0;
        for spec in &LITE0_STAGES {
            let mut blocks = Vec::new();
            for r in 0..spec.repeats {
                let (cin, stride) = if r == 0 {
                    (spec.in_channels, spec.stride)
                } else {
                    (spec.out_channels, 1)
                };
                blocks.push(MbConv::new(&mut reg, index, spec, cin, stride));
                index += 1;
            }
            stages.push(blocks);
            params.push(reg.take_params());
        }
        let last = LITE0_STAGES[LITE0_STAGES.len() - 1].out_channels;
        let head = reg.conv("_conv_head", last, HEAD_CHANNELS, 1, 1, 1, Padding::TfSame);
        let bn1 = reg.batch_norm("_bn1", HEAD_CHANNELS, BN_EPS, BN_MOMENTUM);
        params.push(reg.take_params());
        let fc = reg.linear("_fc", HEAD_CHANNELS, 1000);
        reg.take_params();
        reg.slots
            .load_from(BackboneKind::EfficientnetLite0, path, |_| None)?;
        let mut net = EfficientNetLite {
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
        BackboneKind::EfficientnetLite0
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

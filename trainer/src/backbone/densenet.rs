//! DenseNet-121 with torchvision's module layout and numerics, loading a torchvision
//! `densenet121().state_dict()` saved as safetensors.
//!
//! No registry ships DenseNet weights; convert torchvision's where torch is available:
//! ```text
//! python -c "import torchvision; from safetensors.torch import save_file; \
//!   save_file(torchvision.models.densenet121(weights='DEFAULT').state_dict(), 'densenet121.safetensors')"
//! ```
//!
//! `tch::vision::densenet` is not usable for that: its average pools sum (`divisor_override = 1`) and
//! its final pool is fixed at 7×7. Checked against torchvision logits in tests/backbone_densenet.rs.

use std::path::Path;

use tch::{nn, Tensor};

use super::layers::{linear, BatchNorm, Conv, Padding, Registry};
use super::{prepare_input, set_params_layout, Backbone, BackboneError, BackboneKind};

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// torchvision's `densenet121` hyper-parameters.
pub const GROWTH_RATE: i64 = 32;
pub const BLOCK_CONFIG: [usize; 4] = [6, 12, 24, 16];
pub const NUM_INIT_FEATURES: i64 = 64;
pub const BN_SIZE: i64 = 4;

/// BN → ReLU → 1×1 conv → BN → ReLU → 3×3 conv, producing `GROWTH_RATE` new channels.
struct DenseLayer {
    norm1: BatchNorm,
    conv1: Conv,
    norm2: BatchNorm,
    conv2: Conv,
}

impl DenseLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.conv1.forward(&self.norm1.forward_t(x, train).relu());
        self.conv2.forward(&self.norm2.forward_t(&h, train).relu())
    }
}

/// BN → ReLU → 1×1 conv (halve channels) → 2×2 average pool.
struct Transition {
    norm: BatchNorm,
    conv: Conv,
}

/// One stage: a dense block, followed by a transition except after the last block.
struct Stage {
    layers: Vec<DenseLayer>,
    transition: Option<Transition>,
}

impl Stage {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        // Each layer sees the concatenation of the block input and all earlier layers' outputs.
        let mut features = vec![x.shallow_clone()];
        for layer in &self.layers {
            let input = Tensor::cat(&features, 1);
            features.push(layer.forward_t(&input, train));
        }
        let out = Tensor::cat(&features, 1);
        match &self.transition {
            Some(t) => t
                .conv
                .forward(&t.norm.forward_t(&out, train).relu())
                .avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None),
            None => out,
        }
    }
}

/// DenseNet with ImageNet classifier; `num_stages() == 4` (dense block i + transition i).
pub struct DenseNet {
    conv0: Conv,
    norm0: BatchNorm,
    stages: Vec<Stage>,
    norm5: BatchNorm,
    classifier: nn::Linear,
    /// Trainable parameters: `[stem, stage 0, …, stage 3, head]`.
    params: Vec<Vec<Tensor>>,
    channels_last: bool,
}

/// Maps pre-0.4 torchvision keys (`denselayer1.norm.1.weight`) and DataParallel keys (`module.…`)
/// to current names, as torchvision's own loader does.
fn torchvision_key(stored: &str) -> Option<String> {
    let key = stored.strip_prefix("module.").unwrap_or(stored);
    if !key.contains("denselayer") && key.len() == stored.len() {
        return None;
    }
    let mut key = key.to_string();
    for (old, new) in [
        (".norm.1.", ".norm1."),
        (".norm.2.", ".norm2."),
        (".conv.1.", ".conv1."),
        (".conv.2.", ".conv2."),
    ] {
        key = key.replace(old, new);
    }
    Some(key)
}

impl DenseNet {
    /// Builds DenseNet-121 under `vs` and loads the torchvision state dict at `path`. Channels-last is on.
    pub fn load_121(vs: &nn::Path, path: &Path) -> Result<Self, BackboneError> {
        let mut reg = Registry::new(vs);
        let mut params = Vec::new();
        let conv0 = reg.conv(
            "features.conv0",
            3,
            NUM_INIT_FEATURES,
            7,
            2,
            1,
            Padding::Fixed(3),
        );
        let norm0 = reg.batch_norm("features.norm0", NUM_INIT_FEATURES, BN_EPS, BN_MOMENTUM);
        params.push(reg.take_params());
        let mut channels = NUM_INIT_FEATURES;
        let mut stages = Vec::new();
        for (b, &n_layers) in BLOCK_CONFIG.iter().enumerate() {
            let block = format!("features.denseblock{}", b + 1);
            let layers = (0..n_layers)
                .map(|l| {
                    let key = |part: &str| format!("{block}.denselayer{}.{part}", l + 1);
                    let cin = channels + l as i64 * GROWTH_RATE;
                    let mid = BN_SIZE * GROWTH_RATE;
                    DenseLayer {
                        norm1: reg.batch_norm(&key("norm1"), cin, BN_EPS, BN_MOMENTUM),
                        conv1: reg.conv(&key("conv1"), cin, mid, 1, 1, 1, Padding::Fixed(0)),
                        norm2: reg.batch_norm(&key("norm2"), mid, BN_EPS, BN_MOMENTUM),
                        conv2: reg.conv(
                            &key("conv2"),
                            mid,
                            GROWTH_RATE,
                            3,
                            1,
                            1,
                            Padding::Fixed(1),
                        ),
                    }
                })
                .collect();
            channels += n_layers as i64 * GROWTH_RATE;
            let transition = (b + 1 < BLOCK_CONFIG.len()).then(|| {
                let key = format!("features.transition{}", b + 1);
                let t = Transition {
                    norm: reg.batch_norm(&format!("{key}.norm"), channels, BN_EPS, BN_MOMENTUM),
                    conv: reg.conv(
                        &format!("{key}.conv"),
                        channels,
                        channels / 2,
                        1,
                        1,
                        1,
                        Padding::Fixed(0),
                    ),
                };
                channels /= 2;
                t
            });
            stages.push(Stage { layers, transition });
            params.push(reg.take_params());
        }
        let norm5 = reg.batch_norm("features.norm5", channels, BN_EPS, BN_MOMENTUM);
        params.push(reg.take_params());
        let classifier = reg.linear("classifier", channels, 1000);
        reg.take_params();
        reg.slots
            .load_from(BackboneKind::Densenet121, path, torchvision_key)?;
        let mut net = DenseNet {
            conv0,
            norm0,
            stages,
            norm5,
            classifier,
            params,
            channels_last: false,
        };
        // Channels-last: 6.7 vs 4.9 images/s for features at 224 px, batch 16, 2 threads (CPU).
        net.set_channels_last(true);
        Ok(net)
    }

    /// Channels-last layout for inputs and conv weights (see `EfficientNetLite::set_channels_last`).
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

impl Backbone for DenseNet {
    fn kind(&self) -> BackboneKind {
        BackboneKind::Densenet121
    }

    fn num_stages(&self) -> usize {
        self.stages.len()
    }

    fn stem_to(&self, images: &Tensor, k: usize, train: bool) -> Tensor {
        let x = self.layout(images);
        let x = self.norm0.forward_t(&self.conv0.forward(&x), train).relu();
        let mut x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for stage in &self.stages[..k.min(self.stages.len())] {
            x = stage.forward_t(&x, train);
        }
        x
    }

    fn stages_from(&self, activations: &Tensor, k: usize, train: bool) -> Tensor {
        let mut x = self.layout(activations);
        for stage in &self.stages[k.min(self.stages.len())..] {
            x = stage.forward_t(&x, train);
        }
        // torchvision applies ReLU after norm5 in `forward`, before pooling.
        self.norm5.forward_t(&x, train).relu()
    }

    fn params_from(&self, k: usize) -> Vec<Tensor> {
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
        linear(&self.classifier, &self.pooled(images, false))
    }
}

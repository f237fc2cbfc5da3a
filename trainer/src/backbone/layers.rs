//! The few layers the backbones share, registered under reference state-dict key names.

use tch::{nn, nn::ModuleT, Tensor};

use super::weights::SlotList;

/// How a convolution pads its input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Padding {
    /// Symmetric, like `nn.Conv2d(padding=p)` (torchvision).
    Fixed(i64),
    /// TensorFlow "SAME": output = ceil(input / stride); an odd total pad puts the extra row/column
    /// at the bottom/right. The Lite0 weights were trained in TF with it (lukemelas
    /// `Conv2dStaticSamePadding`); symmetric padding shifts every stride-2 layer by half a pixel.
    TfSame,
}

/// A bias-free 2-D convolution (every conv in both backbones is followed by batch norm).
pub(crate) struct Conv {
    weight: Tensor,
    stride: i64,
    padding: Padding,
    groups: i64,
}

impl Conv {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with(x, &self.weight, None)
    }

    /// This conv followed by `bn`. In eval mode (running statistics) the norm is folded into the conv's weight
    /// and bias: one pass over the activations instead of two, forward and backward (~10 % of a fine-tuning
    /// step on CPU). Gradients still reach the conv weight and the norm's affine parameters.
    pub fn forward_bn(&self, bn: &BatchNorm, x: &Tensor, train: bool) -> Tensor {
        if train {
            return bn.forward_t(&self.forward(x), true);
        }
        let scale = &bn.weight * (&bn.running_var + bn.eps).rsqrt();
        let shift = &bn.bias - &bn.running_mean * &scale;
        self.forward_with(x, &(&self.weight * scale.view([-1, 1, 1, 1])), Some(&shift))
    }

    fn forward_with(&self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        let s = [self.stride, self.stride];
        match self.padding {
            Padding::Fixed(p) => x.conv2d(weight, bias, s, [p, p], [1, 1], self.groups),
            Padding::TfSame => {
                let k = weight.size()[2];
                let size = x.size();
                let (top, bottom) = tf_same_pad(size[2], k, self.stride);
                let (left, right) = tf_same_pad(size[3], k, self.stride);
                if top == bottom && left == right {
                    x.conv2d(weight, bias, s, [top, left], [1, 1], self.groups)
                } else {
                    let padded = x.constant_pad_nd([left, right, top, bottom]);
                    padded.conv2d(weight, bias, s, [0, 0], [1, 1], self.groups)
                }
            }
        }
    }
}

/// (before, after) padding of one spatial dimension for TF "SAME".
pub(crate) fn tf_same_pad(input: i64, kernel: i64, stride: i64) -> (i64, i64) {
    // The rule is defined once, in the browser's image encoder, so tch and candle pad identically.
    let (before, after) =
        wasm_model::image_encoder::tf_same_pad(input as usize, kernel as usize, stride as usize);
    (before as i64, after as i64)
}

/// Registers variables under dotted reference keys and remembers them for loading and for
/// per-stage parameter lists.
pub(crate) struct Registry<'a> {
    root: &'a nn::Path<'a>,
    pub slots: SlotList,
    /// Trainable parameters registered since the last `take_params`.
    params: Vec<Tensor>,
}

impl<'a> Registry<'a> {
    pub fn new(root: &'a nn::Path<'a>) -> Self {
        Registry {
            root,
            slots: SlotList::default(),
            params: Vec::new(),
        }
    }

    /// The `nn::Path` for a dotted key such as `_blocks.3._bn0`.
    fn path(&self, key: &str) -> nn::Path<'a> {
        let mut parts = key.split('.');
        let first = parts.next().unwrap_or(key);
        parts.fold(self.root / first, |p, part| p / part)
    }

    fn var(&mut self, key: &str, name: &str, shape: &[i64], trainable: bool) -> Tensor {
        let p = self.path(key);
        let t = if trainable {
            p.var(name, shape, nn::Init::Const(0.))
        } else {
            p.zeros_no_train(name, shape)
        };
        self.slots.push(format!("{key}.{name}"), &t);
        if trainable {
            self.params.push(t.shallow_clone());
        }
        t
    }

    #[allow(clippy::too_many_arguments)] // mirrors nn.Conv2d's argument list
    pub fn conv(
        &mut self,
        key: &str,
        cin: i64,
        cout: i64,
        k: i64,
        stride: i64,
        groups: i64,
        padding: Padding,
    ) -> Conv {
        let weight = self.var(key, "weight", &[cout, cin / groups, k, k], true);
        Conv {
            weight,
            stride,
            padding,
            groups,
        }
    }

    pub fn batch_norm(&mut self, key: &str, c: i64, eps: f64, momentum: f64) -> BatchNorm {
        let weight = self.var(key, "weight", &[c], true);
        let bias = self.var(key, "bias", &[c], true);
        let running_mean = self.var(key, "running_mean", &[c], false);
        let running_var = self.var(key, "running_var", &[c], false);
        BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            eps,
            momentum,
        }
    }

    pub fn linear(&mut self, key: &str, cin: i64, cout: i64) -> nn::Linear {
        let ws = self.var(key, "weight", &[cout, cin], true);
        let bs = self.var(key, "bias", &[cout], true);
        nn::Linear { ws, bs: Some(bs) }
    }

    /// Trainable parameters registered since the previous call (one stage's worth).
    pub fn take_params(&mut self) -> Vec<Tensor> {
        std::mem::take(&mut self.params)
    }
}

/// Batch norm with PyTorch semantics (`momentum` weights the new batch statistic).
pub(crate) struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        Tensor::batch_norm(
            x,
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            self.eps,
            true,
        )
    }
}

/// Linear layer on pooled features (kept here so both backbones' classifiers read the same).
pub(crate) fn linear(l: &nn::Linear, x: &Tensor) -> Tensor {
    l.forward_t(x, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Eval-mode `forward_bn` (norm folded into the conv) = conv then batch norm, in value and in the gradients
    /// of the conv weight, the norm's affine parameters and the input; for a plain, a depthwise and an
    /// asymmetric TF-"same" (stride 2) conv.
    #[test]
    fn folded_batch_norm_matches_conv_then_norm() {
        let _serial = crate::train::tests::training_lock(); // libtorch's generator is global: a seed here breaks replays elsewhere
        tch::manual_seed(5);
        let opts = (Kind::Float, Device::Cpu);
        for (cin, cout, k, stride, groups) in [(6, 8, 1, 1, 1), (8, 8, 3, 1, 8), (4, 6, 3, 2, 1)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let root = vs.root();
            let mut reg = Registry::new(&root);
            let conv = reg.conv("c", cin, cout, k, stride, groups, Padding::TfSame);
            let bn = reg.batch_norm("bn", cout, 1e-3, 0.1);
            tch::no_grad(|| {
                for (t, lo, hi) in [(&conv.weight, -1.0, 1.0), (&bn.weight, 0.5, 1.5), (&bn.bias, -0.5, 0.5),
                    (&bn.running_mean, -0.5, 0.5), (&bn.running_var, 0.2, 2.0)] {
                    let _ = t.shallow_clone().uniform_(lo, hi);
                }
            });
            let x = Tensor::randn([2, cin, 8, 8], opts).set_requires_grad(true);
            let folded = conv.forward_bn(&bn, &x, false);
            let reference = bn.forward_t(&conv.forward(&x), false);
            let diff = (&folded - &reference).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "k{k} s{stride} g{groups}: values differ by {diff}");
            let g = Tensor::randn(folded.size().as_slice(), opts);
            let wrt = [&x, &conv.weight, &bn.weight, &bn.bias];
            let a = Tensor::run_backward(&[(&folded * &g).sum(Kind::Float)], &wrt, false, false);
            let b = Tensor::run_backward(&[(&reference * &g).sum(Kind::Float)], &wrt, false, false);
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                let diff = (a - b).abs().max().double_value(&[]);
                assert!(diff < 1e-4, "k{k} s{stride} g{groups}: gradient {i} differs by {diff}");
            }
        }
    }
}

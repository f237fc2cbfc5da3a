//! The optimiser: Adam with decoupled weight decay and per-group learning rates, global-norm gradient
//! clipping, state that checkpoints can hold (tch's optimizer state cannot be saved), and the warm-up → cosine
//! learning-rate schedule.

use std::collections::HashMap;

use tch::{nn, Kind, Tensor};

use crate::config::Optimiser;

/// The learning-rate multiplier of variable `name`: the GloVe embedding and the fine-tuned backbone layers learn
/// slower than the rest.
fn lr_scale(name: &str, embedding_lr_scale: f64, backbone_lr_scale: f64) -> f64 {
    if name == "text.embedding.weight" {
        embedding_lr_scale
    } else if name.starts_with("image.backbone.") {
        backbone_lr_scale
    } else {
        1.0
    }
}

/// Adam with decoupled weight decay, state saved in checkpoints (tch's optimizer state cannot be saved).
/// Public for the train-step bench, which times exactly this update.
pub struct Adam {
    params: Vec<(String, Tensor, f64)>, // name, variable, lr scale
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    pub fn new(vs: &nn::VarStore, embedding_lr_scale: f64, backbone_lr_scale: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params: Vec<(String, Tensor, f64)> = vars
            .into_iter()
            .map(|(n, t)| {
                let scale = lr_scale(&n, embedding_lr_scale, backbone_lr_scale);
                (n, t, scale)
            })
            .collect();
        let m = params.iter().map(|(_, t, _)| t.zeros_like()).collect();
        let v = params.iter().map(|(_, t, _)| t.zeros_like()).collect();
        Adam { params, m, v, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// Gradients of `loss` for every parameter, in `params` order (undefined where the loss does not reach
    /// it). They come straight from the autograd engine instead of accumulating into zeroed `.grad`
    /// tensors: that zeroing pass cost tch ~12 % of a training step against PyTorch, which sets
    /// gradients to None (docs/benchmarks.md).
    pub fn gradients(&self, loss: &Tensor) -> Vec<Tensor> {
        let params: Vec<&Tensor> = self.params.iter().map(|(_, p, _)| p).collect();
        Tensor::run_backward(&[loss], &params, false, false)
    }

    /// Clips gradients to a global L2 norm; returns the norm before clipping.
    pub fn clip(&self, grads: &mut [Tensor], max_norm: f64) -> f64 {
        let squares: Vec<Tensor> = grads.iter().filter(|g| g.defined()).map(|g| g.pow_tensor_scalar(2).sum(Kind::Float)).collect();
        if squares.is_empty() {
            return 0.0;
        }
        // One device-to-host read per step, not one per tensor (each is a sync on a GPU).
        let norm = Tensor::stack(&squares, 0).sum(Kind::Double).double_value(&[]).sqrt();
        if max_norm > 0.0 && norm > max_norm {
            let s = max_norm / (norm + 1e-6);
            // Out of place: the engine may hand the same tensor to two parameters.
            tch::no_grad(|| {
                for g in grads.iter_mut().filter(|g| g.defined()) {
                    *g = &*g * s;
                }
            });
        }
        norm
    }

    pub fn step(&mut self, grads: &[Tensor], lr: f64, weight_decay: f64, t: usize) {
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        tch::no_grad(|| {
            for (i, ((_, p, scale), g)) in self.params.iter().zip(grads).enumerate() {
                if !g.defined() || *scale == 0.0 {
                    continue;
                }
                let lr = lr * scale;
                // In place, as torch.optim.Adam does it: the temporaries of the textbook form cost ~4 ms
                // a step on 2 cores (trainer/benches/train_step.rs).
                let _ = self.m[i].lerp_(g, 1.0 - b1);
                let _ = self.v[i].lerp_(&(g * g), 1.0 - b2);
                let mut denom = self.v[i].sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt()).g_add_scalar_(self.eps);
                // addcdiv_ has no `value` argument: fold -lr / bc1 into the denominator.
                let _ = denom.g_mul_scalar_(-bc1 / lr);
                let mut p = p.shallow_clone();
                if weight_decay > 0.0 && p.dim() > 1 {
                    let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                if lr > 0.0 {
                    let _ = p.addcdiv_(&self.m[i], &denom);
                }
            }
        });
    }

    /// The moment estimates as checkpoint tensors `adam_m.<name>` and `adam_v.<name>`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (n, _, _)) in self.params.iter().enumerate() {
            out.push((format!("adam_m.{n}"), self.m[i].shallow_clone()));
            out.push((format!("adam_v.{n}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores the moment estimates [`Adam::state`] saved (parameters without saved state keep zeros).
    pub fn load_state(&mut self, saved: &HashMap<String, Tensor>) {
        tch::no_grad(|| {
            for (i, (n, _, _)) in self.params.iter().enumerate() {
                if let (Some(m), Some(v)) = (saved.get(&format!("adam_m.{n}")), saved.get(&format!("adam_v.{n}"))) {
                    self.m[i].copy_(m);
                    self.v[i].copy_(v);
                }
            }
        });
    }
}

/// The learning rate of step `step` (0-based) of `total`: linear warm-up over `lr_warmup_steps`, then cosine
/// decay to 5 % of the peak.
pub fn learning_rate(opt: &Optimiser, step: usize, total: usize) -> f64 {
    if step < opt.lr_warmup_steps {
        return opt.lr * (step + 1) as f64 / opt.lr_warmup_steps as f64;
    }
    let p = (step - opt.lr_warmup_steps) as f64 / (total.saturating_sub(opt.lr_warmup_steps)).max(1) as f64;
    opt.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;

    #[test]
    fn lr_schedule_warms_up_then_decays() {
        let mut c = crate::config::Config::default().optimiser;
        c.lr = 1e-3;
        c.lr_warmup_steps = 10;
        let lr = |step| learning_rate(&c, step, 100);
        assert!((lr(0) - c.lr / 10.0).abs() < 1e-12);
        assert!((lr(9) - c.lr).abs() < 1e-12);
        assert!(lr(50) < c.lr && lr(99) < lr(50));
        assert!((lr(100) - 0.05 * c.lr).abs() < 1e-12, "ends at 5 % of the peak");
    }

    /// Engine gradients equal `backward()`'s, clipping scales a gradient the engine shares between two
    /// parameters once, and a parameter the loss does not reach gets no gradient and does not move.
    #[test]
    fn gradients_clip_and_step_match_backward() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let a = root.var("a", &[3], nn::Init::Const(1.0));
        let b = root.var("b", &[3], nn::Init::Const(2.0));
        let unused = root.var("unused", &[2], nn::Init::Const(5.0));
        let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0]);
        // d/da = d/db = w: AddBackward passes one gradient tensor to both inputs.
        let loss = || ((&a + &b) * &w).sum(Kind::Float);
        let mut adam = Adam::new(&vs, 1.0, 1.0);
        let mut grads = adam.gradients(&loss());
        let names: Vec<&str> = adam.params.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "unused"]);
        assert!(!grads[2].defined(), "a parameter the loss does not reach has no gradient");
        loss().backward();
        for (g, p) in grads.iter().zip([&a, &b]) {
            assert_eq!(Vec::<f32>::try_from(g).unwrap(), Vec::<f32>::try_from(p.grad()).unwrap());
        }
        let norm = adam.clip(&mut grads, 1.0);
        assert!((norm - (2.0f64 * 14.0).sqrt()).abs() < 1e-5, "norm {norm}");
        for g in &grads[..2] {
            let scaled = Vec::<f32>::try_from(g).unwrap();
            let want: Vec<f32> = [1.0f32, -2.0, 3.0].iter().map(|x| x / norm as f32).collect();
            for (s, w) in scaled.iter().zip(&want) {
                assert!((s - w).abs() < 1e-5, "clipped {scaled:?}, want {want:?} (scaled twice?)");
            }
        }
        adam.step(&grads, 0.1, 0.0, 1);
        // The first Adam step moves each weight by lr against the sign of its gradient.
        let moved = Vec::<f32>::try_from(&a).unwrap();
        for (m, want) in moved.iter().zip([0.9f32, 1.1, 0.9]) {
            assert!((m - want).abs() < 1e-4, "a after one step: {moved:?}");
        }
        assert_eq!(Vec::<f32>::try_from(&unused).unwrap(), vec![5.0, 5.0]);
    }
}

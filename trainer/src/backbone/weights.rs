//! Loading a safetensors state dict into the variables a backbone created.
//!
//! Backbones register each parameter under the key it has in the reference state dict (lukemelas
//! EfficientNet-PyTorch, torchvision), so loading is a name-for-name copy with shape checks. Every
//! failure names the tensor and the file, because the usual cause is "wrong file for this backbone".

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tch::{Kind, Tensor};

use super::{BackboneError, BackboneKind, BackboneKindExt};

/// One variable to fill: its key in the weight file and the (shared) variable tensor.
pub(crate) struct Slot {
    pub key: String,
    pub var: Tensor,
}

/// Collects the variables a backbone creates, keyed by their name in the reference state dict.
#[derive(Default)]
pub(crate) struct SlotList {
    slots: Vec<Slot>,
}

impl SlotList {
    pub fn push(&mut self, key: impl Into<String>, var: &Tensor) {
        self.slots.push(Slot {
            key: key.into(),
            var: var.shallow_clone(),
        });
    }

    /// Copies every slot's value from the safetensors file at `path`.
    ///
    /// `rename` maps a key as stored in the file to the key the backbone expects (None = keep), so
    /// old-style checkpoints can be accepted. Extra tensors in the file are ignored except that a
    /// file sharing no key at all is reported as the wrong model.
    pub fn load_from(
        &self,
        kind: BackboneKind,
        path: &Path,
        rename: impl Fn(&str) -> Option<String>,
    ) -> Result<(), BackboneError> {
        let bytes = std::fs::read(path).map_err(|cause| match cause.kind() {
            std::io::ErrorKind::NotFound => BackboneError::WeightsNotFound {
                kind,
                path: path.to_path_buf(),
                hint: kind.weights_hint(),
            },
            _ => BackboneError::Io {
                path: path.to_path_buf(),
                cause,
            },
        })?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| BackboneError::Format {
            path: path.to_path_buf(),
            message: format!("not a valid safetensors file: {e}"),
        })?;
        let mut by_key: HashMap<String, String> = HashMap::new();
        for name in file.names() {
            let key = rename(name).unwrap_or_else(|| name.to_string());
            by_key.insert(key, name.to_string());
        }
        let _guard = tch::no_grad_guard();
        for slot in &self.slots {
            let Some(stored_name) = by_key.get(&slot.key) else {
                return Err(BackboneError::MissingTensor {
                    tensor: slot.key.clone(),
                    path: path.to_path_buf(),
                    found: file.len(),
                });
            };
            let view = file
                .tensor(stored_name)
                .map_err(|e| BackboneError::Format {
                    path: path.to_path_buf(),
                    message: format!("tensor {stored_name}: {e}"),
                })?;
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let expected = slot.var.size();
            if shape != expected {
                return Err(BackboneError::ShapeMismatch {
                    tensor: slot.key.clone(),
                    path: path.to_path_buf(),
                    expected,
                    found: shape,
                });
            }
            let kind = match view.dtype() {
                Dtype::F32 => Kind::Float,
                Dtype::F16 => Kind::Half,
                Dtype::BF16 => Kind::BFloat16,
                Dtype::F64 => Kind::Double,
                other => {
                    return Err(BackboneError::Format {
                        path: path.to_path_buf(),
                        message: format!(
                            "tensor {stored_name} has dtype {other:?}; expected a float type (F32/F16/BF16/F64)"
                        ),
                    })
                }
            };
            let value = Tensor::from_data_size(view.data(), &shape, kind);
            slot.var
                .shallow_clone()
                .copy_(&value.to_kind(slot.var.kind()).to_device(slot.var.device()));
        }
        Ok(())
    }
}

/// Writes named tensors as an f32 safetensors file (tests and tools use it to build weight files).
pub fn save_safetensors(tensors: &[(String, Tensor)], path: &Path) -> Result<(), BackboneError> {
    let format_err = |message: String| BackboneError::Format {
        path: PathBuf::from(path),
        message,
    };
    let mut owned: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let values = Vec::<f32>::try_from(t.flatten(0, -1))
            .map_err(|e| format_err(format!("tensor {name}: {e}")))?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((
            name.clone(),
            bytes,
            t.size().iter().map(|&d| d as usize).collect(),
        ));
    }
    let mut views = Vec::with_capacity(owned.len());
    for (name, bytes, shape) in &owned {
        let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| format_err(format!("tensor {name}: {e}")))?;
        views.push((name.clone(), view));
    }
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| format_err(format!("writing safetensors: {e}")))
}

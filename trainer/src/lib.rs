//! imgpick trainer library: data, text, backbones, model, training, evaluation, export, publishing.
//!
//! The flow: [`data`] (COCO captions) → [`features`] (frozen backbone, cached on disk) → [`train`] ([`model`],
//! [`loss`]) → [`eval`] (VSE recall) → [`export`] (model directory for the browser) → [`publish`] (gallery).
//! Formats (tokenizer, model directory, gallery) are `wasm_model`'s: one definition for trainer and browser.
pub mod backbone;
pub mod data;
pub mod eval;
pub mod export;
pub mod features;
pub mod loss;
pub mod model;
pub mod plot;
pub mod publish;
pub mod text;
pub mod train;

/// CUDA when libtorch sees a GPU, else CPU.
pub fn default_device() -> tch::Device {
    if tch::Cuda::is_available() {
        tch::Device::Cuda(0)
    } else {
        tch::Device::Cpu
    }
}

/// Writes `bytes` to `path` atomically: a temp file beside it, then rename (no partial output on a crash).
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

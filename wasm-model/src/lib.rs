//! imgpick's tokenizer, model-directory and gallery formats, text encoder and ranking (see README.md).
//!
//! One implementation of each contract, used by the trainer (native), the `web` server and the browser (wasm32).

pub mod engine;
pub mod gallery;
pub mod image_encoder;
pub mod model_dir;
pub mod partitioned;
pub mod query;
pub mod rank;
pub mod tensors;
pub mod text_encoder;
pub mod tokenizer;
pub mod vocab;
pub mod workflow;

#[doc(hidden)]
pub mod testutil;
#[cfg(feature = "nn-bench")]
#[doc(hidden)]
pub mod nn_bench;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
#[cfg(target_arch = "wasm32")]
pub mod wasm_partitioned;
#[cfg(target_arch = "wasm32")]
pub mod wasm_workflow;

pub use engine::{Engine, EngineError, Explanation, Hit, WordDelta};
pub use gallery::{write_gallery_bin, Gallery, GalleryDtype, GalleryError, GalleryIndex, GalleryItem};
pub use image_encoder::{ImageEncoder, ImageEncoderError, ImageError};
pub use model_dir::{compute_model_id, Manifest, ModelDir, ModelError, Pooling, TextConfig};
pub use text_encoder::{EncodeError, TextEncoder};
pub use query::{parse_query, QueryError, Term};
pub use tokenizer::{tokenize, MAX_TOKENS, TOKENIZER_VERSION};
pub use vocab::Vocab;

use candle_core::{Device, Tensor};

/// Cosine similarity of two vectors, computed with candle (the toolchain smoke test).
pub fn cosine(a: &[f32], b: &[f32]) -> candle_core::Result<f32> {
    let a = Tensor::from_slice(a, a.len(), &Device::Cpu)?;
    let b = Tensor::from_slice(b, b.len(), &Device::Cpu)?;
    let dot = (&a * &b)?.sum_all()?.to_scalar::<f32>()?;
    let na = a.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    let nb = b.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    Ok(dot / (na * nb))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cosine_of_known_vectors() {
        assert!((super::cosine(&[1.0, 0.0], &[1.0, 1.0]).unwrap() - 0.70710677).abs() < 1e-6);
    }
}

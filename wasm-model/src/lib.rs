//! imgpick's tokenizer, model-directory and gallery formats, text encoder and ranking (see README.md).

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

#[cfg(target_arch = "wasm32")]
mod wasm {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32, JsError> {
        super::cosine(a, b).map_err(|e| JsError::new(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cosine_of_known_vectors() {
        assert!((super::cosine(&[1.0, 0.0], &[1.0, 1.0]).unwrap() - 0.70710677).abs() < 1e-6);
    }
}

//! The browser API (wasm32 only): one `Engine` built from the fetched files' bytes. Results are plain JS
//! objects/arrays (serialised with serde_json, then `JSON.parse`d); every error is thrown as a JS `Error`
//! carrying the message. No panics on bad input: all fallible paths return `Result`.

use wasm_bindgen::prelude::*;

use crate::engine;

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    let json = serde_json::to_string(value).map_err(js_err)?;
    js_sys::JSON::parse(&json).map_err(|_| JsError::new("internal error: result is not valid JSON"))
}

/// A text encoder plus a gallery, ready to rank (usable from a Web Worker).
///
/// ```js
/// const engine = new Engine(manifestJson, vocabTxt, new Uint8Array(textEncoderBuf),
///                           new Uint8Array(galleryBinBuf), galleryJson);
/// engine.search("dog on a beach -people", 10); // [{id, file, thumb, caption, score}, …] best first
/// ```
#[wasm_bindgen]
pub struct Engine {
    inner: engine::Engine,
}

#[wasm_bindgen]
impl Engine {
    /// Validates the model directory (manifest, checksums, shapes) and the gallery (format, CRC, model id).
    /// `image_head` (optional 6th argument): the bytes of `image_head.safetensors`, required when the
    /// manifest names one (the model id covers them).
    #[wasm_bindgen(constructor)]
    pub fn new(
        manifest_json: &str,
        vocab_txt: &str,
        text_encoder: &[u8],
        gallery_bin: &[u8],
        gallery_json: &str,
        image_head: Option<Vec<u8>>,
    ) -> Result<Engine, JsError> {
        let inner = engine::Engine::from_bytes_with_head(
            manifest_json,
            vocab_txt,
            text_encoder,
            image_head.as_deref(),
            gallery_bin,
            gallery_json,
        )
        .map_err(js_err)?;
        Ok(Engine { inner })
    }

    /// `[{id, file, thumb, caption, score}]`, best first, at most `k` (≤ 1000).
    pub fn search(&self, query: &str, k: usize) -> Result<JsValue, JsError> {
        to_js(&self.inner.search(query, k).map_err(js_err)?)
    }

    /// Like `search`, ranked by gallery image `id` (left out of its own results).
    pub fn similar(&self, id: usize, k: usize) -> Result<JsValue, JsError> {
        to_js(&self.inner.similar(id, k).map_err(js_err)?)
    }

    /// `{id, score, words: [{term, token, known, delta}]}`: each word's leave-one-out score drop.
    pub fn explain(&self, query: &str, id: usize) -> Result<JsValue, JsError> {
        to_js(&self.inner.explain(query, id).map_err(js_err)?)
    }

    /// The query's L2-normalised vector (for tests and debugging).
    pub fn query_vector(&self, query: &str) -> Result<Vec<f32>, JsError> {
        self.inner.query_vector(query).map_err(js_err)
    }

    pub fn model_id(&self) -> String {
        self.inner.model_id().to_owned()
    }

    pub fn gallery_len(&self) -> usize {
        self.inner.gallery_len()
    }
}

/// Cosine similarity computed with candle (the toolchain smoke test).
#[wasm_bindgen]
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32, JsError> {
    crate::cosine(a, b).map_err(js_err)
}

//! The browser API (wasm32 only): one `Engine` built from the fetched files' bytes. Results are plain JS
//! objects/arrays (serialised with serde_json, then `JSON.parse`d); every error is thrown as a JS `Error`
//! carrying the message. No panics on bad input: all fallible paths return `Result`.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::engine;

pub(crate) fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

pub(crate) fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
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
    pub(crate) inner: engine::Engine,
}

#[wasm_bindgen]
impl Engine {
    /// Validates the model directory (manifest, checksums, shapes) and the gallery (format, CRC, model id).
    /// `image_head` (optional 6th argument): the bytes of `image_head.safetensors`. Only embedding photos
    /// needs them, so the page leaves them out and searches without; give them here or later
    /// (`load_image_encoder(encoder, head)`, `load_image_head`). The model id covers them: they are verified
    /// when given.
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

    /// Loads `image_encoder.safetensors` (the manifest's `files.image_encoder`, checked by its SHA-256),
    /// so the engine can embed the user's photos. `image_head` (optional 2nd argument): the bytes of
    /// `image_head.safetensors` when the engine was built without them (checked by SHA-256 and model id);
    /// without a head, given here or earlier, it throws saying so.
    pub fn load_image_encoder(&mut self, bytes: &[u8], image_head: Option<Vec<u8>>) -> Result<(), JsError> {
        self.inner.load_image_encoder_with_head(bytes, image_head.as_deref()).map_err(js_err)
    }

    /// Gives the engine `image_head.safetensors` after construction (checked by SHA-256 and model id).
    pub fn load_image_head(&mut self, bytes: &[u8]) -> Result<(), JsError> {
        self.inner.load_image_head(bytes).map_err(js_err)
    }

    pub fn has_image_encoder(&self) -> bool {
        self.inner.has_image_encoder()
    }

    /// Whether the engine holds the image head (given to the constructor or loaded since).
    pub fn has_image_head(&self) -> bool {
        self.inner.has_image_head()
    }

    /// An encoded photo (JPEG/PNG/WebP bytes) → its L2-normalised vector (`Float32Array`). Throws for a
    /// non-image, truncated, empty or > 40-megapixel file, with a message saying which.
    pub fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>, JsError> {
        self.inner.embed_image(bytes).map_err(js_err)
    }

    /// Embeds one photo and adds it to the searchable set; returns its id (ids after `gallery_len()`).
    pub fn add_image(&mut self, file: &str, thumb: &str, bytes: &[u8]) -> Result<u32, JsError> {
        self.inner.add_image(file, thumb, bytes).map_err(js_err)
    }

    /// Adds a vector computed earlier (e.g. restored from IndexedDB); returns its id.
    pub fn add_vector(&mut self, file: &str, thumb: &str, vector: Vec<f32>) -> Result<u32, JsError> {
        self.inner.add_vector(file, thumb, vector).map_err(js_err)
    }

    /// A vector's int8 row as the engine keeps it: `{codes: Int8Array, scale}` (L2-normalised, then quantised as
    /// an int8 gallery; throws for a vector of another length or a zero/non-finite one). The page stores these
    /// and gives them back to `add_quantized`, so a restored photo scores exactly as when it was added.
    pub fn quantize(&self, vector: &[f32]) -> Result<JsValue, JsError> {
        let (codes, scale) = self.inner.quantize(vector).map_err(js_err)?;
        let out = js_sys::Object::new();
        js_sys::Reflect::set(&out, &"codes".into(), &js_sys::Int8Array::from(&codes[..]).into())
            .and_then(|_| js_sys::Reflect::set(&out, &"scale".into(), &scale.into()))
            .map_err(|_| JsError::new("internal error: cannot build the result object"))?;
        Ok(out.into())
    }

    /// Adds `scales.length` photos at once from their int8 rows (`codes`: row-major, `embed_dim` per photo, as
    /// `quantize` gave them), without names; returns the first one's id. Throws (adding nothing) for lengths
    /// that do not match or a scale that is negative or not finite.
    pub fn add_quantized(&mut self, codes: &[i8], scales: &[f32]) -> Result<u32, JsError> {
        self.inner.add_quantized(codes, scales).map_err(js_err)
    }

    /// Makes room for `photos` more added photos before a bulk restore (`add_quantized` calls): the rows grow once
    /// instead of doubling, which the wasm heap (it never shrinks) would keep.
    pub fn reserve_added(&mut self, photos: usize) {
        self.inner.reserve_added(photos)
    }

    /// Embeds and adds many photos: `files` is an array of `{name, thumb?, bytes: Uint8Array}`;
    /// `progress(done, total)` (optional) is called after each. A bad file does not stop the others:
    /// returns `{added: [{file, id}], errors: [{file, message}]}`.
    pub fn add_images(&mut self, files: js_sys::Array, progress: Option<js_sys::Function>) -> Result<JsValue, JsError> {
        let total = files.length();
        let (mut added, mut errors) = (Vec::new(), Vec::new());
        for (i, f) in files.iter().enumerate() {
            let get = |key: &str| js_sys::Reflect::get(&f, &key.into()).ok();
            let name = get("name").and_then(|v| v.as_string()).unwrap_or_else(|| format!("file {i}"));
            let thumb = get("thumb").and_then(|v| v.as_string()).unwrap_or_default();
            let result = match get("bytes").filter(|b| b.is_instance_of::<js_sys::Uint8Array>()) {
                Some(b) => self.inner.add_image(&name, &thumb, &js_sys::Uint8Array::from(b).to_vec()).map_err(|e| e.to_string()),
                None => Err("no `bytes` (Uint8Array) given".to_string()),
            };
            match result {
                Ok(id) => added.push(serde_json::json!({ "file": name, "id": id })),
                Err(message) => errors.push(serde_json::json!({ "file": name, "message": message })),
            }
            if let Some(cb) = &progress {
                let _ = cb.call2(&JsValue::NULL, &JsValue::from(i as u32 + 1), &JsValue::from(total));
            }
        }
        to_js(&serde_json::json!({ "added": added, "errors": errors }))
    }

    /// Like `search`, over `scope`: `"all"`, `"gallery"` (the shipped images) or `"mine"` (added photos).
    pub fn search_in(&self, query: &str, k: usize, scope: &str) -> Result<JsValue, JsError> {
        let scope: engine::Scope = scope.parse().map_err(|e: String| JsError::new(&e))?;
        to_js(&self.inner.search_in(query, k, scope).map_err(js_err)?)
    }

    /// Forgets every added photo.
    pub fn clear_added(&mut self) {
        self.inner.clear_added()
    }

    /// Number of added photos.
    pub fn added_len(&self) -> usize {
        self.inner.added().len()
    }

    pub fn model_id(&self) -> String {
        self.inner.model_id().to_owned()
    }

    pub fn gallery_len(&self) -> usize {
        self.inner.gallery_len()
    }
}

/// Only the image side (no vocabulary, no gallery): embeds photos in the page's embedding Web Workers,
/// which post the vectors to the search worker's `Engine.add_vector`.
///
/// ```js
/// const embedder = new ImageEmbedder(manifestJson, new Uint8Array(imageEncoderBuf), new Uint8Array(imageHeadBuf));
/// embedder.embed(new Uint8Array(jpegBytes)); // Float32Array (L2-normalised); throws Error(message) for a bad file
/// ```
#[wasm_bindgen]
pub struct ImageEmbedder {
    inner: crate::image_encoder::ImageEncoder,
}

#[wasm_bindgen]
impl ImageEmbedder {
    /// Checks both files against the manifest's `files_sha256` and builds the encoder.
    #[wasm_bindgen(constructor)]
    pub fn new(manifest_json: &str, image_encoder: &[u8], image_head: &[u8]) -> Result<ImageEmbedder, JsError> {
        let inner = engine::standalone_image_encoder(manifest_json, image_encoder, image_head).map_err(js_err)?;
        Ok(ImageEmbedder { inner })
    }

    /// An encoded photo (JPEG/PNG/WebP bytes) → its L2-normalised vector; throws for a non-image, truncated,
    /// empty or > 40-megapixel file, with a message saying which.
    pub fn embed(&self, bytes: &[u8]) -> Result<Vec<f32>, JsError> {
        self.inner.embed(bytes).map_err(js_err)
    }

    /// One decode for the vector (the same as `embed`'s) and a thumbnail (longest side ≤ `max_side`, EXIF
    /// orientation applied, transparency on white): `{vector: Float32Array, width, height, rgba:
    /// Uint8ClampedArray}` (`new ImageData(rgba, width, height)` draws it). Throws like `embed`.
    pub fn embed_with_thumbnail(&self, bytes: &[u8], max_side: u32) -> Result<js_sys::Object, JsError> {
        vector_and_thumbnail(self.inner.embed_with_thumbnail(bytes, max_side).map_err(js_err)?)
    }

    /// `embed` for pixels the browser decoded: `rgba` (the `Uint8ClampedArray` of an `ImageData`), `width ×
    /// height`, as stored in the file (EXIF orientation *not* applied; `probe_image` gives it) → the same
    /// `Float32Array`. Throws for a buffer of the wrong size.
    pub fn embed_rgba(&self, rgba: Vec<u8>, width: u32, height: u32) -> Result<Vec<f32>, JsError> {
        self.inner.embed_rgba(rgba, (width, height)).map_err(js_err)
    }

    pub fn embed_dim(&self) -> usize {
        self.inner.embed_dim()
    }
}

/// `{vector: Float32Array, width, height, rgba: Uint8ClampedArray}` (the thumbnail's size and pixels).
fn vector_and_thumbnail((vector, thumb): (Vec<f32>, image::RgbaImage)) -> Result<js_sys::Object, JsError> {
    let out = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&out, &k.into(), v).map(|_| ());
    set("vector", &js_sys::Float32Array::from(&vector[..]).into())
        .and_then(|_| set("width", &thumb.width().into()))
        .and_then(|_| set("height", &thumb.height().into()))
        .and_then(|_| set("rgba", &js_sys::Uint8ClampedArray::from(&thumb.as_raw()[..]).into()))
        .map_err(|_| JsError::new("internal error: cannot build the result object"))?;
    Ok(out)
}

/// The header of an encoded photo after every check `embed` makes before decoding (empty, not JPEG/PNG/WebP,
/// over 40 megapixels, a truncated JPEG: thrown with the same messages): `{format: "jpeg" | "png" | "webp",
/// width, height, orientation}` (stored size; EXIF orientation 1–8). The embedding workers call it before letting
/// the browser decode a JPEG.
#[wasm_bindgen]
pub fn probe_image(bytes: &[u8]) -> Result<JsValue, JsError> {
    let info = crate::image_encoder::probe_image(bytes).map_err(js_err)?;
    let format = match info.format {
        image::ImageFormat::Jpeg => "jpeg",
        image::ImageFormat::Png => "png",
        image::ImageFormat::WebP => "webp",
        _ => "other", // probe_image refuses every other format
    };
    to_js(&serde_json::json!({ "format": format, "width": info.width, "height": info.height,
        "orientation": info.orientation.to_exif() }))
}

/// Cosine similarity computed with candle (the toolchain smoke test).
#[wasm_bindgen]
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32, JsError> {
    crate::cosine(a, b).map_err(js_err)
}

/// candle-nn or hand-written, in wasm (feature `nn-bench`, never in the shipped package): the `nn_bench`
/// table (markdown) for this model's text encoder, Lite0-sized layers and, when given, the image encoder's
/// weights, timed with `performance.now()`. Driver: `wasm-model/examples/bench_nn_wasm.sh`.
#[cfg(feature = "nn-bench")]
#[wasm_bindgen]
pub fn bench_candle_nn(
    manifest_json: &str,
    vocab_txt: &str,
    text_encoder: &[u8],
    image_encoder: Option<Vec<u8>>,
    prompts: Vec<String>,
) -> Result<String, JsError> {
    let model = crate::model_dir::ModelDir::from_bytes_deferring_image_head(manifest_json, vocab_txt, text_encoder).map_err(js_err)?;
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .map_err(|_| JsError::new("no global `performance` to time with"))?;
    let now: js_sys::Function = js_sys::Reflect::get(&performance, &"now".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| JsError::new("`performance.now` is not a function"))?;
    let clock = || now.call0(&performance).ok().and_then(|t| t.as_f64()).unwrap_or(f64::NAN);
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let rows = crate::nn_bench::run(&clock, &model, &prompts, image_encoder.as_deref()).map_err(js_err)?;
    Ok(crate::nn_bench::markdown(&rows))
}

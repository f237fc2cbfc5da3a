//! The browser API of a partitioned gallery (wasm32 only): the engine is built from the descriptor and the
//! header, and a query runs in steps the search worker drives — plan, fetch the planned lists (Cache API),
//! `add_shard` each, `advance`, show the running results — so results can appear as lists arrive.
//!
//! ```js
//! const headerFile = partitioned_header_file(galleryJson);              // '<gallery id>/index.bin'
//! const engine = Engine.partitioned(manifestJson, vocabTxt, textEncoder, galleryJson, headerBytes);
//! const search = engine.plan_search('a red kite', 30, 'all');          // or engine.plan_similar(id, 30)
//! for (const list of search.pending()) {                                // best lists first
//!   engine.add_shard(await fetchBytes(engine.shard_file(list)));        // throws on a wrong/corrupt shard
//!   const { results, searched, done, total } = engine.advance(search);  // results: [{id, score, strong?}] best first
//! }
//! search.free();
//! ```

use wasm_bindgen::prelude::*;

use crate::engine::{self, Scope};
use crate::partitioned::{meta_file, parts_path, shard_file, Descriptor, MetaBlock, PlannedSearch};
use crate::wasm::{js_err, to_js, Engine};

/// A planned query over a partitioned gallery and its running top-k (free it with `free()` when done).
#[wasm_bindgen]
pub struct Search {
    inner: PlannedSearch,
    /// A text query's results say whether they are strong matches (`Hit::strong`); "more like this" does not.
    text_query: bool,
}

#[wasm_bindgen]
impl Search {
    /// The lists the query scans, best first.
    pub fn lists(&self) -> Vec<u32> {
        self.inner.lists().to_vec()
    }
    /// The planned lists not scanned yet, best first (what to fetch and add next).
    pub fn pending(&self) -> Vec<u32> {
        self.inner.pending()
    }
    pub fn is_complete(&self) -> bool {
        self.inner.is_complete()
    }
}

/// The header's path for a partitioned gallery's `gallery.json` (checked), relative to the gallery folder.
#[wasm_bindgen]
pub fn partitioned_header_file(gallery_json: &str) -> Result<String, JsError> {
    let d = Descriptor::from_json(gallery_json).map_err(js_err)?;
    Ok(parts_path(&d.gallery_id, &d.header))
}

/// Whether `gallery_json` describes a partitioned gallery (else it is a flat gallery.json).
#[wasm_bindgen]
pub fn is_partitioned_gallery(gallery_json: &str) -> bool {
    Descriptor::is_partitioned(gallery_json)
}

#[derive(serde::Serialize)]
struct Info {
    count: usize,
    lists: usize,
    probe: usize,
    #[serde(rename = "metaBlock")]
    meta_block: usize,
    #[serde(rename = "galleryId")]
    gallery_id: String,
}

/// A running result: `strong` as in `Hit` (text queries of a calibrated model; left out otherwise).
#[derive(serde::Serialize)]
struct StepHit {
    id: u32,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    strong: Option<bool>,
}

#[derive(serde::Serialize)]
struct Step {
    results: Vec<StepHit>,
    searched: usize,
    done: usize,
    total: usize,
}

#[wasm_bindgen]
impl Engine {
    /// An engine over a partitioned gallery: `gallery_json` is its descriptor, `header` the bytes of the file
    /// `partitioned_header_file(gallery_json)` names. Checks both against each other and the model (throws
    /// naming the file). `image_head`: as for the constructor.
    pub fn partitioned(
        manifest_json: &str,
        vocab_txt: &str,
        text_encoder: &[u8],
        gallery_json: &str,
        header: &[u8],
        image_head: Option<Vec<u8>>,
    ) -> Result<Engine, JsError> {
        let inner = engine::Engine::from_bytes_partitioned(manifest_json, vocab_txt, text_encoder, image_head.as_deref(), gallery_json, header)
            .map_err(js_err)?;
        Ok(Engine { inner })
    }

    /// `{count, lists, probe, metaBlock, galleryId}` of a partitioned gallery, `null` for a flat one.
    pub fn partition_info(&self) -> Result<JsValue, JsError> {
        match self.inner.partitioned() {
            None => Ok(JsValue::NULL),
            Some(p) => {
                let h = p.header();
                to_js(&Info { count: h.count, lists: h.lists(), probe: h.probe, meta_block: h.meta_block, gallery_id: h.gallery_id.clone() })
            }
        }
    }

    fn gallery_id(&self) -> Result<&str, JsError> {
        self.inner.partitioned().map(|p| p.header().gallery_id.as_str()).ok_or_else(|| js_err(engine::EngineError::NotPartitioned))
    }

    /// List `list`'s shard file, relative to the gallery folder.
    pub fn shard_file(&self, list: u32) -> Result<String, JsError> {
        Ok(parts_path(self.gallery_id()?, &shard_file(list)))
    }

    /// The metadata block holding image `id`.
    pub fn meta_block_of(&self, id: u32) -> Result<u32, JsError> {
        let p = self.inner.partitioned().ok_or_else(|| js_err(engine::EngineError::NotPartitioned))?;
        Ok(p.block_of(id as usize))
    }

    /// Metadata block `block`'s file, relative to the gallery folder.
    pub fn meta_file(&self, block: u32) -> Result<String, JsError> {
        Ok(parts_path(self.gallery_id()?, &meta_file(block)))
    }

    /// Checks metadata block `block` (its JSON text) against the header and returns its items:
    /// `[{id, file, thumb, caption, source, licence, url, list}]`. Throws naming the file when it is not this
    /// gallery's block.
    pub fn meta_items(&self, block: u32, json: &str) -> Result<JsValue, JsError> {
        let p = self.inner.partitioned().ok_or_else(|| js_err(engine::EngineError::NotPartitioned))?;
        let m = MetaBlock::from_json(json, block, p.header()).map_err(js_err)?;
        to_js(&m.items)
    }

    /// Checks a shard (magic, version, list, model and gallery ids, count, CRC and the CRC the header pins) and
    /// keeps it in memory (least recently used shards go first past `set_shard_memory`); returns its list.
    pub fn add_shard(&self, bytes: &[u8]) -> Result<u32, JsError> {
        self.inner.add_shard(bytes).map_err(js_err)
    }

    /// Caps the shard bytes kept in memory.
    pub fn set_shard_memory(&mut self, bytes: usize) {
        self.inner.set_shard_memory(bytes)
    }

    /// `{bytes, shards}` held in memory now.
    pub fn shard_memory(&self) -> Result<JsValue, JsError> {
        let (bytes, shards) = self.inner.partitioned().map_or((0, 0), |p| p.shard_memory());
        to_js(&serde_json::json!({ "bytes": bytes, "shards": shards }))
    }

    /// Plans a text query over `scope` (`"all"`, `"gallery"`, `"mine"`): the lists to fetch, and the added
    /// photos already ranked.
    pub fn plan_search(&self, query: &str, k: usize, scope: &str) -> Result<Search, JsError> {
        let scope: Scope = scope.parse().map_err(|e: String| JsError::new(&e))?;
        Ok(Search { inner: self.inner.plan_search(query, k, scope).map_err(js_err)?, text_query: true })
    }

    /// Plans "more like image `id`"; a gallery image's shard must have been added (its metadata names its list).
    pub fn plan_similar(&self, id: usize, k: usize) -> Result<Search, JsError> {
        Ok(Search { inner: self.inner.plan_similar(id, k).map_err(js_err)?, text_query: false })
    }

    /// Scans the planned lists now in memory: `{results: [{id, score, strong?}] best first, searched, done,
    /// total}`.
    pub fn advance(&self, search: &mut Search) -> Result<JsValue, JsError> {
        let p = self.inner.advance(&mut search.inner).map_err(js_err)?;
        let strength = |score| if search.text_query { self.inner.match_strength(score) } else { None };
        let results = search.inner.results().into_iter().map(|r| StepHit { id: r.id, score: r.score, strong: strength(r.score) }).collect();
        to_js(&Step { results, searched: p.searched, done: p.done, total: p.total })
    }
}

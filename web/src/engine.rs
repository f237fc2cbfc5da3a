//! Loads wasm-model's native engine from `static/model` + `static/gallery` for `/api/search`.

use std::path::Path;
use std::sync::Arc;

use wasm_model::engine::Engine;

use crate::api::{Hit, Searcher};
use crate::backend::{Page, Query, SearchError, SearchRequest};

/// The engine for `static_dir`, or a message saying why the API is off (shown in its 503 answers).
pub fn load(static_dir: &Path) -> Result<Arc<dyn Searcher>, String> {
    let model = static_dir.join("model");
    let gallery = static_dir.join("gallery");
    for (dir, hint) in [
        (&model, "export a model there with `trainer export`"),
        (&gallery, "publish one with `make demo` or `trainer publish`"),
    ] {
        if !dir.is_dir() {
            return Err(format!("{} is missing ({hint})", dir.display()));
        }
    }
    let engine = Engine::open(&model, &gallery).map_err(|e| format!("cannot load the model and gallery: {e}"))?;
    // The index and vectors check each other (count, model id, CRC); the thumbnails the answers link to must
    // exist too, or every result of a half-published gallery is a broken image.
    if let Some(item) = engine.index().items.iter().find(|item| !gallery.join(&item.thumb).is_file()) {
        return Err(format!(
            "{} names the thumbnail {}, which is missing (a publish still running or interrupted? \
             run `trainer publish` again)",
            gallery.join("gallery.json").display(),
            item.thumb
        ));
    }
    Ok(Arc::new(NativeSearcher(engine)))
}

/// The same ranking code the page runs in wasm, natively.
pub struct NativeSearcher(pub Engine);

impl NativeSearcher {
    fn hits(&self, hits: Vec<wasm_model::engine::Hit>) -> Vec<Hit> {
        hits.into_iter()
            .map(|h| {
                // Either tier: gallery.json's item, or a partitioned gallery's metadata block (read lazily).
                let item = self.0.item(h.id as usize);
                Hit {
                    id: h.id as usize,
                    score: h.score,
                    strong: h.strong,
                    file: h.file,
                    thumb: h.thumb,
                    caption: h.caption,
                    source: item.as_ref().map(|i| i.source.clone()).unwrap_or_default(),
                    licence: item.as_ref().map(|i| i.licence.clone()).unwrap_or_default(),
                    url: item.and_then(|i| i.url),
                }
            })
            .collect()
    }
}

impl Searcher for NativeSearcher {
    fn model_id(&self) -> String {
        self.0.model_id().to_string()
    }
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, String> {
        self.0.search(query, k).map(|h| self.hits(h)).map_err(|e| e.to_string())
    }
    fn similar(&self, id: usize, k: usize) -> Result<Vec<Hit>, String> {
        self.0.similar(id, k).map(|h| self.hits(h)).map_err(|e| e.to_string())
    }
    /// As the default, with a missing picture answered 404 and the liked picture's own entry.
    fn page(&self, request: &SearchRequest) -> Result<Page, SearchError> {
        let wanted = request.offset.saturating_add(request.k);
        let status = |e: wasm_model::EngineError| match e {
            wasm_model::EngineError::UnknownImage { .. } => SearchError::new(axum::http::StatusCode::NOT_FOUND, e.to_string()),
            e => SearchError::bad(e.to_string()),
        };
        let (all, like_item) = match &request.query {
            Query::Text(q) => (self.0.search(q, wanted).map_err(status)?, None),
            Query::Like(id) => {
                let all = self.0.similar(*id, wanted).map_err(status)?;
                let own = self.0.item(*id).map(|item| Hit {
                    id: *id,
                    score: 1.0,
                    strong: None,
                    file: item.file,
                    thumb: item.thumb,
                    caption: item.caption,
                    source: item.source,
                    licence: item.licence,
                    url: item.url,
                });
                (all, own)
            }
        };
        Ok(Page { results: self.hits(all.into_iter().skip(request.offset).collect()), like_item })
    }
    fn health(&self) -> Result<serde_json::Value, SearchError> {
        Ok(serde_json::json!({
            "backend": "memory",
            "model_id": self.0.model_id(),
            "images": self.0.gallery_len(),
            "partitioned": self.0.partitioned().is_some(),
        }))
    }
}

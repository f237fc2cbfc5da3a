//! Loads wasm-model's native engine from `static/model` + `static/gallery` for `/api/search`.

use std::path::Path;
use std::sync::Arc;

use wasm_model::engine::{Engine, RefinedHit, Scope};
use wasm_model::workflow::Refinement;

use crate::api::{Hit, Searcher};
use crate::backend::{GalleryEntry, Page, PassageIdea, PassagePage, Query, SearchError, SearchRequest, Similar};

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
    /// `h` with the rest of its gallery entry (either tier: gallery.json's item, or a partitioned gallery's
    /// metadata block, read lazily) and the near-duplicates collapsed into it.
    fn hit(&self, h: wasm_model::engine::Hit, similar: Vec<u32>) -> Hit {
        let item = self.0.item(h.id as usize);
        Hit {
            id: h.id as usize,
            score: h.score,
            strong: h.strong,
            entry: GalleryEntry {
                file: h.file,
                thumb: h.thumb,
                caption: h.caption,
                source: item.as_ref().map(|i| i.source.clone()).unwrap_or_default(),
                licence: item.as_ref().map(|i| i.licence.clone()).unwrap_or_default(),
                url: item.and_then(|i| i.url),
            },
            similar: similar.into_iter().filter_map(|id| self.similar(id as usize)).collect(),
        }
    }

    /// A collapsed near-duplicate's entry (either tier).
    fn similar(&self, id: usize) -> Option<Similar> {
        let item = self.0.item(id)?;
        Some(Similar { id, entry: item.into() })
    }

    fn hits(&self, hits: Vec<wasm_model::engine::Hit>) -> Vec<Hit> {
        hits.into_iter().map(|h| self.hit(h, Vec::new())).collect()
    }

    fn refined_hits(&self, hits: Vec<RefinedHit>) -> Vec<Hit> {
        hits.into_iter().map(|h| self.hit(h.hit, h.similar)).collect()
    }

    /// Marks must name gallery pictures: an unknown one is the request's fault (400), named.
    fn check_marks(&self, r: &Refinement) -> Result<(), SearchError> {
        let n = self.0.gallery_len();
        for (name, ids) in [("up", &r.up), ("down", &r.down)] {
            if let Some(id) = ids.iter().find(|&&id| id as usize >= n) {
                return Err(SearchError::bad(format!("{name} names picture {id}, which is not in the gallery (it has {n} images, ids 0..{n})")));
            }
        }
        Ok(())
    }
}

/// A failed engine search as the API answers it: 404 for an unknown picture, 400 for the rest.
fn status(e: wasm_model::EngineError) -> SearchError {
    match e {
        wasm_model::EngineError::UnknownImage { .. } => SearchError::new(axum::http::StatusCode::NOT_FOUND, e.to_string()),
        e => SearchError::bad(e.to_string()),
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
    /// As the default, with a missing picture answered 404, the liked picture's own entry, and refined queries
    /// and passages (the engine's `search_refined`, `similar_refined`, `passage`: the first `offset + k` ranked,
    /// then the page cut).
    fn page(&self, request: &SearchRequest) -> Result<Page, SearchError> {
        let wanted = request.offset.saturating_add(request.k);
        let r = &request.refinement;
        self.check_marks(r)?;
        let refined = !r.is_plain();
        let (all, like_item) = match &request.query {
            Query::Text(q) if refined => (self.refined_hits(self.0.search_refined(q, wanted, Scope::All, r).map_err(status)?), None),
            Query::Text(q) => (self.hits(self.0.search(q, wanted).map_err(status)?), None),
            Query::Like(id) => {
                let all = if refined {
                    self.refined_hits(self.0.similar_refined(*id, wanted, r).map_err(status)?)
                } else {
                    self.hits(self.0.similar(*id, wanted).map_err(status)?)
                };
                let own = self.0.item(*id).map(|item| Hit { id: *id, score: 1.0, strong: None, entry: item.into(), similar: Vec::new() });
                (all, own)
            }
            Query::Passage { text, k_idea } => {
                let answer = self.0.passage(text, *k_idea, request.k, Scope::All, r).map_err(status)?;
                let ideas = answer
                    .ideas
                    .into_iter()
                    .map(|idea| PassageIdea { text: idea.idea.text, first: idea.idea.first, last: idea.idea.last, results: self.refined_hits(idea.results) })
                    .collect();
                let passage = PassagePage { ideas, sentences: answer.sentences, total: answer.total, without_words: answer.without_words };
                return Ok(Page { results: self.refined_hits(answer.whole), like_item: None, passage: Some(passage) });
            }
        };
        Ok(Page { results: all.into_iter().skip(request.offset).collect(), like_item, passage: None })
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

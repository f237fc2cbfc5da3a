//! `web --db URL`: `/api/search` answered from PostgreSQL + pgvector (the database tier, db/README.md) with the
//! shipped scoring, through `db::DbSearcher` (connection pool, timeouts, bounded searches, reconnects by
//! itself). Searches are awaited on the executor (no blocking thread waits on the database); failures keep
//! their status: 400 a bad prompt, 404 an unknown picture, 503 with the reason while the database is down,
//! overloaded or not loaded. The page finds this mode in `/gallery/gallery.json`, which this server answers with
//! a descriptor (`descriptor_route`); thumbnails stay static files under the static folder's gallery/.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use db::{DbError, DbSearcher, RefinedHit, RefinedQuery};
use wasm_model::engine::PassagePlan;

use crate::backend::{AsyncSearcher, BoxFuture, GalleryEntry, Hit, Page, PassageIdea, PassagePage, Query, SearchError, SearchRequest, Searcher, Similar};
use crate::reload::SharedSearcher;
use crate::search_pool::{PoolError, SearchPool};

/// gallery.json's `format` for a gallery searched on the server (static/worker/server-gallery.js reads it).
pub const SERVER_GALLERY_FORMAT: &str = "imgpick-server-gallery";

pub struct DbBackend {
    searcher: DbSearcher,
    /// Prompts are encoded here, on the search pool (at most `search_workers` at once, as the in-memory engine's
    /// searches are), and only the vector goes to the database: the CPU work stays bounded however many
    /// searches wait on the database.
    encoder: Arc<wasm_model::TextEncoder>,
    pool: SearchPool,
    /// The runtime the blocking methods (`search` / `similar`, run on the search pool: share previews) wait on.
    runtime: tokio::runtime::Handle,
}

impl DbBackend {
    /// Call inside the server's runtime. Connects lazily: built even while the database is down.
    pub fn new(model: &wasm_model::ModelDir, config: db::DbConfig, search_workers: usize) -> anyhow::Result<Self> {
        Ok(Self {
            searcher: DbSearcher::new(model, config)?,
            encoder: Arc::new(wasm_model::TextEncoder::new(model).context("cannot build the text encoder")?),
            pool: SearchPool::new(search_workers),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The backend `web --db URL` serves: queries encoded with `static_dir/model` (the page's model, which the
    /// database's gallery must have been loaded with) by at most `search_workers` threads, `connections`
    /// database searches at once, HNSW breadth `ef_search`.
    pub fn open(static_dir: &Path, url: &str, connections: usize, ef_search: usize, search_workers: usize) -> anyhow::Result<Self> {
        let model_dir = static_dir.join("model");
        let model = wasm_model::ModelDir::load(&model_dir)
            .with_context(|| format!("--db needs the model that encodes the queries in {}", model_dir.display()))?;
        let mut config = db::DbConfig::from_url(url)?;
        config.pool_size = connections;
        config.max_in_flight = connections;
        config.ef_search = ef_search;
        Self::new(&model, config, search_workers)
    }

    pub fn db(&self) -> &DbSearcher {
        &self.searcher
    }

    /// CPU work (text encoding) on the search pool, bounded as the in-memory engine's searches are.
    async fn on_pool<T: Send + 'static>(&self, job: impl FnOnce() -> Result<T, wasm_model::EngineError> + Send + 'static) -> Result<T, SearchError> {
        self.pool
            .run(job)
            .await
            .map_err(|PoolError::Panicked(why)| SearchError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("search failed: {why}")))?
            .map_err(|e| SearchError::bad(e.to_string()))
    }

    async fn page_of(&self, request: &SearchRequest) -> Result<Page, SearchError> {
        let SearchRequest { query, k, offset, refinement } = request;
        let refined = !refinement.is_plain();
        match query {
            Query::Text(q) => {
                let (encoder, q) = (Arc::clone(&self.encoder), q.clone());
                let vector = self.on_pool(move || Ok(wasm_model::query::query_vector(&encoder, &q)?)).await?;
                if refined {
                    let results = self.searcher.search_refined(&RefinedQuery::Text(vector), *k, *offset, refinement).await.map_err(status)?;
                    return Ok(Page { results: refined_hits(results), ..Page::default() });
                }
                let results = self.searcher.search_encoded(&vector, *k, *offset).await.map_err(status)?;
                Ok(Page { results: hits(results), ..Page::default() })
            }
            Query::Like(id) if refined => {
                let query = RefinedQuery::Like(*id);
                let (own, results) = tokio::join!(self.searcher.image(*id), self.searcher.search_refined(&query, *k, *offset, refinement));
                Ok(Page { results: refined_hits(results.map_err(status)?), like_item: Some(hit(own.map_err(status)?)), passage: None })
            }
            Query::Like(id) => {
                let (own, results) = tokio::join!(self.searcher.image(*id), self.searcher.similar(*id, *k, *offset));
                Ok(Page { results: hits(results.map_err(status)?), like_item: Some(hit(own.map_err(status)?)), passage: None })
            }
            Query::Passage { text, k_idea } => {
                let (encoder, text) = (Arc::clone(&self.encoder), text.clone());
                let plan = self.on_pool(move || PassagePlan::new(&encoder, &text)).await?;
                let answer = self.searcher.passage(&plan, *k_idea, *k, refinement).await.map_err(status)?;
                let ideas = answer
                    .ideas
                    .into_iter()
                    .map(|i| PassageIdea { text: i.idea.text, first: i.idea.first, last: i.idea.last, results: refined_hits(i.results) })
                    .collect();
                let passage = PassagePage { ideas, sentences: answer.sentences, total: answer.total, without_words: answer.without_words };
                Ok(Page { results: refined_hits(answer.whole), like_item: None, passage: Some(passage) })
            }
        }
    }
}

/// A database failure as the API answers it: the library's status, its message (503s name the reason).
fn status(e: DbError) -> SearchError {
    let code = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("database search failed: {e}");
    }
    SearchError::new(code, e.to_string())
}

fn hit(h: db::Hit) -> Hit {
    Hit { id: h.hit.id as usize, score: h.hit.score, strong: h.hit.strong, similar: Vec::new(), entry: entry(h) }
}

/// A database row's gallery entry.
fn entry(h: db::Hit) -> GalleryEntry {
    GalleryEntry { file: h.hit.file, thumb: h.hit.thumb, caption: h.hit.caption, source: h.source, licence: h.licence, url: h.url }
}

fn hits(hs: Vec<db::Hit>) -> Vec<Hit> {
    hs.into_iter().map(hit).collect()
}

fn refined_hits(hs: Vec<RefinedHit>) -> Vec<Hit> {
    let similar = |s: db::Hit| Similar { id: s.hit.id as usize, entry: entry(s) };
    hs.into_iter().map(|h| Hit { similar: h.similar.into_iter().map(similar).collect(), ..hit(h.hit) }).collect()
}

impl Searcher for DbBackend {
    fn model_id(&self) -> String {
        self.searcher.model_id().to_string()
    }
    /// Blocking (the search pool's threads: share previews); the API's searches take `as_async`.
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, String> {
        self.runtime.block_on(self.searcher.search(query, k, 0)).map(hits).map_err(|e| e.to_string())
    }
    fn similar(&self, id: usize, k: usize) -> Result<Vec<Hit>, String> {
        self.runtime.block_on(self.searcher.similar(id, k, 0)).map(hits).map_err(|e| e.to_string())
    }
    fn page(&self, request: &SearchRequest) -> Result<Page, SearchError> {
        self.runtime.block_on(self.page_of(request))
    }
    fn health(&self) -> Result<serde_json::Value, SearchError> {
        self.runtime.block_on(AsyncSearcher::health(self))
    }
    fn as_async(&self) -> Option<&dyn AsyncSearcher> {
        Some(self)
    }
}

impl AsyncSearcher for DbBackend {
    fn page<'a>(&'a self, request: &'a SearchRequest) -> BoxFuture<'a, Result<Page, SearchError>> {
        Box::pin(self.page_of(request))
    }

    fn health(&self) -> BoxFuture<'_, Result<serde_json::Value, SearchError>> {
        Box::pin(async move {
            let meta = self.searcher.health().await.map_err(status)?;
            let config = self.searcher.config();
            Ok(serde_json::json!({
                "backend": "database",
                "database": config.redacted_url(),
                "model_id": meta.model_id,
                "images": meta.rows_total,
                "vector_type": meta.vector_type,
                "hnsw": { "m": meta.hnsw_m, "ef_construction": meta.hnsw_ef_construction, "ef_search": config.ef_search },
                "duplicate_threshold": meta.duplicates.threshold,
            }))
        })
    }

    fn descriptor(&self) -> BoxFuture<'_, serde_json::Value> {
        Box::pin(async move {
            let (count, unavailable) = match self.searcher.health().await {
                Ok(meta) => (Some(meta.rows_total), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let mut d = serde_json::json!({
                "format": SERVER_GALLERY_FORMAT,
                "format_version": 1,
                "model_id": self.searcher.model_id(),
                "count": count,
                "search": "api/search",
            });
            if let Some(why) = unavailable {
                d["unavailable"] = why.into();
            }
            d
        })
    }
}

/// `/gallery/gallery.json` for a backend that searches on the server (the database), else nothing (the file on
/// disk is served). The descriptor is 200 even while the database is down: `count` is null then and
/// `unavailable` says why, which the page shows.
pub fn descriptor_route(searcher: &SharedSearcher) -> Router {
    let serves_remotely = searcher.get().is_ok_and(|s| s.as_async().is_some());
    if !serves_remotely {
        return Router::new();
    }
    Router::new().route("/gallery/gallery.json", get(descriptor)).with_state(searcher.clone())
}

async fn descriptor(State(searcher): State<SharedSearcher>) -> axum::response::Response {
    let current: Result<Arc<dyn Searcher>, _> = searcher.get();
    match current {
        Ok(s) => match s.as_async() {
            Some(remote) => Json(remote.descriptor().await).into_response(),
            None => (StatusCode::NOT_FOUND, "404 not found\n").into_response(),
        },
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": why.to_string() }))).into_response(),
    }
}

//! `/api/search?q=…&k=…` and `/api/search?like=ID&k=…`: the same ranking as the page, computed natively,
//! for clients without a browser (scripts, other services). Answers JSON; every error is JSON `{ "error": … }`.
//! Refinements (issue #20) take the page's parameter names — `up`, `down`, `orient`, `min`, `lic`, `collapse`,
//! `vary` (wasm-model's `Refinement::from_params`) — and `text=` searches a pasted passage (`k_idea` per idea);
//! long passages go in a `POST /api/search` JSON body with the same names (`request.rs`).
//! `/api/preview.jpg?q=…`: the picture of a shared link (`preview.rs`), under the same search limits.
//! `/api/health`: 200 with what is served, or 503 with the reason. The backends: `backend.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    error_handling::HandleErrorLayer,
    extract::{RawQuery, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    BoxError, Json, Router,
};
use serde::Serialize;
use tokio::sync::Semaphore;
use wasm_model::workflow::Refinement;
use tower::{limit::GlobalConcurrencyLimitLayer, ServiceBuilder};

use crate::limits::{Limits, RETRY_AFTER_SECS};
use crate::preview::{Previews, CACHE_ENTRIES, TILES};
use crate::reload::SharedSearcher;
use crate::search_pool::{PoolError, SearchPool};

/// Longest accepted prompt, in bytes (the query parser also bounds its words; this bounds the parsing).
pub const MAX_QUERY_BYTES: usize = 1000;
/// Most results per request.
pub const MAX_K: usize = 100;
pub const DEFAULT_K: usize = 10;
/// Ranks served: `offset + k` at most this (the engine's and the database's limit).
pub const MAX_RANK: usize = wasm_model::engine::MAX_K;

pub use crate::backend::{GalleryEntry, Hit, Searcher};
use crate::backend::{Page, PassagePage, SearchError, SearchRequest};
use crate::request::{parse_request, request_pairs, MAX_BODY_BYTES};

#[derive(Clone)]
struct ApiState {
    searcher: SharedSearcher,
    pool: SearchPool,
    timeout: Duration,
    previews: Arc<Previews>,
}

/// `/api/*`. Searches and previews beyond `limits.max_pending_searches` together (running or waiting for one of
/// the `search_workers`) are shed at once with 503 + Retry-After.
pub fn routes(searcher: SharedSearcher, limits: &Limits, static_dir: &Path) -> Router {
    let previews = Arc::new(Previews::new(static_dir, CACHE_ENTRIES));
    let state = ApiState { searcher, pool: SearchPool::new(limits.search_workers), timeout: limits.request_timeout, previews };
    let admission = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            ApiError::busy("the server is busy (too many searches at once); retry in a moment")
        }))
        .load_shed()
        // one semaphore for both routes: the bound is on the pool's work, whichever route brings it
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(Arc::new(Semaphore::new(limits.max_pending_searches.max(1)))));
    let search_route = get(search)
        .post(search_posted)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(admission.clone())
        .fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "/api/search answers GET (and HEAD) and POST only") });
    let preview_route = get(preview).route_layer(admission).fallback(|| async {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "/api/preview.jpg answers GET (and HEAD) only")
    });
    Router::new()
        .route("/search", search_route)
        .route("/preview.jpg", preview_route)
        .route("/health", get(health))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "unknown API endpoint; try /api/search?q=a+dog&k=10")
        })
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct SearchResponse {
    model_id: String,
    query: Option<String>,
    like: Option<usize>,
    k: usize,
    offset: usize,
    /// The refinement applied (left out when none): what a share link must carry to reproduce the answer.
    #[serde(skip_serializing_if = "Refinement::is_plain")]
    refinement: Refinement,
    /// A query's ranking; a passage's suggestions for the whole passage.
    results: Vec<Hit>,
    /// `like`: the picture's own entry, when the backend gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    like_item: Option<Hit>,
    /// `text`: the passage's ideas (each with its sentences and suggestions) and what was searched; `results`
    /// is then the passage's `whole` too.
    #[serde(skip_serializing_if = "Option::is_none")]
    k_idea: Option<usize>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    passage: Option<PassageResponse>,
}

/// A passage's part of the answer: `ideas` and `whole` as wasm-model's `PassageAnswer` serialises them.
#[derive(Debug, Serialize)]
struct PassageResponse {
    ideas: Vec<crate::backend::PassageIdea>,
    whole: Vec<Hit>,
    sentences: usize,
    total: usize,
    without_words: usize,
}

/// An error answer: `{ "error": message }` with `status`; 503s add `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        Self::new(e.status, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        res
    }
}

async fn search(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> Result<Json<SearchResponse>, ApiError> {
    let pairs = request_pairs(raw.as_deref(), None)?;
    answer(state, pairs).await
}

/// `POST /api/search`: the parameters in a JSON object body (`{"text": "…", "k": 10, "up": [3, 17]}`), and any
/// in the query string (each name once across both).
async fn search_posted(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), format!("cannot read the request body: {} (at most {MAX_BODY_BYTES} bytes)", e.body_text())))?;
    let pairs = request_pairs(raw.as_deref(), Some(&body))?;
    answer(state, pairs).await
}

async fn answer(state: ApiState, pairs: Vec<(String, String)>) -> Result<Json<SearchResponse>, ApiError> {
    let parsed = parse_request(&pairs)?;
    let searcher = state
        .searcher
        .get()
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("search API unavailable: {why}")))?;
    let request: SearchRequest = parsed.request;
    let model_id = searcher.model_id();
    let too_long = || {
        ApiError::busy(format!(
            "the search took longer than {:.1} s (the server is busy); retry in a moment",
            state.timeout.as_secs_f64()
        ))
    };
    let (k, offset, refinement) = (request.k, request.offset, request.refinement.clone());
    let page: Page = match searcher.as_async() {
        // I/O (the database): awaited here; the backend bounds its own connections and waits.
        Some(remote) => tokio::time::timeout(state.timeout, remote.page(&request)).await.map_err(|_| too_long())??,
        None => {
            let searcher = searcher.clone();
            let job = state.pool.run(move || searcher.page(&request));
            tokio::time::timeout(state.timeout, job)
                .await
                .map_err(|_| too_long())?
                .map_err(|PoolError::Panicked(why)| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("search failed: {why}"))
                })??
        }
    };
    let passage = page.passage.map(|PassagePage { ideas, sentences, total, without_words }| PassageResponse {
        ideas,
        whole: page.results.clone(),
        sentences,
        total,
        without_words,
    });
    Ok(Json(SearchResponse {
        model_id,
        query: parsed.query,
        like: parsed.like,
        k,
        offset,
        refinement,
        results: page.results,
        like_item: page.like_item,
        k_idea: parsed.k_idea,
        passage,
    }))
}

/// `/api/health`: 200 with what is served (`status: "ok"`, the model, how many images, the backend), 503 with
/// the reason (no model or gallery loaded, the database down or not loaded).
async fn health(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let searcher = state.searcher.get().map_err(|why| ApiError::busy(format!("search API unavailable: {why}")))?;
    let mut served = match searcher.as_async() {
        Some(remote) => tokio::time::timeout(state.timeout, remote.health())
            .await
            .map_err(|_| ApiError::busy("the health check took too long"))??,
        None => searcher.health()?,
    };
    if let Some(fields) = served.as_object_mut() {
        fields.insert("status".into(), "ok".into());
    }
    Ok(Json(served))
}

/// `/api/preview.jpg?q=…`: the shared link's picture (`preview.rs`); errors as `/api/search`'s, in JSON.
async fn preview(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let pairs = request_pairs(raw.as_deref(), None)?;
    let query = pairs
        .into_iter()
        .find(|(name, q)| name == "q" && !q.trim().is_empty())
        .map(|(_, q)| q)
        .ok_or_else(|| ApiError::bad("missing query: /api/preview.jpg?q=a+dog+on+a+beach"))?;
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad(format!("q is {} bytes; at most {MAX_QUERY_BYTES} are accepted", query.len())));
    }
    let searcher = state
        .searcher
        .get()
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("previews unavailable: {why}")))?;
    let previews = state.previews.clone();
    let job = state.pool.run(move || {
        let hits = searcher.search(&query, TILES).map_err(ApiError::bad)?;
        Ok::<_, ApiError>(previews.picture(&searcher.model_id(), &hits))
    });
    let jpeg = tokio::time::timeout(state.timeout, job)
        .await
        .map_err(|_| ApiError::busy("the preview took too long (the server is busy); retry in a moment"))?
        .map_err(|PoolError::Panicked(why)| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("preview failed: {why}")))??;
    // Chat services fetch a link's picture once and keep it; an hour here spares repeated fetches.
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "public, max-age=3600")], jpeg).into_response())
}

//! `/api/search?q=…&k=…` and `/api/search?like=ID&k=…`: the same ranking as the page, computed natively,
//! for clients without a browser (scripts, other services). Answers JSON; errors are JSON `{ "error": … }`.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};

/// Longest accepted prompt, in bytes (the tokenizer keeps 48 tokens anyway; this bounds the work per request).
pub const MAX_QUERY_BYTES: usize = 1000;
/// Most results per request.
pub const MAX_K: usize = 100;
pub const DEFAULT_K: usize = 10;

/// One ranked gallery item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub id: usize,
    pub score: f32,
    pub file: String,
    pub thumb: String,
    pub caption: String,
    pub source: String,
    pub licence: String,
    pub url: Option<String>,
}

/// The ranking backend (wasm-model's native engine in production; a fake in tests).
pub trait Searcher: Send + Sync + 'static {
    fn model_id(&self) -> String;
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, String>;
    fn similar(&self, id: usize, k: usize) -> Result<Vec<Hit>, String>;
}

#[derive(Clone)]
pub struct ApiState {
    searcher: Result<Arc<dyn Searcher>, Arc<str>>,
}

impl ApiState {
    pub fn new(searcher: Result<Arc<dyn Searcher>, String>) -> Self {
        Self { searcher: searcher.map_err(Arc::from) }
    }
}

pub fn routes(state: ApiState) -> Router {
    Router::new().route("/search", get(search)).fallback(|| async {
        ApiError(StatusCode::NOT_FOUND, "unknown API endpoint; try /api/search?q=a+dog&k=10".into())
    }).with_state(state)
}

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    like: Option<String>,
    k: Option<String>,
}

#[derive(Debug, Serialize)]
struct SearchResponse {
    model_id: String,
    query: Option<String>,
    like: Option<usize>,
    k: usize,
    results: Vec<Hit>,
}

pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

async fn search(State(state): State<ApiState>, Query(p): Query<SearchParams>) -> Result<Json<SearchResponse>, ApiError> {
    let searcher = state.searcher.clone().map_err(|why| {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("search API unavailable: {why}"))
    })?;
    let k = match p.k.as_deref() {
        None | Some("") => DEFAULT_K,
        Some(s) => match s.parse::<usize>() {
            Ok(k) if (1..=MAX_K).contains(&k) => k,
            _ => return Err(bad(format!("k must be an integer from 1 to {MAX_K}, got {s:?}"))),
        },
    };
    let like = match p.like.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<usize>().map_err(|_| bad(format!("like must be a gallery item id, got {s:?}")))?),
    };
    let query = p.q.filter(|q| !q.trim().is_empty());
    if let Some(q) = &query {
        if q.len() > MAX_QUERY_BYTES {
            return Err(bad(format!("q is {} bytes; at most {MAX_QUERY_BYTES} are accepted", q.len())));
        }
    }
    let (q2, model_id) = (query.clone(), searcher.model_id());
    // Text encoding and ranking are CPU work: keep them off the async executor.
    let results = tokio::task::spawn_blocking(move || match (q2, like) {
        (Some(_), Some(_)) => Err(bad("give either q or like, not both")),
        (Some(q), None) => searcher.search(&q, k).map_err(bad),
        (None, Some(id)) => searcher.similar(id, k).map_err(bad),
        (None, None) => Err(bad("missing query: /api/search?q=a+dog+on+a+beach&k=10 (or like=ID)")),
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("search failed: {e}")))??;
    Ok(Json(SearchResponse { model_id, query, like, k, results }))
}

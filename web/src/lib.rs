//! imgpick's web server: serves the static/ folder (page, wasm package, model, gallery) with the headers a
//! static deployment should have, and an optional native `/api/search` for non-browser clients.
//!
//! The page never needs this server at query time; any static host serving `static/` with the same
//! headers works. The router is built by [`router`] so tests can drive it with `oneshot` (no network).

pub mod api;
pub mod engine;
pub mod headers;

use std::path::PathBuf;
use std::sync::Arc;

use axum::{http::StatusCode, middleware, routing::get, Router};
use tower_http::{
    compression::{
        predicate::{NotForContentType, Predicate, SizeAbove},
        CompressionLayer,
    },
    services::ServeDir,
};

pub use api::{ApiState, Hit, Searcher};

/// What the server serves.
pub struct Config {
    /// The folder served at `/` (normally `static/`).
    pub static_dir: PathBuf,
    /// The native search backend, or why there is none (the API then answers 503 with that reason).
    pub searcher: Result<Arc<dyn Searcher>, String>,
}

/// Builds the whole app: `/api/*` + the static folder, wrapped in cache, security and compression layers.
pub fn router(config: Config) -> Router {
    let files = ServeDir::new(&config.static_dir)
        .append_index_html_on_directories(true)
        .not_found_service(get(not_found).head(not_found));

    // Compress text and wasm; not images (already compressed) nor octet-stream (weights and embeddings are
    // nearly incompressible, and an uncompressed response keeps its Content-Length, which the page's
    // progress bar uses).
    let compress = SizeAbove::new(256)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::const_new("application/octet-stream"))
        .and(NotForContentType::SSE);

    Router::new()
        .nest("/api", api::routes(ApiState::new(config.searcher)))
        .fallback_service(files)
        // Order: the innermost layer (listed first) sees the uncompressed file response.
        .layer(middleware::from_fn(headers::etag))
        .layer(middleware::from_fn(headers::cache_control))
        .layer(middleware::from_fn(headers::reject_hidden_paths))
        .layer(CompressionLayer::new().gzip(true).br(true).compress_when(compress))
        .layer(middleware::from_fn(headers::security_headers))
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 not found\n")
}

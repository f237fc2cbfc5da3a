//! imgpick's web server: serves the static/ folder (page, wasm package, model, gallery) with the headers a
//! static deployment should have, an optional native `/api/search` for non-browser clients, and share tags with
//! a preview picture for `?q=` links (`share`, `preview`). With `--db`, `/api/search` answers from PostgreSQL
//! (`db_search`) and the page searches through it.
//!
//! The page never needs this server at query time (unless its gallery is in a database); any static host
//! serving `static/` with the same headers works. The router is built by [`router`] so tests can drive it with `oneshot` (no network);
//! [`serve`] runs it on a socket with the connection limits.

pub mod api;
pub mod backend;
pub mod db_search;
pub mod engine;
pub mod files;
pub mod headers;
pub mod limits;
pub mod precompress;
pub mod preview;
pub mod reload;
pub mod request;
pub mod search_pool;
pub mod serve;
pub mod share;

use std::path::PathBuf;
use std::sync::Arc;

use axum::{http::StatusCode, middleware, routing::get, Router};
use tower_http::{
    compression::{
        predicate::{NotForContentType, Predicate, SizeAbove},
        CompressionLayer,
    },
    services::ServeDir,
    timeout::TimeoutLayer,
};

pub use api::{GalleryEntry, Hit, Searcher};
pub use limits::Limits;
pub use reload::SharedSearcher;
pub use serve::serve;

/// What the server serves.
pub struct Config {
    /// The folder served at `/` (normally `static/`).
    pub static_dir: PathBuf,
    /// The native search backend, or why there is none (the API then answers 503 with that reason); a
    /// [`reload::Reloader`] may replace it while the server runs.
    pub searcher: SharedSearcher,
    pub limits: Limits,
    /// The site's address as visitors see it (`https://…/`), for the absolute URLs of shared links' tags; `None`:
    /// taken from each request's `Host` (http).
    pub public_url: Option<String>,
}

impl Config {
    /// `static_dir` with `searcher` and the default limits.
    pub fn new(static_dir: impl Into<PathBuf>, searcher: Result<Arc<dyn Searcher>, String>) -> Self {
        Self { static_dir: static_dir.into(), searcher: SharedSearcher::new(searcher), limits: Limits::default(), public_url: None }
    }
}

/// Builds the whole app: `/api/*` + the static folder, wrapped in cache, security and compression layers.
pub fn router(config: Config) -> Router {
    let serve_dir = ServeDir::new(&config.static_dir)
        .append_index_html_on_directories(true)
        .not_found_service(get(not_found).head(not_found));
    let roots = Arc::new(files::ServedRoots::new(&config.static_dir));
    let compressed = Arc::new(precompress::CompressedFiles::new(&config.static_dir));
    let share = Arc::new(share::SharePage::new(&config.static_dir, config.public_url.clone(), config.searcher.clone()));
    // Innermost first: ServeDir sees only usable ranges; the ETag is computed on the plain file; compressed
    // copies replace the body; nothing of a refused symlink is read.
    let files = Router::new()
        .fallback_service(serve_dir)
        .layer(middleware::from_fn(files::ignore_unusable_ranges))
        .layer(middleware::from_fn(headers::etag))
        .layer(middleware::from_fn_with_state(compressed, precompress::serve_compressed))
        .layer(middleware::from_fn_with_state(roots, files::refuse_escaping_symlinks))
        // `/?q=…` gets the page with that query's share tags (Open Graph, Twitter card); other requests pass
        .layer(middleware::from_fn_with_state(share, share::inject_share_tags))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, config.limits.request_timeout));

    // On-the-fly compression for what `precompress` does not cache (API answers mostly). Not images (already
    // compressed) nor octet-stream (weights and embeddings are nearly incompressible, and an uncompressed
    // response keeps its Content-Length, which the page's progress bar uses).
    let compress = SizeAbove::new(256)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::const_new("application/octet-stream"))
        .and(NotForContentType::SSE);

    Router::new()
        // `web --db`: the page finds the server-side search in gallery.json (db_search.rs)
        .merge(db_search::descriptor_route(&config.searcher))
        .nest("/api", api::routes(config.searcher, &config.limits, &config.static_dir))
        .fallback_service(files)
        .layer(middleware::from_fn(headers::cache_control))
        .layer(middleware::from_fn(headers::reject_hidden_paths))
        .layer(CompressionLayer::new().gzip(true).br(true).compress_when(compress))
        .layer(middleware::from_fn(headers::security_headers))
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 not found\n")
}

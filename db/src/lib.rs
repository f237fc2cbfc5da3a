//! imgpick's database tier (README.md): a published gallery in PostgreSQL + pgvector, searched with the same
//! query encoding and the same scoring as `wasm_model::Engine`, for collections one machine's memory cannot hold
//! or many servers share.
//!
//! ```no_run
//! # async fn demo() -> Result<(), db::DbError> {
//! let config = db::DbConfig::from_url("postgres://imgpick:PASSWORD@127.0.0.1:5432/imgpick")?;
//! let gallery = db::PublishedGallery::open("static/model", "static/gallery")?;
//! db::load(&config, &gallery, &db::LoadOptions::default(), |_| {}).await?;
//! let model = wasm_model::ModelDir::load("static/model")?;
//! let searcher = db::DbSearcher::new(&model, config)?;
//! let hits = searcher.search("a dog on a beach", 10, 0).await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod load;
pub mod local;
mod refine;
pub mod schema;
mod search;
mod source;

pub use config::{DbConfig, ScanMode, DEFAULT_EF_SEARCH};
pub use error::DbError;
pub use load::{load, LoadOptions, LoadOutcome, LoadProgress, LoadReport};
pub use schema::{GalleryMeta, LoadState, VectorType};
pub use refine::{PassageHits, PassageIdeaHits, RefinedHit, RefinedQuery};
pub use search::{DbSearcher, Hit};
pub use source::{similar_query_vector, text_query_vector, PublishedGallery, StoredLayout};

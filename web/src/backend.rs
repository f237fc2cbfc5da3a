//! What `/api/*` asks of a search backend and what a backend answers: the [`Searcher`] trait (the in-memory
//! engine, `engine.rs`; the database, `db_search.rs`; fakes in tests), one page of a ranking, and failures that
//! carry their HTTP status (400 the request, 404 no such picture, 503 try again later).
//!
//! Two kinds of backend: one that computes (the engine: CPU work, run on the bounded pool of blocking threads,
//! `search_pool.rs`) implements the blocking methods; one that waits (the database: I/O, awaited on the
//! executor, bounded by its own connection pool) also answers [`Searcher::as_async`].

use std::future::Future;
use std::pin::Pin;

use axum::http::StatusCode;
use serde::Serialize;
use wasm_model::workflow::Refinement;

/// One ranked gallery item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub id: usize,
    pub score: f32,
    /// Text queries of a calibrated model: whether the score reaches its strong-match threshold (wasm-model's
    /// `Hit::strong`); left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strong: Option<bool>,
    #[serde(flatten)]
    pub entry: GalleryEntry,
    /// Refined queries that collapse near-duplicates: the pictures collapsed into this one, best first (the
    /// page's "+N similar"), with their gallery entries (a page searching on the server has no gallery of its
    /// own to name them from); left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<Similar>,
}

/// A near-duplicate collapsed into a result: its gallery entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Similar {
    pub id: usize,
    #[serde(flatten)]
    pub entry: GalleryEntry,
}

/// What an answer says of a gallery picture besides its id: its gallery.json entry's file, thumbnail, caption and
/// credit (flattened into [`Hit`] and [`Similar`], so the JSON keys sit beside `id`).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct GalleryEntry {
    pub file: String,
    pub thumb: String,
    pub caption: String,
    pub source: String,
    pub licence: String,
    pub url: Option<String>,
}

impl From<wasm_model::GalleryItem> for GalleryEntry {
    fn from(item: wasm_model::GalleryItem) -> Self {
        Self { file: item.file, thumb: item.thumb, caption: item.caption, source: item.source, licence: item.licence, url: item.url }
    }
}

/// What to rank.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// A prompt (prompt arithmetic allowed).
    Text(String),
    /// "More like" gallery picture `id` (left out of its own answer).
    Like(usize),
    /// A pasted passage (issue #20): suggestions per idea (`k_idea` each) and `k` for the whole passage.
    Passage { text: String, k_idea: usize },
}

/// One page of a ranking: results `offset .. offset + k`, refined by `refinement` (wasm-model's
/// `workflow::Refinement`: marks, layout filters, collapse, variety; the default changes nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: Query,
    pub k: usize,
    pub offset: usize,
    pub refinement: Refinement,
}

impl SearchRequest {
    /// A plain (unrefined) request.
    pub fn plain(query: Query, k: usize, offset: usize) -> Self {
        Self { query, k, offset, refinement: Refinement::default() }
    }
}

/// A page of results; for `like`, the picture's own entry when the backend can give it (a page that loads no
/// gallery of its own names the picture with it); for a passage, its ideas (`results` is then the whole
/// passage's suggestions).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub results: Vec<Hit>,
    pub like_item: Option<Hit>,
    pub passage: Option<PassagePage>,
}

/// A passage's ideas and what was searched, as wasm-model's `PassageAnswer` says them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PassagePage {
    pub ideas: Vec<PassageIdea>,
    /// Sentences searched / in the passage (past `MAX_SENTENCES` they are left out), and those without words.
    pub sentences: usize,
    pub total: usize,
    pub without_words: usize,
}

/// One idea of a passage (adjacent sentences that embed close together) and its suggestions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassageIdea {
    /// Its sentences, joined.
    pub text: String,
    /// Its first and last sentence (0-based, inclusive).
    pub first: usize,
    pub last: usize,
    pub results: Vec<Hit>,
}

/// A failed search and the status it answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchError {
    pub status: StatusCode,
    pub message: String,
}

impl SearchError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
    /// 400: the request cannot be searched (empty prompt, too many terms, …).
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 503: the backend cannot answer now (its database is down, overloaded, not loaded); retrying later works.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The ranking backend.
pub trait Searcher: Send + Sync + 'static {
    fn model_id(&self) -> String;
    /// The best `k` for a prompt. Blocking: called on the search pool's threads.
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, String>;
    /// The `k` most like picture `id`. Blocking, like `search`.
    fn similar(&self, id: usize, k: usize) -> Result<Vec<Hit>, String>;

    /// One page of a ranking, failures with their status. Blocking. The default takes the first `offset + k` of
    /// `search` / `similar` and answers every failure 400; backends that can tell a missing picture (404) or an
    /// outage (503) apart say so by overriding it.
    /// Refinements and passages are answered only by backends that override it (400 otherwise).
    fn page(&self, request: &SearchRequest) -> Result<Page, SearchError> {
        if !request.refinement.is_plain() {
            return Err(SearchError::bad("this search backend does not refine searches (up, down, orient, min, lic, collapse, vary)"));
        }
        let wanted = request.offset.saturating_add(request.k);
        let all = match &request.query {
            Query::Text(q) => self.search(q, wanted),
            Query::Like(id) => self.similar(*id, wanted),
            Query::Passage { .. } => return Err(SearchError::bad("this search backend does not search passages (text=)")),
        }
        .map_err(SearchError::bad)?;
        Ok(Page { results: all.into_iter().skip(request.offset).collect(), ..Page::default() })
    }

    /// `/api/health`: what is served (a JSON object), or why nothing can be. Blocking but cheap (no search).
    fn health(&self) -> Result<serde_json::Value, SearchError> {
        Ok(serde_json::json!({ "model_id": self.model_id() }))
    }

    /// A backend that waits on I/O rather than the CPU answers here: the API awaits it on the executor instead of
    /// taking one of the pool's threads for the wait.
    fn as_async(&self) -> Option<&dyn AsyncSearcher> {
        None
    }
}

/// The awaited side of a backend that waits on I/O (the database).
pub trait AsyncSearcher: Send + Sync {
    fn page<'a>(&'a self, request: &'a SearchRequest) -> BoxFuture<'a, Result<Page, SearchError>>;
    fn health(&self) -> BoxFuture<'_, Result<serde_json::Value, SearchError>>;
    /// The gallery.json the page reads for a gallery searched here (wasm-model README, "Server gallery").
    fn descriptor(&self) -> BoxFuture<'_, serde_json::Value>;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting;
    impl Searcher for Counting {
        fn model_id(&self) -> String {
            "m".into()
        }
        fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, String> {
            if query.is_empty() {
                return Err("empty".into());
            }
            Ok((0..k)
                .map(|id| Hit {
                    id,
                    score: 1.0 - id as f32 / 100.0,
                    strong: None,
                    entry: GalleryEntry { file: format!("{id}.jpg"), ..GalleryEntry::default() },
                    similar: Vec::new(),
                })
                .collect())
        }
        fn similar(&self, id: usize, _k: usize) -> Result<Vec<Hit>, String> {
            Err(format!("no picture {id}"))
        }
    }

    /// A hit's JSON keys and their order (the page reads them): `strong` after the score when known, the
    /// gallery entry, then the collapsed near-duplicates with theirs. `/api/search`'s whole answer is pinned in
    /// tests/api_refine.rs.
    #[test]
    fn a_hit_serialises_to_the_pinned_json() {
        let hit = Hit {
            id: 3,
            score: 0.5,
            strong: Some(true),
            entry: GalleryEntry {
                file: "a.jpg".into(),
                thumb: "thumbs/a.webp".into(),
                caption: "a \"dog\"".into(),
                source: "test".into(),
                licence: "CC0-1.0".into(),
                url: None,
            },
            similar: vec![Similar {
                id: 9,
                entry: GalleryEntry {
                    file: "b.jpg".into(),
                    thumb: "thumbs/b.webp".into(),
                    caption: "b".into(),
                    source: "s".into(),
                    licence: "CC-BY-4.0".into(),
                    url: Some("https://example.org/b".into()),
                },
            }],
        };
        assert_eq!(
            serde_json::to_string(&hit).unwrap(),
            r#"{"id":3,"score":0.5,"strong":true,"file":"a.jpg","thumb":"thumbs/a.webp","caption":"a \"dog\"","source":"test","licence":"CC0-1.0","url":null,"similar":[{"id":9,"file":"b.jpg","thumb":"thumbs/b.webp","caption":"b","source":"s","licence":"CC-BY-4.0","url":"https://example.org/b"}]}"#
        );
        let plain = Hit { strong: None, similar: Vec::new(), ..hit };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"id":3,"score":0.5,"file":"a.jpg","thumb":"thumbs/a.webp","caption":"a \"dog\"","source":"test","licence":"CC0-1.0","url":null}"#
        );
    }

    /// The default page is the slice `offset .. offset + k` of the first `offset + k`, failures 400.
    #[test]
    fn the_default_page_slices_and_answers_failures_400() {
        let page = Counting.page(&SearchRequest::plain(Query::Text("x".into()), 3, 4)).unwrap();
        assert_eq!(page.results.iter().map(|h| h.id).collect::<Vec<_>>(), [4, 5, 6]);
        let e = Counting.page(&SearchRequest::plain(Query::Like(9), 3, 0)).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (StatusCode::BAD_REQUEST, "no picture 9"));
        assert_eq!(Counting.health().unwrap()["model_id"], "m");
        assert!(Counting.as_async().is_none());
        // what it cannot do, it says
        let refined = SearchRequest { refinement: Refinement { vary: true, ..Default::default() }, ..SearchRequest::plain(Query::Text("x".into()), 3, 0) };
        assert!(Counting.page(&refined).unwrap_err().message.contains("does not refine"));
        let passage = SearchRequest::plain(Query::Passage { text: "A dog.".into(), k_idea: 3 }, 3, 0);
        assert_eq!(Counting.page(&passage).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}

//! Searching the live gallery: text queries encoded exactly as `Engine::search` does (wasm-model's encoder and
//! query arithmetic) and ranked by the folded inner product (the shipped score), "more like this" by plain cosine
//! (as `Engine::similar`), k and offset paging. Every search is bounded: a slot (at most `max_in_flight` at
//! once), a pooled connection, a statement timeout on the server and a deadline on the client; a database that is
//! down answers [`DbError::Unavailable`] with the reason, and the pool reconnects by itself when it is back.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_postgres::types::ToSql;
use wasm_model::engine::MAX_K;
use wasm_model::{EngineError, ModelDir, TextEncoder};

use crate::schema::{self, GalleryMeta, Slot, StoredMeta, LIVE_TABLE, LOADING_TABLE};
use crate::source::{similar_query_vector, text_query_vector};
use crate::{DbConfig, DbError, ScanMode};

/// One ranked image: `wasm_model::Hit` (id, file, thumb, caption, score) and the rest of its gallery.json entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    #[serde(flatten)]
    pub hit: wasm_model::Hit,
    pub source: String,
    pub licence: String,
    pub url: Option<String>,
}

pub struct DbSearcher {
    pool: Pool,
    encoder: Arc<TextEncoder>,
    model_id: String,
    /// The model's strong-match threshold of text queries (manifest `retrieval.strong_match`), if calibrated.
    pub(crate) strong_match: Option<wasm_model::model_dir::StrongMatch>,
    config: DbConfig,
    slots: Semaphore,
    /// The live gallery's meta row, read on first use and again whenever an answer looks stale.
    live: RwLock<Option<GalleryMeta>>,
}

impl std::fmt::Debug for DbSearcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSearcher").field("model_id", &self.model_id).field("config", &self.config).finish()
    }
}

impl DbSearcher {
    /// A searcher for `model`'s queries against the database of `config`. Connects lazily: it is built even while
    /// the database is down, and its searches answer `Unavailable` until it is up.
    pub fn new(model: &ModelDir, config: DbConfig) -> Result<Self, DbError> {
        let encoder = TextEncoder::new(model).map_err(|e| DbError::Gallery(format!("cannot build the text encoder: {e}")))?;
        Ok(Self {
            pool: config.pool()?,
            encoder: Arc::new(encoder),
            model_id: model.model_id().to_string(),
            strong_match: model.manifest.strong_match().cloned(),
            slots: Semaphore::new(config.max_in_flight.max(1)),
            config,
            live: RwLock::new(None),
        })
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The `k` images after the first `offset` that best fit `query` (prompt arithmetic as on the page), best
    /// first, scored `cosine − hubness_weight × hubness` like `Engine::search`. Ranks past `MAX_K` (1,000) are
    /// not served, as in the engine.
    pub async fn search(&self, query: &str, k: usize, offset: usize) -> Result<Vec<Hit>, DbError> {
        if page_limit(k, offset).is_none() {
            return Ok(Vec::new());
        }
        let encoder = Arc::clone(&self.encoder);
        let query = query.to_owned();
        // Text encoding is CPU work (an LSTM pass per term): off the async executor.
        let q = tokio::task::spawn_blocking(move || wasm_model::query::query_vector(&encoder, &query))
            .await
            .map_err(|e| DbError::Query(format!("encoding the query failed: {e}")))?
            .map_err(|e| DbError::Query(EngineError::from(e).to_string()))?;
        self.search_encoded(&q, k, offset).await
    }

    /// As [`DbSearcher::search`], for a prompt already encoded with this model (`wasm_model::query::query_vector`):
    /// for callers that run the CPU work on threads of their own (`web` bounds it with its search pool).
    pub async fn search_encoded(&self, query_vector: &[f32], k: usize, offset: usize) -> Result<Vec<Hit>, DbError> {
        let Some(limit) = page_limit(k, offset) else { return Ok(Vec::new()) };
        let q = text_query_vector(query_vector);
        self.bounded(async {
            let mut conn = self.connection().await?;
            let meta = self.live_meta(&conn).await?;
            let mut hits = self.rank(&mut conn, &meta, &q, limit, offset, None).await?;
            hits.iter_mut().for_each(|h| h.hit.strong = self.strong_match.as_ref().map(|s| s.is_strong(h.hit.score)));
            Ok(hits)
        })
        .await
    }

    /// The `k` images after the first `offset` most like gallery image `id` (which is left out), by plain cosine
    /// as `Engine::similar`.
    pub async fn similar(&self, id: usize, k: usize, offset: usize) -> Result<Vec<Hit>, DbError> {
        self.bounded(async {
            let mut conn = self.connection().await?;
            let meta = self.live_meta(&conn).await?;
            let unknown = || DbError::UnknownImage { id, len: meta.rows_total };
            let id32 = i32::try_from(id).map_err(|_| unknown())?;
            let row = conn
                .query_opt(&format!("SELECT embedding FROM {LIVE_TABLE} WHERE id = $1"), &[&id32])
                .await
                .map_err(|e| self.pg_error("reading an image's vector", e))?
                .ok_or_else(unknown)?;
            let stored = meta.vector_type.read(&row, 0).map_err(|e| self.pg_error("reading an image's vector", e))?;
            let Some(limit) = page_limit(k, offset) else { return Ok(Vec::new()) };
            self.rank(&mut conn, &meta, &similar_query_vector(&stored), limit, offset, Some(id32)).await
        })
        .await
    }

    /// Gallery image `id`'s own entry (score 1, `strong` unset): what a "more like this" answer starts from.
    pub async fn image(&self, id: usize) -> Result<Hit, DbError> {
        self.bounded(async {
            let conn = self.connection().await?;
            let meta = self.live_meta(&conn).await?;
            let unknown = || DbError::UnknownImage { id, len: meta.rows_total };
            let id32 = i32::try_from(id).map_err(|_| unknown())?;
            let sql = format!("SELECT id, file, thumb, caption, source, licence, url FROM {LIVE_TABLE} WHERE id = $1");
            let row = conn.query_opt(&sql, &[&id32]).await.map_err(|e| self.pg_error("reading an image", e))?.ok_or_else(unknown)?;
            let hit = |r: &tokio_postgres::Row| -> Result<Hit, tokio_postgres::Error> {
                Ok(Hit {
                    hit: wasm_model::Hit {
                        id: r.try_get::<_, i32>(0)? as u32,
                        file: r.try_get(1)?,
                        thumb: r.try_get(2)?,
                        caption: r.try_get(3)?,
                        score: 1.0,
                        strong: None,
                    },
                    source: r.try_get(4)?,
                    licence: r.try_get(5)?,
                    url: r.try_get(6)?,
                })
            };
            hit(&row).map_err(|e| self.pg_error("reading an image", e))
        })
        .await
    }

    /// Whether the database answers and serves this model's gallery: its meta row, or the reason it cannot serve.
    pub async fn health(&self) -> Result<GalleryMeta, DbError> {
        self.bounded(async {
            let conn = self.connection().await?;
            self.invalidate();
            self.live_meta(&conn).await
        })
        .await
    }

    /// Runs `work` in a search slot, with a client-side deadline past the server's statement timeout (a hung
    /// connection or server costs this long, not forever).
    pub(crate) async fn bounded<T>(&self, work: impl Future<Output = Result<T, DbError>>) -> Result<T, DbError> {
        let limit = self.config.max_in_flight.max(1);
        let _slot = tokio::time::timeout(self.config.queue_timeout, self.slots.acquire())
            .await
            .map_err(|_| DbError::Busy { limit })?
            .map_err(|_| DbError::Busy { limit })?;
        let deadline = self.config.connect_timeout + self.config.queue_timeout + self.config.statement_timeout + Duration::from_secs(1);
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| Err(DbError::Unavailable { reason: format!("no answer within {deadline:?}") }))
    }

    pub(crate) async fn connection(&self) -> Result<Object, DbError> {
        self.pool
            .get()
            .await
            .map_err(|e| DbError::from_pool(e, self.config.statement_timeout, self.config.connect_timeout))
    }

    pub(crate) fn pg_error(&self, context: &'static str, e: tokio_postgres::Error) -> DbError {
        let err = DbError::from_pg(context, e, self.config.statement_timeout);
        if matches!(err, DbError::Sql { .. }) {
            // The tables may have been swapped (another vector type): read the meta row again next time.
            self.invalidate();
        }
        err
    }

    fn invalidate(&self) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The live meta row (cached), checked against this searcher's model.
    pub(crate) async fn live_meta(&self, conn: &Object) -> Result<GalleryMeta, DbError> {
        let cached = self.live.read().unwrap_or_else(|p| p.into_inner()).clone();
        let meta = match cached {
            Some(m) => m,
            None => {
                let read = schema::read_meta(&***conn, Slot::Live).await.map_err(|e| self.pg_error("reading imgpick_meta", e))?;
                let m = match read {
                    Some(StoredMeta::Current(m)) => m,
                    Some(StoredMeta::Outdated { schema_version, .. }) => {
                        return Err(DbError::NotLoaded { reason: schema::outdated_reason(schema_version) })
                    }
                    None => return Err(self.not_loaded(conn).await),
                };
                *self.live.write().unwrap_or_else(|p| p.into_inner()) = Some(m.clone());
                m
            }
        };
        if meta.model_id != self.model_id {
            self.invalidate();
            return Err(DbError::ModelMismatch {
                database: meta.model_id,
                model: self.model_id.clone(),
                hint: "serve the model it was loaded with, or load this model's gallery into it",
            });
        }
        Ok(meta)
    }

    /// Why there is no live gallery (a first load may be under way).
    async fn not_loaded(&self, conn: &Object) -> DbError {
        let loading = schema::read_meta(&***conn, Slot::Loading).await.ok().flatten().and_then(StoredMeta::current);
        let reason = match loading {
            Some(l) => {
                let copied = conn
                    .query_one(&format!("SELECT count(*) FROM {LOADING_TABLE}"), &[])
                    .await
                    .map(|r| r.get::<_, i64>(0).to_string())
                    .unwrap_or_else(|_| "?".into());
                format!("a load is under way or was interrupted ({copied} of {} images copied); run the load (again) to finish it", l.rows_total)
            }
            None => "load a published gallery into it first".into(),
        };
        DbError::NotLoaded { reason }
    }

    /// One page of the ranking by `query_vector` (already folded: `[q, 1]` or `[v, 0]`).
    async fn rank(
        &self,
        conn: &mut Object,
        meta: &GalleryMeta,
        query_vector: &[f32],
        limit: usize,
        offset: usize,
        exclude: Option<i32>,
    ) -> Result<Vec<Hit>, DbError> {
        let rows = self.query_ranked(conn, meta, query_vector, limit, offset, exclude, false).await?;
        let rankable = meta.rows_total - usize::from(exclude.is_some() && meta.rows_total > 0);
        if rows.is_empty() && offset < rankable {
            // No rows where some were due: the database changed under us (another model, or no gallery).
            self.invalidate();
            self.live_meta(conn).await?;
        }
        rows.iter()
            .map(|r| {
                Ok(Hit {
                    hit: wasm_model::Hit {
                        id: r.try_get::<_, i32>(0)? as u32,
                        file: r.try_get(1)?,
                        thumb: r.try_get(2)?,
                        caption: r.try_get(3)?,
                        score: r.try_get(7)?,
                        strong: None,
                    },
                    source: r.try_get(4)?,
                    licence: r.try_get(5)?,
                    url: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| self.pg_error("reading the results", e))
    }

    /// The plan and timing of a text search (`EXPLAIN ANALYZE` of the statement [`DbSearcher::search`] runs, with
    /// the same settings): whether it walked the HNSW index, and how long it took in the server.
    pub async fn explain(&self, query: &str, k: usize, offset: usize) -> Result<String, DbError> {
        let q = wasm_model::query::query_vector(&self.encoder, query).map_err(|e| DbError::Query(EngineError::from(e).to_string()))?;
        let limit = page_limit(k, offset).unwrap_or(1);
        self.bounded(async {
            let mut conn = self.connection().await?;
            let meta = self.live_meta(&conn).await?;
            let rows = self.query_ranked(&mut conn, &meta, &text_query_vector(&q), limit, offset, None, true).await?;
            Ok(rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect::<Vec<_>>().join("\n"))
        })
        .await
    }

    /// Runs the ranking statement (or its `EXPLAIN ANALYZE`) with the settings this searcher asks for.
    #[allow(clippy::too_many_arguments)]
    async fn query_ranked(
        &self,
        conn: &mut Object,
        meta: &GalleryMeta,
        query_vector: &[f32],
        limit: usize,
        offset: usize,
        exclude: Option<i32>,
        explain: bool,
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        if query_vector.len() != meta.embed_dim + 1 {
            return Err(DbError::ModelMismatch {
                database: format!("{} (embed_dim {})", meta.model_id, meta.embed_dim),
                model: format!("{} (embed_dim {})", self.model_id, query_vector.len() - 1),
                hint: "reload the gallery",
            });
        }
        let vector = meta.vector_type.param(query_vector);
        let (limit64, offset64, exclude) = (limit as i64, offset as i64, exclude.unwrap_or(-1));
        // The model check rides along as a one-time filter: a database swapped to another model answers no rows.
        // Ties go to the lower id, as in the engine (an incremental sort on top of the index order).
        let sql = format!(
            "{explain}SELECT id, file, thumb, caption, source, licence, url, (-(embedding <#> $1))::real AS score
             FROM {LIVE_TABLE}
             WHERE (SELECT model_id FROM imgpick_meta WHERE slot = 'live') = $2 AND id <> $5
             ORDER BY embedding <#> $1, id
             LIMIT $3 OFFSET $4",
            explain = if explain { "EXPLAIN (ANALYZE, COSTS OFF) " } else { "" }
        );
        let params: [&(dyn ToSql + Sync); 5] = [vector.as_ref(), &self.model_id, &limit64, &offset64, &exclude];
        // The HNSW search keeps ef_search candidates: widen it for deep pages. The scan mode may rule out the
        // index (exact) or the full scan.
        let ef_needed = offset + limit + 1;
        let mut settings = Vec::new();
        if ef_needed > self.config.ef_search {
            // pgvector accepts 1..=1000; the first MAX_K (1,000) ranks are all that is served.
            settings.push(format!("SET LOCAL hnsw.ef_search = {}", ef_needed.min(MAX_K)));
        }
        match self.config.scan {
            ScanMode::Planner => {}
            ScanMode::Exact => settings.push("SET LOCAL enable_indexscan = off".into()),
            ScanMode::Index => settings.push("SET LOCAL enable_seqscan = off".into()),
        }
        let settings = (!settings.is_empty()).then(|| settings.join("; "));
        let result = async {
            let statement = conn.prepare_cached(&sql).await?;
            match settings {
                None => conn.query(&statement, &params).await,
                // A transaction for SET LOCAL: dropped unfinished (a deadline), it rolls back, so no setting
                // leaks into the pooled connection.
                Some(set) => {
                    let tx = conn.transaction().await?;
                    tx.batch_execute(&set).await?;
                    let rows = tx.query(&statement, &params).await?;
                    tx.commit().await?;
                    Ok(rows)
                }
            }
        }
        .await;
        match result {
            Ok(rows) => Ok(rows),
            Err(e) => {
                let err = self.pg_error("searching", e);
                if matches!(err, DbError::Sql { .. }) {
                    // e.g. "different halfvec dimensions" after a swap: say what changed, if anything did.
                    self.live_meta(conn).await?;
                }
                Err(err)
            }
        }
    }
}

/// Rows to fetch for `k` results after `offset`, within the first `MAX_K` ranks; `None` when there are none.
fn page_limit(k: usize, offset: usize) -> Option<usize> {
    let limit = k.min(MAX_K.saturating_sub(offset));
    (limit > 0).then_some(limit)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{page_limit, DbSearcher};
    use crate::{DbConfig, DbError};

    /// A searcher whose database is never reached (the pool connects lazily).
    fn offline_searcher(max_in_flight: usize) -> DbSearcher {
        let model = wasm_model::ModelDir::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../wasm-model/tests/fixtures/tiny")).unwrap();
        let mut config = DbConfig::from_url("postgres://imgpick:pw@127.0.0.1:1/imgpick").unwrap();
        config.max_in_flight = max_in_flight;
        config.queue_timeout = Duration::from_millis(50);
        config.connect_timeout = Duration::from_millis(100);
        config.statement_timeout = Duration::from_millis(100);
        DbSearcher::new(&model, config).unwrap()
    }

    /// At most `max_in_flight` searches run; the next waits `queue_timeout`, then is told the searcher is busy.
    /// A search that outlives every timeout is cut off at the client deadline.
    #[tokio::test]
    async fn searches_are_bounded_in_number_and_time() {
        let searcher = offline_searcher(1);
        let slow = searcher.bounded(async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(())
        });
        let queued = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            searcher.bounded(async { Ok(()) }).await
        };
        let (slow, queued) = tokio::join!(slow, queued);
        assert!(slow.is_ok());
        let busy = queued.unwrap_err();
        assert!(matches!(busy, DbError::Busy { limit: 1 }) && busy.http_status() == 503, "{busy}");
        // Free again once the slow one is done.
        assert!(searcher.bounded(async { Ok(()) }).await.is_ok());

        let hung = searcher.bounded(std::future::pending::<Result<(), DbError>>()).await.unwrap_err();
        assert!(matches!(&hung, DbError::Unavailable { reason } if reason.contains("no answer within")), "{hung}");
    }

    #[test]
    fn pages_stay_within_the_first_thousand_ranks() {
        assert_eq!(page_limit(10, 0), Some(10));
        assert_eq!(page_limit(10, 995), Some(5));
        assert_eq!(page_limit(10, 1000), None);
        assert_eq!(page_limit(0, 0), None);
        assert_eq!(page_limit(usize::MAX, 0), Some(1000));
    }
}

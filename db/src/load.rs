//! Loading a published gallery into the database: idempotent (a rerun of the same gallery changes nothing),
//! resumable (batches of rows commit one by one, upserted by image id; a rerun after a kill copies only the
//! missing ones), and atomic for readers (rows go into `imgpick_images_loading`, which is indexed and then
//! swapped in for `imgpick_images` in one transaction: searches see the old gallery or the new one, never a mix).
//! A database holding another model's vectors is refused unless `replace` is set.

use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::schema::{self, GalleryMeta, LoadState, Slot, StoredMeta, VectorType, LIVE_TABLE, LOADING_TABLE};
use crate::{DbConfig, DbError, PublishedGallery};

/// `pg_advisory_lock` key held by a running load ("imgpick" in ASCII); released when its connection ends.
const LOAD_LOCK_KEY: i64 = 0x0069_6d67_7069_636b;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub vector_type: VectorType,
    /// Rows per batch (one statement, one transaction).
    pub batch_rows: usize,
    /// Replace a gallery of another model (otherwise refused).
    pub replace: bool,
    /// HNSW graph degree and build breadth. 24 and 96 (pgvector's defaults are 16 and 64): at 1 M images recall@10
    /// reaches 0.955 at ef_search 800, against 0.912 with the defaults, for a 20 % larger index and a longer build
    /// (docs/scale.md).
    pub hnsw_m: i32,
    pub hnsw_ef_construction: i32,
    /// `maintenance_work_mem` for the index build: the graph of 1 M 513-d halfvecs (m 24) takes ~1.6 GB; pgvector
    /// warns and slows down when it does not fit in memory.
    pub maintenance_work_mem: Option<String>,
    /// `max_parallel_maintenance_workers` for the index build (the server's default when `None`).
    pub parallel_workers: Option<i32>,
    /// Stop after this many batches, leaving the load to be resumed by the next run (loading in slices; the
    /// tests use it to stand for a killed load).
    pub stop_after_batches: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            vector_type: VectorType::Halfvec,
            batch_rows: 1000,
            replace: false,
            hnsw_m: 24,
            hnsw_ef_construction: 96,
            maintenance_work_mem: Some("2GB".into()),
            parallel_workers: None,
            stop_after_batches: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// The database already served exactly this gallery; nothing was written.
    AlreadyLive,
    /// The gallery is live now.
    Loaded,
    /// Stopped after `stop_after_batches`; rerun to finish.
    Stopped,
}

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub outcome: LoadOutcome,
    pub rows_total: usize,
    /// Rows written by this run.
    pub rows_written: usize,
    /// Rows a previous, interrupted run had already written.
    pub rows_resumed: usize,
    pub copy_time: Duration,
    pub index_time: Duration,
    /// The model whose vectors this load replaced, if any.
    pub replaced_model: Option<String>,
}

/// What a load is doing (for a progress bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadProgress {
    Copying { done: usize, total: usize },
    Indexing,
    Swapping,
}

/// Loads `gallery` into the database of `config` (see the module docs).
pub async fn load(
    config: &DbConfig,
    gallery: &PublishedGallery,
    opts: &LoadOptions,
    mut progress: impl FnMut(LoadProgress),
) -> Result<LoadReport, DbError> {
    let dim = gallery.embed_dim() + 1;
    if dim > opts.vector_type.max_dim() {
        return Err(DbError::Gallery(format!(
            "{dim} stored values per image is more than pgvector's HNSW index allows for {} ({}); try halfvec",
            opts.vector_type.sql(),
            opts.vector_type.max_dim()
        )));
    }
    let mut client = config.connect_unpooled().await?;
    let sql = |context: &'static str| move |e| DbError::from_pg(context, e, Duration::ZERO);
    client.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").await.map_err(|e| match DbError::from_pg("", e, Duration::ZERO) {
        DbError::Sql { message, .. } => DbError::Sql {
            context: "enabling pgvector (the server needs the extension installed, and a superuser must run \
                      `CREATE EXTENSION vector` in this database once)",
            message,
            code: None,
        },
        other => other,
    })?;
    client.batch_execute(schema::CREATE_META).await.map_err(sql("creating imgpick_meta"))?;
    client.batch_execute(schema::MIGRATE_META).await.map_err(sql("adding schema 2's columns to imgpick_meta"))?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOAD_LOCK_KEY])
        .await
        .map_err(sql("taking the load lock"))?
        .get(0);
    if !locked {
        return Err(DbError::LoadBusy);
    }

    let want = GalleryMeta {
        model_id: gallery.model_id().to_string(),
        embed_dim: gallery.embed_dim(),
        vector_type: opts.vector_type,
        gallery_checksum: gallery.checksum().to_string(),
        hubness_weight: gallery.hubness_weight(),
        mean_hubness: gallery.mean_hubness(),
        rows_total: gallery.len(),
        state: LoadState::Copying,
        hnsw_m: opts.hnsw_m,
        hnsw_ef_construction: opts.hnsw_ef_construction,
        duplicates: gallery.duplicate_calibration(),
    };
    let mut report = LoadReport {
        outcome: LoadOutcome::Loaded,
        rows_total: gallery.len(),
        rows_written: 0,
        rows_resumed: 0,
        copy_time: Duration::ZERO,
        index_time: Duration::ZERO,
        replaced_model: None,
    };
    // A live gallery of an older schema is rebuilt like any other change (the model check still applies).
    let live = schema::read_meta(&client, Slot::Live).await.map_err(sql("reading imgpick_meta"))?;
    if let Some(live) = &live {
        if let StoredMeta::Current(current) = live {
            if current.same_content(&want) && table_exists(&client, LIVE_TABLE).await? {
                report.outcome = LoadOutcome::AlreadyLive;
                return Ok(report);
            }
        }
        if live.model_id() != want.model_id {
            if !opts.replace {
                return Err(DbError::ModelMismatch {
                    database: live.model_id().to_string(),
                    model: want.model_id.clone(),
                    hint: "pass replace (--replace) to swap them for this gallery; the old ones stay live until the new ones are indexed",
                });
            }
            report.replaced_model = Some(live.model_id().to_string());
        }
    }

    // Resume the loading table if it was being filled with exactly this gallery; else start it afresh.
    let loading = schema::read_meta(&client, Slot::Loading).await.map_err(sql("reading imgpick_meta"))?.and_then(StoredMeta::current);
    let resumable = loading.as_ref().is_some_and(|l| l.same_content(&want)) && table_exists(&client, LOADING_TABLE).await?;
    if !resumable {
        let tx = client.transaction().await.map_err(sql("starting a transaction"))?;
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {LOADING_TABLE}; {}", schema::create_loading_table(&want)))
            .await
            .map_err(sql("creating imgpick_images_loading"))?;
        schema::write_meta(&tx, Slot::Loading, &want).await.map_err(sql("writing imgpick_meta"))?;
        tx.commit().await.map_err(sql("committing the new loading table"))?;
    }

    let copy_started = Instant::now();
    let mut present = vec![false; gallery.len()];
    for row in client.query(&format!("SELECT id FROM {LOADING_TABLE}"), &[]).await.map_err(sql("listing loaded rows"))? {
        if let Some(p) = usize::try_from(row.get::<_, i32>(0)).ok().and_then(|id| present.get_mut(id)) {
            *p = true;
        }
    }
    report.rows_resumed = present.iter().filter(|p| **p).count();
    let missing: Vec<usize> = (0..gallery.len()).filter(|&id| !present[id]).collect();
    let upsert = client.prepare(&schema::upsert_batch(opts.vector_type)).await.map_err(sql("preparing the row upsert"))?;
    progress(LoadProgress::Copying { done: report.rows_resumed, total: gallery.len() });
    for (n, batch) in missing.chunks(opts.batch_rows.max(1)).enumerate() {
        if opts.stop_after_batches.is_some_and(|stop| n >= stop) {
            report.outcome = LoadOutcome::Stopped;
            report.copy_time = copy_started.elapsed();
            return Ok(report);
        }
        let rows = BatchColumns::new(gallery, batch, opts.vector_type);
        client.execute(&upsert, &rows.params()).await.map_err(sql("writing a batch of rows"))?;
        report.rows_written += batch.len();
        progress(LoadProgress::Copying { done: report.rows_resumed + report.rows_written, total: gallery.len() });
    }
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {LOADING_TABLE}"), &[])
        .await
        .map_err(sql("counting loaded rows"))?
        .get(0);
    if count as usize != gallery.len() {
        return Err(DbError::Sql {
            context: "checking the loaded rows",
            message: format!("{LOADING_TABLE} has {count} rows, the gallery {}; rerun the load", gallery.len()),
            code: None,
        });
    }
    report.copy_time = copy_started.elapsed();

    progress(LoadProgress::Indexing);
    let index_started = Instant::now();
    schema::set_state(&client, Slot::Loading, LoadState::Indexing).await.map_err(sql("writing imgpick_meta"))?;
    if let Some(mem) = &opts.maintenance_work_mem {
        client.execute("SELECT set_config('maintenance_work_mem', $1, false)", &[mem]).await.map_err(sql("setting maintenance_work_mem"))?;
    }
    if let Some(workers) = opts.parallel_workers {
        let workers = workers.to_string();
        client
            .execute("SELECT set_config('max_parallel_maintenance_workers', $1, false)", &[&workers])
            .await
            .map_err(sql("setting max_parallel_maintenance_workers"))?;
    }
    client.batch_execute(&schema::create_loading_index(&want)).await.map_err(sql("building the HNSW index"))?;
    client.batch_execute(&format!("ANALYZE {LOADING_TABLE}")).await.map_err(sql("analysing the loaded table"))?;
    report.index_time = index_started.elapsed();

    progress(LoadProgress::Swapping);
    swap_in(&mut client).await?;
    Ok(report)
}

/// The loading table becomes the live one, in one transaction.
async fn swap_in(client: &mut Client) -> Result<(), DbError> {
    let sql = |context: &'static str| move |e| DbError::from_pg(context, e, Duration::ZERO);
    let tx = client.transaction().await.map_err(sql("starting the swap"))?;
    tx.batch_execute(schema::SWAP).await.map_err(sql("swapping in the loaded table"))?;
    tx.commit().await.map_err(sql("committing the swap"))
}

async fn table_exists(client: &Client, name: &str) -> Result<bool, DbError> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(|e| DbError::from_pg("looking up a table", e, Duration::ZERO))?;
    Ok(row.get(0))
}

/// One batch as the parallel arrays the upsert's `unnest` reads.
struct BatchColumns<'a> {
    ids: Vec<i32>,
    vectors: Box<dyn ToSql + Sync + Send>,
    file: Vec<&'a str>,
    thumb: Vec<&'a str>,
    caption: Vec<&'a str>,
    source: Vec<&'a str>,
    licence: Vec<&'a str>,
    url: Vec<Option<&'a str>>,
    hubness: Vec<Option<f32>>,
    width: Vec<Option<i32>>,
    height: Vec<Option<i32>>,
    orientation: Vec<Option<&'static str>>,
    licence_id: Vec<&'static str>,
}

impl<'a> BatchColumns<'a> {
    fn new(gallery: &'a PublishedGallery, ids: &[usize], vector_type: VectorType) -> Self {
        let items = gallery.items();
        let item = |id: usize| &items[id];
        let rows: Vec<Vec<f32>> = ids.iter().map(|&id| gallery.folded_row(id)).collect();
        let layouts: Vec<_> = ids.iter().map(|&id| gallery.layout(id)).collect();
        Self {
            ids: ids.iter().map(|&id| id as i32).collect(),
            vectors: vector_type.array_param(&rows),
            file: ids.iter().map(|&id| item(id).file.as_str()).collect(),
            thumb: ids.iter().map(|&id| item(id).thumb.as_str()).collect(),
            caption: ids.iter().map(|&id| item(id).caption.as_str()).collect(),
            source: ids.iter().map(|&id| item(id).source.as_str()).collect(),
            licence: ids.iter().map(|&id| item(id).licence.as_str()).collect(),
            url: ids.iter().map(|&id| item(id).url.as_deref()).collect(),
            hubness: ids.iter().map(|&id| item(id).hubness).collect(),
            width: layouts.iter().map(|l| l.width).collect(),
            height: layouts.iter().map(|l| l.height).collect(),
            orientation: layouts.iter().map(|l| l.orientation).collect(),
            licence_id: layouts.iter().map(|l| l.licence_id).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.ids,
            self.vectors.as_ref(),
            &self.file,
            &self.thumb,
            &self.caption,
            &self.source,
            &self.licence,
            &self.url,
            &self.hubness,
            &self.width,
            &self.height,
            &self.orientation,
            &self.licence_id,
        ]
    }
}

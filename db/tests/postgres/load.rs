//! Loading is idempotent, resumes after a kill without duplicates or losses, refuses another model's database
//! unless told to replace it, and replaces it in one transaction.

use std::time::Duration;

use db::local::LocalInstance;
use db::{load, DbConfig, DbError, DbSearcher, LoadOptions, LoadOutcome, LoadProgress, ScanMode};
use tokio_postgres::NoTls;
use wasm_model::testutil::{random_model, small_config};
use wasm_model::GalleryDtype;

use crate::common::{self, assert_prompts_match, GalleryFiles};

/// What the tables hold, down to the row versions (`xmin`: a rewritten row gets a new one).
async fn snapshot(url: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut out = Vec::new();
    for sql in [
        "SELECT count(*)::text FROM imgpick_images",
        "SELECT md5(string_agg(id || embedding::text || file || thumb || caption || source || licence || coalesce(url, '') \
         || coalesce(hubness::text, ''), '|' ORDER BY id)) FROM imgpick_images",
        "SELECT string_agg(xmin::text, ',' ORDER BY id) FROM imgpick_images",
        "SELECT string_agg(slot || model_id || gallery_checksum || state || updated_at::text, ',' ORDER BY slot) FROM imgpick_meta",
        "SELECT count(*)::text FROM pg_class WHERE relname LIKE 'imgpick%'",
    ] {
        out.push(client.query_one(sql, &[]).await.unwrap().get::<_, Option<String>>(0).unwrap_or_default());
    }
    out
}

#[tokio::test]
async fn a_second_load_changes_nothing() {
    let Some(db) = LocalInstance::for_test("a_second_load_changes_nothing") else { return };
    let model = common::fixture_model(true);
    let published = GalleryFiles::synthetic(&model, 700, 3, GalleryDtype::F16).published(&model);
    let config = common::config(&db, ScanMode::Planner);
    let opts = LoadOptions { batch_rows: 128, ..LoadOptions::default() };
    let first = load(&config, &published, &opts, |_| {}).await.unwrap();
    assert_eq!((first.outcome, first.rows_written, first.rows_resumed), (LoadOutcome::Loaded, 700, 0));
    let before = snapshot(db.pg.url()).await;
    assert_eq!(before[0], "700");
    let mut seen = Vec::new();
    let again = load(&config, &published, &opts, |p| seen.push(p)).await.unwrap();
    assert_eq!((again.outcome, again.rows_written), (LoadOutcome::AlreadyLive, 0));
    assert!(seen.is_empty(), "nothing to report: {seen:?}");
    assert_eq!(snapshot(db.pg.url()).await, before);
}

/// A load stopped after some batches (or killed mid-batch) leaves the live gallery alone; the next run copies
/// only what is missing, and the result is the complete gallery, each image once.
#[tokio::test]
async fn an_interrupted_load_resumes() {
    let Some(db) = LocalInstance::for_test("an_interrupted_load_resumes") else { return };
    let model = common::fixture_model(true);
    let files = GalleryFiles::synthetic(&model, 1000, 4, GalleryDtype::F32);
    let published = files.published(&model);
    let config = common::config(&db, ScanMode::Exact);
    let opts = LoadOptions { batch_rows: 100, ..LoadOptions::default() };

    let stopped = load(&config, &published, &LoadOptions { stop_after_batches: Some(3), ..opts.clone() }, |_| {}).await.unwrap();
    assert_eq!((stopped.outcome, stopped.rows_written), (LoadOutcome::Stopped, 300));
    // Nothing is live yet, and the searcher says why (503, not an empty answer).
    let searcher = DbSearcher::new(&model, config.clone()).unwrap();
    let err = searcher.search("dog", 10, 0).await.unwrap_err();
    assert!(matches!(err, DbError::NotLoaded { .. }) && err.to_string().contains("300 of 1000"), "{err}");
    assert_eq!(err.http_status(), 503);

    // Killed in the middle of a batch: the task (and its connection) is dropped once 500 rows are in.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = {
        let (config, published, opts) = (config.clone(), files.published(&model), opts.clone());
        tokio::spawn(async move {
            let mut tx = Some(tx);
            load(&config, &published, &opts, move |p| {
                if matches!(p, LoadProgress::Copying { done, .. } if done >= 500) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            })
            .await
        })
    };
    rx.await.unwrap();
    task.abort();
    let _ = task.await;
    // The server notices the dropped client and releases its load lock.
    let mut resumed = None;
    for _ in 0..50 {
        match load(&config, &published, &opts, |_| {}).await {
            Err(DbError::LoadBusy) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => {
                resumed = Some(other.unwrap());
                break;
            }
        }
    }
    let resumed = resumed.expect("the killed load's lock was never released");
    assert_eq!(resumed.outcome, LoadOutcome::Loaded);
    assert!(resumed.rows_resumed >= 500, "{resumed:?}");
    assert_eq!(resumed.rows_resumed + resumed.rows_written, 1000, "{resumed:?}");
    let rows = snapshot(db.pg.url()).await;
    assert_eq!(rows[0], "1000");
    assert_prompts_match(&searcher, &files.engine(&model), 10, 1e-3, false).await;
}

/// Another model's database is refused; with `replace`, it is replaced, and until the new gallery is complete
/// and indexed the old one stays live, whole.
#[tokio::test]
async fn another_models_database_is_refused_unless_replaced() {
    let Some(db) = LocalInstance::for_test("another_models_database_is_refused_unless_replaced") else { return };
    let config: DbConfig = common::config(&db, ScanMode::Exact);
    let model_a = common::fixture_model(false);
    let files_a = GalleryFiles::fixture();
    load(&config, &files_a.published(&model_a), &LoadOptions::default(), |_| {}).await.unwrap();
    let searcher_a = DbSearcher::new(&model_a, config.clone()).unwrap();
    let engine_a = files_a.engine(&model_a);

    // Model B: another id and another dimension (6).
    let model_b = random_model(small_config(), 6, 77, false);
    let files_b = GalleryFiles::synthetic(&model_b, 250, 8, GalleryDtype::F32);
    let published_b = files_b.published(&model_b);
    let refused = load(&config, &published_b, &LoadOptions::default(), |_| {}).await.unwrap_err();
    let msg = refused.to_string();
    assert!(matches!(refused, DbError::ModelMismatch { .. }), "{refused}");
    assert!(msg.contains(model_a.model_id()) && msg.contains(model_b.model_id()) && msg.contains("replace"), "{msg}");
    assert_prompts_match(&searcher_a, &engine_a, 10, 2e-3, false).await;

    // A replacement that stops half-way: A is still served, complete.
    let half = LoadOptions { replace: true, batch_rows: 100, stop_after_batches: Some(1), ..LoadOptions::default() };
    assert_eq!(load(&config, &published_b, &half, |_| {}).await.unwrap().outcome, LoadOutcome::Stopped);
    assert_eq!(searcher_a.health().await.unwrap().rows_total, 40);
    assert_prompts_match(&searcher_a, &engine_a, 10, 2e-3, false).await;

    // Finished: B is live in one swap; A's searcher now says the database holds another model (503).
    let done = load(&config, &published_b, &LoadOptions { replace: true, batch_rows: 100, ..LoadOptions::default() }, |_| {})
        .await
        .unwrap();
    assert_eq!((done.outcome, done.rows_resumed, done.replaced_model.as_deref()), (LoadOutcome::Loaded, 100, Some(model_a.model_id())));
    let err = searcher_a.search("a dog", 10, 0).await.unwrap_err();
    assert!(matches!(err, DbError::ModelMismatch { .. }) && err.http_status() == 503, "{err}");
    assert!(matches!(searcher_a.similar(1, 5, 0).await.unwrap_err(), DbError::ModelMismatch { .. }));
    let searcher_b = DbSearcher::new(&model_b, config.clone()).unwrap();
    let engine_b = files_b.engine(&model_b);
    for prompt in ["w2 w5", "w3 -w4", "w7"] {
        let all = engine_b.search(prompt, 250).unwrap();
        let got = searcher_b.search(prompt, 10, 0).await.unwrap();
        common::assert_same_ranking(prompt, &got, &all[..10], &all, &engine_b.index().items, 1e-3, false);
    }
    // imgpick_meta + its key, imgpick_images + its key + its HNSW index: nothing of the loading table is left.
    assert_eq!(snapshot(db.pg.url()).await[4], "5");
}

/// A partitioned gallery (what `trainer publish` writes above 2,000 images) loads into exactly the rows of the
/// flat gallery it was built from, and the database then ranks as the engine does on the flat one.
#[tokio::test]
async fn a_partitioned_gallery_loads_the_rows_of_its_flat_source() {
    use wasm_model::partitioned::{fs::write_partitioned, BuildParams};
    let Some(db) = LocalInstance::for_test("a_partitioned_gallery_loads_the_rows_of_its_flat_source") else { return };
    let model = common::fixture_model(false); // as on disk: PublishedGallery::open reads the model folder
    let files = GalleryFiles::synthetic(&model, 600, 5, GalleryDtype::Int8);
    let scratch = tempfile::tempdir().unwrap();
    let items = wasm_model::GalleryIndex::from_json(&files.json).unwrap().items;
    let params = BuildParams { lists: Some(6), meta_block: 100, ..BuildParams::default() };
    write_partitioned(&wasm_model::Gallery::from_bytes(&files.bin).unwrap(), &items, &params, scratch.path()).unwrap();
    let partitioned = db::PublishedGallery::open(common::fixture_dir(), scratch.path()).unwrap();
    let config = common::config(&db, ScanMode::Exact);
    let opts = LoadOptions { batch_rows: 128, ..LoadOptions::default() };
    let loaded = load(&config, &partitioned, &opts, |_| {}).await.unwrap();
    assert_eq!((loaded.outcome, loaded.rows_written), (LoadOutcome::Loaded, 600));
    let from_partitioned = snapshot(db.pg.url()).await;
    let searcher = DbSearcher::new(&model, config.clone()).unwrap();
    assert_prompts_match(&searcher, &files.engine(&model), 10, 1e-3, false).await;
    // the flat source: another checksum, so it is loaded again, into the very same rows
    let flat = load(&config, &files.published(&model), &opts, |_| {}).await.unwrap();
    assert_eq!(flat.outcome, LoadOutcome::Loaded);
    assert_eq!(snapshot(db.pg.url()).await[..2], from_partitioned[..2], "row count and content");
}

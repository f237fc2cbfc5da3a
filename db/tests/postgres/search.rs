//! Searches from the database rank as `wasm_model::Engine` does: text queries (arithmetic, hubness correction),
//! "more like this", paging; hostile prompts are only ever text.

use db::local::LocalInstance;
use db::{load, DbError, DbSearcher, LoadOptions, LoadOutcome, ScanMode, VectorType};
use wasm_model::GalleryDtype;

use crate::common::{self, assert_prompts_match, assert_same_ranking, GalleryFiles};

/// f32 storage: the exact scan and a wide HNSW search both give the engine's top 10, ids and scores; f16
/// storage (halfvec) gives it up to f16 rounding (ids may swap only between images tied within 2e-3).
#[tokio::test]
async fn text_search_matches_the_engine() {
    let Some(db) = LocalInstance::for_test("text_search_matches_the_engine") else { return };
    let model = common::fixture_model(true);
    let files = GalleryFiles::synthetic(&model, 1500, 11, GalleryDtype::F32);
    let engine = files.engine(&model);
    let published = files.published(&model);

    let opts = LoadOptions { vector_type: VectorType::Vector, batch_rows: 400, ..LoadOptions::default() };
    let report = load(&common::config(&db, ScanMode::Planner), &published, &opts, |_| {}).await.unwrap();
    assert_eq!((report.outcome, report.rows_written, report.rows_total), (LoadOutcome::Loaded, 1500, 1500));
    for scan in [ScanMode::Exact, ScanMode::Index] {
        let searcher = DbSearcher::new(&model, common::config(&db, scan)).unwrap();
        assert_prompts_match(&searcher, &engine, 10, 1e-5, true).await;
    }

    // The same gallery stored as halfvec: a reload (the storage changed), then the same ranking up to f16.
    let opts = LoadOptions { vector_type: VectorType::Halfvec, ..opts };
    let report = load(&common::config(&db, ScanMode::Planner), &published, &opts, |_| {}).await.unwrap();
    assert_eq!(report.outcome, LoadOutcome::Loaded);
    for scan in [ScanMode::Exact, ScanMode::Index] {
        let searcher = DbSearcher::new(&model, common::config(&db, scan)).unwrap();
        assert_eq!(searcher.health().await.unwrap().vector_type, VectorType::Halfvec);
        assert_prompts_match(&searcher, &engine, 10, 2e-3, false).await;
        // The approximate mode really walks the HNSW index, and the exact mode really scans every row.
        let plan = searcher.explain("a dog on the beach", 10, 0).await.unwrap();
        let (index, scan_all) = (plan.contains("Index Scan using imgpick_images_hnsw"), plan.contains("Seq Scan on imgpick_images"));
        let (used_index, full_scan) = (index, scan_all);
        assert!(if scan == ScanMode::Exact { full_scan && !used_index } else { used_index && !full_scan }, "{scan:?}:\n{plan}");
    }
}

/// The fixture's own gallery: text search, "more like this" (plain cosine, the image itself left out) and pages.
#[tokio::test]
async fn similar_and_pages_match_the_engine() {
    let Some(db) = LocalInstance::for_test("similar_and_pages_match_the_engine") else { return };
    let model = common::fixture_model(false);
    let files = GalleryFiles::fixture();
    let engine = files.engine(&model);
    load(&common::config(&db, ScanMode::Planner), &files.published(&model), &LoadOptions::default(), |_| {}).await.unwrap();
    let searcher = DbSearcher::new(&model, common::config(&db, ScanMode::Exact)).unwrap();
    let items = &engine.index().items;
    assert_prompts_match(&searcher, &engine, 10, 2e-3, false).await;

    for id in [0, 7, 39] {
        let all = engine.similar(id, 40).unwrap();
        assert_eq!(all.len(), 39, "the image itself is left out");
        let got = searcher.similar(id, 10, 0).await.unwrap();
        assert_same_ranking(&format!("like={id}"), &got, &all[..10], &all, items, 2e-3, false);
        assert!(got.iter().all(|h| h.hit.id as usize != id));
        // The last page of "more like this" ends after the 39 others.
        let tail = searcher.similar(id, 10, 35).await.unwrap();
        assert_eq!(tail.len(), 4);
    }

    // Pages: k=5 at offset 5 is ranks 5..10 of k=10; past the end, nothing; k=0, nothing.
    let ten = searcher.search("a dog on the beach", 10, 0).await.unwrap();
    let page2 = searcher.search("a dog on the beach", 5, 5).await.unwrap();
    assert_eq!(page2, ten[5..].to_vec());
    assert_eq!(searcher.search("a dog on the beach", 10, 35).await.unwrap().len(), 5);
    assert!(searcher.search("a dog on the beach", 10, 40).await.unwrap().is_empty());
    // The deepest page served (ranks 995..1000) asks for the widest search pgvector allows.
    assert!(searcher.search("a dog on the beach", 5, 995).await.unwrap().is_empty());
    assert!(searcher.similar(3, 10, 990).await.unwrap().is_empty());
    assert!(searcher.search("a dog on the beach", 0, 0).await.unwrap().is_empty());

    // Bad requests name the problem, as the engine does.
    let unknown = searcher.similar(40, 10, 0).await.unwrap_err();
    assert!(matches!(unknown, DbError::UnknownImage { id: 40, len: 40 }), "{unknown}");
    assert_eq!(unknown.http_status(), 404);
    // An image's own entry (what a "more like this" starts from): its gallery.json item.
    let own = searcher.image(7).await.unwrap();
    assert_eq!((own.hit.id, &own.hit.file, &own.hit.caption, &own.licence), (7, &items[7].file, &items[7].caption, &items[7].licence));
    assert!(matches!(searcher.image(40).await.unwrap_err(), DbError::UnknownImage { id: 40, len: 40 }));
    let empty = searcher.search("   ", 10, 0).await.unwrap_err();
    assert_eq!(empty.to_string(), engine.search("   ", 10).unwrap_err().to_string());
    assert_eq!(empty.http_status(), 400);
    let cancels = searcher.search("cat -cat", 10, 0).await.unwrap_err();
    assert!(cancels.to_string().contains("cancel"), "{cancels}");
}

/// Prompts full of SQL, NUL bytes or a megabyte of text are encoded like any prompt and never reach SQL: the
/// same answers as the engine, and the tables are untouched.
#[tokio::test]
async fn hostile_prompts_are_only_text() {
    let Some(db) = LocalInstance::for_test("hostile_prompts_are_only_text") else { return };
    let model = common::fixture_model(true);
    let files = GalleryFiles::synthetic(&model, 300, 5, GalleryDtype::F16);
    let engine = files.engine(&model);
    let config = common::config(&db, ScanMode::Exact);
    load(&config, &files.published(&model), &LoadOptions::default(), |_| {}).await.unwrap();
    let searcher = DbSearcher::new(&model, config.clone()).unwrap();

    let megabyte = "dog on the beach ".repeat(1 << 16);
    let hostile = [
        "dog'; DROP TABLE imgpick_images; --",
        "cat\" OR 1=1; DELETE FROM imgpick_meta; --",
        "dog\0cat\0",
        "\0",
        "$1 $2 ::halfvec <#> \\x00 %s %n",
        "beach ' UNION SELECT * FROM pg_shadow --",
        megabyte.as_str(),
    ];
    for q in hostile {
        let shown = &q[..q.len().min(40)];
        match (searcher.search(q, 10, 0).await, engine.search(q, 10)) {
            (Ok(got), Ok(want)) => {
                let all = engine.search(q, 300).unwrap();
                assert_same_ranking(shown, &got, &want, &all, &engine.index().items, 2e-3, false);
            }
            (Err(got), Err(want)) => assert_eq!(got.to_string(), want.to_string(), "{shown:?}"),
            (got, want) => panic!("{shown:?}: database {got:?}, engine {want:?}"),
        }
    }
    let health = searcher.health().await.unwrap();
    assert_eq!((health.rows_total, health.model_id.as_str()), (300, model.model_id()));
    assert_eq!(searcher.search("dog", 300, 0).await.unwrap().len(), 300, "every row is still there");
}

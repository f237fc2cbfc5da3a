//! Refined searches (issue #20) from the database answer what `Engine::search_refined`, `similar_refined` and
//! `passage` answer on the same flat gallery: feedback, layout and licence filters, near-duplicate collapse
//! (the threshold stored at load), "more varied", passages; a database of the previous schema says to reload.

use db::local::LocalInstance;
use db::{load, DbError, DbSearcher, LoadOptions, LoadOutcome, RefinedHit, RefinedQuery, ScanMode, VectorType};
use wasm_model::engine::{PassagePlan, Scope};
use wasm_model::workflow::Refinement;
use wasm_model::{write_gallery_bin, Engine, GalleryDtype, GalleryIndex, GalleryItem, ModelDir};

use crate::common::{self, GalleryFiles, PROMPTS};

/// `n` random images, every fifth of the first half copied (with a little noise) into the second half, so
/// collapse has near-duplicates to find; sizes and licences of every kind, some unknown.
fn gallery_with_duplicates(model: &ModelDir, n: usize) -> GalleryFiles {
    let dim = model.manifest.embed_dim;
    let mut rows = wasm_model::testutil::random_rows(n, dim, 21);
    let noise = wasm_model::testutil::random_rows(n, dim, 22);
    for i in (0..n / 2).step_by(5) {
        let j = n - 1 - i;
        let mut v: Vec<f32> = (0..dim).map(|d| rows[i * dim + d] + 0.08 * noise[j * dim + d]).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        rows[j * dim..(j + 1) * dim].copy_from_slice(&v);
    }
    const LICENCES: [&str; 6] = ["CC0-1.0", "CC BY-SA 3.0", "CC BY-NC 4.0", "Public domain", "see the website", "CC BY 4.0"];
    let items = (0..n)
        .map(|i| GalleryItem {
            id: i,
            file: format!("images/{i:04}.jpg"),
            thumb: format!("thumbs/{i:04}.webp"),
            caption: format!("picture {i}"),
            source: "test".into(),
            licence: LICENCES[i % LICENCES.len()].into(),
            url: None,
            hubness: Some(0.1 + 0.2 * ((i * 13 % 17) as f32 / 17.0)),
            // every seventh has no recorded size; the rest portrait, landscape or square, 500–1700 px
            width: (i % 7 != 0).then_some(500 + (i as u32 * 97 % 1200)),
            height: (i % 7 != 0).then_some(500 + (i as u32 * 61 % 1200)),
            ..Default::default()
        })
        .collect();
    GalleryFiles {
        bin: write_gallery_bin(model.model_id(), dim, &rows, GalleryDtype::F32).unwrap(),
        json: GalleryIndex::new(model.model_id(), items).to_json(),
    }
}

fn refinement(params: &[(&str, &str)]) -> Refinement {
    Refinement::from_params(params.iter().copied(), false).unwrap()
}

/// The refinements compared: each kind alone and combined.
const REFINEMENTS: &[&[(&str, &str)]] = &[
    &[("up", "3,40"), ("down", "7")],
    &[("orient", "landscape")],
    &[("min", "1000"), ("lic", "commercial")],
    &[("lic", "pd")],
    &[("collapse", "1")],
    &[("vary", "1")],
    &[("collapse", "1"), ("vary", "1"), ("lic", "nosa")],
    &[("up", "12"), ("down", "5,6"), ("orient", "portrait"), ("collapse", "1"), ("vary", "1")],
];

fn assert_same(what: &str, db: &[RefinedHit], engine: &[wasm_model::engine::RefinedHit], tol: f32) {
    let ids = |d: &[RefinedHit]| d.iter().map(|h| (h.hit.hit.id, h.similar.iter().map(|s| s.hit.id).collect())).collect::<Vec<_>>();
    let want: Vec<(u32, Vec<u32>)> = engine.iter().map(|h| (h.hit.id, h.similar.clone())).collect();
    assert_eq!(ids(db), want, "{what}: ids and collapsed near-duplicates");
    for (d, e) in db.iter().zip(engine) {
        assert!((d.hit.hit.score - e.hit.score).abs() <= tol, "{what}: id {} score {} vs {}", e.hit.id, d.hit.hit.score, e.hit.score);
        assert_eq!((d.hit.hit.strong, &d.hit.hit.file), (e.hit.strong, &e.hit.file), "{what}: id {}", e.hit.id);
    }
}

#[tokio::test]
async fn refined_searches_match_the_engine() {
    let Some(db) = LocalInstance::for_test("refined_searches_match_the_engine") else { return };
    let model = common::fixture_model(true);
    let files = gallery_with_duplicates(&model, 600);
    let engine: Engine = files.engine(&model);
    let opts = LoadOptions { vector_type: VectorType::Vector, ..LoadOptions::default() };
    load(&common::config(&db, ScanMode::Planner), &files.published(&model), &opts, |_| {}).await.unwrap();
    let calibration = engine.duplicate_calibration().unwrap();
    for scan in [ScanMode::Exact, ScanMode::Index] {
        let searcher = DbSearcher::new(&model, common::config(&db, scan)).unwrap();
        assert_eq!(searcher.health().await.unwrap().duplicates, calibration, "the threshold stored at load");
        let mut collapsed = 0;
        for params in REFINEMENTS {
            let r = refinement(params);
            for prompt in &PROMPTS[..4] {
                let what = format!("{scan:?} {prompt:?} {params:?}");
                let want = engine.search_refined(prompt, 20, Scope::All, &r).unwrap();
                let q = engine.query_vector(prompt).unwrap();
                let got = searcher.search_refined(&RefinedQuery::Text(q), 20, 0, &r).await.unwrap();
                assert_same(&what, &got, &want, 1e-5);
                collapsed += got.iter().map(|h| h.similar.len()).sum::<usize>();
                // a page of a refined ranking is that ranking's slice
                let page = searcher.search_refined(&RefinedQuery::Text(engine.query_vector(prompt).unwrap()), 5, 15, &r).await.unwrap();
                assert_eq!(page, got[15.min(got.len())..].to_vec(), "{what}: page 15..20");
            }
            for id in [0, 250] {
                let want = engine.similar_refined(id, 10, &r).unwrap();
                let got = searcher.search_refined(&RefinedQuery::Like(id), 10, 0, &r).await.unwrap();
                assert_same(&format!("{scan:?} like={id} {params:?}"), &got, &want, 1e-5);
            }
        }
        assert!(collapsed > 0, "the gallery's near-duplicates were collapsed somewhere");

        // A passage: its ideas and whole answer as the engine's.
        let text = "A dog runs on the beach. The dog is black and white!\n\nA red car on the street. Two young people in the snow.";
        let plan = PassagePlan::new(engine.encoder(), text).unwrap();
        for params in [&[][..], &[("collapse", "1"), ("lic", "commercial"), ("up", "9")][..]] {
            let r = refinement(params);
            let want = engine.passage(text, 3, 6, Scope::All, &r).unwrap();
            let got = searcher.passage(&plan, 3, 6, &r).await.unwrap();
            assert_same(&format!("{scan:?} passage whole {params:?}"), &got.whole, &want.whole, 1e-5);
            assert_eq!(got.ideas.len(), want.ideas.len());
            for (g, w) in got.ideas.iter().zip(&want.ideas) {
                assert_eq!((&g.idea.text, g.idea.first, g.idea.last), (&w.idea.text, w.idea.first, w.idea.last));
                assert_same(&format!("{scan:?} idea {:?}", w.idea.text), &g.results, &w.results, 1e-5);
            }
            assert_eq!((got.sentences, got.total, got.without_words), (want.sentences, want.total, want.without_words));
        }

        // Bad marks are the request's fault, named; an unknown picture to start from is a 404.
        let bad = searcher.search_refined(&RefinedQuery::Text(engine.query_vector("dog").unwrap()), 5, 0, &refinement(&[("up", "600")])).await.unwrap_err();
        assert!(matches!(&bad, DbError::Query(m) if m.contains("up names picture 600")), "{bad}");
        assert_eq!(bad.http_status(), 400);
        let missing = searcher.search_refined(&RefinedQuery::Like(600), 5, 0, &Refinement::default()).await.unwrap_err();
        assert_eq!(missing.http_status(), 404, "{missing}");
        let both = Refinement { up: vec![2], down: vec![2], ..Default::default() };
        let e = searcher.search_refined(&RefinedQuery::Like(1), 5, 0, &both).await.unwrap_err();
        assert_eq!((e.http_status(), e.to_string()), (400, both.check().unwrap_err()));
    }
}

/// A database loaded by the previous schema (no layout columns, no calibration) is not searched: it says to
/// reload, and a load of the same gallery (no --replace needed) brings it up to date.
#[tokio::test]
async fn a_database_of_the_previous_schema_asks_for_a_reload() {
    let Some(db) = LocalInstance::for_test("a_database_of_the_previous_schema_asks_for_a_reload") else { return };
    let model = common::fixture_model(false);
    let files = gallery_with_duplicates(&model, 100);
    let config = common::config(&db, ScanMode::Exact);
    let published = files.published(&model);
    let opts = LoadOptions { vector_type: VectorType::Vector, ..LoadOptions::default() };
    load(&config, &published, &opts, |_| {}).await.unwrap();
    // What schema 1 left: its version in the meta row and no layout columns.
    let client = config.connect_unpooled().await.unwrap();
    client
        .batch_execute(
            "UPDATE imgpick_meta SET schema_version = 1, duplicate_threshold = NULL; \
             ALTER TABLE imgpick_images DROP COLUMN width, DROP COLUMN height, DROP COLUMN orientation, DROP COLUMN licence_id",
        )
        .await
        .unwrap();
    let searcher = DbSearcher::new(&model, config.clone()).unwrap();
    let e = searcher.search("dog", 5, 0).await.unwrap_err();
    assert_eq!(e.http_status(), 503, "{e}");
    assert!(e.to_string().contains("database schema 1") && e.to_string().contains("trainer db-load"), "{e}");

    let report = load(&config, &published, &opts, |_| {}).await.unwrap();
    assert_eq!(report.outcome, LoadOutcome::Loaded, "rebuilt, not taken as already live");
    let searcher = DbSearcher::new(&model, config).unwrap();
    let engine = files.engine(&model);
    let r = refinement(&[("orient", "square"), ("collapse", "1")]);
    let got = searcher.search_refined(&RefinedQuery::Text(engine.query_vector("dog").unwrap()), 5, 0, &r).await.unwrap();
    assert_same("after the reload", &got, &engine.search_refined("dog", 5, Scope::All, &r).unwrap(), 1e-5);
}

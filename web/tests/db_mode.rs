//! `web --db`: `/api/search` answered from PostgreSQL + pgvector against a real instance of the test's own
//! (scripts/pg.sh on a free port in a scratch folder, removed afterwards; "skipped" when the engine is not
//! installed). The database's answers are the in-memory engine's for the same gallery (prompts, "more like
//! this", pages, errors); hostile prompts are just text; a database that stops answers 503 with the reason and
//! Retry-After, fast, and the same server answers again once it is back; the page finds the mode in
//! gallery.json.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use db::local::LocalInstance;
use db::{load, DbConfig, LoadOptions};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wasm_model::Engine;
use web::db_search::DbBackend;
use web::engine::NativeSearcher;
use web::{Config, Searcher};

/// wasm-model's tiny fixture: a model (D = 16) and its 40-image gallery.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-model/tests/fixtures/tiny")
}

/// A static folder whose model/ is the fixture's (what `web --db` encodes queries with).
fn static_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>imgpick</title>").unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    for f in ["manifest.json", "vocab.txt", "text_encoder.safetensors"] {
        std::fs::copy(fixture().join(f), dir.path().join("model").join(f)).unwrap();
    }
    dir
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let res = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {}", String::from_utf8_lossy(&body)));
    (parts.status, parts.headers, v)
}

/// (id, score) of each result.
fn ranked(v: &serde_json::Value) -> Vec<(u64, f64)> {
    v["results"].as_array().unwrap().iter().map(|h| (h["id"].as_u64().unwrap(), h["score"].as_f64().unwrap())).collect()
}

/// The database's ranking is the engine's: the same scores rank by rank, and each id the engine's own score
/// (ids may differ only between images tied within the tolerance).
fn assert_same_ranking(what: &str, db: &serde_json::Value, native: &serde_json::Value) {
    let (d, n) = (ranked(db), ranked(native));
    assert_eq!(d.len(), n.len(), "{what}: {db} vs {native}");
    for (rank, ((did, ds), (nid, ns))) in d.iter().zip(&n).enumerate() {
        assert!((ds - ns).abs() < 1e-4, "{what}: rank {rank}: {did} {ds} vs engine {nid} {ns}");
    }
    for (h, id) in db["results"].as_array().unwrap().iter().zip(d.iter().map(|x| x.0)) {
        let same = native["results"].as_array().unwrap().iter().find(|n| n["id"].as_u64() == Some(id));
        if let Some(n) = same {
            for field in ["file", "thumb", "caption", "source", "licence", "url"] {
                assert_eq!(h[field], n[field], "{what}: id {id} {field}");
            }
        }
    }
}

const PROMPTS: &[&str] =
    &["a dog on the beach", "cat", "red car -street", "2:man + woman with a bike", "child playing with a ball on grass -water"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_answers_equal_the_engine_and_an_outage_is_a_503_that_heals() {
    let Some(db) = LocalInstance::for_test("database_answers_equal_the_engine_and_an_outage_is_a_503_that_heals") else { return };
    let published = db::PublishedGallery::open(fixture(), fixture()).unwrap();
    // f32 storage: the same arithmetic as the engine's f32 gallery, so the scores agree to float rounding.
    let opts = LoadOptions { vector_type: db::VectorType::Vector, ..LoadOptions::default() };
    load(&DbConfig::from_url(db.pg.url()).unwrap(), &published, &opts, |_| {}).await.unwrap();

    let site = static_dir();
    let backend = DbBackend::open(site.path(), db.pg.url(), 4, 100, 2).unwrap();
    let dbapp = web::router(Config::new(site.path(), Ok(Arc::new(backend) as Arc<dyn Searcher>)));
    let engine = Engine::open(fixture(), fixture()).unwrap();
    let native = web::router(Config::new(site.path(), Ok(Arc::new(NativeSearcher(engine)) as Arc<dyn Searcher>)));

    for prompt in PROMPTS {
        let uri = format!("/api/search?q={}&k=10", urlencode(prompt));
        let (status, _, d) = get(&dbapp, &uri).await;
        assert_eq!(status, StatusCode::OK, "{prompt}: {d}");
        let (_, _, n) = get(&native, &uri).await;
        assert_same_ranking(prompt, &d, &n);
        assert_eq!(d["model_id"], n["model_id"]);
    }
    for uri in ["/api/search?like=7&k=10", "/api/search?q=black+dog&k=5&offset=5", "/api/search?like=3&k=10&offset=35"] {
        let ((status, _, d), (_, _, n)) = (get(&dbapp, uri).await, get(&native, uri).await);
        assert_eq!(status, StatusCode::OK, "{uri}: {d}");
        assert_same_ranking(uri, &d, &n);
        assert_eq!(d["like_item"], n["like_item"], "{uri}");
    }
    assert_eq!(ranked(&get(&dbapp, "/api/search?like=3&k=10&offset=35").await.2).len(), 4, "the last page ends after the 39 others");
    // The same refusals with the same statuses: an unknown picture 404, a prompt that cancels out 400.
    for uri in ["/api/search?like=40", "/api/search?q=cat+-cat", "/api/search?q=%20%20"] {
        let ((ds, _, d), (ns, _, n)) = (get(&dbapp, uri).await, get(&native, uri).await);
        assert_eq!(ds, ns, "{uri}: {d} vs {n}");
    }
    assert_eq!(get(&dbapp, "/api/search?like=40").await.0, StatusCode::NOT_FOUND);

    // Hostile prompts are text: SQL metacharacters and NUL bytes are encoded like any words (the same answer as
    // the engine), a long one is refused before any work (a megabyte does not fit in a request line at all: the
    // e2e test sends one over a socket), and the table is untouched afterwards.
    for prompt in ["dog'); DROP TABLE imgpick_images; --", "cat\0dog \0", "$1 $$ \\x00 ' \" ; -- /* */ %"] {
        let uri = format!("/api/search?q={}&k=10", urlencode(prompt));
        let ((ds, _, d), (ns, _, n)) = (get(&dbapp, &uri).await, get(&native, &uri).await);
        assert_eq!(ds, ns, "{prompt:?}: {d} vs {n}");
        if ds == StatusCode::OK {
            assert_same_ranking(prompt, &d, &n);
        }
    }
    let (status, _, v) = get(&dbapp, &format!("/api/search?q={}", "a%27%00".repeat(6000))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("18000 bytes"), "{v}");

    // What is served, and how the page finds it.
    let (status, _, health) = get(&dbapp, "/api/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!((health["backend"].as_str(), health["images"].as_u64(), health["vector_type"].as_str()), (Some("database"), Some(40), Some("vector")));
    assert!(!health.to_string().contains(db.pg.url()), "no password in the health answer");
    assert_eq!(health["duplicate_threshold"].as_f64(), Some(published.duplicate_calibration().threshold as f64), "{health}");
    let (status, _, descriptor) = get(&dbapp, "/gallery/gallery.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(descriptor["format"], "imgpick-server-gallery");
    assert_eq!((descriptor["count"].as_u64(), descriptor["search"].as_str()), (Some(40), Some("api/search")));
    assert_eq!(descriptor["model_id"], published.model_id());
    let before = get(&dbapp, "/api/search?q=a+dog+on+the+beach&k=10").await.2;

    // The database stops: every answer is a fast 503 naming why, with Retry-After; nothing hangs or crashes.
    db.pg.stop().unwrap();
    for attempt in 0..2 {
        let started = Instant::now();
        let (status, headers, v) = get(&dbapp, "/api/search?q=a+dog+on+the+beach&k=10").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}: {v}");
        assert!(headers.contains_key(header::RETRY_AFTER));
        assert!(v["error"].as_str().unwrap().contains("the database is unavailable"), "{v}");
        assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
        assert_eq!(get(&dbapp, "/api/search?like=3").await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _, v) = get(&dbapp, "/api/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        let (status, _, d) = get(&dbapp, "/gallery/gallery.json").await;
        assert_eq!(status, StatusCode::OK, "the page still learns where to search, and why it cannot");
        assert!(d["count"].is_null() && d["unavailable"].as_str().unwrap().contains("unavailable"), "{d}");
    }

    // Back: the same server answers again by itself, as before.
    db.pg.start_again().unwrap();
    let (status, _, after) = get(&dbapp, "/api/search?q=a+dog+on+the+beach&k=10").await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after, before);
    assert_eq!(get(&dbapp, "/api/health").await.0, StatusCode::OK);
}

/// Refined searches and passages (issue #20) through `web --db` answer what the in-memory engine answers: the
/// same ids, collapsed near-duplicates and scores, for GET parameters and a POST body alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refined_searches_and_passages_from_the_database_equal_the_engine() {
    let Some(db) = LocalInstance::for_test("refined_searches_and_passages_from_the_database_equal_the_engine") else { return };
    let published = db::PublishedGallery::open(fixture(), fixture()).unwrap();
    let opts = LoadOptions { vector_type: db::VectorType::Vector, ..LoadOptions::default() };
    load(&DbConfig::from_url(db.pg.url()).unwrap(), &published, &opts, |_| {}).await.unwrap();
    let site = static_dir();
    let backend = DbBackend::open(site.path(), db.pg.url(), 4, 100, 2).unwrap();
    let dbapp = web::router(Config::new(site.path(), Ok(Arc::new(backend) as Arc<dyn Searcher>)));
    let native = web::router(Config::new(site.path(), Ok(Arc::new(NativeSearcher(Engine::open(fixture(), fixture()).unwrap())) as Arc<dyn Searcher>)));
    let same = |what: &str, d: &serde_json::Value, n: &serde_json::Value| {
        let ids = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|h| (h["id"].clone(), h.get("similar").cloned())).collect::<Vec<_>>();
        assert_eq!(ids(d), ids(n), "{what}: {d} vs {n}");
        for (a, b) in d.as_array().unwrap().iter().zip(n.as_array().unwrap()) {
            assert!((a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() < 1e-5, "{what}");
            assert_eq!((&a["file"], &a["licence"], &a["strong"]), (&b["file"], &b["licence"], &b["strong"]), "{what}");
        }
    };
    for params in ["up=3&down=7", "lic=commercial", "collapse=1", "vary=1", "collapse=1&vary=1&lic=nosa&up=12", "orient=portrait"] {
        for query in ["q=a+dog+on+the+beach", "q=red+car+-street", "like=7"] {
            let uri = format!("/api/search?{query}&k=10&{params}");
            let ((ds, _, d), (ns, _, n)) = (get(&dbapp, &uri).await, get(&native, &uri).await);
            assert_eq!((ds, ns), (StatusCode::OK, StatusCode::OK), "{uri}: {d} vs {n}");
            same(&uri, &d["results"], &n["results"]);
            assert_eq!(d["refinement"], n["refinement"]);
        }
    }
    let text = "A black dog runs on the beach. The dog jumps!\n\nA red car on the street. Two young people in the snow.";
    let body = serde_json::json!({ "text": text, "k": 6, "k_idea": 3, "collapse": true, "lic": "commercial" }).to_string();
    let send = |app: axum::Router, body: String| async move {
        let req = Request::builder().method("POST").uri("/api/search").body(Body::from(body)).unwrap();
        let res = app.oneshot(req).await.unwrap();
        let status = res.status();
        (status, serde_json::from_slice::<serde_json::Value>(&res.into_body().collect().await.unwrap().to_bytes()).unwrap())
    };
    let ((ds, d), (ns, n)) = (send(dbapp.clone(), body.clone()).await, send(native.clone(), body).await);
    assert_eq!((ds, ns), (StatusCode::OK, StatusCode::OK), "{d} vs {n}");
    same("passage whole", &d["whole"], &n["whole"]);
    assert_eq!(d["ideas"].as_array().unwrap().len(), n["ideas"].as_array().unwrap().len());
    for (a, b) in d["ideas"].as_array().unwrap().iter().zip(n["ideas"].as_array().unwrap()) {
        assert_eq!((&a["text"], &a["first"], &a["last"]), (&b["text"], &b["first"], &b["last"]));
        same(&format!("idea {}", a["text"]), &a["results"], &b["results"]);
    }
    // The same refusals: a bad mark 400 naming it, a bad filter 400 with the refinement's message.
    for uri in ["/api/search?q=cat&up=40", "/api/search?like=3&orient=wide", "/api/search?q=cat&up=2&down=2"] {
        let ((ds, _, d), (ns, _, n)) = (get(&dbapp, uri).await, get(&native, uri).await);
        assert_eq!((ds, ns), (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST), "{uri}");
        assert_eq!(d["error"], n["error"], "{uri}");
    }
}

/// A gallery file on disk is what a server without --db serves at /gallery/gallery.json.
#[tokio::test]
async fn without_a_database_gallery_json_is_the_file() {
    let site = static_dir();
    std::fs::create_dir(site.path().join("gallery")).unwrap();
    std::fs::copy(fixture().join("gallery.json"), site.path().join("gallery/gallery.json")).unwrap();
    let engine = Engine::open(fixture(), fixture()).unwrap();
    let app = web::router(Config::new(site.path(), Ok(Arc::new(NativeSearcher(engine)) as Arc<dyn Searcher>)));
    let (status, _, v) = get(&app, "/gallery/gallery.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["format"], "imgpick-gallery");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

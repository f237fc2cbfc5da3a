//! `/api/search` with wasm-model's real engine (a small random model and gallery): the API answers exactly
//! what the engine ranks, with the gallery's metadata.

use std::sync::Arc;

use axum::{body::Body, http::{Request, StatusCode}};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wasm_model::{testutil, write_gallery_bin, Engine, GalleryDtype, GalleryIndex, GalleryItem};
use web::{engine::NativeSearcher, Config};

fn engine() -> Engine {
    let model = testutil::random_model(testutil::small_config(), 8, 7, false);
    let n = 12;
    let rows = testutil::random_rows(n, 8, 3);
    let bin = write_gallery_bin(model.model_id(), 8, &rows, GalleryDtype::F32).unwrap();
    let items = (0..n)
        .map(|i| GalleryItem {
            id: i,
            file: format!("img{i}.jpg"),
            thumb: format!("thumbs/{i}.jpg"),
            caption: format!("caption {i}"),
            source: "unit test".into(),
            licence: "CC0-1.0".into(),
            url: Some(format!("https://example.org/{i}")),
            hubness: None,
            ..Default::default()
        })
        .collect();
    let index = GalleryIndex::new(model.model_id(), items);
    Engine::new(model, &bin, &index.to_json()).unwrap()
}

async fn get_json(app: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let res = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn api_returns_the_engines_ranking_with_metadata() {
    let reference = engine();
    let dir = tempfile::tempdir().unwrap();
    let app = web::router(Config::new(dir.path(), Ok(Arc::new(NativeSearcher(engine())))));

    let (status, v) = get_json(&app, "/api/search?q=3+5+7&k=5").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let want = reference.search("3 5 7", 5).unwrap();
    let got = v["results"].as_array().unwrap();
    assert_eq!(got.len(), 5);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["file"], w.file.as_str());
        assert!((g["score"].as_f64().unwrap() - w.score as f64).abs() < 1e-6);
        assert_eq!(g["licence"], "CC0-1.0");
        assert_eq!(g["url"], format!("https://example.org/{}", w.id));
    }
    assert_eq!(v["model_id"], reference.model_id());

    let (status, v) = get_json(&app, "/api/search?like=4&k=11").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let ids: Vec<u64> = v["results"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 11);
    assert!(!ids.contains(&4), "the query image is left out");
    assert_eq!((v["like_item"]["id"].as_u64(), v["like_item"]["file"].as_str()), (Some(4), Some("img4.jpg")), "{v}");

    // An unknown picture is 404 (the request is fine, the picture is not there), naming the gallery's ids.
    let (status, v) = get_json(&app, "/api/search?like=12").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("not in the gallery"), "{v}");

    // Pages: offset 3, k 4 is ranks 3..7 of the engine's ranking; past the served ranks, a 400 naming the range.
    let (status, v) = get_json(&app, "/api/search?q=3+5+7&k=4&offset=3").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let want: Vec<String> = reference.search("3 5 7", 7).unwrap()[3..].iter().map(|h| h.file.clone()).collect();
    let got: Vec<String> = v["results"].as_array().unwrap().iter().map(|h| h["file"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(v["offset"], 3);
    let (status, v) = get_json(&app, "/api/search?q=3&k=10&offset=995").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("offset + k ≤ 1000"), "{v}");

    // Health: what is served.
    let (status, v) = get_json(&app, "/api/health").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["status"].as_str(), v["backend"].as_str(), v["images"].as_u64()), (Some("ok"), Some("memory"), Some(12)));
    assert_eq!(v["model_id"], reference.model_id());
}

#[test]
fn a_missing_model_folder_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let why = web::engine::load(dir.path()).err().unwrap();
    assert!(why.contains("model") && why.contains("trainer export"), "{why}");
}

#[tokio::test]
async fn a_query_of_too_many_words_is_refused_before_any_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let app = web::router(Config::new(dir.path(), Ok(Arc::new(NativeSearcher(engine())))));
    // 8 terms of 28 words each: 224 LSTM steps (the issue measured 1–2.4 s of CPU for such a request).
    let term = vec!["w3"; 28].join("+");
    let q = vec![term; 8].join("%2B");
    let (status, v) = get_json(&app, &format!("/api/search?q={q}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let why = v["error"].as_str().unwrap();
    assert!(why.contains("224 words") && why.contains(&wasm_model::query::MAX_QUERY_WORDS.to_string()), "{why}");
    // A long prompt of one term is cut at the tokenizer's limit, as before (not an error).
    let (status, v) = get_json(&app, &format!("/api/search?q={}", vec!["w3"; 200].join("+"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

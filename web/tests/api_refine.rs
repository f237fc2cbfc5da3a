//! `/api/search` refined (issue #20: `up`, `down`, `orient`, `min`, `lic`, `collapse`, `vary`) and passages
//! (`text=`, GET or a POST JSON body) with wasm-model's real engine, on a flat and a partitioned gallery: the
//! API answers exactly what the engine's `search_refined`, `similar_refined` and `passage` rank; the same
//! request answers the same (share links are exact); bad parameters are a 400 with the refinement's message.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wasm_model::engine::{RefinedHit, Scope};
use wasm_model::partitioned::{fs::write_partitioned, BuildParams};
use wasm_model::workflow::Refinement;
use wasm_model::{testutil, write_gallery_bin, Engine, Gallery, GalleryDtype, GalleryIndex, GalleryItem};
use web::{engine::NativeSearcher, Config};

const DIM: usize = 8;
const N: usize = 240;

/// A model in `root/model`, and the same gallery flat in `root/flat` and partitioned in `root/partitioned`: random
/// pictures, every fourth of the first half copied with a little noise into the second half (near-duplicates),
/// sizes of every shape (some unknown) and licences of every kind.
fn galleries(root: &Path) {
    let model = testutil::random_model(testutil::small_config(), DIM, 7, false);
    model.write(root.join("model")).unwrap();
    let mut rows = testutil::random_rows(N, DIM, 3);
    let noise = testutil::random_rows(N, DIM, 4);
    for i in (0..N / 2).step_by(4) {
        let j = N - 1 - i;
        let mut v: Vec<f32> = (0..DIM).map(|d| rows[i * DIM + d] + 0.05 * noise[j * DIM + d]).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        rows[j * DIM..(j + 1) * DIM].copy_from_slice(&v);
    }
    const LICENCES: [&str; 5] = ["CC0-1.0", "CC BY-SA 4.0", "CC BY-NC 2.0", "Public domain", ""];
    let items: Vec<GalleryItem> = (0..N)
        .map(|i| GalleryItem {
            id: i,
            file: format!("img{i}.jpg"),
            thumb: format!("thumbs/{i}.jpg"),
            caption: format!("caption {i}"),
            source: "unit test".into(),
            licence: LICENCES[i % LICENCES.len()].into(),
            url: Some(format!("https://example.org/{i}")),
            width: (i % 9 != 0).then_some(400 + (i as u32 * 131 % 1400)),
            height: (i % 9 != 0).then_some(400 + (i as u32 * 71 % 1400)),
            ..Default::default()
        })
        .collect();
    let bin = write_gallery_bin(model.model_id(), DIM, &rows, GalleryDtype::F32).unwrap();
    let flat = root.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    std::fs::write(flat.join("gallery.bin"), &bin).unwrap();
    std::fs::write(flat.join("gallery.json"), GalleryIndex::new(model.model_id(), items.clone()).to_json()).unwrap();
    let params = BuildParams { lists: Some(6), meta_block: 32, ..BuildParams::default() };
    write_partitioned(&Gallery::from_bytes(&bin).unwrap(), &items, &params, &root.join("partitioned")).unwrap();
}

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let res = app.clone().oneshot(request).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    call(app, Request::builder().uri(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &axum::Router, uri: &str, body: impl Into<Body>) -> (StatusCode, serde_json::Value) {
    call(app, Request::builder().method("POST").uri(uri).header("content-type", "application/json").body(body.into()).unwrap()).await
}

/// The API's hits are the engine's: ids, collapsed near-duplicates, scores, strength, metadata.
fn assert_hits(what: &str, got: &serde_json::Value, want: &[RefinedHit]) {
    let got = got.as_array().unwrap_or_else(|| panic!("{what}: {got}"));
    assert_eq!(got.len(), want.len(), "{what}: {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["id"].as_u64(), Some(w.hit.id as u64), "{what}");
        // collapsed near-duplicates come with their gallery entries
        let similar = g.get("similar").map_or(&[][..], |s| s.as_array().unwrap().as_slice());
        let ids: Vec<u32> = similar.iter().map(|x| x["id"].as_u64().unwrap() as u32).collect();
        assert_eq!(ids, w.similar, "{what}: id {}", w.hit.id);
        for s in similar {
            let id = s["id"].as_u64().unwrap();
            assert_eq!((s["file"].as_str(), s["url"].as_str()), (Some(format!("img{id}.jpg").as_str()), Some(format!("https://example.org/{id}").as_str())));
        }
        assert!((g["score"].as_f64().unwrap() - w.hit.score as f64).abs() < 1e-6, "{what}");
        assert_eq!(g.get("strong").and_then(|s| s.as_bool()), w.hit.strong, "{what}");
        assert_eq!((g["file"].as_str(), g["url"].as_str()), (Some(w.hit.file.as_str()), Some(format!("https://example.org/{}", w.hit.id).as_str())));
    }
}

const REFINED: &[&str] = &[
    "up=3,200&down=7",
    "orient=landscape",
    "orient=square&min=900",
    "lic=pd",
    "lic=commercial&collapse=1",
    "collapse=1",
    "vary=1",
    "collapse=1&vary=1&lic=nosa",
    "up=12&down=5.6&orient=portrait&collapse=1&vary=1",
];

fn refinement(query: &str) -> Refinement {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    Refinement::from_params(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), false).unwrap()
}

#[tokio::test]
async fn refined_searches_and_passages_are_the_engines_on_every_gallery_tier() {
    let tmp = tempfile::tempdir().unwrap();
    galleries(tmp.path());
    let model = tmp.path().join("model");
    let passage = "w1 w2 w3. w4 w5 w6!\n\nw7 w1 w3 w5. <p>w2 &amp; w4</p> 🐶🐶.";
    for tier in ["flat", "partitioned"] {
        let gallery = tmp.path().join(tier);
        let reference = Engine::open(&model, &gallery).unwrap();
        assert_eq!(reference.partitioned().is_some(), tier == "partitioned");
        let app = web::router(Config::new(tmp.path(), Ok(Arc::new(NativeSearcher(Engine::open(&model, &gallery).unwrap())))));
        let mut collapsed = 0;
        for params in REFINED {
            let r = refinement(params);
            for prompt in ["w2 w5", "w3 -w4", "w7"] {
                let uri = format!("/api/search?q={}&k=12&{params}", prompt.replace(' ', "+"));
                let (status, v) = get(&app, &uri).await;
                assert_eq!(status, StatusCode::OK, "{tier} {uri}: {v}");
                assert_hits(&format!("{tier} {uri}"), &v["results"], &reference.search_refined(prompt, 12, Scope::All, &r).unwrap());
                collapsed += v["results"].as_array().unwrap().iter().filter(|h| h.get("similar").is_some()).count();
                assert_eq!(v["refinement"], serde_json::to_value(&r).unwrap(), "{uri}: the answer says what it applied");
                // a share link reproduces the answer, whichever way it is sent
                assert_eq!(get(&app, &uri).await.1, v, "{uri}");
                let mut body: serde_json::Map<String, serde_json::Value> =
                    serde_urlencoded::from_str::<Vec<(String, String)>>(&uri["/api/search?".len()..]).unwrap().into_iter().map(|(n, v)| (n, v.into())).collect();
                body.insert("k".into(), 12.into());
                assert_eq!(post(&app, "/api/search", serde_json::Value::Object(body).to_string()).await.1, v, "{uri} as a POST");
            }
            let uri = format!("/api/search?like=10&k=8&{params}");
            let (status, v) = get(&app, &uri).await;
            assert_eq!(status, StatusCode::OK, "{tier} {uri}: {v}");
            assert_hits(&format!("{tier} {uri}"), &v["results"], &reference.similar_refined(10, 8, &r).unwrap());
            assert_eq!(v["like_item"]["id"], 10);
            // a page of a refined ranking is its slice
            let (_, page) = get(&app, &format!("/api/search?q=w2+w5&k=4&offset=8&{params}")).await;
            assert_hits(&format!("{tier} page {params}"), &page["results"], &reference.search_refined("w2 w5", 12, Scope::All, &r).unwrap()[8..]);
        }
        assert!(collapsed > 0, "{tier}: near-duplicates were collapsed somewhere");

        // A passage: GET text= and a POST body answer what Engine::passage does.
        for params in ["", "collapse=1&lic=commercial&up=4&vary=1"] {
            let r = refinement(params);
            let want = reference.passage(passage, 3, 5, Scope::All, &r).unwrap();
            let (status, v) = post(&app, &format!("/api/search?{params}"), serde_json::json!({ "text": passage, "k": 5, "k_idea": 3 }).to_string()).await;
            assert_eq!(status, StatusCode::OK, "{tier} passage {params}: {v}");
            assert_hits(&format!("{tier} passage whole"), &v["whole"], &want.whole);
            assert_eq!(v["results"], v["whole"]);
            let ideas = v["ideas"].as_array().unwrap();
            assert_eq!(ideas.len(), want.ideas.len(), "{v}");
            for (g, w) in ideas.iter().zip(&want.ideas) {
                assert_eq!((g["text"].as_str(), g["first"].as_u64(), g["last"].as_u64()), (Some(w.idea.text.as_str()), Some(w.idea.first as u64), Some(w.idea.last as u64)));
                assert_hits(&format!("{tier} idea {:?}", w.idea.text), &g["results"], &w.results);
            }
            assert_eq!((v["sentences"].as_u64(), v["total"].as_u64(), v["without_words"].as_u64()), (Some(want.sentences as u64), Some(want.total as u64), Some(1)));
            let get_uri = format!("/api/search?text={}&k=5&k_idea=3&{params}", urlencode(passage));
            assert_eq!(get(&app, &get_uri).await.1, v, "GET text= answers as the POST body");
        }
    }
}

#[tokio::test]
async fn bad_refinements_and_passages_are_refused_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    galleries(tmp.path());
    let engine = Engine::open(tmp.path().join("model"), tmp.path().join("flat")).unwrap();
    let app = web::router(Config::new(tmp.path(), Ok(Arc::new(NativeSearcher(engine)))));
    for (uri, needle) in [
        ("/api/search?q=w2&orient=wide", "orientation must be landscape, portrait or square"),
        ("/api/search?q=w2&min=0", "1 to 100000 pixels"),
        ("/api/search?q=w2&lic=free", "licence must be pd"),
        ("/api/search?q=w2&up=4&down=4", "both liked (up) and disliked (down)"),
        ("/api/search?q=w2&up=240", "up names picture 240, which is not in the gallery"),
        ("/api/search?like=3&down=999", "down names picture 999"),
        ("/api/search?q=w2&collapse=maybe", "collapse must be 1 or 0"),
        ("/api/search?text=%F0%9F%90%B6+%3Cbr%3E+!!", "no words to search for"),
        ("/api/search?text=w2.&offset=3", "answered whole"),
        ("/api/search?q=w2&text=w3.", "either q or like or text"),
    ] {
        let (status, v) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{uri}: {v}");
    }
    let long = "w2 w3. ".repeat(wasm_model::workflow::passage::MAX_PASSAGE_BYTES / 7 + 1);
    let (status, v) = post(&app, "/api/search", serde_json::json!({ "text": long }).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("paste at most 100000 bytes"), "{v}");
    // past the body limit: refused before it is read whole, still in JSON
    let huge = format!("{{\"text\": \"{}\"}}", "w2 ".repeat(web::request::MAX_BODY_BYTES / 3 + 10));
    let (status, v) = post(&app, "/api/search", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("request body"), "{v}");
    let (status, v) = post(&app, "/api/search", "[1]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("JSON object"), "{v}");
    let put = Request::builder().method("PUT").uri("/api/search?q=w2").body(Body::empty()).unwrap();
    assert_eq!(call(&app, put).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

/// The JSON of `/api/search`, byte for byte (the page and share links read these keys in this order): a refined
/// prompt whose results carry collapsed near-duplicates, and "more like this" with the picture's own entry.
#[tokio::test]
async fn the_search_answer_is_pinned_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    galleries(tmp.path());
    let (model, flat) = (tmp.path().join("model"), tmp.path().join("flat"));
    let reference = Engine::open(&model, &flat).unwrap();
    let app = web::router(Config::new(tmp.path(), Ok(Arc::new(NativeSearcher(Engine::open(&model, &flat).unwrap())))));
    let raw = |uri: String| {
        let app = app.clone();
        async move {
            let res = app.oneshot(Request::builder().uri(&uri).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{uri}");
            String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
        }
    };
    // a picture's gallery entry, after its id (and score, strong)
    let entry = |id: usize| {
        let item = reference.item(id).unwrap();
        format!(
            r#""file":{},"thumb":{},"caption":{},"source":{},"licence":{},"url":{}"#,
            json(&item.file), json(&item.thumb), json(&item.caption), json(&item.source), json(&item.licence), json(&item.url)
        )
    };
    let hit = |h: &RefinedHit| {
        let strong = h.hit.strong.map_or(String::new(), |s| format!(r#""strong":{s},"#));
        let similar = match h.similar.as_slice() {
            [] => String::new(),
            ids => format!(r#","similar":[{}]"#, ids.iter().map(|&id| format!(r#"{{"id":{id},{}}}"#, entry(id as usize))).collect::<Vec<_>>().join(",")),
        };
        format!(r#"{{"id":{},"score":{},{strong}{}{similar}}}"#, h.hit.id, json(&h.hit.score), entry(h.hit.id as usize))
    };
    let hits = |hs: &[RefinedHit]| hs.iter().map(hit).collect::<Vec<_>>().join(",");

    let mut collapsed = 0;
    for prompt in ["w2 w5", "w3 -w4", "w7"] {
        let r = refinement("collapse=1");
        let want = reference.search_refined(prompt, 12, Scope::All, &r).unwrap();
        collapsed += want.iter().filter(|h| !h.similar.is_empty()).count();
        let body = raw(format!("/api/search?q={}&k=12&collapse=1", prompt.replace(' ', "+"))).await;
        let expected = format!(
            r#"{{"model_id":{},"query":{},"like":null,"k":12,"offset":0,"refinement":{},"results":[{}]}}"#,
            json(&reference.model_id()), json(&prompt), json(&r), hits(&want)
        );
        assert_eq!(body, expected, "{prompt}");
    }
    assert!(collapsed > 0, "some result carries its collapsed near-duplicates");

    let body = raw("/api/search?like=10&k=3".into()).await;
    let want: Vec<RefinedHit> = reference.similar(10, 3).unwrap().into_iter().map(|hit| RefinedHit { hit, similar: Vec::new() }).collect();
    let expected = format!(
        r#"{{"model_id":{},"query":null,"like":10,"k":3,"offset":0,"results":[{}],"like_item":{{"id":10,"score":1.0,{}}}}}"#,
        json(&reference.model_id()), hits(&want), entry(10)
    );
    assert_eq!(body, expected);
}

/// A value as serde_json writes it (the expected bytes above).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
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

//! The router driven in-process with `oneshot` (no sockets): MIME types, headers, traversal, API errors.

use std::sync::Arc;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use tower::ServiceExt;
use web::{Config, GalleryEntry, Hit, Searcher};

/// A temp folder whose `site/` is a static folder with one file of each kind the page serves, and beside it a
/// file that path traversal must not reach.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = &site(&dir);
    std::fs::create_dir_all(p.join("pkg")).unwrap();
    std::fs::create_dir_all(p.join("gallery/thumbs")).unwrap();
    std::fs::create_dir_all(p.join("model")).unwrap();
    std::fs::create_dir_all(p.join(".git")).unwrap();
    std::fs::write(p.join("index.html"), "<!doctype html><title>imgpick</title>".repeat(20)).unwrap();
    std::fs::write(p.join("app.js"), "export const x = 1;\n".repeat(50)).unwrap();
    std::fs::write(p.join("style.css"), "body { margin: 0 }\n".repeat(50)).unwrap();
    std::fs::write(p.join("pkg/wasm_model_bg.wasm"), b"\0asm\x01\0\0\0".repeat(100)).unwrap();
    std::fs::write(p.join("model/manifest.json"), "{}").unwrap();
    std::fs::write(p.join("gallery/gallery.bin"), vec![7u8; 4096]).unwrap();
    std::fs::write(p.join("gallery/thumbs/0.jpg"), [0xffu8, 0xd8, 0xff]).unwrap();
    std::fs::write(p.join(".git/config"), "secret").unwrap();
    std::fs::write(dir.path().join("imgpick-outside.txt"), "outside").unwrap();
    dir
}

fn site(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("site")
}

struct FakeSearcher;
impl Searcher for FakeSearcher {
    fn model_id(&self) -> String {
        "0123456789abcdef0123456789abcdef".into()
    }
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, String> {
        Ok((0..k.min(3))
            .map(|i| Hit {
                id: i,
                score: 1.0 - i as f32 / 10.0,
                strong: None,
                entry: GalleryEntry {
                    file: format!("{query}-{i}.jpg"),
                    thumb: format!("thumbs/{i}.jpg"),
                    caption: "a caption".into(),
                    source: "test".into(),
                    licence: "CC0".into(),
                    url: None,
                },
                similar: Vec::new(),
            })
            .collect())
    }
    fn similar(&self, id: usize, _k: usize) -> Result<Vec<Hit>, String> {
        Err(format!("no gallery item {id}"))
    }
}

fn app(dir: &tempfile::TempDir, searcher: Result<Arc<dyn Searcher>, String>) -> Router {
    web::router(Config::new(site(dir), searcher))
}

async fn get(app: &Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn no_api() -> Result<Arc<dyn Searcher>, String> {
    Err("static/model is missing".into())
}

#[tokio::test]
async fn serves_files_with_correct_mime_types() {
    let dir = fixture();
    let app = app(&dir, no_api());
    for (uri, mime) in [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/pkg/wasm_model_bg.wasm", "application/wasm"),
        ("/model/manifest.json", "application/json"),
        ("/gallery/gallery.bin", "application/octet-stream"),
        ("/gallery/thumbs/0.jpg", "image/jpeg"),
    ] {
        let (status, h, _) = get(&app, uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let ct = h[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with(mime), "{uri}: content-type {ct}, want {mime}");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let dir = fixture();
    let app = app(&dir, no_api());
    for uri in ["/", "/app.js", "/nope", "/api/search?q=x"] {
        let (_, h, _) = get(&app, uri, &[]).await;
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "script-src 'self' 'wasm-unsafe-eval'",
            "worker-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "img-src 'self' data: blob:",
            "default-src 'self'",
        ] {
            assert!(csp.contains(directive), "{uri}: CSP lacks {directive}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"), "{csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{uri}");
        assert_eq!(h["cross-origin-embedder-policy"], "require-corp", "{uri}");
    }
}

#[tokio::test]
async fn cache_headers_revalidate_pages_and_keep_thumbnails() {
    let dir = fixture();
    let app = app(&dir, no_api());
    for uri in ["/", "/app.js", "/pkg/wasm_model_bg.wasm", "/gallery/gallery.bin", "/model/manifest.json"] {
        let (_, h, _) = get(&app, uri, &[]).await;
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{uri}");
        assert!(h.contains_key(header::LAST_MODIFIED), "{uri} lacks Last-Modified");
    }
    let (_, h, _) = get(&app, "/gallery/thumbs/0.jpg", &[]).await;
    let cc = h[header::CACHE_CONTROL].to_str().unwrap();
    assert!(cc.contains("max-age=") && cc.contains("public"), "thumb cache-control {cc}");
    let (_, h, _) = get(&app, "/api/search?q=dog", &[]).await;
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn etag_turns_a_repeat_request_into_304() {
    let dir = fixture();
    let app = app(&dir, no_api());
    let (status, h, body) = get(&app, "/gallery/gallery.bin", &[]).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 4096));
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    let (status, h, body) = get(&app, "/gallery/gallery.bin", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(h[header::ETAG], etag.as_str());
    // A stale tag gets the full file.
    let (status, _, body) = get(&app, "/gallery/gallery.bin", &[("if-none-match", "W/\"1-1\"")]).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 4096));
    // Touching the file changes the tag.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(site(&dir).join("gallery/gallery.bin"), vec![8u8; 4097]).unwrap();
    let (status, h, _) = get(&app, "/gallery/gallery.bin", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(h[header::ETAG], etag.as_str());
}

#[tokio::test]
async fn compresses_text_and_wasm_but_not_binary_data() {
    let dir = fixture();
    let app = app(&dir, no_api());
    for (uri, enc) in [("/app.js", "gzip"), ("/pkg/wasm_model_bg.wasm", "br"), ("/", "br")] {
        let (status, h, _) = get(&app, uri, &[("accept-encoding", enc)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()), Some(enc), "{uri}");
    }
    // Embeddings keep their Content-Length (the page's progress bar needs it).
    let (_, h, body) = get(&app, "/gallery/gallery.bin", &[("accept-encoding", "gzip, br")]).await;
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(h[header::CONTENT_LENGTH], "4096");
    assert_eq!(body.len(), 4096);
}

#[tokio::test]
async fn no_way_out_of_the_static_folder() {
    let dir = fixture();
    let app = app(&dir, no_api());
    for uri in [
        "/../imgpick-outside.txt",
        "/pkg/../../imgpick-outside.txt",
        "/%2e%2e/imgpick-outside.txt",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/pkg/%2e%2e%2f%2e%2e%2fimgpick-outside.txt",
        "/..%2fimgpick-outside.txt",
        "/..%5cimgpick-outside.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/%2fetc%2fpasswd",
        "/.git/config",
        "/gallery/%2e%2e/%2e%2e/imgpick-outside.txt",
        "/nope.html",
    ] {
        let (status, _, body) = get(&app, uri, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("outside") && !text.contains("root:") && !text.contains("secret"), "{uri}: {text}");
    }
}

#[tokio::test]
async fn api_without_an_engine_answers_503_with_the_reason() {
    let dir = fixture();
    let app = app(&dir, no_api());
    let (status, h, body) = get(&app, "/api/search?q=dog", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("static/model is missing"), "{v}");
}

#[tokio::test]
async fn api_validates_its_parameters() {
    let dir = fixture();
    let app = app(&dir, Ok(Arc::new(FakeSearcher)));
    let long = format!("/api/search?q={}", "a".repeat(web::api::MAX_QUERY_BYTES + 1));
    for (uri, needle) in [
        ("/api/search", "missing query"),
        ("/api/search?q=%20%20", "missing query"),
        ("/api/search?q=dog&k=0", "k must be"),
        ("/api/search?q=dog&k=101", "k must be"),
        ("/api/search?q=dog&k=-1", "k must be"),
        ("/api/search?q=dog&k=ten", "k must be"),
        ("/api/search?like=x", "like must be"),
        ("/api/search?q=dog&like=1", "either q or like"),
        ("/api/search?like=99", "no gallery item 99"),
        (long.as_str(), "at most"),
    ] {
        let (status, _, body) = get(&app, uri, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle), "{uri}: {v}");
    }
    let (status, _, _) = get(&app, "/api/nope", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_answers_ranked_results_as_json() {
    let dir = fixture();
    let app = app(&dir, Ok(Arc::new(FakeSearcher)));
    let (status, _, body) = get(&app, "/api/search?q=%3Cb%3Edog&k=2", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["query"], "<b>dog");
    assert_eq!(v["k"], 2);
    assert_eq!(v["model_id"], "0123456789abcdef0123456789abcdef");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["file"], "<b>dog-0.jpg");
    assert!(results[0]["score"].as_f64().unwrap() > results[1]["score"].as_f64().unwrap());
}

#[tokio::test]
async fn api_errors_are_always_json() {
    let dir = fixture();
    let app = app(&dir, Ok(Arc::new(FakeSearcher)));
    for (uri, status, needle) in [
        ("/api/search?q=dog&q=cat", StatusCode::BAD_REQUEST, "q is given 2 times"),
        ("/api/search?q=dog&k=1&k=2", StatusCode::BAD_REQUEST, "k is given 2 times"),
        ("/api/search?q=dog&like=1&like=2", StatusCode::BAD_REQUEST, "like is given 2 times"),
        ("/api/nope", StatusCode::NOT_FOUND, "unknown API endpoint"),
    ] {
        let (got, h, body) = get(&app, uri, &[]).await;
        assert_eq!(got, status, "{uri}");
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"), "{uri}: {h:?}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body:?}"));
        assert!(v["error"].as_str().unwrap().contains(needle), "{uri}: {v}");
    }
    // Unknown parameters are ignored, as before (links may carry page-only state such as `in=mine`).
    let (status, _, _) = get(&app, "/api/search?q=dog&in=mine", &[]).await;
    assert_eq!(status, StatusCode::OK);
    // GET (HEAD) and POST (parameters in a JSON body, for long passages) only
    let req = Request::builder().method("PUT").uri("/api/search?q=dog").body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("GET"), "{v}");
}

#[tokio::test]
async fn range_requests_get_one_range_or_the_whole_file() {
    let dir = fixture();
    let app = app(&dir, no_api());
    let file = std::fs::read(site(&dir).join("gallery/gallery.bin")).unwrap();
    // One satisfiable range: 206 with those bytes.
    for (range, want) in [("bytes=0-9", 0..10), ("bytes=4090-", 4090..4096), ("bytes=-6", 4090..4096)] {
        let (status, h, body) = get(&app, "/gallery/gallery.bin", &[("range", range)]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(body, file[want.clone()], "{range}");
        assert_eq!(h[header::CONTENT_RANGE], format!("bytes {}-{}/4096", want.start, want.end - 1).as_str());
    }
    // Several ranges, or a header that is not a valid byte range: the whole file (RFC 9110 §14.2 lets a server
    // ignore Range; 416 is for a valid range that misses the file).
    let unusable =
        ["bytes=0-1,5-6", "bytes=0-1, 3-4, 100-200", "bytes=abc", "bytes=5-2", "bytes=", "items=0-1", "bytes=--1"];
    for range in unusable {
        let (status, h, body) = get(&app, "/gallery/gallery.bin", &[("range", range)]).await;
        assert_eq!(status, StatusCode::OK, "{range}");
        assert_eq!(body, file, "{range}");
        assert!(h.get(header::CONTENT_RANGE).is_none(), "{range}");
    }
    let (status, h, _) = get(&app, "/gallery/gallery.bin", &[("range", "bytes=5000-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h[header::CONTENT_RANGE], "bytes */4096");
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_out_of_the_served_folders_are_refused() {
    use std::os::unix::fs::symlink;
    let dir = fixture();
    let p = site(&dir);
    let outside = dir.path().join("imgpick-outside.txt");
    std::fs::create_dir_all(dir.path().join("elsewhere/model")).unwrap();
    std::fs::write(dir.path().join("elsewhere/model/vocab.txt"), "a\nb\n").unwrap();
    std::fs::write(dir.path().join("elsewhere/private.txt"), "outside").unwrap();
    // Links below the top level that leave the folder: refused.
    symlink(&outside, p.join("gallery/thumbs/leak.jpg")).unwrap();
    symlink(dir.path(), p.join("pkg/up")).unwrap();
    symlink("/etc", p.join("gallery/etc")).unwrap();
    // Links that stay inside: served.
    symlink(p.join("gallery/thumbs/0.jpg"), p.join("gallery/thumbs/alias.jpg")).unwrap();
    symlink("../app.js", p.join("pkg/app-alias.js")).unwrap();
    // A top-level link is part of how the site was assembled (scripts/test-e2e.sh links pkg/ and model/ into its
    // folder): its target is served, but links inside it must stay inside it.
    symlink(dir.path().join("elsewhere/model"), p.join("linked-model")).unwrap();
    symlink(dir.path().join("elsewhere/private.txt"), dir.path().join("elsewhere/model/leak.txt")).unwrap();
    let app = app(&dir, no_api());
    let refused =
        ["/gallery/thumbs/leak.jpg", "/pkg/up/imgpick-outside.txt", "/gallery/etc/passwd", "/linked-model/leak.txt"];
    for uri in refused {
        let (status, _, body) = get(&app, uri, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("outside") && !text.contains("root:"), "{uri}: {text}");
    }
    for uri in ["/gallery/thumbs/alias.jpg", "/pkg/app-alias.js", "/linked-model/vocab.txt"] {
        let (status, _, _) = get(&app, uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
}

/// scripts/test-e2e.sh serves a folder of links into the repository's static/ (and a model elsewhere): it must keep
/// working.
#[cfg(unix)]
#[tokio::test]
async fn a_folder_of_links_like_the_e2e_layout_is_served() {
    use std::os::unix::fs::symlink;
    let dir = fixture();
    let e2e = dir.path().join("e2e/static");
    std::fs::create_dir_all(e2e.join("gallery/thumbs")).unwrap();
    for f in ["index.html", "app.js", "pkg", "model"] {
        symlink(site(&dir).join(f), e2e.join(f)).unwrap();
    }
    std::fs::write(e2e.join("gallery/thumbs/1.jpg"), [0xffu8, 0xd8, 0xff]).unwrap();
    // And a second folder linking to the first one's links (the corrupt-gallery variant of the e2e tests).
    let corrupt = dir.path().join("e2e/static-corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    for f in ["index.html", "app.js", "pkg", "model"] {
        symlink(e2e.join(f), corrupt.join(f)).unwrap();
    }
    for root in [&e2e, &corrupt] {
        let app = web::router(Config::new(root.clone(), no_api()));
        for uri in ["/", "/app.js", "/pkg/wasm_model_bg.wasm", "/model/manifest.json"] {
            let (status, _, _) = get(&app, uri, &[]).await;
            assert_eq!(status, StatusCode::OK, "{}{uri}", root.display());
        }
    }
    let app = web::router(Config::new(e2e.clone(), no_api()));
    let (status, _, _) = get(&app, "/gallery/thumbs/1.jpg", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

fn brotli_decode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut std::io::Cursor::new(body), &mut out).unwrap();
    out
}

fn gzip_decode(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
    out
}

/// Text that compresses like code (repeated words in a shuffled order), `len` bytes.
fn code_like(len: usize, seed: u64) -> Vec<u8> {
    let words = ["function", "const", "return", "this", "wasm", "memory", "export", "import", "=>", "{", "}", ";"];
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
        out.extend_from_slice(format!(" {} ", (x >> 50) % 1000).as_bytes());
    }
    out.truncate(len);
    out
}

/// Requests `uri` with `encoding` until the answer is the stored compressed copy (it has a Content-Length;
/// on-the-fly compression streams without one): the first request starts the compression in the background.
/// Every answer on the way must decode to `content`.
async fn stored_copy(app: &Router, uri: &str, encoding: &str, content: &[u8]) -> (axum::http::HeaderMap, Vec<u8>) {
    let decode = if encoding == "br" { brotli_decode } else { gzip_decode };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, h, body) = get(app, uri, &[("accept-encoding", encoding)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_ENCODING], encoding);
        assert!(h[header::VARY].to_str().unwrap().to_ascii_lowercase().contains("accept-encoding"));
        assert!(decode(&body) == content, "the {encoding} body is not the file's current content");
        if h.contains_key(header::CONTENT_LENGTH) {
            return (h, body);
        }
        assert!(std::time::Instant::now() < deadline, "no stored {encoding} copy after 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn compressed_files_are_the_files_and_never_stale() {
    let dir = fixture();
    let app = app(&dir, no_api());
    let path = site(&dir).join("pkg/wasm_model_bg.wasm");
    for round in 0..3u64 {
        let content = code_like(300_000 + round as usize, round);
        std::fs::write(&path, &content).unwrap();
        for enc in ["br", "gzip"] {
            let (h, body) = stored_copy(&app, "/pkg/wasm_model_bg.wasm", enc, &content).await;
            assert_eq!(h[header::CONTENT_LENGTH], body.len().to_string().as_str());
            assert!(body.len() < content.len() / 2, "round {round}: {enc} body {} bytes", body.len());
        }
        let (_, h, body) = get(&app, "/pkg/wasm_model_bg.wasm", &[]).await;
        assert!(h.get(header::CONTENT_ENCODING).is_none());
        assert!(body == content);
        // The mtime is part of the cache key; make sure the next write gets a new one even on coarse clocks.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_compressed_file_is_compressed_once_not_per_request() {
    let dir = fixture();
    let app = app(&dir, no_api());
    std::fs::write(site(&dir).join("pkg/wasm_model_bg.wasm"), code_like(2_000_000, 9)).unwrap();
    async fn median_ms(app: &Router, headers: &[(&str, &str)]) -> f64 {
        let mut t = Vec::new();
        for _ in 0..7 {
            let start = std::time::Instant::now();
            let (status, _, _) = get(app, "/pkg/wasm_model_bg.wasm", headers).await;
            assert_eq!(status, StatusCode::OK);
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(f64::total_cmp);
        t[3]
    }
    let content = std::fs::read(site(&dir).join("pkg/wasm_model_bg.wasm")).unwrap();
    stored_copy(&app, "/pkg/wasm_model_bg.wasm", "br", &content).await;
    let plain = median_ms(&app, &[]).await;
    let br = median_ms(&app, &[("accept-encoding", "br")]).await;
    // Brotli over 2 MB costs tens of milliseconds; sending stored bytes costs about what sending the file does.
    assert!(br < 3.0 * plain + 5.0, "br responses take {br:.1} ms (median), the uncompressed file {plain:.1} ms");
}
